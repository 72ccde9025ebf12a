//! Matrix products with GGUF weights: y = W·x for a batch of activation rows.

use crate::quant::GgmlType;

use super::ThreadPool;

/// A weight matrix as it lies in the file: `rows` rows of `cols` elements, each row a
/// whole number of `ty` blocks.
#[derive(Clone, Copy, Debug)]
pub struct WeightRef<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

impl WeightRef<'_> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_elems() * self.ty.block_bytes()
    }
}

/// `y[t][r] = Σ_c W[r][c] · x[t][c]` for `n_tokens` rows of `x` (`n_tokens × cols`),
/// writing `y` (`n_tokens × rows`).
///
/// Placeholder: dequantizes each weight row and takes f32 dot products.
pub fn matmul(pool: &ThreadPool, w: WeightRef<'_>, x: &[f32], n_tokens: usize, y: &mut [f32]) {
    assert_eq!(x.len(), n_tokens * w.cols);
    assert_eq!(y.len(), n_tokens * w.rows);
    let row_bytes = w.row_bytes();
    let out = SharedOut(y.as_mut_ptr());
    pool.run(|ti, nt| {
        let out = &out;
        let mut row = vec![0f32; w.cols];
        let per = w.rows.div_ceil(nt);
        for r in ti * per..((ti + 1) * per).min(w.rows) {
            w.ty.dequantize_row(&w.data[r * row_bytes..(r + 1) * row_bytes], &mut row);
            for t in 0..n_tokens {
                let xs = &x[t * w.cols..(t + 1) * w.cols];
                let dot: f32 = row.iter().zip(xs).map(|(a, b)| a * b).sum();
                // SAFETY: each thread writes only the rows r of its own range.
                unsafe { *out.0.add(t * w.rows + r) = dot };
            }
        }
    });
}

struct SharedOut(*mut f32);
// SAFETY: writers touch disjoint elements (see matmul).
unsafe impl Sync for SharedOut {}
