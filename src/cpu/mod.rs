//! The CPU backend: a persistent thread pool and quantized matrix kernels.

pub mod act_quant;
pub mod kernels;
pub mod matmul;
pub mod pool;
pub mod reference;

pub use kernels::SimdLevel;
pub use matmul::{matmul, matmul_at_level, WeightRef};
pub use pool::ThreadPool;
