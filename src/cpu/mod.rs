//! The CPU backend: a persistent thread pool and quantized matrix kernels.

pub mod matmul;
pub mod ops;
pub mod pool;

pub use matmul::{matmul, WeightRef};
pub use pool::ThreadPool;
