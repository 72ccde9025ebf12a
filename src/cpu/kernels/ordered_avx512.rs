//! AVX-512 VNNI tiles over [`super::ordered_panel`]s: 16 weight rows × a few tokens,
//! each output summed exactly as [`super::summation::dot`] specifies.

use std::arch::x86_64::*;

use super::ordered_panel::{Family, OrderedActs, OrderedPanel};
use super::panel::PANEL_ROWS;
use super::summation::BatchPlace;
use super::PANEL_TOKENS;

/// Tokens one tile call takes, per family, in a batch of `n_tokens` (what the registers
/// hold: Lanes32 keeps 8 float lanes per token, Q6_K below 8 tokens 8 integer and 8 float
/// lanes, from 8 tokens on one exact sum; the others two chains).
pub fn tokens_per_tile(family: Family, n_tokens: usize) -> usize {
    match family {
        Family::Lanes32 => 2,
        Family::Q6K if !BatchPlace::of(0, n_tokens).wide => 1,
        Family::Q6K | Family::Q4K | Family::Exact32 => PANEL_TOKENS,
    }
}

/// `out[k][r] = panel row r · activation row (t0 + k)` for `k < nt ≤
/// tokens_per_tile(family, n_tokens)`. Callers must have detected the AVX-512 level.
pub fn tile(
    panel: &OrderedPanel,
    acts: &OrderedActs<'_>,
    t0: usize,
    nt: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let family = Family::of(panel.ty).expect("an ordered type");
    assert!((1..=tokens_per_tile(family, acts.n_tokens)).contains(&nt));
    panel.check();
    let cols = panel.cols;
    let q = acts.q;
    assert_eq!(q.cols, cols);
    assert!(q.qs.len() >= (t0 + nt) * cols);
    assert!(q.d.len() >= (t0 + nt) * cols / panel.ty.block_elems());
    match family {
        Family::Lanes32 => assert!(acts.corr.len() >= (t0 + nt) * cols / 4),
        Family::Exact32 => assert!(acts.corr.len() >= (t0 + nt) * cols / 32),
        Family::Q4K => assert!(acts.sums.len() >= (t0 + nt) * cols / 64),
        Family::Q6K => assert!(acts.sums.len() >= (t0 + nt) * cols / 32),
    }
    // SAFETY (all arms): the AVX-512 level (F, BW, VL, VNNI) was detected before this
    // function is used (the matmul checks the table's level); the bounds were asserted.
    unsafe {
        match (family, nt) {
            (Family::Lanes32, 1) => lanes32::<1>(panel, acts, t0, out),
            (Family::Lanes32, _) => lanes32::<2>(panel, acts, t0, out),
            (Family::Exact32, 1) => exact32::<1>(panel, acts, t0, out),
            (Family::Exact32, 2) => exact32::<2>(panel, acts, t0, out),
            (Family::Exact32, 3) => exact32::<3>(panel, acts, t0, out),
            (Family::Exact32, _) => exact32::<4>(panel, acts, t0, out),
            (Family::Q6K, _) if !acts.place(t0).wide => q6k(panel, acts, t0, out),
            (Family::Q6K, 1) => q6k_wide::<1>(panel, acts, t0, out),
            (Family::Q6K, 2) => q6k_wide::<2>(panel, acts, t0, out),
            (Family::Q6K, 3) => q6k_wide::<3>(panel, acts, t0, out),
            (Family::Q6K, _) => q6k_wide::<4>(panel, acts, t0, out),
            (Family::Q4K, 1) => q4k::<1>(panel, acts, t0, out),
            (Family::Q4K, 2) => q4k::<2>(panel, acts, t0, out),
            (Family::Q4K, 3) => q4k::<3>(panel, acts, t0, out),
            (Family::Q4K, _) => q4k::<4>(panel, acts, t0, out),
        }
    }
}

#[inline(always)]
unsafe fn load_i(p: *const i32) -> __m512i {
    _mm512_loadu_si512(p as *const _)
}

