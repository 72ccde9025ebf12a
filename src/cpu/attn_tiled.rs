//! Attention over an f16 cache as llama.cpp's CPU flash attention computes it for 64 or
//! more queries per batch (its tiled path), bit for bit: keys in tiles of 64 cache cells;
//! per tile the scores `q·k` (f32 queries, each a fused-multiply-add chain over the head
//! dimensions in order), the tile's maximum, the previous tiles' sum and output rescaled
//! by `expf(old max − new max)`, the weights `exp(score − max)` by ggml's vector
//! exponential (its AVX-512 polynomial, [`ggml_v_expf`]), their sum folded per 16 and
//! added in f64, and the output accumulated as one fused chain per dimension over the
//! tile's keys in order; at the end the output is multiplied by `1 / sum`.
//!
//! Each query row's result depends only on its own keys, so rows are computed in any
//! grouping; tiles count cache cells from 0, which are positions in this cache.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Batches of this many queries or more take the tiled path; smaller ones llama.cpp's
/// one-query-at-a-time path (f16 query and output accumulator).
pub const TILED_ATTENTION_MIN_QUERIES: usize = 64;

/// Cache cells per tile (llama.cpp's `GGML_FA_TILE_KV`).
pub const KV_TILE: usize = 64;

/// One query row: its values, and the positions `first ..= last` it sees.
pub struct QueryRow<'a> {
    pub q: &'a [f32],
    pub first: usize,
    pub last: usize,
}

/// Scratch space, kept between calls.
#[derive(Default)]
pub struct TiledScratch {
    /// A key tile transposed, `[dim][KV_TILE]`.
    kt: Vec<f32>,
    /// The tile's values as f32, `[KV_TILE][dim_v]`.
    vt: Vec<f32>,
    /// Per row: running maximum and sum.
    max: Vec<f32>,
    sum: Vec<f32>,
    /// Per row: the output accumulator (`dim_v`).
    acc: Vec<f32>,
}

/// One kv head's cache rows: `keys`/`values` hold rows of `hd`/`hdv` elements, the
/// first at position `lo`.
pub struct KvRows<'a> {
    pub keys: &'a [f16],
    pub values: &'a [f16],
    pub lo: usize,
    pub hd: usize,
    pub hdv: usize,
}

