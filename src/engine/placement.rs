//! Which parts of a model run where: the `--gpu-layers`, `--output-on` and
//! `--kv-on-cpu` choices turned into a [`Split`], and the advice given when the GPU's
//! memory runs out.

use crate::gguf::GgufFile;
use crate::kv::{KvCache, KvShape};
use crate::model::{Act, Hparams, Split};

use super::EngineOptions;

/// How many blocks go to the GPU (`--gpu-layers N|all|auto`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuLayers {
    /// The first N blocks; more than the model has means all of them (as `-ngl 99`).
    Count(usize),
    #[default]
    None,
    All,
    /// As many as the GPU's memory holds (the planner decides; none without a GPU).
    Auto,
}

impl std::str::FromStr for GpuLayers {
    type Err = String;
    fn from_str(s: &str) -> Result<GpuLayers, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "max" => Ok(GpuLayers::All),
            "auto" => Ok(GpuLayers::Auto),
            t => match t.parse::<usize>() {
                Ok(0) => Ok(GpuLayers::None),
                Ok(n) => Ok(GpuLayers::Count(n)),
                Err(_) => Err(format!(
                    "`{s}` is not a number of layers (a count such as 20, `all` or `auto`)"
                )),
            },
        }
    }
}

impl std::fmt::Display for GpuLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuLayers::None => write!(f, "0"),
            GpuLayers::Count(n) => write!(f, "{n}"),
            GpuLayers::All => write!(f, "all"),
            GpuLayers::Auto => write!(f, "auto"),
        }
    }
}

/// Where the output norm and projection run (`--output-on gpu|cpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputOn {
    Gpu,
    Cpu,
}

impl std::str::FromStr for OutputOn {
    type Err = String;
    fn from_str(s: &str) -> Result<OutputOn, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gpu" => Ok(OutputOn::Gpu),
            "cpu" => Ok(OutputOn::Cpu),
            _ => Err(format!("`{s}` is not a device (gpu or cpu)")),
        }
    }
}

impl GpuLayers {
    /// Blocks on the GPU for a model of `n_layer` blocks (`Auto` must have been
    /// resolved by the planner first; unresolved it means none).
    pub fn blocks(self, n_layer: usize) -> usize {
        match self {
            GpuLayers::None | GpuLayers::Auto => 0,
            GpuLayers::Count(n) => n.min(n_layer),
            GpuLayers::All => n_layer,
        }
    }
}

/// The split for a model of `n_layer` blocks. The output layer follows the blocks by
/// default: on the GPU only when every block is (else the hidden state would cross
/// back for it, and the head is often the largest tensor).
pub fn split(n_layer: usize, layers: GpuLayers, output_on: Option<OutputOn>) -> Split {
    let device_blocks = layers.blocks(n_layer);
    let head_on_device = match output_on {
        Some(OutputOn::Gpu) => true,
        Some(OutputOn::Cpu) => false,
        None => device_blocks == n_layer && device_blocks > 0,
    };
    Split {
        device_blocks,
        head_on_device,
    }
}

/// GPU memory the parts of a model need, for advice when it runs out.
#[derive(Clone, Copy, Debug)]
pub struct GpuMemoryPlan {
    /// Activation buffers and scratch, allocated first.
    pub fixed: u64,
    /// Weights of each block, and its K/V when they live on the GPU.
    pub per_block: u64,
    /// The output layer, when placed on the GPU.
    pub head: u64,
}

impl GpuMemoryPlan {
    /// How many blocks fit in `budget` bytes (with the head when it is wanted there).
    pub fn blocks_that_fit(&self, budget: u64, with_head: bool) -> usize {
        let head = if with_head { self.head } else { 0 };
        let room = budget.saturating_sub(self.fixed + head);
        (room / self.per_block.max(1)) as usize
    }
}

/// The GPU memory of a placement, from the file's tensor sizes.
pub fn memory_plan(
    file: &GgufFile,
    hp: &Hparams,
    kv_shape: &KvShape,
    opts: &EngineOptions,
    head_on_gpu: bool,
) -> GpuMemoryPlan {
    let bytes_of = |name: &str| file.tensor(name).map_or(0, |t| t.n_bytes);
    let block_weights: u64 = file
        .tensors()
        .iter()
        .filter(|t| t.name.starts_with("blk."))
        .map(|t| t.n_bytes)
        .sum();
    let kv = if opts.kv_on_cpu {
        0
    } else {
        KvCache::block_bytes(kv_shape, opts.cache_type)
    };
    let widths = hp.act_widths();
    let n_batch = opts.n_batch.min(kv_shape.n_ctx) as u64;
    let widest = Act::ALL
        .iter()
        .map(|&a| widths.of(a) as u64)
        .max()
        .unwrap_or(0);
    // The activation buffers, their rounded copy for matrix products, the output rows.
    let activations: u64 =
        (Act::ALL.iter().map(|&a| widths.of(a) as u64).sum::<u64>() + widest + 1) * n_batch * 4
            + 32 * hp.n_embd as u64 * 4;
    let head = match file.tensor("output.weight") {
        Some(t) => t.n_bytes,
        None => bytes_of("token_embd.weight"),
    };
    // The output layer brings its logits buffer.
    let logits = if head_on_gpu {
        32 * hp.n_vocab as u64 * 4
    } else {
        0
    };
    GpuMemoryPlan {
        fixed: activations,
        per_block: block_weights / hp.n_layer.max(1) as u64 + kv,
        head: head + logits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_layers_parse_like_ngl() {
        assert_eq!("0".parse(), Ok(GpuLayers::None));
        assert_eq!("20".parse(), Ok(GpuLayers::Count(20)));
        assert_eq!("all".parse(), Ok(GpuLayers::All));
        assert_eq!("ALL".parse(), Ok(GpuLayers::All));
        assert!("-3".parse::<GpuLayers>().is_err());
        assert!("half".parse::<GpuLayers>().is_err());
        assert_eq!(GpuLayers::Count(99).blocks(18), 18);
    }

    #[test]
    fn head_follows_the_blocks_unless_told() {
        let s = split(18, GpuLayers::All, None);
        assert_eq!((s.device_blocks, s.head_on_device), (18, true));
        let s = split(18, GpuLayers::Count(9), None);
        assert_eq!((s.device_blocks, s.head_on_device), (9, false));
        let s = split(18, GpuLayers::Count(9), Some(OutputOn::Gpu));
        assert!(s.head_on_device);
        let s = split(18, GpuLayers::All, Some(OutputOn::Cpu));
        assert!(!s.head_on_device);
        assert!(!split(18, GpuLayers::None, None).uses_device());
    }

    #[test]
    fn fitting_blocks_counts_fixed_costs_and_head() {
        let plan = GpuMemoryPlan {
            fixed: 100,
            per_block: 50,
            head: 200,
        };
        assert_eq!(plan.blocks_that_fit(1000, false), 18);
        assert_eq!(plan.blocks_that_fit(1000, true), 14);
        assert_eq!(plan.blocks_that_fit(50, false), 0);
    }
}
