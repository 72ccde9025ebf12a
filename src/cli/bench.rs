//! `tandem bench`: prompt-processing and generation speed in llama-bench's format, plus how
//! close generation gets to the machine's measured memory read bandwidth.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::bench::report::{self, known_size_class, BenchResult, ModelShape, ModelSummary};
use crate::bench::{measure_read_bandwidth, run_test, BenchTarget, TestSpec};
use crate::engine::{physical_cores, Engine, EngineOptions, GpuLayers, OutputOn};
use crate::gguf::GgufFile;
use crate::model::StageTimes;
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
    /// Blocks on the GPU, comma-separated counts or `all` (also -ngl), e.g. 0,9,all
    #[arg(long = "gpu-layers", visible_alias = "n-gpu-layers")]
    pub gpu_layers: Option<String>,
    /// Where the output layer runs: gpu or cpu (default: gpu when all blocks are)
    #[arg(long = "output-on")]
    pub output_on: Option<OutputOn>,
    /// Keep the K/V cache of GPU blocks in host memory
    #[arg(long = "kv-on-cpu", visible_alias = "no-kv-offload")]
    pub kv_on_cpu: bool,
    /// The GPU adapter (index from `tandem devices`)
    #[arg(long = "gpu-device", visible_alias = "main-gpu")]
    pub gpu_device: Option<usize>,
    /// Also print the time of each block on its device, of the boundary crossings and
    /// of the output layer, for one prompt batch and one generated token
    #[arg(long = "per-layer")]
    pub per_layer: bool,
    /// Also time every GPU kernel (timestamp queries) over the first prompt test and
    /// the first generation test (at most 32 tokens) of each placement with GPU blocks,
    /// and print a table per test
    #[arg(long = "gpu-profile")]
    pub gpu_profile: bool,
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
    let gpu_layer_list: Vec<GpuLayers> = match &args.gpu_layers {
        Some(list) => list
            .split(',')
            .map(|v| v.parse().map_err(|e: String| anyhow::anyhow!("-ngl: {e}")))
            .collect::<anyhow::Result<_>>()?,
        None => vec![GpuLayers::Auto],
    };
    let mut per_layer_reports = Vec::new();
    let mut gpu_profiles = Vec::new();
    let mut prediction_lines = Vec::new();

    let mut results: Vec<BenchResult> = Vec::new();
    let mut weight_bytes: Vec<WeightPlacement> = Vec::new();
    let mut rng = Rng::new(0x00BE_7C11);
    for path in &args.model {
        let file = GgufFile::open(path)?;
        for (&n_threads, &gpu_layers) in threads
            .iter()
            .flat_map(|t| gpu_layer_list.iter().map(move |g| (t, g)))
        {
            let mut engine = Engine::load(
                path,
                EngineOptions {
                    n_ctx: Some(n_ctx),
                    n_batch: args.batch_size,
                    n_threads: Some(n_threads),
                    gpu_layers,
                    output_on: args.output_on,
                    kv_on_cpu: args.kv_on_cpu,
                    gpu_device: args.gpu_device,
                    ..EngineOptions::default()
                },
            )?;
            let model = summarize(&engine, &file)?;
            let placed = WeightPlacement::of(&file, &engine);
            let predicted = predict(&engine, &file, n_threads)?;
            let mut measured = (None, None);
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
                    backend: engine.backend_name(),
                    threads: engine.n_threads(),
                    gpu_layers: args.gpu_layers.as_ref().map(|_| gpu_layers.to_string()),
                    n_prompt,
                    n_gen,
                    samples_ns,
                };
                eprintln!(
                    "{} {} t={} ngl={gpu_layers}: {:.2} ± {:.2} t/s",
                    model.description,
                    result.test_name(),
                    result.threads,
                    result.mean_ts(),
                    result.stdev_ts()
                );
                if n_gen == 0 && measured.0.is_none() {
                    measured.0 = Some(result.mean_ts());
                } else if n_prompt == 0 && measured.1.is_none() {
                    measured.1 = Some(result.mean_ts());
                }
                weight_bytes.push(placed);
                results.push(result);
            }
            prediction_lines.push(prediction_line(
                &model.description,
                gpu_layers,
                &engine,
                predicted,
                measured,
            ));
            if args.gpu_profile {
                gpu_profiles.extend(gpu_profile(
                    &mut engine,
                    &model.description,
                    prompts.first().copied().unwrap_or(0),
                    gens.first().copied().unwrap_or(0).min(32),
                    &mut rng,
                )?);
            }
            if args.per_layer {
                let n_prompt = prompts.first().copied().unwrap_or(0);
                per_layer_reports.push(per_layer(
                    &mut engine,
                    &model.description,
                    n_prompt,
                    &mut rng,
                )?);
            }
        }
    }

    let mut bandwidth_lines = bandwidth_report(&results, &weight_bytes, args.bandwidth_mib);
    bandwidth_lines.push(String::new());
    bandwidth_lines.extend(prediction_lines);
    for report in per_layer_reports.into_iter().chain(gpu_profiles) {
        bandwidth_lines.push(String::new());
        bandwidth_lines.extend(report.lines().map(str::to_string));
    }
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

