use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TANDEM_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let args = tandem::cli::placement_args::translate_llama_flags(std::env::args());
    let cli = tandem::cli::Cli::parse_from(args);
    match tandem::cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
