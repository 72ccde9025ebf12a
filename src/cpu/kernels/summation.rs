//! The order in which a quantized dot product's partial sums are added, per weight type.
//!
//! Integer products of weight and activation codes are exact; what a kernel chooses is
//! which integer partial sums become floats, and in what order the floats are added.
//! With gemma3 that choice decides greedy continuations: every matmul re-rounds its input
//! to Q8 codes, so a last-bit difference now and then moves a code to the neighbouring
//! step, and the model amplifies such a move into logit changes of several percent
//! within a few tokens (measured). Two implementations agree on the next token only where
//! the top two logits are further apart than that.
//!
//! So every kernel (portable, AVX2 and AVX-512; row kernels and prefill panels) sums in
//! one order per type, the order of llama.cpp's x86 kernels, and they all give the same
//! bits, which are llama.cpp's:
//! - Q4_0 (llama.cpp repacks it into 8-row interleaved blocks on AVX2 machines,
//!   `ggml_gemv/gemm_q4_0_8x8_q8_0`): one chain per output; per block the exact integer
//!   dot product `IS`, and `acc = fma(IS, d_w·d_x, acc)`, for decode and prefill alike.
//! - Q5_0, Q8_0 (Q8_0 activations, `ggml_vec_dot_q*_0_q8_0` and the prefill
//!   `tinyBLAS_Q0_AVX`): eight lanes; lane `k` of block `b` is the integer sum of the
//!   products of elements `4k .. 4k+3`, converted to f32 and fused-multiply-added with
//!   `d_w·d_x` into lane accumulator `k`; the lanes are added by [`hsum8`] at the end.
//! - Q6_K below 8 tokens (`ggml_vec_dot_q6_K_q8_K`): eight lanes per super-block, see
//!   [`q6k_lanes`], fused-multiply-added with `d_x·d_w`, [`hsum8`] at the end. From 8
//!   tokens on (llama.cpp's tiled K-quant matmul): per super-block the exact integer dot
//!   product `IS`, and `acc = fma(IS·d_w, d_x, acc)` (the compiler fuses llama.cpp's
//!   multiply and add).
//! - Q4_K (llama.cpp repacks it into 8-row interleaved blocks on AVX2 machines): one
//!   accumulator for the scaled sums and one for the mins, `out = acc − acc_min`. A
//!   token on its own (`gemv`: decode, and the last `n mod 4` tokens of a batch) adds
//!   one term per super-block; tokens in whole groups of four (`gemm`) add one term per
//!   pair of 32-element sub-blocks ([`q4k_terms`]).
//!
//! The other types keep a plain order of their own.

use super::portable::{decode_k, KBlock};

/// Where a token stands in its matmul's batch: llama.cpp picks kernels, and so orders,
/// by the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlace {
    /// The token lies in a whole group of four (Q4_K's `gemm`).
    pub grouped: bool,
    /// The batch has 8 tokens or more (the tiled K-quant matmul).
    pub wide: bool,
}

impl BatchPlace {
    /// A token alone in its batch (decode).
    pub const LONE: BatchPlace = BatchPlace {
        grouped: false,
        wide: false,
    };

    /// Token `t` of a batch of `n_tokens`.
    pub fn of(t: usize, n_tokens: usize) -> BatchPlace {
        BatchPlace {
            grouped: t < n_tokens - n_tokens % 4,
            wide: n_tokens >= 8,
        }
    }
}

/// llama.cpp's horizontal sum of eight lanes (`hsum_float_8`): the high half added to
/// the low half, then pairs, then the last two.
#[inline(always)]
pub fn hsum8(l: [f32; 8]) -> f32 {
    let r = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// The eight lane sums of one 32-element block: lane `k` sums the products of
/// elements `4k .. 4k+3`.
#[inline(always)]
pub fn lanes32(w: &[i8; 32], x: &[i8]) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for (k, lane) in lanes.iter_mut().enumerate() {
        for i in 4 * k..4 * k + 4 {
            *lane += w[i] as i32 * x[i] as i32;
        }
    }
    lanes
}

/// Adds one block's lanes, scaled by `d`, into the lane accumulators.
#[inline(always)]
pub fn fma_lanes(acc: &mut [f32; 8], lanes: [i32; 8], d: f32) {
    for (a, l) in acc.iter_mut().zip(lanes) {
        *a = (l as f32).mul_add(d, *a);
    }
}

/// The eight lane sums of a Q6_K super-block against Q8_K activations `x` (256) with
/// group sums `bsums` (16), as `ggml_vec_dot_q6_K_q8_K` forms them: lane `k` holds the
/// scaled products of the elements `128j + 32v + 4k .. +3` (j < 2, v < 4) with the
/// weights' unsigned 6-bit values, minus `32·(bsums[2k]·sc[2k] + bsums[2k+1]·sc[2k+1])`.
#[inline]
#[allow(clippy::needless_range_loop)] // the element index picks weight, scale and activation
pub fn q6k_lanes(blk: &KBlock, x: &[i8], bsums: &[i16]) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for j in 0..2 {
        for v in 0..4 {
            let base = 128 * j + 32 * v;
            for (k, lane) in lanes.iter_mut().enumerate() {
                for e in base + 4 * k..base + 4 * k + 4 {
                    let unsigned = blk.q[e] as i32 + 32;
                    *lane += blk.sc[e / 16] * unsigned * x[e] as i32;
                }
            }
        }
    }
    for (k, lane) in lanes.iter_mut().enumerate() {
        *lane -= 32
            * (bsums[2 * k] as i32 * blk.sc[2 * k] + bsums[2 * k + 1] as i32 * blk.sc[2 * k + 1]);
    }
    lanes
}

