//! AVX-512 (F/BW/VL) + VNNI kernels: row kernels for the legacy formats (two blocks per
//! 512-bit register) and the prefill panel tile (16 weight rows × up to 8 tokens,
//! `vpdpbusd` on 512-bit registers). Other row kernels come from AVX2.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89, hence the manifest's rust-version.

use std::arch::x86_64::*;

use crate::quant::GgmlType;

use super::panel::{Panel, PanelActs, PANEL_ROWS};
use super::{Acts, RowKernel, PANEL_TOKENS, TILE_TOKENS};

pub fn kernel(ty: GgmlType) -> Option<RowKernel> {
    Some(match ty {
        GgmlType::Q4_1 => q4_1_kernel,
        GgmlType::Q5_1 => q5_1_kernel,
        _ => return None,
    })
}

/// A safe entry for the dispatch table around an AVX-512 row kernel.
macro_rules! table_entry {
    ($name:ident, $inner:ident) => {
        fn $name(row: &[u8], acts: &Acts<'_>, t0: usize, nt: usize, out: &mut [f32; TILE_TOKENS]) {
            acts.check(crate::cpu::act_quant::ActFormat::Q8Block32, t0, nt);
            // SAFETY: the table holds this entry only when the AVX-512 level was
            // detected; the activation slices were checked above, the row in the kernel.
            unsafe {
                match nt {
                    1 => $inner::<1>(row, acts, t0, out),
                    2 => $inner::<2>(row, acts, t0, out),
                    3 => $inner::<3>(row, acts, t0, out),
                    _ => $inner::<4>(row, acts, t0, out),
                }
            }
        }
    };
}

table_entry!(q4_1_kernel, q4_1_avx512);
table_entry!(q5_1_kernel, q5_1_avx512);

/// Two f16 values (at `a` and `b`) as the low two lanes.
#[inline(always)]
unsafe fn f16_pair(a: *const u8, b: *const u8) -> __m128 {
    let lo = std::ptr::read_unaligned(a as *const u16) as u32;
    let hi = std::ptr::read_unaligned(b as *const u16) as u32;
    _mm_cvtph_ps(_mm_cvtsi32_si128((lo | (hi << 16)) as i32))
}

/// Two blocks' 16 packed-nibble bytes → 64 values in element order: block a's low
/// nibbles, a's high nibbles, b's low, b's high.
#[inline(always)]
unsafe fn nibbles2(a: *const u8, b: *const u8) -> __m512i {
    let ab = _mm256_set_m128i(
        _mm_loadu_si128(b as *const __m128i),
        _mm_loadu_si128(a as *const __m128i),
    );
    let mask = _mm256_set1_epi8(15);
    let lo = _mm256_and_si256(ab, mask);
    let hi = _mm256_and_si256(_mm256_srli_epi16(ab, 4), mask);
    let order = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    _mm512_permutex2var_epi64(
        _mm512_castsi256_si512(lo),
        order,
        _mm512_castsi256_si512(hi),
    )
}

/// 0x10 in every byte whose bit is set in `qh_a | qh_b << 32` (the fifth bits of Q5).
#[inline(always)]
unsafe fn fifth_bits2(a: *const u8, b: *const u8) -> __m512i {
    let lo = std::ptr::read_unaligned(a as *const u32) as u64;
    let hi = std::ptr::read_unaligned(b as *const u32) as u64;
    _mm512_maskz_mov_epi8(lo | (hi << 32), _mm512_set1_epi8(0x10))
}

