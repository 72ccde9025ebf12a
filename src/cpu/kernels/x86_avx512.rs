//! AVX-512 (F/BW/VL) + VNNI kernels: the prefill panel tile (16 weight rows × up to
//! 8 tokens, `vpdpbusd` on 512-bit registers). Row kernels come from AVX2.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89, above the manifest's declared
//! minimum; the project builds with a current stable toolchain.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use crate::quant::GgmlType;

use super::panel::{Panel, PanelActs, PANEL_ROWS};
use super::{RowKernel, PANEL_TOKENS};

pub fn kernel(_ty: GgmlType) -> Option<RowKernel> {
    None
}

/// `out[k][r] = Σ_c panel row r · activation row (t0 + k)` for `k < nt ≤ 8`.
/// Callers must have detected the AVX-512 level (the table gives this function out only
/// then).
pub fn panel_tile(
    panel: &Panel,
    acts: &PanelActs<'_>,
    t0: usize,
    nt: usize,
    g_cols: usize,
    mins: bool,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    assert!((1..=PANEL_TOKENS).contains(&nt));
    assert_eq!(panel.cols, acts.cols);
    assert_eq!(panel.groups * g_cols, panel.cols);
    assert!(acts.xu8.len() >= (t0 + nt) * acts.cols);
    assert!(acts.dxg.len() >= (t0 + nt) * panel.groups && acts.xs.len() == acts.dxg.len());
    macro_rules! go {
        ($g:literal, $m:literal) => {
            match nt {
                // SAFETY (all arms): AVX-512 F/BW/VL + VNNI were detected before this
                // table entry was handed out; the bounds were asserted above.
                1 => unsafe { tile::<$g, 1, $m>(panel, acts, t0, out) },
                2 => unsafe { tile::<$g, 2, $m>(panel, acts, t0, out) },
                3 => unsafe { tile::<$g, 3, $m>(panel, acts, t0, out) },
                4 => unsafe { tile::<$g, 4, $m>(panel, acts, t0, out) },
                5 => unsafe { tile::<$g, 5, $m>(panel, acts, t0, out) },
                6 => unsafe { tile::<$g, 6, $m>(panel, acts, t0, out) },
                7 => unsafe { tile::<$g, 7, $m>(panel, acts, t0, out) },
                _ => unsafe { tile::<$g, 8, $m>(panel, acts, t0, out) },
            }
        };
    }
    match (g_cols, mins) {
        (16, false) => go!(16, false),
        (16, true) => go!(16, true),
        (32, false) => go!(32, false),
        (32, true) => go!(32, true),
        _ => panic!("unsupported panel group size {g_cols}"),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const G: usize, const NT: usize, const MINS: bool>(
    panel: &Panel,
    acts: &PanelActs<'_>,
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let cols = acts.cols;
    let groups = panel.groups;
    let w = panel.w.as_ptr();
    let x = acts.xu8.as_ptr().add(t0 * cols);
    let dxg = acts.dxg.as_ptr().add(t0 * groups);
    let xs = acts.xs.as_ptr().add(t0 * groups);
    let mut facc = [_mm512_setzero_ps(); NT];
    for g in 0..groups {
        let scale = _mm512_loadu_ps(panel.scale.as_ptr().add(g * PANEL_ROWS));
        let corr = _mm512_loadu_si512(panel.corr.as_ptr().add(g * PANEL_ROWS) as *const _);
        let mut iacc = [corr; NT];
        for k in 0..G / 4 {
            let col = g * G + 4 * k;
            let wv = _mm512_loadu_si512(w.add(col * PANEL_ROWS) as *const _);
            for (t, acc) in iacc.iter_mut().enumerate() {
                let quad = std::ptr::read_unaligned(x.add(t * cols + col) as *const i32);
                *acc = _mm512_dpbusd_epi32(*acc, _mm512_set1_epi32(quad), wv);
            }
        }
        for (t, acc) in facc.iter_mut().enumerate() {
            let v = _mm512_mul_ps(
                _mm512_cvtepi32_ps(iacc[t]),
                _mm512_set1_ps(*dxg.add(t * groups + g)),
            );
            *acc = _mm512_fmadd_ps(v, scale, *acc);
            if MINS {
                let minv = _mm512_loadu_ps(panel.minv.as_ptr().add(g * PANEL_ROWS));
                *acc = _mm512_fmadd_ps(minv, _mm512_set1_ps(*xs.add(t * groups + g)), *acc);
            }
        }
    }
    for (t, acc) in facc.iter().enumerate() {
        _mm512_storeu_ps(out[t].as_mut_ptr(), *acc);
    }
}