/// [`super::summation::hsum8`] of eight 16-row lane vectors.
#[inline(always)]
unsafe fn hsum8_rows(l: &[__m512; 8]) -> __m512 {
    let r: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(l[i + 4], l[i]));
    _mm512_add_ps(_mm512_add_ps(r[0], r[2]), _mm512_add_ps(r[1], r[3]))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn lanes32<const NT: usize>(
    panel: &OrderedPanel,
    acts: &OrderedActs<'_>,
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let cols = panel.cols;
    let blocks = cols / 32;
    let quads = cols / 4;
    let w = panel.w.as_ptr();
    let x = acts.q.qs.as_ptr().add(t0 * cols);
    let dx = acts.q.d.as_ptr().add(t0 * blocks);
    let corr = acts.corr.as_ptr().add(t0 * quads);
    let mut lanes = [[_mm512_setzero_ps(); 8]; NT];
    for b in 0..blocks {
        let dw = _mm512_loadu_ps(panel.d.as_ptr().add(b * PANEL_ROWS));
        let dv: [__m512; NT] =
            std::array::from_fn(|t| _mm512_mul_ps(dw, _mm512_set1_ps(*dx.add(t * blocks + b))));
        for k in 0..8 {
            let quad = 8 * b + k;
            let wv = load_i(w.add(quad * PANEL_ROWS) as *const i32);
            for (t, lanes) in lanes.iter_mut().enumerate() {
                let xq = std::ptr::read_unaligned(x.add(t * cols + 4 * quad) as *const i32);
                let init = _mm512_set1_epi32(*corr.add(t * quads + quad));
                let dot = _mm512_dpbusd_epi32(init, wv, _mm512_set1_epi32(xq));
                lanes[k] = _mm512_fmadd_ps(dv[t], _mm512_cvtepi32_ps(dot), lanes[k]);
            }
        }
    }
    for (t, lanes) in lanes.iter().enumerate() {
        _mm512_storeu_ps(out[t].as_mut_ptr(), hsum8_rows(lanes));
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
    let mut acc = [_mm512_setzero_ps(); NT];
    for b in 0..blocks {
        // The block's offset correction starts each exact sum.
        let mut dots: [__m512i; NT] =
            std::array::from_fn(|t| _mm512_set1_epi32(*corr.add(t * blocks + b)));
        for k in 0..8 {
            let quad = 8 * b + k;
            let wv = load_i(w.add(quad * PANEL_ROWS) as *const i32);
            for (t, dot) in dots.iter_mut().enumerate() {
                let xq = std::ptr::read_unaligned(x.add(t * cols + 4 * quad) as *const i32);
                *dot = _mm512_dpbusd_epi32(*dot, wv, _mm512_set1_epi32(xq));
            }
        }
        let dw = _mm512_loadu_ps(panel.d.as_ptr().add(b * PANEL_ROWS));
        for (t, acc) in acc.iter_mut().enumerate() {
            let d = _mm512_mul_ps(dw, _mm512_set1_ps(*dx.add(t * blocks + b)));
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[t]), d, *acc);
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        _mm512_storeu_ps(out[t].as_mut_ptr(), *acc);
    }
}

