//! The bytes a placement allocates on each device, counted the way the GPU backend
//! counts its allocations (`Gpu::try_buffer` and weight uploads), so that what the plan
//! says fits is what loads.

use crate::engine::{GpuBackend, GpuBackendShape};
use crate::gpu::Gpu;
use crate::kv::{CacheType, GpuKv, KvCache, KvShape};

use super::shape::{ModelShape, TensorShape};

/// The sizes a placement is planned for.
#[derive(Clone, Copy, Debug)]
pub struct Sizing {
    /// KV cells in all (every sequence's share).
    pub n_ctx: usize,
    pub n_parallel: usize,
    /// Rows of the activation buffers: the prefill micro-batch, or one token of every
    /// sequence in a decode step, whichever is more.
    pub n_rows: usize,
    pub cache_type: CacheType,
    pub kv_on_cpu: bool,
}

impl Sizing {
    pub fn kv_shape(&self, shape: &ModelShape) -> KvShape {
        KvShape {
            n_layer: shape.n_layer,
            n_ctx: self.n_ctx,
            n_seq: self.n_parallel,
            n_head_kv: shape.n_head_kv,
            head_dim: shape.head_dim,
            head_dim_v: shape.head_dim_v,
        }
    }
}

/// GPU bytes of one tensor as it is bound there: matrices in their file encoding,
/// vectors dequantized to f32.
fn gpu_tensor_bytes(t: &TensorShape) -> u64 {
    if t.is_vector() {
        Gpu::buffer_bytes(t.dims[0] as usize)
    } else {
        t.n_bytes
    }
}

/// What each part of a model costs on the GPU.
#[derive(Clone, Debug)]
pub struct GpuCosts {
    /// Activation buffers and scratch, allocated before any weight (without the head's
    /// logits buffer).
    pub scratch: u64,
    /// Extra scratch when the output layer is on the GPU (its logits rows).
    pub head_scratch: u64,
    /// Rope frequency factors, uploaded with the first GPU block's first batch.
    pub rope_factors: u64,
    /// Weights of each block.
    pub block_weights: Vec<u64>,
    /// K/V of one block on the GPU (0 with `--kv-on-cpu`).
    pub block_kv: u64,
    /// The output norm and projection.
    pub head: u64,
}

impl GpuCosts {
    pub fn of(shape: &ModelShape, sizing: &Sizing) -> GpuCosts {
        let backend = |head_rows| {
            GpuBackend::scratch_bytes(&GpuBackendShape {
                n_batch: sizing.n_rows,
                widths: shape.widths,
                head_rows,
            })
        };
        let scratch = backend(0);
        let block_kv = if sizing.kv_on_cpu {
            0
        } else {
            GpuKv::block_bytes(&sizing.kv_shape(shape), sizing.cache_type)
        };
        GpuCosts {
            scratch,
            head_scratch: backend(shape.n_vocab) - scratch,
            rope_factors: shape.freq_factors.map_or(0, Gpu::buffer_bytes),
            block_weights: (0..shape.n_layer)
                .map(|i| shape.block_tensors(i).map(gpu_tensor_bytes).sum())
                .collect(),
            block_kv,
            head: shape.head_matrix().map_or(0, gpu_tensor_bytes)
                + shape.output_norm().map_or(0, gpu_tensor_bytes),
        }
    }

    /// GPU bytes of blocks `0..n` (and the output layer when `head`).
    pub fn total(&self, n: usize, head: bool) -> u64 {
        if n == 0 && !head {
            return 0;
        }
        let blocks: u64 = self.block_weights[..n].iter().sum::<u64>() + n as u64 * self.block_kv;
        let rope = if n > 0 { self.rope_factors } else { 0 };
        let head = if head {
            self.head + self.head_scratch
        } else {
            0
        };
        self.scratch + rope + blocks + head
    }

    /// Bytes of the K/V on the GPU for blocks `0..n`.
    pub fn kv(&self, n: usize) -> u64 {
        n as u64 * self.block_kv
    }
}

/// Host bytes of a placement: the weights not on the GPU (mapped from the file), the
/// token embedding (always read on the host), and the K/V of the blocks here.
pub fn host_bytes(
    shape: &ModelShape,
    sizing: &Sizing,
    n_gpu: usize,
    head_on_gpu: bool,
) -> HostBytes {
    let weights: u64 = (n_gpu..shape.n_layer)
        .map(|i| shape.block_file_bytes(i))
        .sum();
    let embd = shape
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .map_or(0, |t| t.n_bytes);
    let head = match (
        head_on_gpu,
        shape.tensors.iter().find(|t| t.name == "output.weight"),
    ) {
        (false, Some(out)) => out.n_bytes,
        _ => 0,
    };
    let kv_blocks = if sizing.kv_on_cpu {
        shape.n_layer
    } else {
        shape.n_layer - n_gpu
    };
    let per_block = KvCache::block_bytes(&sizing.kv_shape(shape), sizing.cache_type);
    HostBytes {
        weights: weights + embd + head,
        kv: kv_blocks as u64 * per_block,
    }
}

/// Host memory a placement uses.
#[derive(Clone, Copy, Debug)]
pub struct HostBytes {
    pub weights: u64,
    pub kv: u64,
}
