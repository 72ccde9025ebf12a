//! Portable kernels for every weight type: each block is decoded once into small
//! integers plus scales, then multiplied with every activation row of the tile.
//!
//! Legacy formats decode to `value = d·q + m` (q signed, offset applied); K-quants to
//! `value = d·sc[g]·q − dmin·mn[g]` with 16 groups of 16 (a 32-element sub-block is two
//! groups with the same scale), so one integer dot product routine serves them all.

use half::{bf16, f16};

use crate::quant::GgmlType;

use super::{Acts, RowKernel, TILE_TOKENS};

pub fn kernel(ty: GgmlType) -> Option<RowKernel> {
    Some(match ty {
        GgmlType::F32 => float_kernel::<4>,
        GgmlType::F16 => float_kernel::<2>,
        GgmlType::BF16 => float_kernel::<3>,
        GgmlType::Q4_0 => ordered_kernel::<0>,
        GgmlType::Q4_1 => legacy_kernel::<20, 1>,
        GgmlType::Q5_0 => ordered_kernel::<1>,
        GgmlType::Q5_1 => legacy_kernel::<24, 3>,
        GgmlType::Q8_0 => ordered_kernel::<2>,
        GgmlType::Q2K => k_kernel::<84, 0>,
        GgmlType::Q3K => k_kernel::<110, 1>,
        GgmlType::Q4K => ordered_kernel::<3>,
        GgmlType::Q5K => k_kernel::<176, 3>,
        GgmlType::Q6K => ordered_kernel::<4>,
        GgmlType::Q8_1 | GgmlType::Q8K => return None,
    })
}

#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

// ---------------------------------------------------------------------------------------
// Float weights

/// Float weights × f32 activations; `FMT`: 4 = F32, 2 = F16, 3 = BF16.
fn float_kernel<const FMT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    const CHUNK: usize = 64;
    let elem_bytes = if FMT == 4 { 4 } else { 2 };
    let cols = acts.cols;
    let mut acc = [[0f32; 8]; TILE_TOKENS];
    let mut w = [0f32; CHUNK];
    let mut start = 0;
    while start < cols {
        let n = CHUNK.min(cols - start);
        let bytes = &row[start * elem_bytes..(start + n) * elem_bytes];
        for (v, b) in w.iter_mut().zip(bytes.chunks_exact(elem_bytes)) {
            *v = match FMT {
                4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                2 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
                _ => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            };
        }
        for (k, acc) in acc.iter_mut().enumerate().take(nt) {
            let x = &acts.x[(t0 + k) * cols + start..][..n];
            let mut i = 0;
            while i + 8 <= n {
                for lane in 0..8 {
                    acc[lane] += w[i + lane] * x[i + lane];
                }
                i += 8;
            }
            for j in i..n {
                acc[j % 8] += w[j] * x[j];
            }
        }
        start += n;
    }
    for k in 0..nt {
        out[k] = acc[k].iter().sum();
    }
}

// ---------------------------------------------------------------------------------------
// Types summed in llama.cpp's order

/// The types of [`ordered_kernel`], by its parameter.
const ORDERED: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
];

/// The kernel of a type that follows llama.cpp's summation order: the specification in
/// [`super::summation::dot`], token by token.
fn ordered_kernel<const TY: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let ty = ORDERED[TY];
    let cols = acts.cols;
    let nb = cols / ty.block_elems();
    let q = acts.q;
    for (k, o) in out.iter_mut().enumerate().take(nt) {
        let t = t0 + k;
        let bsums = if q.bsums.is_empty() {
            &[][..]
        } else {
            &q.bsums[t * cols / 16..(t + 1) * cols / 16]
        };
        *o = super::summation::dot(
            ty,
            row,
            &q.qs[t * cols..(t + 1) * cols],
            &q.d[t * nb..(t + 1) * nb],
            bsums,
            acts.place(t),
        )
        .expect("an ordered type");
    }
}

// ---------------------------------------------------------------------------------------
// Legacy 32-element formats × 32-element Q8 activations

/// A decoded legacy block: `value[i] = d·q[i] + m`.
pub struct LegacyBlock {
    pub q: [i8; 32],
    pub d: f32,
    pub m: f32,
}

