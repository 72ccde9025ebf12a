//! The CPU backend: a persistent thread pool and quantized matrix kernels.
//!
//! [`matmul`] picks its kernels from a table built once for the instruction-set level in
//! use ([`SimdLevel::selected`]): the best this machine has (AVX-512 VNNI, AVX2, or the
//! portable Rust kernels), lowered with `TANDEM_CPU_SIMD=scalar|avx2|avx512`.
//! [`reference::matmul_naive`] is the dequantize-and-dot oracle the kernels are tested
//! against.

pub mod act_quant;
pub mod attn_tiled;
pub mod kernels;
pub mod matmul;
pub mod ops;
pub mod pool;
pub mod reference;

pub use kernels::SimdLevel;
pub use matmul::{
    matmul, matmul_at_level, matmul_ordered, matmul_ordered_at_level, RowOrder, WeightRef,
};
pub use pool::ThreadPool;