/// The legacy formats two blocks at a time. `decode(a, b)` gives the 64 unsigned
/// values of blocks at `a` and `b`, their two scales `d` and the two constants `c` that
/// multiply the activation block sums (−8d, −16d or m), each pair in the low lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn legacy_rows<const NT: usize, const BYTES: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
    decode: impl Fn(*const u8, *const u8) -> (__m512i, __m128, __m128),
) {
    let cols = acts.cols;
    let nb = cols / 32;
    assert!(row.len() >= nb * BYTES);
    let q = acts.q;
    let w = row.as_ptr();
    let mut acc = [_mm512_setzero_ps(); NT];
    let mut offset = [_mm_setzero_ps(); NT];
    // Lane i of the 16 takes scale i / 8 (block a or b).
    let spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    let mut b = 0;
    while b < nb {
        let pair = b + 1 < nb;
        let pa = w.add(b * BYTES);
        // An odd last block is paired with itself and its twin's scales zeroed.
        let pb = if pair { pa.add(BYTES) } else { pa };
        let (wv, mut d, mut c) = decode(pa, pb);
        let xmask: u64 = if pair { u64::MAX } else { u32::MAX as u64 };
        if !pair {
            d = _mm_move_ss(_mm_setzero_ps(), d);
            c = _mm_move_ss(_mm_setzero_ps(), c);
        }
        for k in 0..NT {
            let blk = (t0 + k) * nb + b;
            let x = _mm512_maskz_loadu_epi8(xmask, q.qs.as_ptr().add(blk * 32));
            let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, x));
            let dx = if pair {
                _mm_castpd_ps(_mm_load_sd(q.d.as_ptr().add(blk) as *const f64))
            } else {
                _mm_load_ss(q.d.as_ptr().add(blk))
            };
            let sx = if pair {
                _mm_castpd_ps(_mm_load_sd(q.s.as_ptr().add(blk) as *const f64))
            } else {
                _mm_load_ss(q.s.as_ptr().add(blk))
            };
            let scale = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_mul_ps(d, dx)));
            acc[k] = _mm512_fmadd_ps(dot, scale, acc[k]);
            offset[k] = _mm_fmadd_ps(c, sx, offset[k]);
        }
        b += 2;
    }
    for k in 0..NT {
        let off = _mm_add_ss(offset[k], _mm_movehdup_ps(offset[k]));
        out[k] = _mm512_reduce_add_ps(acc[k]) + _mm_cvtss_f32(off);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_1_avx512<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    legacy_rows::<NT, 20>(row, acts, t0, out, |a, b| {
        (
            nibbles2(a.add(4), b.add(4)),
            f16_pair(a, b),
            f16_pair(a.add(2), b.add(2)),
        )
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q5_1_avx512<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    legacy_rows::<NT, 24>(row, acts, t0, out, |a, b| {
        let w = _mm512_or_si512(
            nibbles2(a.add(8), b.add(8)),
            fifth_bits2(a.add(4), b.add(4)),
        );
        (w, f16_pair(a, b), f16_pair(a.add(2), b.add(2)))
    });
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
    panel.check();
    assert_eq!(panel.cols, acts.cols);
    assert_eq!(panel.groups * g_cols, panel.cols);
    assert!(acts.xu8.len() >= (t0 + nt) * acts.cols);
    assert!(acts.xs.len() >= (t0 + nt) * panel.groups);
    assert!(acts.dx.len() * acts.groups_per_block >= (t0 + nt) * panel.groups);
    macro_rules! go {
        ($g:literal, $sb:literal, $m:literal) => {
            match nt {
                // SAFETY (all arms): AVX-512 F/BW/VL + VNNI were detected before this
                // table entry was handed out; the bounds were asserted above.
                1 => unsafe { tile::<$g, $sb, 1, $m>(panel, acts, t0, out) },
                2 => unsafe { tile::<$g, $sb, 2, $m>(panel, acts, t0, out) },
                3 => unsafe { tile::<$g, $sb, 3, $m>(panel, acts, t0, out) },
                _ => unsafe { tile::<$g, $sb, 4, $m>(panel, acts, t0, out) },
            }
        };
    }
    match (g_cols, acts.groups_per_block, mins) {
        (32, 1, false) => go!(32, 1, false),
        (32, 1, true) => go!(32, 1, true),
        (32, 8, true) => go!(32, 8, true),
        (16, 16, false) => go!(16, 16, false),
        (16, 16, true) => go!(16, 16, true),
        (g, sb, m) => panic!("unsupported panel layout: groups of {g}, {sb} per block, mins {m}"),
    }
}

const _: () = assert!(PANEL_TOKENS == 4 && PANEL_ROWS.is_multiple_of(16));

/// 512-bit vectors per panel column (16 rows each).
const RV: usize = PANEL_ROWS / 16;

/// `G` columns per scale group, `SB` groups per activation block (whose scale is
/// applied once, after the block's groups are summed), `NT` tokens, `MINS` whether the
/// weights have a `minv` term.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const G: usize, const SB: usize, const NT: usize, const MINS: bool>(
    panel: &Panel,
    acts: &PanelActs<'_>,
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; PANEL_TOKENS],
) {
    let cols = acts.cols;
    let groups = panel.groups;
    let blocks = groups / SB;
    let w = panel.w.as_ptr() as *const u8;
    let x = acts.xu8.as_ptr().add(t0 * cols);
    let dx = acts.dx.as_ptr().add(t0 * blocks);
    let xs = acts.xs.as_ptr().add(t0 * groups);
    let mut facc = [[_mm512_setzero_ps(); RV]; NT];
    for b in 0..blocks {
        let mut fblk = [[_mm512_setzero_ps(); RV]; NT];
        for g in b * SB..(b + 1) * SB {
            let at = g * PANEL_ROWS;
            let scale: [__m512; RV] =
                std::array::from_fn(|v| _mm512_loadu_ps(panel.scale.as_ptr().add(at + 16 * v)));
            let corr: [__m512i; RV] = std::array::from_fn(|v| {
                _mm512_loadu_si512(panel.corr.as_ptr().add(at + 16 * v) as *const _)
            });
            let mut iacc = [corr; NT];
            for k in 0..G / 4 {
                let col = g * G + 4 * k;
                let wv: [__m512i; RV] = std::array::from_fn(|v| {
                    _mm512_loadu_si512(w.add(col * PANEL_ROWS + 64 * v) as *const _)
                });
                for (t, acc) in iacc.iter_mut().enumerate() {
                    let quad = std::ptr::read_unaligned(x.add(t * cols + col) as *const i32);
                    let xv = _mm512_set1_epi32(quad);
                    for v in 0..RV {
                        acc[v] = _mm512_dpbusd_epi32(acc[v], xv, wv[v]);
                    }
                }
            }
            for (t, acc) in fblk.iter_mut().enumerate() {
                for v in 0..RV {
                    acc[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[t][v]), scale[v], acc[v]);
                    if MINS {
                        let minv = _mm512_loadu_ps(panel.minv.as_ptr().add(at + 16 * v));
                        let sum = _mm512_set1_ps(*xs.add(t * groups + g));
                        acc[v] = _mm512_fmadd_ps(minv, sum, acc[v]);
                    }
                }
            }
        }
        for (t, acc) in facc.iter_mut().enumerate() {
            let d = _mm512_set1_ps(*dx.add(t * blocks + b));
            for v in 0..RV {
                acc[v] = _mm512_fmadd_ps(fblk[t][v], d, acc[v]);
            }
        }
    }
    for (t, acc) in facc.iter().enumerate() {
        for (v, part) in acc.iter().enumerate() {
            _mm512_storeu_ps(out[t].as_mut_ptr().add(16 * v), *part);
        }
    }
}

