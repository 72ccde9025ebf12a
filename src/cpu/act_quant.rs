//! Activations quantized once per matmul into the format each weight type pairs with.
//!
//! The layouts are tandem's own (struct of arrays, so SIMD loads are plain), but the
//! values follow llama.cpp's Q8_0 / Q8_1 / Q8_K reference quantizers:
//! - 32-element blocks (partner of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): exactly the codes and
//!   f16 scale of llama.cpp's x86 CPU quantizer `quantize_row_q8_0` (its AVX2 code, which
//!   AVX-512 builds run too): `d = max|x| / 127` stored as f16, `q = x · (127 / max|x|)`
//!   rounded half to even. The weight-file reference of [`crate::quant::q8_0`] differs
//!   in the last bit of the multiplier (`1 / d`) and rounds half away from zero, which
//!   moves a code now and then; with this model's chaotic rounding cascade that is
//!   enough to change a greedy continuation. `s = d·Σq`, Q8_1's extra field, is kept
//!   in f32 (llama.cpp rounds it to f16), so the Q4_1/Q5_1 kernels equal the product
//!   of the dequantized operands up to f32 rounding.
//! - 256-element blocks (partner of the K-quants): exactly [`crate::quant::q8_k`]'s
//!   reference (`d = max / −127` with the sign of the largest magnitude,
//!   `q = min(127, round_ties_even(x / d))`, `bsums` = sums of each 16 `q`).

use half::f16;

use crate::quant::GgmlType;

use super::kernels::KernelTable;

/// Which activation format a weight type's kernels read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActFormat {
    /// Plain f32 activations (float weights).
    F32,
    /// 32-element blocks with `d` and `s` (legacy weight formats).
    Q8Block32,
    /// 256-element blocks with `d` and 16 `bsums` (K-quant weights).
    Q8K,
}

impl ActFormat {
    pub fn for_weight(ty: GgmlType) -> ActFormat {
        match ty {
            // Q8_1 and Q8_K are activation formats; as weights they have no kernel and
            // take the dequantize-and-dot path with f32 activations.
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_1 | GgmlType::Q8K => {
                ActFormat::F32
            }
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                ActFormat::Q8Block32
            }
            GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
                ActFormat::Q8K
            }
        }
    }

    /// Elements per activation block (1 for f32).
    pub fn block_elems(self) -> usize {
        match self {
            ActFormat::F32 => 1,
            ActFormat::Q8Block32 => 32,
            ActFormat::Q8K => 256,
        }
    }
}

/// `n_tokens` rows of `cols` activations in one [`ActFormat`].
#[derive(Debug, Default)]
pub struct QuantizedActs {
    pub cols: usize,
    pub n_tokens: usize,
    /// `n_tokens × cols` quantized values.
    pub qs: Vec<i8>,
    /// One scale per block, `n_tokens × cols/block` of them.
    pub d: Vec<f32>,
    /// Q8Block32 only: `d·Σq` per block.
    pub s: Vec<f32>,
    /// Q8K only: sums of each 16 `q`, `n_tokens × cols/16`.
    pub bsums: Vec<i16>,
}

impl QuantizedActs {
    /// Quantizes `x` (`n_tokens × cols`) into `format` (not [`ActFormat::F32`]).
    pub fn quantize(format: ActFormat, x: &[f32], n_tokens: usize, cols: usize) -> Self {
        let mut acts = Self::zeroed(format, n_tokens, cols);
        for t in 0..n_tokens {
            acts.quantize_token(format, t, &x[t * cols..(t + 1) * cols]);
        }
        acts
    }

    /// Storage for `n_tokens` rows, all zero (to be filled by [`Self::quantize_token`]).
    pub fn zeroed(format: ActFormat, n_tokens: usize, cols: usize) -> Self {
        let be = format.block_elems();
        assert!(
            format != ActFormat::F32,
            "f32 activations are not quantized"
        );
        assert_eq!(
            cols % be,
            0,
            "row length {cols} is not a whole number of blocks"
        );
        let nb = n_tokens * cols / be;
        QuantizedActs {
            cols,
            n_tokens,
            qs: vec![0; n_tokens * cols],
            d: vec![0.0; nb],
            s: if format == ActFormat::Q8Block32 {
                vec![0.0; nb]
            } else {
                Vec::new()
            },
            bsums: if format == ActFormat::Q8K {
                vec![0; n_tokens * cols / 16]
            } else {
                Vec::new()
            },
        }
    }