/// Q6_K in batches of 8 tokens or more: per super-block one exact integer sum per
/// token (two `vpdpwssd` chains: even and odd groups), then `fma(IS·d_w, d_x, acc)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q6k_wide<const NT: usize>(
    panel: &OrderedPanel,
    acts: &OrderedActs<'_>,
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let cols = panel.cols;
    let blocks = cols / 256;
    let w = panel.w.as_ptr();
    let x = acts.q.qs.as_ptr().add(t0 * cols);
    let dx = acts.q.d.as_ptr().add(t0 * blocks);
    let sums = acts.sums.as_ptr().add(t0 * cols / 32);
    let zero = _mm512_setzero_si512();
    let mut total = [_mm512_setzero_ps(); NT];
    for b in 0..blocks {
        let mut even = [zero; NT];
        let mut odd = [zero; NT];
        for g in 0..16 {
            let sc = load_i(panel.sc.as_ptr().add((16 * b + g) * PANEL_ROWS));
            for k in 0..4 {
                let quad = 64 * b + 4 * g + k;
                let wv = load_i(w.add(quad * PANEL_ROWS) as *const i32);
                for t in 0..NT {
                    let xq = std::ptr::read_unaligned(x.add(t * cols + 4 * quad) as *const i32);
                    let p = _mm512_maddubs_epi16(wv, _mm512_set1_epi32(xq));
                    if g % 2 == 0 {
                        even[t] = _mm512_dpwssd_epi32(even[t], p, sc);
                    } else {
                        odd[t] = _mm512_dpwssd_epi32(odd[t], p, sc);
                    }
                }
            }
        }
        let dw = _mm512_loadu_ps(panel.d.as_ptr().add(b * PANEL_ROWS));
        for t in 0..NT {
            // −32·Σ scale·Σx over the groups, as in the lanes version.
            let mut corr = zero;
            for k in 0..8 {
                let pair = load_i(panel.mn.as_ptr().add((8 * b + k) * PANEL_ROWS));
                let bs = _mm512_set1_epi32(*sums.add(t * cols / 32 + 8 * b + k));
                corr = _mm512_dpwssd_epi32(corr, pair, bs);
            }
            let exact = _mm512_sub_epi32(
                _mm512_add_epi32(even[t], odd[t]),
                _mm512_slli_epi32(corr, 5),
            );
            let scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), dw);
            let x_scale = _mm512_set1_ps(*dx.add(t * blocks + b));
            total[t] = _mm512_fmadd_ps(scaled, x_scale, total[t]);
        }
    }
    for (t, total) in total.iter().enumerate() {
        _mm512_storeu_ps(out[t].as_mut_ptr(), *total);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q6k(
    panel: &OrderedPanel,
    acts: &OrderedActs<'_>,
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let cols = panel.cols;
    let blocks = cols / 256;
    let w = panel.w.as_ptr();
    let x = acts.q.qs.as_ptr().add(t0 * cols);
    let dx = acts.q.d.as_ptr().add(t0 * blocks);
    let sums = acts.sums.as_ptr().add(t0 * cols / 32);
    let wide = acts.place(t0).wide;
    let mut lanes = [_mm512_setzero_ps(); 8];
    // Batches of 8 tokens or more: one running sum (see the summation module).
    let mut total = _mm512_setzero_ps();
    for b in 0..blocks {
        let mut iacc = [_mm512_setzero_si512(); 8];
        for j in 0..2 {
            for v in 0..4 {
                let base = 64 * b + 32 * j + 8 * v;
                let g = 16 * b + 8 * j + 2 * v;
                let sc = [
                    load_i(panel.sc.as_ptr().add(g * PANEL_ROWS)),
                    load_i(panel.sc.as_ptr().add((g + 1) * PANEL_ROWS)),
                ];
                for (k, acc) in iacc.iter_mut().enumerate() {
                    let quad = base + k;
                    let wv = load_i(w.add(quad * PANEL_ROWS) as *const i32);
                    let xq = std::ptr::read_unaligned(x.add(4 * quad) as *const i32);
                    let p = _mm512_maddubs_epi16(wv, _mm512_set1_epi32(xq));
                    *acc = _mm512_dpwssd_epi32(*acc, p, sc[k / 4]);
                }
            }
        }
        let x_scale = _mm512_set1_ps(*dx.add(b));
        let dw = _mm512_loadu_ps(panel.d.as_ptr().add(b * PANEL_ROWS));
        let dv = _mm512_mul_ps(x_scale, dw);
        let mut exact = _mm512_setzero_si512();
        for (k, acc) in iacc.iter().enumerate() {
            let pair = load_i(panel.mn.as_ptr().add((8 * b + k) * PANEL_ROWS));
            let bs = _mm512_set1_epi32(*sums.add(8 * b + k));
            let corr = _mm512_dpwssd_epi32(_mm512_setzero_si512(), pair, bs);
            let lane = _mm512_sub_epi32(*acc, _mm512_slli_epi32(corr, 5));
            if wide {
                exact = _mm512_add_epi32(exact, lane);
            } else {
                lanes[k] = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(lane), lanes[k]);
            }
        }
        if wide {
            let scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), dw);
            total = _mm512_fmadd_ps(scaled, x_scale, total);
        }
    }
    let result = if wide { total } else { hsum8_rows(&lanes) };
    _mm512_storeu_ps(out[0].as_mut_ptr(), result);
}