/// `out[k][r] = Σ_c float panel row r · x row (t0 + k)` for `k < nt ≤ 8`. Given out by
/// the table only on the AVX-512 level.
pub fn float_panel_tile(
    panel: &super::panel::FloatPanel,
    x: &[f32],
    t0: usize,
    nt: usize,
    out: &mut [[f32; PANEL_ROWS]; super::panel::FLOAT_PANEL_TOKENS],
) {
    assert!((1..=super::panel::FLOAT_PANEL_TOKENS).contains(&nt));
    assert!(x.len() >= (t0 + nt) * panel.cols);
    assert!(panel.w.len() >= panel.cols * PANEL_ROWS);
    // SAFETY (all arms): AVX-512 F was detected before this entry was handed out; the
    // bounds were asserted above.
    unsafe {
        match nt {
            1 => float_tile::<1>(panel, x, t0, out),
            2 => float_tile::<2>(panel, x, t0, out),
            3 => float_tile::<3>(panel, x, t0, out),
            4 => float_tile::<4>(panel, x, t0, out),
            5 => float_tile::<5>(panel, x, t0, out),
            6 => float_tile::<6>(panel, x, t0, out),
            7 => float_tile::<7>(panel, x, t0, out),
            _ => float_tile::<8>(panel, x, t0, out),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn float_tile<const NT: usize>(
    panel: &super::panel::FloatPanel,
    x: &[f32],
    t0: usize,
    out: &mut [[f32; PANEL_ROWS]; super::panel::FLOAT_PANEL_TOKENS],
) {
    let cols = panel.cols;
    let w = panel.w.as_ptr();
    let x = x.as_ptr().add(t0 * cols);
    let mut acc = [_mm512_setzero_ps(); NT];
    for c in 0..cols {
        let wv = _mm512_loadu_ps(w.add(c * PANEL_ROWS));
        for (t, acc) in acc.iter_mut().enumerate() {
            *acc = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(t * cols + c)), wv, *acc);
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        _mm512_storeu_ps(out[t].as_mut_ptr(), *acc);
    }
}