    /// Quantizes one token's row into its slot.
    pub fn quantize_token(&mut self, format: ActFormat, t: usize, x: &[f32]) {
        let cols = self.cols;
        let nb = cols / format.block_elems();
        let qs = &mut self.qs[t * cols..(t + 1) * cols];
        let d = &mut self.d[t * nb..(t + 1) * nb];
        match format {
            ActFormat::Q8Block32 => quantize_block32(x, qs, d, &mut self.s[t * nb..(t + 1) * nb]),
            ActFormat::Q8K => quantize_q8k(
                x,
                qs,
                d,
                &mut self.bsums[t * cols / 16..(t + 1) * cols / 16],
            ),
            ActFormat::F32 => unreachable!("checked in zeroed"),
        }
    }

    /// Splits the storage into `parts` disjoint pieces of `per` tokens each (the last
    /// may be shorter), for quantizing in parallel.
    pub fn split_tokens(&mut self, per: usize) -> Vec<ActsPart<'_>> {
        let cols = self.cols;
        let n = self.n_tokens;
        let per_block = if self.s.is_empty() { 256 } else { 32 };
        let mut parts = Vec::new();
        let (mut qs, mut d, mut s, mut bsums) = (
            &mut self.qs[..],
            &mut self.d[..],
            &mut self.s[..],
            &mut self.bsums[..],
        );
        let mut t0 = 0;
        while t0 < n {
            let nt = per.min(n - t0);
            let (a, rest) = qs.split_at_mut(nt * cols);
            qs = rest;
            let (b, rest) = d.split_at_mut(nt * cols / per_block);
            d = rest;
            let (c, rest) = s.split_at_mut(if s.is_empty() { 0 } else { nt * cols / 32 });
            s = rest;
            let (e, rest) = bsums.split_at_mut(if bsums.is_empty() { 0 } else { nt * cols / 16 });
            bsums = rest;
            parts.push(ActsPart {
                t0,
                n_tokens: nt,
                qs: a,
                d: b,
                s: c,
                bsums: e,
            });
            t0 += nt;
        }
        parts
    }

    /// The value the kernels see for element `i` of token `t` (for reference checks).
    pub fn dequantized(&self, t: usize, i: usize, format: ActFormat) -> f32 {
        let be = format.block_elems();
        let d = self.d[(t * self.cols + i) / be];
        d * self.qs[t * self.cols + i] as f32
    }
}

/// A range of tokens' storage inside [`QuantizedActs`].
pub struct ActsPart<'a> {
    pub t0: usize,
    pub n_tokens: usize,
    pub qs: &'a mut [i8],
    pub d: &'a mut [f32],
    pub s: &'a mut [f32],
    pub bsums: &'a mut [i16],
}

impl ActsPart<'_> {
    /// Quantizes this part's tokens from `x` (all tokens' rows, `cols` each) with the
    /// table's quantizers.
    pub fn quantize(&mut self, table: &KernelTable, format: ActFormat, x: &[f32], cols: usize) {
        let rows = &x[self.t0 * cols..(self.t0 + self.n_tokens) * cols];
        match format {
            ActFormat::Q8Block32 => (table.quantize_block32)(rows, self.qs, self.d, self.s),
            ActFormat::Q8K => (table.quantize_q8k)(rows, self.qs, self.d, self.bsums),
            ActFormat::F32 => unreachable!("f32 activations are not quantized"),
        }
    }
}