/// Decodes one legacy block; `FMT`: 0 = Q4_0, 1 = Q4_1, 2 = Q5_0, 3 = Q5_1, 4 = Q8_0.
#[inline]
pub fn decode_legacy<const FMT: usize>(b: &[u8]) -> LegacyBlock {
    let mut q = [0i8; 32];
    let d = f16_at(b, 0);
    let mut m = 0.0;
    match FMT {
        0 | 1 => {
            let (qs, offset) = if FMT == 0 {
                (&b[2..18], 8)
            } else {
                (&b[4..20], 0)
            };
            if FMT == 1 {
                m = f16_at(b, 2);
            }
            for j in 0..16 {
                q[j] = (qs[j] & 15) as i8 - offset;
                q[j + 16] = (qs[j] >> 4) as i8 - offset;
            }
        }
        2 | 3 => {
            let (h, offset) = if FMT == 2 { (2, 16) } else { (4, 0) };
            if FMT == 3 {
                m = f16_at(b, 2);
            }
            let qh = u32::from_le_bytes([b[h], b[h + 1], b[h + 2], b[h + 3]]);
            let qs = &b[h + 4..h + 20];
            for j in 0..16 {
                let lo = (qs[j] & 15) | ((((qh >> j) & 1) as u8) << 4);
                let hi = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                q[j] = lo as i8 - offset;
                q[j + 16] = hi as i8 - offset;
            }
        }
        _ => {
            for (v, &byte) in q.iter_mut().zip(&b[2..34]) {
                *v = byte as i8;
            }
        }
    }
    LegacyBlock { q, d, m }
}

/// Σ a·b over equal-length slices. Each product fits i16 (|a·b| ≤ 2¹⁴), which lets
/// compilers use 16-bit multiplies (SSE2 has no 32-bit one).
#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as i16 * y as i16) as i32)
        .sum()
}

fn legacy_kernel<const BYTES: usize, const FMT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let cols = acts.cols;
    let nb = cols / 32;
    let mut acc = [0f32; TILE_TOKENS];
    for (i, block) in row.chunks_exact(BYTES).enumerate() {
        let blk = decode_legacy::<FMT>(block);
        for (k, acc) in acc.iter_mut().enumerate().take(nt) {
            let t = t0 + k;
            let xq = &acts.q.qs[t * cols + i * 32..][..32];
            let dot = dot_i8(&blk.q, xq);
            *acc += blk.d * acts.q.d[t * nb + i] * dot as f32 + blk.m * acts.q.s[t * nb + i];
        }
    }
    out[..nt].copy_from_slice(&acc[..nt]);
}

// ---------------------------------------------------------------------------------------
// K-quants × Q8_K

/// A decoded K-quant super-block: `value[i] = d·sc[i/16]·q[i] − dmin·mn[i/16]`.
pub struct KBlock {
    pub q: [i8; 256],
    pub sc: [i32; 16],
    pub mn: [i32; 16],
    pub d: f32,
    pub dmin: f32,
}

/// The 6-bit scale and min of sub-block `j` (of 8) in Q4_K/Q5_K's 12 scale bytes.
#[inline]
pub fn k4_scale_min(b: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (b[j] & 63, b[j + 4] & 63)
    } else {
        (
            (b[j + 4] & 15) | ((b[j - 4] >> 6) << 4),
            (b[j + 4] >> 4) | ((b[j] >> 6) << 4),
        )
    }
}

/// The 16 signed 6-bit scales of Q3_K (already minus 32).
#[inline]
pub fn q3k_scales(b: &[u8]) -> [i32; 16] {
    let mut s = [0i32; 16];
    for i in 0..4 {
        s[i] = ((b[i] & 15) | ((b[8 + i] & 3) << 4)) as i32;
        s[4 + i] = ((b[4 + i] & 15) | (((b[8 + i] >> 2) & 3) << 4)) as i32;
        s[8 + i] = ((b[i] >> 4) | (((b[8 + i] >> 4) & 3) << 4)) as i32;
        s[12 + i] = ((b[4 + i] >> 4) | (((b[8 + i] >> 6) & 3) << 4)) as i32;
    }
    s.map(|v| v - 32)
}

