//! The naive matmul, kept as the oracle for the fast kernels: dequantize each weight row
//! to f32 and take f64 dot products.

use super::act_quant::{ActFormat, QuantizedActs};
use super::WeightRef;

/// `y = W·x` with dequantized weights and the given activations, summed in f64.
pub fn matmul_naive(w: WeightRef<'_>, x: &[f32], n_tokens: usize, y: &mut [f32]) {
    assert_eq!(x.len(), n_tokens * w.cols);
    assert_eq!(y.len(), n_tokens * w.rows);
    let row_bytes = w.row_bytes();
    let mut row = vec![0f32; w.cols];
    for r in 0..w.rows {
        w.ty.dequantize_row(&w.data[r * row_bytes..(r + 1) * row_bytes], &mut row);
        for t in 0..n_tokens {
            let xs = &x[t * w.cols..(t + 1) * w.cols];
            let dot: f64 = row.iter().zip(xs).map(|(&a, &b)| a as f64 * b as f64).sum();
            y[t * w.rows + r] = dot as f32;
        }
    }
}

/// The activations exactly as the quantized kernels see them: `x` quantized into the
/// weight type's partner format and dequantized again (unchanged for float weights).
pub fn activations_as_seen_by_kernels(w: WeightRef<'_>, x: &[f32], n_tokens: usize) -> Vec<f32> {
    let format = ActFormat::for_weight(w.ty);
    if format == ActFormat::F32 {
        return x.to_vec();
    }
    let q = QuantizedActs::quantize(format, x, n_tokens, w.cols);
    (0..n_tokens * w.cols)
        .map(|i| q.dequantized(i / w.cols, i % w.cols, format))
        .collect()
}
