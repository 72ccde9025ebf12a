//! Scale searches shared by the K-quant quantizers.
//!
//! Each sub-block gets the scale (and, for the asymmetric formats, the minimum) that
//! minimises its squared error: several starting steps around the naive range/levels
//! are tried, each refined by alternating code assignment and a least-squares refit.
//! The super-block then quantizes those per-sub-block scales with one f16 factor.

use super::block::{min_max, signed_abs_max};

/// Starting points tried per sub-block: the step count is varied over ±1 level.
const STEP_TRIALS: usize = 7;
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
    let nmax = nmax as f32;
    let mut best = (f32::INFINITY, 0.0f32, lo);
    for trial in 0..STEP_TRIALS {
        let (mut scale, mut offset) =
            cover_range((hi - lo) / (nmax + trial_shift(trial)), lo, lo, hi, nmax);
        for round in 0..=REFIT_ROUNDS {
            let fit = AffineFit::measure(x, scale, offset, nmax);
            if fit.err < best.0 {
                best = (fit.err, scale, offset);
            }
            match fit.refit() {
                Some((s, b)) if round < REFIT_ROUNDS => {
                    (scale, offset) = cover_range(s, b, lo, hi, nmax);
                }
                _ => break,
            }
        }
    }
    (best.1, -best.2)
}

/// Widens a (scale, offset ≤ 0) grid just enough that `lo` and `hi` lie at most half
/// a step outside it: least squares alone would happily clip a lone outlier, and
/// large weights are the ones a model can least afford to lose.
fn cover_range(scale: f32, offset: f32, lo: f32, hi: f32, nmax: f32) -> (f32, f32) {
    let offset = offset.min(lo + scale / 2.0);
    let top = offset + nmax * scale;
    if top < hi - scale / 2.0 {
        ((hi - offset) / (nmax + 0.5), offset)
    } else {
        (scale, offset)
    }
}

/// Step-count shift of starting point `trial`: evenly spread over −1..=1.
fn trial_shift(trial: usize) -> f32 {
    let half = (STEP_TRIALS / 2) as f32;
    (trial as f32 - half) / half
}

/// Rounds a non-negative value to nearest (ties up). A truncating conversion is far
/// cheaper than `f32::round`, which is a library call on baseline x86-64, and the
/// searches below call this hundreds of times per element. NaN becomes 0.
#[inline]
fn round_non_negative(v: f32) -> f32 {
    (v + 0.5) as u32 as f32
}

/// Code for `x` under value = scale·q + offset, q ∈ 0..=nmax.
#[inline]
pub(crate) fn affine_code(x: f32, inv_scale: f32, offset: f32, nmax: f32) -> f32 {
    round_non_negative(((x - offset) * inv_scale).clamp(0.0, nmax))
}

/// Squared error of one (scale, offset) with its own code assignment, and the sums a
/// least-squares refit of those codes needs.
struct AffineFit {
    err: f32,
    n: f32,
    sq: f32,
    sqq: f32,
    sx: f32,
    sqx: f32,
}

impl AffineFit {
    fn measure(x: &[f32], scale: f32, offset: f32, nmax: f32) -> AffineFit {
        let inv = 1.0 / scale;
        let mut fit = AffineFit {
            err: 0.0,
            n: x.len() as f32,
            sq: 0.0,
            sqq: 0.0,
            sx: 0.0,
            sqx: 0.0,
        };
        for &v in x {
            let q = affine_code(v, inv, offset, nmax);
            let e = v - (scale * q + offset);
            fit.err += e * e;
            fit.sq += q;
            fit.sqq += q * q;
            fit.sx += v;
            fit.sqx += q * v;
        }
        fit
    }

    /// Least-squares (scale, offset) for the measured codes, keeping offset ≤ 0;
    /// `None` when the fit degenerates (all codes equal, or a non-positive scale).
    fn refit(&self) -> Option<(f32, f32)> {
        let det = self.n * self.sqq - self.sq * self.sq;
        if det <= 0.0 {
            return None;
        }
        let mut s = (self.n * self.sqx - self.sq * self.sx) / det;
        let mut b = (self.sqq * self.sx - self.sq * self.sqx) / det;
        if b > 0.0 {
            b = 0.0;
            s = self.sqx / self.sqq;
        }
        (s > 0.0 && s.is_finite()).then_some((s, b))
    }
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
    let mut best = (f32::INFINITY, 0.0f32);
    for end in [lo, hi] {
        for trial in 0..STEP_TRIALS {
            let mut scale = cover_max(max / (end + end.signum() * trial_shift(trial)), max, lo, hi);
            for round in 0..=REFIT_ROUNDS {
                let (err, refit) = measure_symmetric(x, scale, lo, hi);
                if err < best.0 {
                    best = (err, scale);
                }
                match refit {
                    Some(s) if round < REFIT_ROUNDS => scale = cover_max(s, max, lo, hi),
                    _ => break,
                }
            }
        }
    }
    best.1
}

