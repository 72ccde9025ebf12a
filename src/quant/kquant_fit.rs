//! Scale searches shared by the K-quant quantizers.
//!
//! Each sub-block gets the scale (and, for the asymmetric formats, the minimum) that
//! minimises its squared error: several starting steps around the naive range/levels
//! are tried, each refined by alternating code assignment and a least-squares refit.
//! The super-block then quantizes those per-sub-block scales with one f16 factor.

use super::block::{min_max, signed_abs_max};

/// Starting points tried per sub-block: the step count is varied over ±1 level.
const STEP_TRIALS: usize = 21;
/// Assign/refit rounds per starting point.
const REFIT_ROUNDS: usize = 3;

/// The `(scale, min)` minimising Σ (x − (scale·q − min))² over codes `q ∈ 0..=nmax`,
/// with `scale ≥ 0` and `min ≥ 0` (the formats store the minimum as a subtracted
/// unsigned quantity, so the lowest representable value is never above zero).
pub(crate) fn fit_scale_min(x: &[f32], nmax: u8) -> (f32, f32) {
    let (lo, hi) = min_max(x);
    let lo = lo.min(0.0);
    if hi <= lo {
        return (0.0, -lo);
    }
    let nmax_f = nmax as f32;
    let mut best = (f32::INFINITY, 0.0f32, -lo);
    for trial in 0..STEP_TRIALS {
        let levels = nmax_f + (trial as f32 - (STEP_TRIALS / 2) as f32) / (STEP_TRIALS / 2) as f32;
        let mut scale = (hi - lo) / levels;
        let mut offset = lo;
        for _ in 0..REFIT_ROUNDS {
            let err = affine_error(x, scale, offset, nmax_f);
            if err < best.0 {
                best = (err, scale, -offset);
            }
            match refit_affine(x, scale, offset, nmax_f) {
                Some((s, b)) => (scale, offset) = (s, b),
                None => break,
            }
        }
        let err = affine_error(x, scale, offset, nmax_f);
        if err < best.0 {
            best = (err, scale, -offset);
        }
    }
    (best.1, best.2)
}

/// Code for `x` under value = scale·q + offset, q ∈ 0..=nmax.
#[inline]
pub(crate) fn affine_code(x: f32, inv_scale: f32, offset: f32, nmax: f32) -> f32 {
    ((x - offset) * inv_scale).round().clamp(0.0, nmax)
}

fn affine_error(x: &[f32], scale: f32, offset: f32, nmax: f32) -> f32 {
    let inv = 1.0 / scale;
    x.iter()
        .map(|&v| {
            let e = v - (scale * affine_code(v, inv, offset, nmax) + offset);
            e * e
        })
        .sum()
}

/// Least-squares (scale, offset) for the codes the current pair assigns, keeping
/// offset ≤ 0; `None` when the fit degenerates (all codes equal, or a non-positive scale).
fn refit_affine(x: &[f32], scale: f32, offset: f32, nmax: f32) -> Option<(f32, f32)> {
    let inv = 1.0 / scale;
    let (mut sq, mut sqq, mut sx, mut sqx) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for &v in x {
        let q = affine_code(v, inv, offset, nmax) as f64;
        sq += q;
        sqq += q * q;
        sx += v as f64;
        sqx += q * v as f64;
    }
    let n = x.len() as f64;
    let det = n * sqq - sq * sq;
    if det <= 0.0 {
        return None;
    }
    let mut s = (n * sqx - sq * sx) / det;
    let mut b = (sqq * sx - sq * sqx) / det;
    if b > 0.0 {
        b = 0.0;
        s = sqx / sqq;
    }
    (s > 0.0 && s.is_finite()).then_some((s as f32, b as f32))
}

/// The signed scale minimising Σ (x − scale·q)² over codes `q ∈ −nneg..=npos`.
/// The sign matters: it decides which end of the lopsided code range the largest
/// element uses.
pub(crate) fn fit_symmetric_scale(x: &[f32], nneg: i32, npos: i32) -> f32 {
    let max = signed_abs_max(x);
    if max == 0.0 {
        return 0.0;
    }
    let (lo, hi) = (-nneg as f32, npos as f32);
    let half = (STEP_TRIALS / 2) as f32;
    let mut best = (f32::INFINITY, 0.0f32);
    for end in [lo, hi] {
        for trial in 0..STEP_TRIALS {
            let level = end + end.signum() * (trial as f32 - half) / half;
            let mut scale = max / level;
            for _ in 0..REFIT_ROUNDS {
                let err = symmetric_error(x, scale, lo, hi);
                if err < best.0 {
                    best = (err, scale);
                }
                match refit_symmetric(x, scale, lo, hi) {
                    Some(s) => scale = s,
                    None => break,
                }
            }
            let err = symmetric_error(x, scale, lo, hi);
            if err < best.0 {
                best = (err, scale);
            }
        }
    }
    best.1
}

/// Code for `x` under value = scale·q, q ∈ lo..=hi.
#[inline]
pub(crate) fn symmetric_code(x: f32, inv_scale: f32, lo: f32, hi: f32) -> f32 {
    (x * inv_scale).round().clamp(lo, hi)
}

fn symmetric_error(x: &[f32], scale: f32, lo: f32, hi: f32) -> f32 {
    let inv = 1.0 / scale;
    x.iter()
        .map(|&v| {
            let e = v - scale * symmetric_code(v, inv, lo, hi);
            e * e
        })
        .sum()
}

fn refit_symmetric(x: &[f32], scale: f32, lo: f32, hi: f32) -> Option<f32> {
    let inv = 1.0 / scale;
    let (mut sqq, mut sqx) = (0.0f64, 0.0f64);
    for &v in x {
        let q = symmetric_code(v, inv, lo, hi) as f64;
        sqq += q * q;
        sqx += q * v as f64;
    }
    let s = sqx / sqq;
    (sqq > 0.0 && s != 0.0 && s.is_finite()).then_some(s as f32)
}

/// Quantizes non-negative sub-block factors to `0..=max_code` with one f16 step,
/// returning the f16 step (as stored) and the codes.
pub(crate) fn quantize_unsigned_factors<const N: usize>(
    factors: &[f32; N],
    max_code: u8,
) -> (half::f16, [u8; N]) {
    let top = factors.iter().fold(0.0f32, |m, &v| m.max(v));
    let step = half::f16::from_f32(top / max_code as f32);
    let inv = super::block::inverse_or_zero(step.to_f32());
    let codes = factors.map(|v| (v * inv).round().clamp(0.0, max_code as f32) as u8);
    (step, codes)
}

/// Quantizes signed sub-block scales to `−(neg_code)..=pos_code` with one f16 step;
/// the largest-magnitude scale maps to `−neg_code` so the full range is used.
pub(crate) fn quantize_signed_factors<const N: usize>(
    factors: &[f32; N],
    neg_code: i32,
    pos_code: i32,
) -> (half::f16, [i32; N]) {
    let max = signed_abs_max(factors);
    let step = half::f16::from_f32(max / -(neg_code as f32));
    let inv = super::block::inverse_or_zero(step.to_f32());
    let codes = factors.map(|v| (v * inv).round().clamp(-neg_code as f32, pos_code as f32) as i32);
    (step, codes)
}
