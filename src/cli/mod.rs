//! The `tandem` command line: one module per subcommand.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod chat;
pub mod devices;
pub mod embed;
pub mod info;
pub mod perplexity;
pub mod placement_args;
pub mod plan;
pub mod quantize;
pub mod run;
pub mod sampling_args;
pub mod serve;
pub mod synth;
pub mod tokenize;

/// Runs quantized GGUF language models split between a small GPU and the CPU.
#[derive(Parser, Debug)]
#[command(name = "tandem", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a GGUF model's architecture, hyperparameters, tokenizer and tensors
    Info(info::InfoArgs),
    /// Convert an F32/F16/BF16 GGUF model to a quantized type
    Quantize(quantize::QuantizeArgs),
    /// Write a model with random weights, real shapes and a real tokenizer
    Synth(synth::SynthArgs),
    /// Print the token ids of a text
    Tokenize(tokenize::TokenizeArgs),
    /// Generate a continuation of a prompt
    Run(run::RunArgs),
    /// Chat interactively using the model's chat template
    Chat(chat::ChatArgs),
    /// Measure perplexity on a text file, as llama-perplexity does
    Perplexity(perplexity::PerplexityArgs),
    /// Measure prompt processing and generation speed, as llama-bench does
    Bench(bench::BenchArgs),
    /// Serve the OpenAI API over HTTP, batching concurrent requests
    Serve(serve::ServeArgs),
    /// Print the embedding of a text, as llama-embedding does
    Embed(embed::EmbedArgs),
    /// Where the blocks go for a GPU memory budget, and the predicted speed (no loading)
    Plan(plan::PlanArgs),
    /// List the GPU adapters (index for --gpu-device, limits, features)
    Devices(devices::DevicesArgs),
}

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Run(a) => run::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Perplexity(a) => perplexity::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Devices(a) => devices::run(a),
    }
}
