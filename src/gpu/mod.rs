//! The GPU backend: wgpu compute kernels over GGUF weights kept in their block encoding.
//!
//! [`device`] finds an adapter and opens it with its real limits; [`shaders`] assembles
//! each kernel's WGSL from shared pieces in `shaders/`; [`buffer`] holds activations and
//! weights (split into binding-sized chunks); [`runtime`] builds pipelines and records
//! batches of dispatches.

mod bind_cache;
pub mod buffer;
pub mod device;
pub mod runtime;
pub mod shaders;

pub use buffer::{GpuBuffer, GpuWeight};
pub use device::{list_adapters, AdapterSummary, GpuDevice, GpuOptions, ShaderFeatures};
pub use runtime::{AttentionParams, Batch, Gpu, KvLayout, RopeParams};
pub use shaders::{BinaryOp, Kernel};
