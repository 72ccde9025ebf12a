//! The GPU backend: wgpu compute kernels over GGUF weights kept in their block encoding.
//!
//! [`device`] finds an adapter and opens it with its real limits; [`shaders`] assembles
//! each kernel's WGSL from shared pieces in `shaders/`; [`buffer`] holds activations and
//! weights (split into binding-sized chunks); [`runtime`] builds pipelines, uploads and
//! reads back; [`batch`] records dispatches of the operations into one command encoder.
//!
//! # Using it
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use tandem::gpu::{Gpu, GpuOptions};
//! use tandem::quant::GgmlType;
//! let gpu = Gpu::new(&GpuOptions::from_env(None)?)?;
//! # let bytes = vec![0u8; 4 * 8 * 4];
//! let w = gpu.upload_weight(GgmlType::F32, 4, 8, &bytes)?; // rows, cols, GGUF bytes
//! let x = gpu.upload(&[1f32; 8])?;
//! let y = gpu.buffer(4);
//! let mut batch = gpu.batch(); // one command encoder
//! batch.mul_mat(&w, &x, &y, 1)?;
//! batch.submit()?;
//! let out: Vec<f32> = gpu.read(&y)?;
//! # Ok(()) }
//! ```
//!
//! # How the engine's GPU backend maps the model's operations
//! (`crate::engine::GpuBackend`.) Activations are f32 buffers of `[n_tokens][width]`, one
//! [`GpuBuffer`] per activation kind, sized for the largest micro-batch.
//! - bind_matrix: [`Gpu::upload_weight`]`(info.ty, info.n_rows(), info.row_len(), bytes)`;
//!   bind_vector: dequantized on the host, then [`Gpu::try_buffer`] and [`Gpu::write`].
//! - embed: [`Batch::get_rows`] (ids uploaded as u32), then [`Batch::scale`].
//! - matmul: [`Batch::round_activations`] (the input rounded as the CPU quantizes it, for
//!   quantized weights), then [`Batch::mul_mat`] (matrix x vector kernel up to 4 tokens,
//!   tiled above).
//! - add_bias / add / gated_activation: [`Batch::binary_in_place`] with
//!   [`BinaryOp::Add`] / [`BinaryOp::SiluMul`] / [`BinaryOp::GeluMul`] (b repeats, so a
//!   bias of one row applies to every token); scale: [`Batch::scale`].
//! - rms_norm: [`Batch::rms_norm`] or [`Batch::rms_norm_in_place`]; per-head norms are
//!   rows = n_tokens x n_heads of width head_dim.
//! - rope: [`Batch::rope`] with no position buffer (token t at `pos0 + t`).
//! - store_kv: [`Batch::kv_store`] into `[n_kv_heads][n_ctx][dim]` caches (f32 or packed
//!   f16, rounded to nearest even like the CPU's f16 cache).
//! - attention: [`Batch::attention`] straight over the caches (causal, GQA, sliding
//!   window), streaming keys in tiles with an online softmax: no scratch buffer and no
//!   score matrix at any context length; heads of up to
//!   [`AttentionParams::MAX_HEAD_DIM`] dims.
//! - project_rows: [`Batch::copy`] the wanted rows to a scratch buffer, [`Batch::mul_mat`],
//!   [`Batch::copy_to_readback`], submit, [`Readback::read_into`] (32 rows per pass).
//! - the hidden state crossing: [`Gpu::write`] in, [`Batch::copy_to_readback`] out.
//!
//! Outputs of a dispatch must be buffers other than its inputs (wgpu forbids binding a
//! buffer read-only and writable at once); the `_in_place` variants cover updates.

pub mod batch;
mod bind_cache;
pub mod buffer;
pub mod device;
pub mod memory;
pub mod probe;
pub mod profile;
pub mod readback;
pub mod runtime;
pub mod shaders;

pub use batch::{AttentionParams, Batch, KvLayout, PackedLayout, RopeParams};
pub use buffer::{GpuBuffer, GpuWeight};
pub use device::{
    list_adapters, parse_size, planning_adapter, AdapterSummary, GpuDevice, GpuOptions,
    ShaderFeatures,
};
pub use memory::AdapterMemory;
pub use profile::{GpuProfile, KernelStat};
pub use readback::Readback;
pub use runtime::{Gpu, GpuOutOfMemory};
pub use shaders::{BinaryOp, Kernel};
