//! `tandem plan`: where the blocks of a model go for a GPU memory budget, what each
//! device then holds, and the predicted speed, without loading any weight.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use crate::engine::{CacheType, GpuLayers, OutputOn};
use crate::gguf::GgufFile;
use crate::gpu::{
    list_adapters, parse_size, planning_adapter, AdapterSummary, GpuDevice, GpuOptions,
};
use crate::plan::budget::explicit_limit;
use crate::plan::memory::Sizing;
use crate::plan::speed::{cpu_speed, gpu_speed, Speed};
use crate::plan::{gib, mib, plan, GpuBudget, ModelShape, Plan, PlanRequest};
use crate::weight_types::WeightTypeChoice;

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The GGUF model file (only its header is read)
    #[arg(
        short = 'm',
        long,
        required_unless_present = "preset",
        conflicts_with = "preset"
    )]
    pub model: Option<PathBuf>,
    /// Plan a model that is not here: llama shapes 1b, 7b, 13b, 33b or 70b
    #[arg(long)]
    pub preset: Option<String>,
    /// With --preset: the weight type (Q4_0, Q8_0, Q4_K_M, ...)
    #[arg(long = "type", default_value = "Q4_K_M")]
    pub weight_type: String,
    /// With --preset: vocabulary size (LLaMA 2: 32000, LLaMA 3: 128256)
    #[arg(long, default_value_t = 32000)]
    pub vocab_size: usize,
    /// KV cache cells in all (default: the model's context, at most 4096, times --parallel)
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Sequences held at once (tandem serve's --parallel)
    #[arg(long, default_value_t = 1, visible_alias = "np")]
    pub parallel: usize,
    /// Most prompt tokens per forward pass
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// KV cache element type: f16 or f32
    #[arg(long = "cache-type", default_value = "f16")]
    pub cache_type: CacheType,
    /// Keep the K/V cache of GPU blocks in host memory
    #[arg(long = "kv-on-cpu", visible_alias = "no-kv-offload")]
    pub kv_on_cpu: bool,
    /// Where the output layer runs: gpu or cpu (default: gpu when every block is)
    #[arg(long = "output-on")]
    pub output_on: Option<OutputOn>,
    /// GPU memory to plan for, e.g. 6GiB (default: the adapter's; needed without a GPU)
    #[arg(long = "vram-budget", value_parser = parse_budget)]
    pub vram_budget: Option<u64>,
    /// Blocks on the GPU: auto (the most that fit), a count or all, checked against the budget
    #[arg(
        long = "gpu-layers",
        visible_alias = "n-gpu-layers",
        default_value = "auto"
    )]
    pub gpu_layers: GpuLayers,
    /// The GPU adapter (index from `tandem devices`; default: the best hardware one)
    #[arg(long = "gpu-device", visible_alias = "main-gpu")]
    pub gpu_device: Option<usize>,
    /// The GPU's memory bandwidth in GB/s, for a prediction without that GPU here
    /// (its arithmetic is then assumed not to limit prefill, and a dispatch to take 5 µs)
    #[arg(long = "gpu-bandwidth")]
    pub gpu_bandwidth: Option<f64>,
    /// Threads the prediction assumes (default: physical cores)
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Measure the devices' speed again instead of using the cached figures
    #[arg(long)]
    pub remeasure: bool,
    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn parse_budget(text: &str) -> Result<u64, String> {
    parse_size(text).ok_or_else(|| format!("`{text}` is not a size (e.g. 6GiB, 512M)"))
}

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let shape = match (&args.model, &args.preset) {
        (Some(path), _) => ModelShape::of_file(&GgufFile::open(path)?)?,
        (None, Some(preset)) => {
            let ty = WeightTypeChoice::from_name(&args.weight_type).with_context(|| {
                format!(
                    "--type {}: not a weight type (Q4_0, Q8_0, Q4_K_M, ...)",
                    args.weight_type
                )
            })?;
            ModelShape::of_preset(preset, ty, args.vocab_size)?
        }
        (None, None) => bail!("give a model (-m FILE) or a --preset"),
    };
    if args.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let n_ctx = args
        .ctx_size
        .unwrap_or(shape.n_ctx_train.min(4096) * args.parallel);
    if n_ctx < args.parallel {
        bail!(
            "a context of {n_ctx} cells cannot hold {} sequences; raise -c",
            args.parallel
        );
    }
    let n_batch = args.batch_size.max(1).min(n_ctx / args.parallel);
    let env_limit = GpuOptions::from_env(args.gpu_device)?.memory_limit;
    let explicit = explicit_limit(args.vram_budget, env_limit);
    let adapters = list_adapters();
    let adapter = planning_adapter(&adapters, args.gpu_device)?;
    let software_only = !adapters.is_empty() && adapters.iter().all(|a| a.is_software());
    let budget = GpuBudget::new(
        explicit,
        adapter.as_ref().map(|a| (a.name.as_str(), a.memory)),
    );
    let request = PlanRequest {
        sizing: Sizing {
            n_ctx,
            n_parallel: args.parallel,
            n_rows: n_batch.max(args.parallel),
            cache_type: args.cache_type,
            kv_on_cpu: args.kv_on_cpu,
        },
        gpu_layers: args.gpu_layers,
        output_on: args.output_on,
        budget,
    };
    let mut plan = plan(&shape, &request);

    let threads = args
        .threads
        .unwrap_or_else(crate::engine::physical_cores)
        .max(1);
    let cpu = cpu_speed(threads, shape.main_type(), args.remeasure);
    let uses_gpu = plan.gpu_layers > 0 || plan.output_on_gpu;
    let gpu = match (&adapter, uses_gpu, args.gpu_bandwidth) {
        (_, true, Some(gbps)) => Some(Speed {
            bytes_per_sec: gbps * 1e9,
            flops: f64::INFINITY,
            dispatch_seconds: 5e-6,
            software: false,
        }),
        (Some(a), true, None) => {
            let options = GpuOptions::from_env(Some(a.index))?;
            let device = GpuDevice::new(&options)?;
            Some(gpu_speed(&device, args.remeasure)?)
        }
        _ => None,
    };
    if uses_gpu && gpu.is_none() {
        plan.notes.push(
            "no GPU here to measure: give --gpu-bandwidth (GB/s) for a prediction".to_string(),
        );
    }
    plan.predict(&shape, cpu, gpu);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    print_plan(&plan, &args, adapter.as_ref(), software_only);
    let gbps = |b: f64| b / 1e9;
    println!(
        "measured: CPU ({threads} threads) reads {:.1} GB/s, matmul {:.0} GFLOP/s{}",
        gbps(cpu.bytes_per_sec),
        cpu.flops / 1e9,
        match gpu {
            Some(g) => format!(
                "; GPU copies {:.1} GB/s, {:.0} GFLOP/s f32, {:.1} µs a dispatch",
                gbps(g.bytes_per_sec),
                g.flops / 1e9,
                g.dispatch_seconds * 1e6
            ),
            None => String::new(),
        }
    );
    Ok(())
}

