//! `tandem bench`: prompt-processing and generation speed in llama-bench's format, plus how
//! close generation gets to the machine's measured memory read bandwidth.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::bench::report::{self, known_size_class, BenchResult, ModelShape, ModelSummary};
use crate::bench::{measure_read_bandwidth, run_test, BenchTarget, TestSpec};
use crate::engine::{physical_cores, Engine, EngineOptions};
use crate::gguf::GgufFile;
use crate::sampling::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Md,
    Json,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model file(s) (GGUF); repeat for several
    #[arg(short = 'm', long, required = true)]
    pub model: Vec<PathBuf>,
    /// Prompt lengths to test, comma-separated (0 = no prompt test)
    #[arg(short = 'p', long = "n-prompt", default_value = "512")]
    pub n_prompt: String,
    /// Generation lengths to test, comma-separated (0 = no generation test)
    #[arg(short = 'n', long = "n-gen", default_value = "128")]
    pub n_gen: String,
    /// Timed repetitions of each test (after one warm-up)
    #[arg(short = 'r', long, default_value_t = 3)]
    pub repetitions: usize,
    /// Thread counts, comma-separated (default: physical cores)
    #[arg(short = 't', long)]
    pub threads: Option<String>,
    /// Most tokens per forward pass during prompt processing
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Md)]
    pub output: OutputFormat,
    /// Buffer size of the read-bandwidth measurement, in MiB (0 = skip it)
    #[arg(long, default_value_t = 1024)]
    pub bandwidth_mib: usize,
}

/// Parses "512,1024" into numbers.
pub fn parse_list(flag: &str, text: &str) -> anyhow::Result<Vec<usize>> {
    let values = text
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .with_context(|| format!("{flag}: '{part}' is not a non-negative whole number"))
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    if values.is_empty() {
        bail!("{flag}: no values given");
    }
    Ok(values)
}

impl BenchTarget for Engine {
    fn clear(&mut self) {
        Engine::clear(self)
    }
    fn eval(&mut self, tokens: &[u32]) -> anyhow::Result<()> {
        Engine::eval(self, tokens).map(|_| ())
    }
    fn n_vocab(&self) -> usize {
        Engine::n_vocab(self)
    }
}

/// The table's description of a model: llama.cpp's "ARCH SIZE FILETYPE".
fn summarize(engine: &Engine, file: &GgufFile) -> anyhow::Result<ModelSummary> {
    let info = engine.model_info();
    let hp = engine.hparams();
    let shape = ModelShape {
        arch: &info.arch,
        n_layer: hp.n_layer,
        n_embd: hp.n_embd,
        n_vocab: hp.n_vocab,
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
    };
    // llama.cpp's own size class first, then the file's label, then one from the count.
    let label = match (
        known_size_class(&shape),
        file.metadata().opt_str("general.size_label")?,
    ) {
        (Some(class), _) => class.to_string(),
        (None, Some(label)) if !label.is_empty() => label.to_string(),
        _ => report::size_label(info.n_params),
    };
    Ok(ModelSummary {
        description: report::model_description(&info.arch, &label, &info.file_type),
        size_bytes: info.size_bytes,
        n_params: info.n_params,
    })
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let prompts: Vec<usize> = parse_list("-p", &args.n_prompt)?
        .into_iter()
        .filter(|&p| p > 0)
        .collect();
    let gens: Vec<usize> = parse_list("-n", &args.n_gen)?
        .into_iter()
        .filter(|&n| n > 0)
        .collect();
    let threads = match &args.threads {
        Some(list) => parse_list("-t", list)?,
        None => vec![physical_cores()],
    };
    if threads.contains(&0) {
        bail!("-t: thread counts must be at least 1");
    }
    if args.repetitions == 0 {
        bail!("-r: at least one repetition is needed");
    }
    if prompts.is_empty() && gens.is_empty() {
        bail!("nothing to measure: both -p and -n are 0");
    }
    let n_ctx = prompts.iter().chain(&gens).copied().max().unwrap_or(1);

    let mut results: Vec<BenchResult> = Vec::new();
    let mut weight_bytes: Vec<u64> = Vec::new();
    let mut rng = Rng::new(0x00BE_7C11);
    for path in &args.model {
        let file = GgufFile::open(path)?;
        for &n_threads in &threads {
            let mut engine = Engine::load(
                path,
                EngineOptions {
                    n_ctx: Some(n_ctx),
                    n_batch: args.batch_size,
                    n_threads: Some(n_threads),
                    ..EngineOptions::default()
                },
            )?;
            let model = summarize(&engine, &file)?;
            let specs = prompts
                .iter()
                .map(|&p| (p, 0))
                .chain(gens.iter().map(|&n| (0, n)));
            for (n_prompt, n_gen) in specs {
                let spec = TestSpec {
                    n_prompt,
                    n_gen,
                    repetitions: args.repetitions,
                };
                let samples_ns = run_test(&mut engine, &spec, &mut rng)?;
                let result = BenchResult {
                    model: model.clone(),
                    backend: "CPU".to_string(),
                    threads: engine.n_threads(),
                    n_prompt,
                    n_gen,
                    samples_ns,
                };
                eprintln!(
                    "{} {} t={}: {:.2} ± {:.2} t/s",
                    model.description,
                    result.test_name(),
                    result.threads,
                    result.mean_ts(),
                    result.stdev_ts()
                );
                weight_bytes.push(engine.model_info().size_bytes);
                results.push(result);
            }
        }
    }

    let bandwidth_lines = bandwidth_report(&results, &weight_bytes, args.bandwidth_mib);
    match args.output {
        OutputFormat::Md => {
            print!("{}", report::markdown_table(&results));
            if !bandwidth_lines.is_empty() {
                println!();
                for line in &bandwidth_lines {
                    println!("{line}");
                }
            }
        }
        OutputFormat::Json => {
            println!("{}", report::json(&results));
            for line in &bandwidth_lines {
                eprintln!("{line}");
            }
        }
    }
    Ok(())
}

/// One line per generation row: weight bytes read per second against the read bandwidth
/// measured with the same thread count.
fn bandwidth_report(
    results: &[BenchResult],
    weight_bytes: &[u64],
    buffer_mib: usize,
) -> Vec<String> {
    if buffer_mib == 0 {
        return Vec::new();
    }
    let mut measured: Vec<(usize, f64)> = Vec::new();
    let mut lines = Vec::new();
    for (result, &bytes) in results.iter().zip(weight_bytes) {
        if result.n_gen == 0 {
            continue;
        }
        let bandwidth = match measured.iter().find(|m| m.0 == result.threads) {
            Some(m) => m.1,
            None => {
                let bw = measure_read_bandwidth(buffer_mib << 20, result.threads, 5).gb_per_sec();
                measured.push((result.threads, bw));
                bw
            }
        };
        let achieved = bytes as f64 * result.mean_ts() / 1e9;
        lines.push(format!(
            "{} {} t={}: {:.1} GB/s of weights read, {:.0}% of measured read bandwidth {:.1} GB/s",
            result.model.description,
            result.test_name(),
            result.threads,
            achieved,
            100.0 * achieved / bandwidth,
            bandwidth
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists() {
        assert_eq!(parse_list("-p", "512").unwrap(), vec![512]);
        assert_eq!(parse_list("-p", "0, 128,512").unwrap(), vec![0, 128, 512]);
        assert!(parse_list("-p", "12x").is_err());
        assert!(parse_list("-p", "-1").is_err());
        assert!(parse_list("-p", "").is_err());
    }
}