/// The planner's predicted (pp, tg) for the engine's placement, from the devices'
/// measured (cached) speeds.
fn predict(engine: &Engine, file: &GgufFile, threads: usize) -> anyhow::Result<(f64, f64)> {
    let shape = crate::plan::ModelShape::of_model(file, engine.hparams());
    let split = engine.split();
    let cpu = crate::plan::speed::cpu_speed(threads, shape.main_type(), false);
    let gpu = match engine.gpu_device() {
        Some(device) => Some(crate::plan::speed::gpu_speed(device, false)?),
        None => None,
    };
    let predicted =
        crate::plan::predict(&shape, split.device_blocks, split.head_on_device, cpu, gpu);
    Ok(predicted.unwrap_or((f64::NAN, f64::NAN)))
}

/// `predicted against measured` for one model and placement.
fn prediction_line(
    model: &str,
    asked: GpuLayers,
    engine: &Engine,
    (pp, tg): (f64, f64),
    (measured_pp, measured_tg): (Option<f64>, Option<f64>),
) -> String {
    let split = engine.split();
    let against = |predicted: f64, measured: Option<f64>| match measured {
        Some(m) => format!(
            "{predicted:.1} t/s predicted, {m:.1} measured ({:+.0}%)",
            100.0 * (predicted / m - 1.0)
        ),
        None => format!("{predicted:.1} t/s predicted"),
    };
    format!(
        "plan: {model} ngl={asked} ({} blocks{} on the GPU): pp {}; tg {}",
        split.device_blocks,
        if split.head_on_device {
            " and the output"
        } else {
            ""
        },
        against(pp, measured_pp),
        against(tg, measured_tg)
    )
}

/// Bytes of weights read per generated token on each side of the split.
#[derive(Clone, Copy, Debug)]
struct WeightPlacement {
    cpu: u64,
    gpu: u64,
}