/// The exact integer dot product of a Q6_K super-block: `Σ_g sc_g·Σ (q − 32)·x`.
#[inline]
pub fn q6k_exact(blk: &KBlock, x: &[i8]) -> i32 {
    (0..16)
        .map(|g| {
            let dot: i32 = (16 * g..16 * g + 16)
                .map(|e| blk.q[e] as i32 * x[e] as i32)
                .sum();
            blk.sc[g] * dot
        })
        .sum()
}

/// The integer terms a Q4_K super-block adds: `(scaled, mins)` pairs, one for the whole
/// super-block (`grouped == false`) or one per pair of 32-element sub-blocks (four,
/// `grouped == true`). `scaled = Σ sc_j·Σ q·x`, `mins = Σ mn_j·(Σ x of sub-block j)`.
#[inline]
pub fn q4k_terms(
    blk: &KBlock,
    x: &[i8],
    bsums: &[i16],
    grouped: bool,
) -> ([i32; 4], [i32; 4], usize) {
    let mut scaled = [0i32; 4];
    let mut mins = [0i32; 4];
    for j in 0..8 {
        let dot: i32 = (32 * j..32 * j + 32)
            .map(|e| blk.q[e] as i32 * x[e] as i32)
            .sum();
        let xsum = bsums[2 * j] as i32 + bsums[2 * j + 1] as i32;
        let slot = if grouped { j / 2 } else { 0 };
        scaled[slot] += blk.sc[2 * j] * dot;
        mins[slot] += blk.mn[2 * j] * xsum;
    }
    (scaled, mins, if grouped { 4 } else { 1 })
}

/// One Q4_K super-block's terms added into `(acc, acc_min)`: `d` and `dmin` are the
/// weight's scales, `dx` the activation block's.
#[inline(always)]
pub fn q4k_accumulate(
    acc: &mut (f32, f32),
    terms: ([i32; 4], [i32; 4], usize),
    d: f32,
    dmin: f32,
    dx: f32,
) {
    let (scaled, mins, n) = terms;
    let (ds, dm) = (d * dx, dmin * dx);
    for i in 0..n {
        acc.0 = (scaled[i] as f32).mul_add(ds, acc.0);
        acc.1 = (mins[i] as f32).mul_add(dm, acc.1);
    }
}

/// The dot product of one weight row with one token's activations, summed in the order
/// above: the specification the kernels are tested against (and the portable kernels'
/// own code).
pub fn dot(
    ty: crate::quant::GgmlType,
    row: &[u8],
    xq: &[i8],
    xd: &[f32],
    bsums: &[i16],
    place: BatchPlace,
) -> Option<f32> {
    use super::portable::decode_legacy;
    use crate::quant::GgmlType;
    let legacy = |decode: fn(&[u8]) -> super::portable::LegacyBlock, bytes: usize| {
        let mut acc = [0f32; 8];
        for (b, block) in row.chunks_exact(bytes).enumerate() {
            let blk = decode(block);
            fma_lanes(
                &mut acc,
                lanes32(&blk.q, &xq[32 * b..32 * b + 32]),
                blk.d * xd[b],
            );
        }
        hsum8(acc)
    };
    Some(match ty {
        GgmlType::Q4_0 => {
            let mut acc = 0f32;
            for (b, block) in row.chunks_exact(18).enumerate() {
                let blk = decode_legacy::<0>(block);
                let x = &xq[32 * b..32 * b + 32];
                let exact: i32 = lanes32(&blk.q, x).iter().sum();
                acc = (exact as f32).mul_add(blk.d * xd[b], acc);
            }
            acc
        }
        GgmlType::Q5_0 => legacy(decode_legacy::<2>, 22),
        GgmlType::Q8_0 => legacy(decode_legacy::<4>, 34),
        GgmlType::Q6K if place.wide => {
            let mut acc = 0f32;
            for (b, block) in row.chunks_exact(210).enumerate() {
                let blk = decode_k::<4>(block);
                acc = (q6k_exact(&blk, &xq[256 * b..256 * b + 256]) as f32 * blk.d)
                    .mul_add(xd[b], acc);
            }
            acc
        }
        GgmlType::Q6K => {
            let mut acc = [0f32; 8];
            for (b, block) in row.chunks_exact(210).enumerate() {
                let blk = decode_k::<4>(block);
                let lanes = q6k_lanes(
                    &blk,
                    &xq[256 * b..256 * b + 256],
                    &bsums[16 * b..16 * b + 16],
                );
                fma_lanes(&mut acc, lanes, xd[b] * blk.d);
            }
            hsum8(acc)
        }
        GgmlType::Q4K => {
            let mut acc = (0f32, 0f32);
            for (b, block) in row.chunks_exact(144).enumerate() {
                let blk = decode_k::<2>(block);
                let terms = q4k_terms(
                    &blk,
                    &xq[256 * b..256 * b + 256],
                    &bsums[16 * b..16 * b + 16],
                    place.grouped,
                );
                q4k_accumulate(&mut acc, terms, blk.d, blk.dmin, xd[b]);
            }
            acc.0 - acc.1
        }
        _ => return None,
    })
}

/// Whether `ty`'s kernels follow llama.cpp's order (the rest keep their own).
pub fn follows_llama_cpp(ty: crate::quant::GgmlType) -> bool {
    use crate::quant::GgmlType;
    matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q6K
    )
}