/// Rounds to the nearest integer, ties to even, for |v| < 2²² (the float-add trick:
/// no libm call, and what a SIMD version computes too).
#[inline(always)]
pub fn nearest_int(v: f32) -> i32 {
    let t = v + 12_582_912.0;
    (t.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Q8_0 quantization of whole 32-blocks as llama.cpp's x86 `quantize_row_q8_0` does it
/// (multiplier `127 / max|x|`, ties to even), with `s = d·Σq` per block.
pub fn quantize_block32(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    for (((xb, qb), db), sb) in x
        .chunks_exact(32)
        .zip(qs.chunks_exact_mut(32))
        .zip(d.iter_mut())
        .zip(s.iter_mut())
    {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in qb.iter_mut().zip(xb) {
            let r = nearest_int(v * inv);
            sum += r;
            *q = r as i8;
        }
        let stored = f16::from_f32(scale).to_f32();
        *db = stored;
        *sb = stored * sum as f32;
    }
}

/// Q8_K quantization of whole 256-blocks.
pub fn quantize_q8k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    for (((xb, qb), db), bs) in x
        .chunks_exact(256)
        .zip(qs.chunks_exact_mut(256))
        .zip(d.iter_mut())
        .zip(bsums.chunks_exact_mut(16))
    {
        let mut amax = 0f32;
        let mut max = 0f32;
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *db = 0.0;
            qb.fill(0);
            bs.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (q, v) in qb.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (sum, group) in bs.iter_mut().zip(qb.chunks_exact(16)) {
            *sum = group.iter().map(|&q| q as i16).sum();
        }
        *db = 1.0 / iscale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block32_matches_hand_values() {
        let mut x = [0f32; 32];
        x[0] = 1.27;
        x[1] = -0.5;
        x[2] = 0.004;
        let acts = QuantizedActs::quantize(ActFormat::Q8Block32, &x, 1, 32);
        let d = f16::from_f32(0.01).to_f32();
        assert_eq!(acts.d[0], d);
        assert_eq!(&acts.qs[..4], &[127, -50, 0, 0]);
        assert_eq!(acts.s[0], d * 77.0);
    }

    #[test]
    fn q8k_uses_the_signed_maximum_and_sums_groups() {
        let mut x = [0f32; 256];
        x[0] = -2.54;
        x[1] = 1.0;
        x[17] = 0.02;
        let acts = QuantizedActs::quantize(ActFormat::Q8K, &x, 1, 256);
        // iscale = -127 / -2.54 = 50.
        assert!((acts.d[0] - 0.02).abs() < 1e-7);
        assert_eq!(&acts.qs[..2], &[-127, 50]);
        assert_eq!(acts.qs[17], 1);
        assert_eq!(acts.bsums[0], -77);
        assert_eq!(acts.bsums[1], 1);
    }

    fn random_row(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0;
                // Some exact half-integers of the code grid and a zero block now and then.
                if i % 97 == 0 {
                    0.5
                } else if (i / 256) % 5 == 4 {
                    0.0
                } else {
                    v
                }
            })
            .collect()
    }

    /// llama.cpp's x86 `quantize_row_q8_0`, one element at a time in plain f32:
    /// `id = 127 / max|x|`, `q = round_ties_even(x · id)`, `d = f16(max|x| / 127)`.
    fn llama_cpp_q8_0(block: &[f32]) -> ([i8; 32], f32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut q = [0i8; 32];
        for (q, v) in q.iter_mut().zip(block) {
            *q = (v * id).round_ties_even() as i8;
        }
        (q, f16::from_f32(amax / 127.0).to_f32())
    }

    #[test]
    fn block32_equals_llama_cpp_x86_q8_0() {
        let x = random_row(32 * 64, 7);
        let acts = QuantizedActs::quantize(ActFormat::Q8Block32, &x, 2, 32 * 32);
        for (b, chunk) in x.chunks_exact(32).enumerate() {
            let (want_q, want_d) = llama_cpp_q8_0(chunk);
            assert_eq!(&acts.qs[b * 32..b * 32 + 32], &want_q[..], "block {b}");
            assert_eq!(acts.d[b], want_d, "block {b}");
            let sum: i32 = want_q.iter().map(|&q| q as i32).sum();
            assert_eq!(acts.s[b], want_d * sum as f32);
        }
    }

    #[test]
    fn block32_rounds_ties_to_even_with_the_127_over_max_multiplier() {
        // max|x| = 127 makes the multiplier exactly 1: 2.5 → 2 and −0.5 → 0 (ties to
        // even), where the weight-file quantizer (half away from zero) gives 3 and −1.
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -0.5;
        x[3] = 3.5;
        let acts = QuantizedActs::quantize(ActFormat::Q8Block32, &x, 1, 32);
        assert_eq!(&acts.qs[..4], &[127, 2, 0, 4]);
        assert_eq!(acts.d[0], 1.0);
        assert_eq!(acts.s[0], 133.0);
    }

    #[test]
    fn q8k_equals_the_quant_reference() {
        use crate::quant::block::BlockFormat;
        use crate::quant::q8_k::BlockQ8K;
        let x = random_row(256 * 6, 11);
        let acts = QuantizedActs::quantize(ActFormat::Q8K, &x, 2, 256 * 3);
        for (b, chunk) in x.chunks_exact(256).enumerate() {
            let want = BlockQ8K::quantize(chunk);
            assert_eq!(&acts.qs[b * 256..b * 256 + 256], &want.qs[..], "block {b}");
            assert_eq!(acts.d[b], want.d, "block {b}");
            assert_eq!(&acts.bsums[b * 16..b * 16 + 16], &want.bsums[..]);
        }
    }

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        for v in [
            0.5f32,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
            126.5,
            3.2,
            -7.7,
        ] {
            assert_eq!(nearest_int(v), v.round_ties_even() as i32, "{v}");
        }
    }

    #[test]
    fn zero_blocks_quantize_to_zero() {
        let x = [0f32; 256];
        let a = QuantizedActs::quantize(ActFormat::Q8K, &x, 1, 256);
        assert!(a.qs.iter().all(|&q| q == 0) && a.d[0] == 0.0);
        let b = QuantizedActs::quantize(ActFormat::Q8Block32, &x, 1, 256);
        assert!(b.qs.iter().all(|&q| q == 0) && b.d.iter().all(|&d| d == 0.0));
    }
}