impl WeightPlacement {
    /// Every block's tensors and the output layer by where they run; the embedding
    /// lookup reads one row per token, so it does not count.
    fn of(file: &GgufFile, engine: &Engine) -> WeightPlacement {
        let split = engine.split();
        let mut placed = WeightPlacement { cpu: 0, gpu: 0 };
        let head_name = if file.tensor("output.weight").is_some() {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        for t in file.tensors() {
            let on_gpu = if let Some(rest) = t.name.strip_prefix("blk.") {
                let block: usize = rest
                    .split('.')
                    .next()
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(0);
                block < split.device_blocks
            } else if t.name == head_name || t.name == "output_norm.weight" {
                split.head_on_device
            } else {
                continue;
            };
            if on_gpu {
                placed.gpu += t.n_bytes;
            } else {
                placed.cpu += t.n_bytes;
            }
        }
        placed
    }
}

/// One line per generation row: weight bytes read per second against the read bandwidth
/// measured with the same thread count (for the part of the weights on the CPU).
fn bandwidth_report(
    results: &[BenchResult],
    weights: &[WeightPlacement],
    buffer_mib: usize,
) -> Vec<String> {
    if buffer_mib == 0 {
        return Vec::new();
    }
    let mut measured: Vec<(usize, f64)> = Vec::new();
    let mut lines = Vec::new();
    for (result, placed) in results.iter().zip(weights) {
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
        let tokens_per_sec = result.mean_ts();
        let cpu = placed.cpu as f64 * tokens_per_sec / 1e9;
        let head = format!(
            "{} {} t={}{}",
            result.model.description,
            result.test_name(),
            result.threads,
            result
                .gpu_layers
                .as_ref()
                .map(|g| format!(" ngl={g}"))
                .unwrap_or_default()
        );
        if placed.gpu == 0 {
            lines.push(format!(
                "{head}: {cpu:.1} GB/s of weights read, {:.0}% of measured read bandwidth {bandwidth:.1} GB/s",
                100.0 * cpu / bandwidth,
            ));
        } else {
            let gpu = placed.gpu as f64 * tokens_per_sec / 1e9;
            lines.push(format!(
                "{head}: weights read at {gpu:.1} GB/s on the GPU ({:.0} MiB) and {cpu:.1} GB/s on \
                 the CPU ({:.0} MiB, {:.0}% of measured read bandwidth {bandwidth:.1} GB/s)",
                placed.gpu as f64 / (1u64 << 20) as f64,
                placed.cpu as f64 / (1u64 << 20) as f64,
                100.0 * cpu / bandwidth,
            ));
        }
    }
    lines
}

/// The kernel tables of `--gpu-profile` for an engine with blocks on the GPU (none for
/// a CPU-only placement).
fn gpu_profile(
    engine: &mut Engine,
    description: &str,
    n_prompt: usize,
    n_gen: usize,
    rng: &mut Rng,
) -> anyhow::Result<Vec<String>> {
    let Some(gpu) = engine.gpu().cloned() else {
        return Ok(Vec::new());
    };
    let bandwidth = crate::plan::speed::gpu_speed(&gpu.device, false)?.bytes_per_sec;
    let tests = crate::bench::gpu_profile::profile_tests(engine, &gpu, n_prompt, n_gen, rng)?;
    Ok(tests
        .iter()
        .map(|t| {
            crate::bench::gpu_profile::format_profile(
                description,
                &gpu.device.adapter.name,
                bandwidth,
                t,
            )
        })
        .collect())
}

/// Times one prompt batch of `n_prompt` tokens (if any) and one generated token, stage
/// by stage, as a markdown table: a row per block with its device, then the boundary
/// crossings, the embedding and the output layer.
fn per_layer(
    engine: &mut Engine,
    description: &str,
    n_prompt: usize,
    rng: &mut Rng,
) -> anyhow::Result<String> {
    let n_vocab = engine.n_vocab() as u64;
    let mut random = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.below(n_vocab) as u32).collect() };
    let mut timed = |tokens: &[u32]| -> anyhow::Result<StageTimes> {
        engine.clear();
        engine.eval_timed(tokens)?; // warm-up
        engine.clear();
        engine.eval_timed(tokens)
    };
    let prompt = (n_prompt > 0)
        .then(|| timed(&random(n_prompt)))
        .transpose()?;
    let token = timed(&random(1))?;
    let split = engine.split();
    let ms = |d: std::time::Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
    let pp = |f: &dyn Fn(&StageTimes) -> std::time::Duration| {
        prompt
            .as_ref()
            .map(|p| ms(f(p)))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = format!(
        "per-layer times of {description} ({}), ms:\n\n| stage | device | pp{n_prompt} | tg1 |\n| --- | --- | ---: | ---: |\n",
        engine.backend_name()
    );
    out += &format!(
        "| embedding | CPU | {} | {} |\n",
        pp(&|t| t.embed),
        ms(token.embed)
    );
    for (i, d) in token.blocks.iter().enumerate() {
        let device = if i < split.device_blocks {
            "GPU"
        } else {
            "CPU"
        };
        out += &format!(
            "| block {i} | {device} | {} | {} |\n",
            pp(&|t| t.blocks.get(i).copied().unwrap_or_default()),
            ms(*d)
        );
    }
    if split.uses_device() {
        out += &format!(
            "| boundary | both | {} | {} |\n",
            pp(&|t| t.boundary),
            ms(token.boundary)
        );
    }
    let head_device = if split.head_on_device { "GPU" } else { "CPU" };
    out += &format!(
        "| output | {head_device} | {} | {} |\n",
        pp(&|t| t.head),
        ms(token.head)
    );
    Ok(out)
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
