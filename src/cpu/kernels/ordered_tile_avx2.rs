//! AVX2 tiles over [`super::ordered_panel`]s for prefill on machines without AVX-512:
//! 16 weight rows × two tokens, each output summed exactly as
//! [`super::summation::dot`] specifies (the bits of every other level).
//!
//! Q4_0 and Q4_K (the `Exact32` and `Q4K` families) only: their unsigned 4-bit codes
//! times signed 8-bit activations keep every `maddubs` pair sum within ±3840, so the
//! eight quads of a 32-column block add up in 16-bit lanes without saturating (≤ 30720)
//! and one `madd` per block turns them into its exact integer sum. The other families'
//! codes are too wide for that and keep the row kernels.

use std::arch::x86_64::*;

use super::ordered_panel::{Family, OrderedActs, OrderedPanel};
use super::panel::PANEL_ROWS;
use super::PANEL_TOKENS;

/// Tokens one tile call takes (0: the family has no AVX2 tile).
pub fn tokens_per_tile(family: Family, _n_tokens: usize) -> usize {
    match family {
        Family::Exact32 => 2,
        Family::Q4K => 2,
        Family::Lanes32 | Family::Q6K => 0,
    }
}

/// `out[k][r] = panel row r · activation row (t0 + k)` for `k < nt ≤ 2`. Callers must
/// have detected the AVX2 level.
pub fn tile(
    panel: &OrderedPanel,
    acts: &OrderedActs<'_>,
    t0: usize,
    nt: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let family = Family::of(panel.ty).expect("an ordered type");
    assert!((1..=2).contains(&nt));
    panel.check();
    let cols = panel.cols;
    let q = acts.q;
    assert_eq!(q.cols, cols);
    assert!(q.qs.len() >= (t0 + nt) * cols);
    assert!(q.d.len() >= (t0 + nt) * cols / panel.ty.block_elems());
    match family {
        Family::Exact32 => assert!(acts.corr.len() >= (t0 + nt) * cols / 32),
        Family::Q4K => assert!(acts.sums.len() >= (t0 + nt) * cols / 64),
        Family::Lanes32 | Family::Q6K => panic!("no AVX2 tile for {}", panel.ty),
    }
    // SAFETY: the AVX2 level (AVX2, FMA, F16C) was detected before this function is used
    // (the matmul checks the table's level); the bounds were asserted above.
    unsafe {
        match (family, nt) {
            (Family::Exact32, 1) => exact32::<1>(panel, acts, t0, out),
            (Family::Exact32, _) => exact32::<2>(panel, acts, t0, out),
            (_, 1) => q4k::<1>(panel, acts, t0, out),
            _ => q4k::<2>(panel, acts, t0, out),
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn exact32<const NT: usize>(
    panel: &OrderedPanel,
    acts: &OrderedActs<'_>,
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let cols = panel.cols;
    let blocks = cols / 32;
    let w = panel.w.as_ptr();
    let x = acts.q.qs.as_ptr().add(t0 * cols);
    let dx = acts.q.d.as_ptr().add(t0 * blocks);
    let corr = acts.corr.as_ptr().add(t0 * blocks);
    let ones = _mm256_set1_epi16(1);
    // Rows 0..8 and 8..16 of each token.
    let mut acc = [[_mm256_setzero_ps(); 2]; NT];
    for b in 0..blocks {
        let mut pairs = [[_mm256_setzero_si256(); 2]; NT];
        for k in 0..8 {
            let quad = 8 * b + k;
            let low = _mm256_loadu_si256(w.add(quad * PANEL_ROWS) as *const __m256i);
            let high = _mm256_loadu_si256(w.add(quad * PANEL_ROWS + 8) as *const __m256i);
            for (t, pairs) in pairs.iter_mut().enumerate() {
                let xq = std::ptr::read_unaligned(x.add(t * cols + 4 * quad) as *const i32);
                let xv = _mm256_set1_epi32(xq);
                pairs[0] = _mm256_add_epi16(pairs[0], _mm256_maddubs_epi16(low, xv));
                pairs[1] = _mm256_add_epi16(pairs[1], _mm256_maddubs_epi16(high, xv));
            }
        }
        let dw = [
            _mm256_loadu_ps(panel.d.as_ptr().add(b * PANEL_ROWS)),
            _mm256_loadu_ps(panel.d.as_ptr().add(b * PANEL_ROWS + 8)),
        ];
        for (t, acc) in acc.iter_mut().enumerate() {
            // The block's offset correction plus its products: the exact integer sum.
            let c = _mm256_set1_epi32(*corr.add(t * blocks + b));
            let dxv = _mm256_set1_ps(*dx.add(t * blocks + b));
            for h in 0..2 {
                let sum = _mm256_add_epi32(c, _mm256_madd_epi16(pairs[t][h], ones));
                let d = _mm256_mul_ps(dw[h], dxv);
                acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, acc[h]);
            }
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        _mm256_storeu_ps(out[t].as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(out[t].as_mut_ptr().add(8), acc[1]);
    }
}

/// The exact integer dot products of one 32-column block (quads `8j .. 8j + 8`) for
/// rows `8h .. 8h + 8`: eight `maddubs` added in 16-bit lanes, then one `madd`.
#[inline(always)]
unsafe fn block_dot(w: *const u32, x: *const i8, j: usize, h: usize) -> __m256i {
    let mut pairs = _mm256_setzero_si256();
    for qd in 0..8 {
        let quad = 8 * j + qd;
        let wv = _mm256_loadu_si256(w.add(quad * PANEL_ROWS + 8 * h) as *const __m256i);
        let xq = std::ptr::read_unaligned(x.add(4 * quad) as *const i32);
        pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(wv, _mm256_set1_epi32(xq)));
    }
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// Q4_K as [`super::ordered_avx512`]'s tile sums it: per pair of sub-blocks each
/// sub-block's exact dot product times its scale, and the pair's mins against the
/// activations' pair sums; a token in a whole group of four adds them per pair, another
/// per super-block. Rows 0..8, then 8..16 (registers hold one half's chains).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k<const NT: usize>(
    panel: &OrderedPanel,
    acts: &OrderedActs<'_>,
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let cols = panel.cols;
    let blocks = cols / 256;
    let pairs = cols / 64;
    let w = panel.w.as_ptr();
    let x = acts.q.qs.as_ptr().add(t0 * cols);
    let dx = acts.q.d.as_ptr().add(t0 * blocks);
    let sums = acts.sums.as_ptr().add(t0 * pairs);
    let grouped: [bool; NT] = std::array::from_fn(|t| acts.place(t0 + t).grouped);
    let zero = _mm256_setzero_si256();
    for h in 0..2 {
        let at = |i: usize| i * PANEL_ROWS + 8 * h;
        let mut acc = [_mm256_setzero_ps(); NT];
        let mut acc_min = [_mm256_setzero_ps(); NT];
        for b in 0..blocks {
            let d = _mm256_loadu_ps(panel.d.as_ptr().add(at(b)));
            let dmin = _mm256_loadu_ps(panel.dmin.as_ptr().add(at(b)));
            let mut scaled = [zero; NT];
            let mut mins = [zero; NT];
            for p in 0..4 {
                let (j0, j1) = (8 * b + 2 * p, 8 * b + 2 * p + 1);
                let sc0 = _mm256_loadu_si256(panel.sc.as_ptr().add(at(j0)) as *const __m256i);
                let sc1 = _mm256_loadu_si256(panel.sc.as_ptr().add(at(j1)) as *const __m256i);
                let mn = _mm256_loadu_si256(panel.mn.as_ptr().add(at(4 * b + p)) as *const __m256i);
                for t in 0..NT {
                    let xt = x.add(t * cols);
                    let s = _mm256_add_epi32(
                        _mm256_mullo_epi32(block_dot(w, xt, j0, h), sc0),
                        _mm256_mullo_epi32(block_dot(w, xt, j1, h), sc1),
                    );
                    let xs = _mm256_set1_epi32(*sums.add(t * pairs + 4 * b + p));
                    let m = _mm256_madd_epi16(mn, xs);
                    if grouped[t] {
                        let x_scale = _mm256_set1_ps(*dx.add(t * blocks + b));
                        let (ds, dm) = (_mm256_mul_ps(d, x_scale), _mm256_mul_ps(dmin, x_scale));
                        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), ds, acc[t]);
                        acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dm, acc_min[t]);
                    } else {
                        scaled[t] = _mm256_add_epi32(scaled[t], s);
                        mins[t] = _mm256_add_epi32(mins[t], m);
                    }
                }
            }
            for t in 0..NT {
                if !grouped[t] {
                    let x_scale = _mm256_set1_ps(*dx.add(t * blocks + b));
                    let (ds, dm) = (_mm256_mul_ps(d, x_scale), _mm256_mul_ps(dmin, x_scale));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(scaled[t]), ds, acc[t]);
                    acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins[t]), dm, acc_min[t]);
                }
            }
        }
        for t in 0..NT {
            _mm256_storeu_ps(
                out[t].as_mut_ptr().add(8 * h),
                _mm256_sub_ps(acc[t], acc_min[t]),
            );
        }
    }
}