/// Grows `scale` (keeping its sign) just enough that the largest element `max` lies at
/// most half a step beyond the end of the code range it falls on (see [`cover_range`]).
fn cover_max(scale: f32, max: f32, lo: f32, hi: f32) -> f32 {
    let limit = if (scale > 0.0) == (max > 0.0) {
        hi
    } else {
        -lo
    };
    let min_magnitude = max.abs() / (limit + 0.5);
    if scale.abs() < min_magnitude {
        min_magnitude.copysign(scale)
    } else {
        scale
    }
}

/// Code for `x` under value = scale·q, q ∈ lo..=hi.
#[inline]
pub(crate) fn symmetric_code(x: f32, inv_scale: f32, lo: f32, hi: f32) -> f32 {
    round_non_negative((x * inv_scale).clamp(lo, hi) - lo) + lo
}

/// Squared error of `scale` with its own codes, and the least-squares scale for those
/// codes (`None` if degenerate).
fn measure_symmetric(x: &[f32], scale: f32, lo: f32, hi: f32) -> (f32, Option<f32>) {
    let inv = 1.0 / scale;
    let (mut err, mut sqq, mut sqx) = (0.0f32, 0.0f32, 0.0f32);
    for &v in x {
        let q = symmetric_code(v, inv, lo, hi);
        let e = v - scale * q;
        err += e * e;
        sqq += q * q;
        sqx += q * v;
    }
    let s = sqx / sqq;
    (err, (sqq > 0.0 && s != 0.0 && s.is_finite()).then_some(s))
}

/// `v` as an f16 of at least its magnitude, so that the largest factor never needs a
/// code beyond the top one (this matters where the step falls among f16 subnormals).
fn f16_not_below(v: f32) -> half::f16 {
    let h = half::f16::from_f32(v);
    if h.to_f32().abs() < v.abs() && h.is_finite() {
        half::f16::from_bits(h.to_bits() + 1)
    } else {
        h
    }
}

/// Quantizes non-negative sub-block factors to `0..=max_code` with one f16 step,
/// returning the f16 step (as stored) and the codes.
pub(crate) fn quantize_unsigned_factors<const N: usize>(
    factors: &[f32; N],
    max_code: u8,
) -> (half::f16, [u8; N]) {
    let top = factors.iter().fold(0.0f32, |m, &v| m.max(v));
    let step = f16_not_below(top / max_code as f32);
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
    let step = f16_not_below(max / -(neg_code as f32));
    let inv = super::block::inverse_or_zero(step.to_f32());
    let codes = factors.map(|v| (v * inv).round().clamp(-neg_code as f32, pos_code as f32) as i32);
    (step, codes)
}

/// Squared error of a sub-block on the grid value = scale·q + offset, q ∈ 0..=nmax
/// (a zero scale puts every element at `offset`).
fn affine_grid_error(x: &[f32], scale: f32, offset: f32, nmax: f32) -> f32 {
    let inv = super::block::inverse_or_zero(scale);
    x.iter()
        .map(|&v| {
            let e = v - (scale * affine_code(v, inv, offset, nmax) + offset);
            e * e
        })
        .sum()
}

/// Re-picks a sub-block's (scale, min) codes among the neighbours of the rounded ones,
/// keeping the pair with the least squared error under the stored f16 steps `d` and
/// `dmin`: rounding the scale code alone can shrink the grid enough to clip extremes.
pub(crate) fn refine_affine_codes(
    x: &[f32],
    (d, dmin): (f32, f32),
    (sc, m): (u8, u8),
    max_code: u8,
    nmax: f32,
) -> (u8, u8) {
    let neighbours = |c: u8| c.saturating_sub(1)..=c.saturating_add(1).min(max_code);
    let mut best = (f32::INFINITY, sc, m);
    for s in neighbours(sc) {
        for mm in neighbours(m) {
            let err = affine_grid_error(x, d * s as f32, -(dmin * mm as f32), nmax);
            if err < best.0 {
                best = (err, s, mm);
            }
        }
    }
    (best.1, best.2)
}

/// As [`refine_affine_codes`] for a signed scale code in `code_lo..=code_hi` and
/// element codes in `q_lo..=q_hi`.
pub(crate) fn refine_symmetric_code(
    x: &[f32],
    d: f32,
    sc: i32,
    (code_lo, code_hi): (i32, i32),
    (q_lo, q_hi): (f32, f32),
) -> i32 {
    let mut best = (f32::INFINITY, sc);
    for s in (sc - 1).max(code_lo)..=(sc + 1).min(code_hi) {
        let scale = d * s as f32;
        let inv = super::block::inverse_or_zero(scale);
        let err: f32 = x
            .iter()
            .map(|&v| {
                let e = v - scale * symmetric_code(v, inv, q_lo, q_hi);
                e * e
            })
            .sum();
        if err < best.0 {
            best = (err, s);
        }
    }
    best.1
}