/// Decodes one K-quant block; `FMT`: 0 = Q2_K, 1 = Q3_K, 2 = Q4_K, 3 = Q5_K, 4 = Q6_K.
#[inline]
pub fn decode_k<const FMT: usize>(b: &[u8]) -> KBlock {
    let mut q = [0i8; 256];
    let mut sc = [0i32; 16];
    let mut mn = [0i32; 16];
    let (d, dmin);
    match FMT {
        0 => {
            let (scales, qs) = (&b[0..16], &b[16..80]);
            d = f16_at(b, 80);
            dmin = f16_at(b, 82);
            for g in 0..16 {
                sc[g] = (scales[g] & 15) as i32;
                mn[g] = (scales[g] >> 4) as i32;
            }
            for half in 0..2 {
                for j in 0..4 {
                    for l in 0..32 {
                        q[128 * half + 32 * j + l] = ((qs[32 * half + l] >> (2 * j)) & 3) as i8;
                    }
                }
            }
        }
        1 => {
            let (hmask, qs) = (&b[0..32], &b[32..96]);
            sc = q3k_scales(&b[96..108]);
            d = f16_at(b, 108);
            dmin = 0.0;
            for half in 0..2 {
                for j in 0..4 {
                    let group = 4 * half + j;
                    for l in 0..32 {
                        let low = ((qs[32 * half + l] >> (2 * j)) & 3) as i8;
                        let high = (hmask[l] >> group) & 1;
                        q[128 * half + 32 * j + l] = low - if high == 1 { 0 } else { 4 };
                    }
                }
            }
        }
        2 | 3 => {
            d = f16_at(b, 0);
            dmin = f16_at(b, 2);
            let scales = &b[4..16];
            for j in 0..8 {
                let (s, m) = k4_scale_min(scales, j);
                sc[2 * j] = s as i32;
                sc[2 * j + 1] = s as i32;
                mn[2 * j] = m as i32;
                mn[2 * j + 1] = m as i32;
            }
            let (qh, qs): (&[u8], &[u8]) = if FMT == 2 {
                (&[], &b[16..144])
            } else {
                (&b[16..48], &b[48..176])
            };
            for c in 0..4 {
                for l in 0..32 {
                    let byte = qs[32 * c + l];
                    let (mut lo, mut hi) = (byte & 15, byte >> 4);
                    if FMT == 3 {
                        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                    }
                    q[64 * c + l] = lo as i8;
                    q[64 * c + 32 + l] = hi as i8;
                }
            }
        }
        _ => {
            let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
            d = f16_at(b, 208);
            dmin = 0.0;
            for (g, s) in sc.iter_mut().enumerate() {
                *s = scales[g] as i8 as i32;
            }
            for half in 0..2 {
                let (ql, qh) = (&ql[64 * half..], &qh[32 * half..]);
                let q = &mut q[128 * half..];
                for l in 0..32 {
                    q[l] = ((ql[l] & 15) | ((qh[l] & 3) << 4)) as i8 - 32;
                    q[l + 32] = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                }
            }
        }
    }
    KBlock { q, sc, mn, d, dmin }
}

fn k_kernel<const BYTES: usize, const FMT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let cols = acts.cols;
    let nb = cols / 256;
    let mut acc = [0f32; TILE_TOKENS];
    for (i, block) in row.chunks_exact(BYTES).enumerate() {
        let blk = decode_k::<FMT>(block);
        for (k, acc) in acc.iter_mut().enumerate().take(nt) {
            let t = t0 + k;
            let xq = &acts.q.qs[t * cols + i * 256..][..256];
            let bsums = &acts.q.bsums[(t * nb + i) * 16..][..16];
            let mut scaled = 0i32;
            let mut mins = 0i32;
            for g in 0..16 {
                scaled += blk.sc[g] * dot_i8(&blk.q[16 * g..16 * g + 16], &xq[16 * g..16 * g + 16]);
                mins += blk.mn[g] * bsums[g] as i32;
            }
            let dx = acts.q.d[t * nb + i];
            *acc += dx * (blk.d * scaled as f32 - blk.dmin * mins as f32);
        }
    }
    out[..nt].copy_from_slice(&acc[..nt]);
}

/// Dequantizes one row by the kernels' own block decoding (a cross-check of the decoding
/// against `quant`'s independent dequantizers, and a stand-in where those are missing).
pub fn dequantize_row_by_kernels(ty: GgmlType, row: &[u8], dst: &mut [f32]) {
    fn legacy(blk: LegacyBlock, dst: &mut [f32]) {
        for (v, q) in dst.iter_mut().zip(blk.q) {
            *v = blk.d * q as f32 + blk.m;
        }
    }
    fn k(blk: KBlock, dst: &mut [f32]) {
        for (i, v) in dst.iter_mut().enumerate() {
            *v = blk.d * (blk.sc[i / 16] * blk.q[i] as i32) as f32
                - blk.dmin * blk.mn[i / 16] as f32;
        }
    }
    let bb = ty.block_bytes();
    let be = ty.block_elems();
    for (b, d) in row.chunks_exact(bb).zip(dst.chunks_exact_mut(be)) {
        match ty {
            GgmlType::Q4_0 => legacy(decode_legacy::<0>(b), d),
            GgmlType::Q4_1 => legacy(decode_legacy::<1>(b), d),
            GgmlType::Q5_0 => legacy(decode_legacy::<2>(b), d),
            GgmlType::Q5_1 => legacy(decode_legacy::<3>(b), d),
            GgmlType::Q8_0 => legacy(decode_legacy::<4>(b), d),
            GgmlType::Q2K => k(decode_k::<0>(b), d),
            GgmlType::Q3K => k(decode_k::<1>(b), d),
            GgmlType::Q4K => k(decode_k::<2>(b), d),
            GgmlType::Q5K => k(decode_k::<3>(b), d),
            GgmlType::Q6K => k(decode_k::<4>(b), d),
            other => {
                other.dequantize_row(row, dst);
                return;
            }
        }
    }
}