/// Attends each of `rows` over `kv`, scores multiplied by `scale`, writing each row's
/// output into `outs`.
pub fn attend(
    rows: &[QueryRow<'_>],
    kv: &KvRows<'_>,
    scale: f32,
    scratch: &mut TiledScratch,
    outs: &mut [&mut [f32]],
) {
    let KvRows {
        keys,
        values,
        lo,
        hd,
        hdv,
    } = *kv;
    assert_eq!(rows.len(), outs.len());
    let Some(first) = rows.iter().map(|r| r.first).min() else {
        return;
    };
    let last = rows.iter().map(|r| r.last).max().unwrap_or(first);
    assert!(
        first >= lo && (last + 1 - lo) * hd <= keys.len() && (last + 1 - lo) * hdv <= values.len()
    );
    let TiledScratch {
        kt,
        vt,
        max,
        sum,
        acc,
    } = scratch;
    kt.resize(hd * KV_TILE, 0.0);
    vt.resize(hdv * KV_TILE, 0.0);
    max.clear();
    max.resize(rows.len(), f32::NEG_INFINITY);
    sum.clear();
    sum.resize(rows.len(), 0.0);
    acc.clear();
    acc.resize(rows.len() * hdv, 0.0);
    let mut key = vec![0f32; hd];
    for tile in first / KV_TILE..=last / KV_TILE {
        let (c0, c1) = (tile * KV_TILE, ((tile + 1) * KV_TILE).min(last + 1));
        for c in c0..c1 {
            let j = c - c0;
            if c < lo {
                continue;
            }
            keys[(c - lo) * hd..(c - lo + 1) * hd].convert_to_f32_slice(&mut key);
            for (d, &k) in key.iter().enumerate() {
                kt[d * KV_TILE + j] = k;
            }
            values[(c - lo) * hdv..(c - lo + 1) * hdv]
                .convert_to_f32_slice(&mut vt[j * hdv..(j + 1) * hdv]);
        }
        for (i, row) in rows.iter().enumerate() {
            // Keys of this tile the row sees.
            let (v0, v1) = (row.first.max(c0), row.last.min(c1 - 1));
            if v0 > v1 {
                continue;
            }
            let state = RowState {
                max: &mut max[i],
                sum: &mut sum[i],
                acc: &mut acc[i * hdv..(i + 1) * hdv],
            };
            #[cfg(target_arch = "x86_64")]
            if super::ops::x86::has_f16c() {
                // SAFETY: AVX2, FMA and F16C were detected just above.
                unsafe { tile_fma(row.q, kt, vt, v0 - c0..v1 + 1 - c0, scale, state) };
                continue;
            }
            tile_portable(row.q, kt, vt, v0 - c0..v1 + 1 - c0, scale, state);
        }
    }
    for (i, out) in outs.iter_mut().enumerate() {
        let inv = if sum[i] == 0.0 { 0.0 } else { 1.0 / sum[i] };
        for (o, a) in out.iter_mut().zip(&acc[i * hdv..(i + 1) * hdv]) {
            *o = a * inv;
        }
    }
}

/// A row's running state.
struct RowState<'a> {
    max: &'a mut f32,
    sum: &'a mut f32,
    acc: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_fma(
    q: &[f32],
    kt: &[f32],
    vt: &[f32],
    seen: std::ops::Range<usize>,
    scale: f32,
    state: RowState<'_>,
) {
    tile_body(q, kt, vt, seen, scale, state);
}

fn tile_portable(
    q: &[f32],
    kt: &[f32],
    vt: &[f32],
    seen: std::ops::Range<usize>,
    scale: f32,
    state: RowState<'_>,
) {
    tile_body(q, kt, vt, seen, scale, state);
}

/// One row against one tile; `seen` are the tile's keys the row sees (the others are
/// masked: weight 0, and their fused adds of zero are left out, which changes nothing).
#[inline(always)]
fn tile_body(
    q: &[f32],
    kt: &[f32],
    vt: &[f32],
    seen: std::ops::Range<usize>,
    scale: f32,
    state: RowState<'_>,
) {
    let hdv = state.acc.len();
    let mut scores = [0f32; KV_TILE];
    for (d, &qd) in q.iter().enumerate() {
        let krow = &kt[d * KV_TILE..(d + 1) * KV_TILE];
        for (s, &k) in scores.iter_mut().zip(krow) {
            *s = k.mul_add(qd, *s);
        }
    }
    let mut tile_max = f32::NEG_INFINITY;
    for (j, s) in scores.iter_mut().enumerate() {
        *s = if seen.contains(&j) {
            *s * scale
        } else {
            f32::NEG_INFINITY
        };
        tile_max = tile_max.max(*s);
    }
    let old = *state.max;
    let new = old.max(tile_max);
    if new > old {
        let ms = (old - new).exp();
        state.acc.iter_mut().for_each(|a| *a *= ms);
        *state.sum *= ms;
    }
    *state.max = new;
    let mut weights = [0f32; KV_TILE];
    let mut total = 0f64;
    for (w16, s16) in weights.chunks_exact_mut(16).zip(scores.chunks_exact(16)) {
        let mut lanes = [0f32; 16];
        for ((w, l), &s) in w16.iter_mut().zip(lanes.iter_mut()).zip(s16) {
            *w = ggml_v_expf(s - new);
            *l = *w;
        }
        total += super::ops::fold16(lanes) as f64;
    }
    *state.sum = (*state.sum as f64 + total) as f32;
    for j in seen {
        let w = weights[j];
        let vrow = &vt[j * hdv..(j + 1) * hdv];
        for (a, &v) in state.acc.iter_mut().zip(vrow) {
            *a = v.mul_add(w, *a);
        }
    }
}

/// ggml's vector `exp` (its AVX-512 `ggml_v_expf`, lane by lane): a degree-5 polynomial
/// on the reduced argument, scaled by a power of two; 0 below about −133, ∞ above 133.
#[inline(always)]
pub fn ggml_v_expf(x: f32) -> f32 {
    let c = f32::from_bits;
    let r = c(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(c(0x3fb8_aa3b), r); // log2(e)
    let n = z - r;
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)))
        .mul_add(u, c(0x3f7f_fff6).mul_add(b, 1.0));
    // `vscalefps`: j·2ⁿ rounded once (exact in f64, then to f32). |n| ≤ 192 here, so
    // 2ⁿ is a normal f64 built from its exponent bits.
    let pow2 = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (j as f64 * pow2) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_exp_is_close_to_exp_and_saturates() {
        for x in [-100.0f32, -20.0, -1.5, -0.1, 0.0, 0.3, 2.0, 20.0, 80.0] {
            let (got, want) = (ggml_v_expf(x), x.exp());
            assert!(((got - want) / want).abs() < 2e-6, "{x}: {got} vs {want}");
        }
        assert_eq!(ggml_v_expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(ggml_v_expf(-200.0), 0.0);
        assert_eq!(ggml_v_expf(200.0), f32::INFINITY);
        assert_eq!(ggml_v_expf(0.0), 1.0);
    }
}