/// Q4_K: per pair of sub-blocks, each sub-block's exact dot product times its scale
/// (two independent `vpdpbusd` chains per token), and the pair's mins by one
/// `vpdpwssd`; a token in a whole group of four adds them per pair, another per
/// super-block.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
    let zero = _mm512_setzero_si512();
    let mut acc = [_mm512_setzero_ps(); NT];
    let mut acc_min = [_mm512_setzero_ps(); NT];
    for b in 0..blocks {
        let d = _mm512_loadu_ps(panel.d.as_ptr().add(b * PANEL_ROWS));
        let dmin = _mm512_loadu_ps(panel.dmin.as_ptr().add(b * PANEL_ROWS));
        let mut scaled = [zero; NT];
        let mut mins = [zero; NT];
        for p in 0..4 {
            let (j0, j1) = (8 * b + 2 * p, 8 * b + 2 * p + 1);
            let mut dot0 = [zero; NT];
            let mut dot1 = [zero; NT];
            for qd in 0..8 {
                let (q0, q1) = (8 * j0 + qd, 8 * j1 + qd);
                let w0 = load_i(w.add(q0 * PANEL_ROWS) as *const i32);
                let w1 = load_i(w.add(q1 * PANEL_ROWS) as *const i32);
                for t in 0..NT {
                    let xt = x.add(t * cols);
                    let x0 = std::ptr::read_unaligned(xt.add(4 * q0) as *const i32);
                    let x1 = std::ptr::read_unaligned(xt.add(4 * q1) as *const i32);
                    dot0[t] = _mm512_dpbusd_epi32(dot0[t], w0, _mm512_set1_epi32(x0));
                    dot1[t] = _mm512_dpbusd_epi32(dot1[t], w1, _mm512_set1_epi32(x1));
                }
            }
            let sc0 = load_i(panel.sc.as_ptr().add(j0 * PANEL_ROWS));
            let sc1 = load_i(panel.sc.as_ptr().add(j1 * PANEL_ROWS));
            let mn = load_i(panel.mn.as_ptr().add((4 * b + p) * PANEL_ROWS));
            for t in 0..NT {
                let s = _mm512_add_epi32(
                    _mm512_mullo_epi32(dot0[t], sc0),
                    _mm512_mullo_epi32(dot1[t], sc1),
                );
                let xs = _mm512_set1_epi32(*sums.add(t * pairs + 4 * b + p));
                let m = _mm512_dpwssd_epi32(zero, mn, xs);
                if grouped[t] {
                    let x_scale = _mm512_set1_ps(*dx.add(t * blocks + b));
                    let (ds, dm) = (_mm512_mul_ps(d, x_scale), _mm512_mul_ps(dmin, x_scale));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), ds, acc[t]);
                    acc_min[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), dm, acc_min[t]);
                } else {
                    scaled[t] = _mm512_add_epi32(scaled[t], s);
                    mins[t] = _mm512_add_epi32(mins[t], m);
                }
            }
        }
        for t in 0..NT {
            if !grouped[t] {
                let x_scale = _mm512_set1_ps(*dx.add(t * blocks + b));
                let (ds, dm) = (_mm512_mul_ps(d, x_scale), _mm512_mul_ps(dmin, x_scale));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(scaled[t]), ds, acc[t]);
                acc_min[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mins[t]), dm, acc_min[t]);
            }
        }
    }
    for t in 0..NT {
        _mm512_storeu_ps(out[t].as_mut_ptr(), _mm512_sub_ps(acc[t], acc_min[t]));
    }
}