/// `software_only`: every adapter found is a software one.
fn print_plan(plan: &Plan, args: &PlanArgs, adapter: Option<&AdapterSummary>, software_only: bool) {
    println!(
        "model:     {} ({} blocks), {} K/V cells for {} sequence(s), {} cache",
        plan.model,
        plan.n_layers,
        plan.n_ctx,
        plan.n_parallel,
        format!("{:?}", args.cache_type).to_lowercase()
    );
    match (&plan.budget_source, plan.budget_bytes) {
        (Some(source), Some(usable)) => println!(
            "budget:    {} ({source}{}{})",
            gib(usable),
            adapter.map_or(String::new(), |a| format!(", adapter {}", a.name)),
            match plan.margin_bytes {
                Some(m) if m > 0 => format!(", less a margin of {}", mib(m)),
                _ => String::new(),
            }
        ),
        _ if software_only => println!(
            "budget:    only a software adapter was found (slower than the CPU path; \
             --gpu-device N plans for it anyway, see `tandem devices`)"
        ),
        _ => println!("budget:    no GPU found and no --vram-budget given"),
    }
    let head = if plan.output_on_gpu { "GPU" } else { "CPU" };
    println!(
        "placement: {} of {} blocks on the GPU, output layer on the {head}{}",
        plan.gpu_layers,
        plan.n_layers,
        if plan.fits { "" } else { "  (DOES NOT FIT)" }
    );
    println!("  device      weights        K/V    scratch      total   blocks");
    let row = |name: &str, w: u64, kv: u64, scratch: u64, blocks: String| {
        println!(
            "  {name:<6} {:>10} {:>10} {:>10} {:>10}   {blocks}",
            gib(w),
            gib(kv),
            gib(scratch),
            gib(w + kv + scratch)
        );
    };
    let range = |a: usize, b: usize| match b - a {
        0 => "none".to_string(),
        1 => format!("{a}"),
        _ => format!("{a}..{}", b - 1),
    };
    row(
        "GPU",
        plan.gpu_weight_bytes,
        plan.gpu_kv_bytes,
        plan.gpu_scratch_bytes,
        range(0, plan.gpu_layers),
    );
    row(
        "CPU",
        plan.cpu_weight_bytes,
        plan.cpu_kv_bytes,
        0,
        range(plan.gpu_layers, plan.n_layers),
    );
    if let (Some(pp), Some(tg)) = (plan.predicted_pp, plan.predicted_tg) {
        println!("predicted: prompt {pp:.1} t/s, generation {tg:.1} t/s");
    }
    for note in &plan.notes {
        println!("note:      {note}");
    }
    println!(
        "use:       --gpu-layers {}{}",
        plan.gpu_layers,
        if plan.output_on_gpu && plan.gpu_layers < plan.n_layers {
            " --output-on gpu"
        } else {
            ""
        }
    );
}
