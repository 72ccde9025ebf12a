//! The placement flags shared by `run`, `chat` and `perplexity`: which blocks go to the
//! GPU, where the output layer and the K/V cache live, which adapter.

use clap::Args;

use crate::engine::{EngineOptions, GpuLayers, OutputOn};

#[derive(Args, Debug, Clone, Default)]
pub struct PlacementArgs {
    /// Blocks to run on the GPU, from the first: a count, `all`, or `auto`: as many as
    /// the GPU's memory holds (`tandem plan` shows the plan; none without a hardware GPU)
    /// (also -ngl)
    #[arg(
        long = "gpu-layers",
        visible_alias = "n-gpu-layers",
        default_value = "auto"
    )]
    pub gpu_layers: GpuLayers,
    /// GPU memory to use at most, e.g. 6GiB (default: the adapter's free memory, or
    /// its size, less a margin)
    #[arg(long = "vram-budget", value_parser = super::plan::parse_budget)]
    pub vram_budget: Option<u64>,
    /// Where the output norm and projection run: gpu or cpu (default: gpu when all
    /// blocks are on the GPU)
    #[arg(long = "output-on")]
    pub output_on: Option<OutputOn>,
    /// Keep the K/V cache of GPU blocks in host memory (less VRAM, slower)
    #[arg(long = "kv-on-cpu", visible_alias = "no-kv-offload")]
    pub kv_on_cpu: bool,
    /// The GPU adapter to use (index from `tandem devices`; default: the best)
    #[arg(long = "gpu-device", visible_alias = "main-gpu")]
    pub gpu_device: Option<usize>,
}

impl PlacementArgs {
    /// Sets the placement fields of `opts`.
    pub fn apply(&self, opts: EngineOptions) -> EngineOptions {
        EngineOptions {
            gpu_layers: self.gpu_layers,
            output_on: self.output_on,
            kv_on_cpu: self.kv_on_cpu,
            gpu_device: self.gpu_device,
            vram_budget: self.vram_budget,
            ..opts
        }
    }
}

/// Says on stderr where `--gpu-layers auto` put the blocks (when it put any on a GPU,
/// or has advice).
pub fn report_auto_plan(engine: &crate::engine::Engine) {
    let Some(plan) = engine.auto_plan() else {
        return;
    };
    if plan.gpu_layers > 0 || plan.output_on_gpu {
        eprintln!(
            "gpu-layers auto: {} of {} blocks{} on the GPU ({} of {})",
            plan.gpu_layers,
            plan.n_layers,
            if plan.output_on_gpu {
                " and the output layer"
            } else {
                ""
            },
            crate::plan::gib(plan.gpu_bytes),
            plan.budget_bytes.map_or("?".to_string(), crate::plan::gib),
        );
    }
    for note in plan.notes.iter().filter(|n| !n.starts_with("no GPU:")) {
        eprintln!("gpu-layers auto: {note}");
    }
}

/// Rewrites llama.cpp's multi-letter short flags, which clap cannot declare, to their
/// long forms: `-ngl 20` and `-ngl=20` become `--gpu-layers 20`, `-mg 1` `--gpu-device 1`.
pub fn translate_llama_flags(args: impl IntoIterator<Item = String>) -> Vec<String> {
    const SHORT_TO_LONG: [(&str, &str); 2] = [("-ngl", "--gpu-layers"), ("-mg", "--gpu-device")];
    args.into_iter()
        .map(|arg| {
            for (short, long) in SHORT_TO_LONG {
                if arg == short {
                    return long.to_string();
                }
                if let Some(value) = arg.strip_prefix(short).and_then(|r| r.strip_prefix('=')) {
                    return format!("{long}={value}");
                }
            }
            arg
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_short_flags_become_long_ones() {
        let args = [
            "tandem", "run", "-ngl", "20", "-ngl=all", "-mg", "1", "-n", "8", "-nglx",
        ];
        let out = translate_llama_flags(args.iter().map(|s| s.to_string()));
        assert_eq!(
            out,
            [
                "tandem",
                "run",
                "--gpu-layers",
                "20",
                "--gpu-layers=all",
                "--gpu-device",
                "1",
                "-n",
                "8",
                "-nglx"
            ]
        );
    }
}
