//! AVX2 + FMA + F16C row kernels (x86-64).
//!
//! Integer products use `maddubs` (u8 × i8 → i16 pairs): weights are decoded to
//! unsigned values and their offsets (−8, −16, −32) are applied afterwards through the
//! activation block sums, and K-quant sub-block scales ride along in the following
//! `madd` (i16 × i16 → i32) in place of ones. Every product fits i16: at most
//! 63·127·2 = 16002 (Q6_K) or, for Q8_0 via the sign trick, 127·127·2.

use std::arch::x86_64::*;

use crate::cpu::act_quant::ActFormat;
use crate::quant::GgmlType;

use super::panel::PANEL_ROWS;
use super::{Acts, RowKernel, TILE_TOKENS};

pub fn kernel(ty: GgmlType) -> Option<RowKernel> {
    Some(match ty {
        GgmlType::F32 => f32_kernel,
        GgmlType::F16 => f16_kernel,
        GgmlType::BF16 => bf16_kernel,
        GgmlType::Q4_1 => q4_1_kernel,
        GgmlType::Q5_1 => q5_1_kernel,
        GgmlType::Q2K => q2_k_kernel,
        GgmlType::Q3K => q3_k_kernel,
        GgmlType::Q5K => q5_k_kernel,
        _ => return None,
    })
}

/// A safe entry for the dispatch table around an AVX2 kernel.
macro_rules! table_entry {
    ($name:ident, $inner:ident, $format:ident) => {
        fn $name(row: &[u8], acts: &Acts<'_>, t0: usize, nt: usize, out: &mut [f32; TILE_TOKENS]) {
            acts.check(ActFormat::$format, t0, nt);
            // SAFETY: the table holds this entry only when AVX2, FMA and F16C were
            // detected; the slices were bounds-checked above for what the kernel reads.
            // The token count is made a constant so the accumulators stay in registers.
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

table_entry!(f32_kernel, f32_avx2, F32);
table_entry!(f16_kernel, f16_avx2, F32);
table_entry!(bf16_kernel, bf16_avx2, F32);
table_entry!(q4_1_kernel, q4_1_avx2, Q8Block32);
table_entry!(q5_1_kernel, q5_1_avx2, Q8Block32);
table_entry!(q2_k_kernel, q2_k_avx2, Q8K);
table_entry!(q3_k_kernel, q3_k_avx2, Q8K);
table_entry!(q5_k_kernel, q5_k_avx2, Q8K);

/// The horizontal sum of eight lanes: halves, then pairs, then the last two
/// ([`super::summation::hsum8`]).
#[inline(always)]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline(always)]
pub(super) unsafe fn load_f16(p: *const u8) -> f32 {
    let bits = std::ptr::read_unaligned(p as *const u16);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

// ---------------------------------------------------------------------------------------
// Float weights

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_rows(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut [f32; TILE_TOKENS],
    elem_bytes: usize,
    load8: impl Fn(*const u8) -> __m256,
) {
    let cols = acts.cols;
    assert!(row.len() >= cols * elem_bytes);
    let mut acc = [_mm256_setzero_ps(); TILE_TOKENS];
    let w = row.as_ptr();
    let full = cols / 8 * 8;
    let mut i = 0;
    while i < full {
        let wv = load8(w.add(i * elem_bytes));
        for (k, acc) in acc.iter_mut().enumerate().take(nt) {
            let x = acts.x.as_ptr().add((t0 + k) * cols + i);
            *acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x), *acc);
        }
        i += 8;
    }
    let mut tail = [0f32; 8];
    for (j, v) in tail.iter_mut().enumerate().take(cols - full) {
        let mut one = [0f32; 8];
        _mm256_storeu_ps(
            one.as_mut_ptr(),
            load8_tail(w.add((full + j) * elem_bytes), elem_bytes, &load8),
        );
        *v = one[0];
    }
    for k in 0..nt {
        let mut s = hsum(acc[k]);
        for (j, wv) in tail.iter().enumerate().take(cols - full) {
            s += wv * acts.x[(t0 + k) * cols + full + j];
        }
        out[k] = s;
    }
}

/// Loads one element through an 8-element loader without reading past it.
#[inline(always)]
unsafe fn load8_tail(
    p: *const u8,
    elem_bytes: usize,
    load8: &impl Fn(*const u8) -> __m256,
) -> __m256 {
    let mut buf = [0u8; 32];
    std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), elem_bytes);
    load8(buf.as_ptr())
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let nt = NT;
    float_rows(row, acts, t0, nt, out, 4, |p| {
        _mm256_loadu_ps(p as *const f32)
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let nt = NT;
    float_rows(row, acts, t0, nt, out, 2, |p| {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let nt = NT;
    float_rows(row, acts, t0, nt, out, 2, |p| {
        let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
        _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))
    });
}

// ---------------------------------------------------------------------------------------
// Legacy formats × 32-element Q8 activations

/// 16 bytes of packed nibbles → 32 bytes: low nibbles first, then high nibbles.
#[inline(always)]
pub(super) unsafe fn nibbles(p: *const u8) -> __m256i {
    let raw = _mm_loadu_si128(p as *const __m128i);
    let mask = _mm_set1_epi8(15);
    let lo = _mm_and_si128(raw, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    _mm256_set_m128i(hi, lo)
}

/// Expands 32 bits into 32 bytes: 0x10 where the bit is set, else 0 (Q5's fifth bit).
#[inline(always)]
pub(super) unsafe fn fifth_bits(p: *const u8) -> __m256i {
    let bits = std::ptr::read_unaligned(p as *const u32);
    let v = _mm256_set1_epi32(bits as i32);
    // Byte i picks the byte of `bits` that holds bit i.
    let pick = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0x0000_0000_0000_0000,
    );
    let bytes = _mm256_shuffle_epi8(v, pick);
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let hit = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
    _mm256_and_si256(hit, _mm256_set1_epi8(0x10))
}

/// Σ w·x over 32 bytes as 8 i32 lanes (w unsigned ≤ 127 in effect, x signed).
#[inline(always)]
unsafe fn dot_u8_i8(w: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
}

/// Shared loop of the legacy kernels. `decode` gives a block's unsigned values, `d`
/// and the per-block constant `c` that multiplies the activation block sum `s`
/// (−8·d, −16·d, or m).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_rows<const BYTES: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut [f32; TILE_TOKENS],
    decode: impl Fn(*const u8) -> (__m256i, f32, f32),
) {
    let cols = acts.cols;
    let nb = cols / 32;
    assert!(row.len() >= nb * BYTES);
    // Two sets of accumulators (even and odd blocks) so that consecutive blocks do not
    // wait on each other's FMA.
    let mut acc = [[_mm256_setzero_ps(); TILE_TOKENS]; 2];
    let mut offset = [[0f32; TILE_TOKENS]; 2];
    let q = acts.q;
    // A macro, not a closure: closures are not reliably inlined, and an outlined one
    // would lose this function's target features.
    macro_rules! step {
        ($b:expr, $acc:expr, $offset:expr) => {{
            let b = $b;
            let (w, d, c) = decode(row.as_ptr().add(b * BYTES));
            for k in 0..nt {
                let blk = (t0 + k) * nb + b;
                let x = _mm256_loadu_si256(q.qs.as_ptr().add(blk * 32) as *const __m256i);
                let p = _mm256_cvtepi32_ps(dot_u8_i8(w, x));
                $acc[k] = _mm256_fmadd_ps(p, _mm256_set1_ps(d * *q.d.get_unchecked(blk)), $acc[k]);
                $offset[k] += c * *q.s.get_unchecked(blk);
            }
        }};
    }
    let [acc0, acc1] = &mut acc;
    let [off0, off1] = &mut offset;
    let mut b = 0;
    while b + 2 <= nb {
        step!(b, acc0, off0);
        step!(b + 1, acc1, off1);
        b += 2;
    }
    if b < nb {
        step!(b, acc0, off0);
    }
    for k in 0..nt {
        out[k] = hsum(_mm256_add_ps(acc0[k], acc1[k])) + off0[k] + off1[k];
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let nt = NT;
    legacy_rows::<20>(row, acts, t0, nt, out, |p| {
        (nibbles(p.add(4)), load_f16(p), load_f16(p.add(2)))
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let nt = NT;
    legacy_rows::<24>(row, acts, t0, nt, out, |p| {
        let w = _mm256_or_si256(nibbles(p.add(8)), fifth_bits(p.add(4)));
        (w, load_f16(p), load_f16(p.add(2)))
    });
}

// ---------------------------------------------------------------------------------------
// K-quants × Q8_K

/// The eight 6-bit scales and mins of a Q4_K/Q5_K block from its 12 packed bytes `b`,
/// as i16 for `madd` (llama.cpp's `utmp` shuffle: the values of
/// [`super::portable::k4_scale_min`] a word at a time).
#[inline(always)]
pub(super) fn k4_scales_mins(b: &[u8]) -> ([i16; 8], [i16; 8]) {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let u = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    let (u0, u1, u2) = (u(0), u(1), u(2));
    let scales = [u0 & K1, (u2 & K2) | (((u0 >> 6) & K3) << 4)];
    let mins = [u1 & K1, ((u2 >> 4) & K2) | (((u1 >> 6) & K3) << 4)];
    let widen = |words: [u32; 2]| {
        let mut v = [0i16; 8];
        for (j, v) in v.iter_mut().enumerate() {
            *v = (words[j / 4] >> (8 * (j % 4)) & 0xff) as i16;
        }
        v
    };
    (widen(scales), widen(mins))
}

/// Q4_K and Q5_K: `FIVE` adds the fifth bit from qh.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q45_k_rows<const BYTES: usize, const FIVE: bool>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let cols = acts.cols;
    let nb = cols / 256;
    assert!(row.len() >= nb * BYTES);
    let q = acts.q;
    let mut acc = [_mm256_setzero_ps(); TILE_TOKENS];
    let mut mins = [0f32; TILE_TOKENS];
    let mask = _mm256_set1_epi8(15);
    for b in 0..nb {
        let blk = &row[b * BYTES..(b + 1) * BYTES];
        let p = blk.as_ptr();
        let d = load_f16(p);
        let dmin = load_f16(p.add(2));
        let (sc, mn) = k4_scales_mins(&blk[4..16]);
        let qs = if FIVE { p.add(48) } else { p.add(16) };
        let qh = if FIVE {
            _mm256_loadu_si256(p.add(16) as *const __m256i)
        } else {
            _mm256_setzero_si256()
        };
        let mut w = [_mm256_setzero_si256(); 8];
        for c in 0..4 {
            let raw = _mm256_loadu_si256(qs.add(32 * c) as *const __m256i);
            let mut lo = _mm256_and_si256(raw, mask);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
            if FIVE {
                // Bit 2c of each qh byte → 16 for the low half, bit 2c+1 → the high half.
                let one = _mm256_set1_epi8(1);
                let bit_lo = _mm256_and_si256(_mm256_srlv_epi64_const(qh, 2 * c), one);
                let bit_hi = _mm256_and_si256(_mm256_srlv_epi64_const(qh, 2 * c + 1), one);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(bit_lo, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(bit_hi, 4));
            }
            w[2 * c] = lo;
            w[2 * c + 1] = hi;
        }
        for k in 0..nt {
            let ab = (t0 + k) * nb + b;
            let x = q.qs.as_ptr().add(ab * 256);
            let mut isum = _mm256_setzero_si256();
            for j in 0..8 {
                let xv = _mm256_loadu_si256(x.add(32 * j) as *const __m256i);
                let prod = _mm256_maddubs_epi16(w[j], xv);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(prod, _mm256_set1_epi16(sc[j])));
            }
            let dx = *q.d.get_unchecked(ab);
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * dx), acc[k]);
            let bs = &q.bsums[ab * 16..ab * 16 + 16];
            let mut m = 0i32;
            for j in 0..8 {
                m += mn[j] as i32 * (bs[2 * j] as i32 + bs[2 * j + 1] as i32);
            }
            mins[k] += dmin * dx * m as f32;
        }
    }
    for k in 0..nt {
        out[k] = hsum(acc[k]) - mins[k];
    }
}

/// Shifts every byte right by `n` bits (n < 8) using a 64-bit shift; the bits that
/// cross byte boundaries are removed by the caller's mask.
#[inline(always)]
unsafe fn _mm256_srlv_epi64_const(v: __m256i, n: usize) -> __m256i {
    _mm256_srlv_epi64(v, _mm256_set1_epi64x(n as i64))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    let nt = NT;
    q45_k_rows::<176, true>(row, acts, t0, nt, out);
}

// ---------------------------------------------------------------------------------------
// Activation quantizers (bit-exact with the portable ones in act_quant)

/// See [`crate::cpu::act_quant::quantize_block32`].
pub fn quantize_block32(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    let nb = x.len() / 32;
    assert!(qs.len() >= nb * 32 && d.len() >= nb && s.len() >= nb);
    // SAFETY: installed only when AVX2/FMA/F16C were detected; lengths checked above.
    unsafe { quantize_block32_avx2(x, qs, d, s) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_block32_avx2(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..x.len() / 32 {
        let p = x.as_ptr().add(b * 32);
        let v = [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ];
        let abs = |v: __m256| _mm256_andnot_ps(sign, v);
        let m = _mm256_max_ps(
            _mm256_max_ps(abs(v[0]), abs(v[1])),
            _mm256_max_ps(abs(v[2]), abs(v[3])),
        );
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let scale = amax / 127.0;
        let inv = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let mut q = [_mm256_setzero_si256(); 4];
        for i in 0..4 {
            let r = _mm256_mul_ps(v[i], inv);
            q[i] = _mm256_cvtps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(r));
        }
        let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let sum = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256(sum, 1),
        );
        let sum = _mm_add_epi32(sum, _mm_unpackhi_epi64(sum, sum));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(sum, _mm_shuffle_epi32(sum, 1)));
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let packed = _mm256_permutevar8x32_epi32(packed, order);
        _mm256_storeu_si256(qs.as_mut_ptr().add(b * 32) as *mut __m256i, packed);
        let half = _mm_cvtps_ph(_mm_set_ss(scale), _MM_FROUND_TO_NEAREST_INT);
        let stored = _mm_cvtss_f32(_mm_cvtph_ps(half));
        d[b] = stored;
        s[b] = stored * sum as f32;
    }
}

/// See [`crate::cpu::act_quant::quantize_q8k`].
pub fn quantize_q8k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    let nb = x.len() / 256;
    assert!(qs.len() >= nb * 256 && d.len() >= nb && bsums.len() >= nb * 16);
    // SAFETY: installed only when AVX2/FMA/F16C were detected; lengths checked above.
    unsafe { quantize_q8k_avx2(x, qs, d, bsums) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8k_avx2(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let limit = _mm256_set1_epi32(127);
    for b in 0..x.len() / 256 {
        let xb = &x[b * 256..(b + 1) * 256];
        let p = xb.as_ptr();
        let mut m = _mm256_setzero_ps();
        for i in 0..32 {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))));
        }
        let h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        let amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
        let qb = &mut qs[b * 256..(b + 1) * 256];
        let sums = &mut bsums[b * 16..(b + 1) * 16];
        if amax == 0.0 {
            d[b] = 0.0;
            qb.fill(0);
            sums.fill(0);
            continue;
        }
        // The first element of largest magnitude gives the sign (as the reference).
        let target = _mm256_set1_ps(amax);
        let mut max = amax;
        for i in 0..32 {
            let hit = _mm256_movemask_ps(_mm256_cmp_ps(
                _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))),
                target,
                _CMP_EQ_OQ,
            ));
            if hit != 0 {
                max = xb[8 * i + hit.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let scale = _mm256_set1_ps(iscale);
        for i in 0..8 {
            let mut q = [_mm256_setzero_si256(); 4];
            for (j, q) in q.iter_mut().enumerate() {
                let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(32 * i + 8 * j)), scale);
                let r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                *q = _mm256_min_epi32(_mm256_cvtps_epi32(r), limit);
            }
            let packed = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let packed = _mm256_permutevar8x32_epi32(packed, order);
            _mm256_storeu_si256(qb.as_mut_ptr().add(32 * i) as *mut __m256i, packed);
        }
        for (sum, group) in sums.iter_mut().zip(qb.chunks_exact(16)) {
            *sum = group.iter().map(|&q| q as i16).sum();
        }
        d[b] = 1.0 / iscale;
    }
}

// ---------------------------------------------------------------------------------------
// Panel rows for the prefill path (see `panel.rs`)

/// Decodes one weight row for a panel: signed values into `vals`, and for each scale
/// group g the entries `[g·PANEL_ROWS + r]` of `scale`, `minv` and `corr` (−128·Σq). Returns
/// false for types without a fast path here (the caller decodes portably).
pub fn panel_row(
    ty: GgmlType,
    row: &[u8],
    r: usize,
    vals: &mut [i8],
    scale: &mut [f32],
    minv: &mut [f32],
    corr: &mut [i32],
) -> bool {
    let cols = vals.len();
    let (bb, be) = (ty.block_bytes(), ty.block_elems());
    let groups = cols / super::panel::group_cols(ty);
    let fast = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q5K);
    // The detection result is cached by std: one atomic load per row.
    let avx2 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    if !fast || !avx2 {
        return false;
    }
    assert!(row.len() >= cols / be * bb && r < PANEL_ROWS);
    assert!(
        scale.len() >= groups * PANEL_ROWS
            && minv.len() >= groups * PANEL_ROWS
            && corr.len() >= groups * PANEL_ROWS
    );
    // SAFETY: AVX2, FMA and F16C were detected just above; the lengths checked.
    unsafe { panel_row_avx2(ty, row, r, vals, scale, minv, corr) };
    true
}

/// The panel rows of Q4_1 (`FIVE == false`) and Q5_1. Callers have checked the lengths
/// (see `panel_row`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_panel_row<const FIVE: bool>(
    row: &[u8],
    r: usize,
    vals: &mut [i8],
    scale: &mut [f32],
    minv: &mut [f32],
    corr: &mut [i32],
) {
    let bb = if FIVE { 24 } else { 20 };
    let out = vals.as_mut_ptr() as *mut __m256i;
    let (sp, mp, cp) = (scale.as_mut_ptr(), minv.as_mut_ptr(), corr.as_mut_ptr());
    for b in 0..vals.len() / 32 {
        let p = row.as_ptr().add(b * bb);
        let u = if FIVE {
            _mm256_or_si256(nibbles(p.add(8)), fifth_bits(p.add(4)))
        } else {
            nibbles(p.add(4))
        };
        _mm256_storeu_si256(out.add(b), u);
        let at = b * PANEL_ROWS + r;
        *sp.add(at) = load_f16(p);
        *mp.add(at) = load_f16(p.add(2));
        *cp.add(at) = -128 * byte_sum(u);
    }
}

/// Σ of 32 unsigned bytes.
#[inline(always)]
unsafe fn byte_sum(v: __m256i) -> i32 {
    let s = _mm256_sad_epu8(v, _mm256_setzero_si256());
    let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    (_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1)) as i32
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn panel_row_avx2(
    ty: GgmlType,
    row: &[u8],
    r: usize,
    vals: &mut [i8],
    scale: &mut [f32],
    minv: &mut [f32],
    corr: &mut [i32],
) {
    match ty {
        GgmlType::Q4_1 => legacy_panel_row::<false>(row, r, vals, scale, minv, corr),
        GgmlType::Q5_1 => legacy_panel_row::<true>(row, r, vals, scale, minv, corr),
        _ => q5_k_panel_row(row, r, vals, scale, minv, corr),
    }
}

/// Q5_K's panel rows (the one K-quant with 32-column groups the panels take).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k_panel_row(
    row: &[u8],
    r: usize,
    vals: &mut [i8],
    scale: &mut [f32],
    minv: &mut [f32],
    corr: &mut [i32],
) {
    let out = vals.as_mut_ptr() as *mut __m256i;
    for b in 0..vals.len() / 256 {
        let p = row.as_ptr().add(b * 176);
        let d = load_f16(p);
        let dmin = load_f16(p.add(2));
        let (sc, mn) = k4_scales_mins(&row[b * 176 + 4..b * 176 + 16]);
        let mask = _mm256_set1_epi8(15);
        let one = _mm256_set1_epi8(1);
        let (qs, qh) = (p.add(48), _mm256_loadu_si256(p.add(16) as *const __m256i));
        for c in 0..4 {
            let raw = _mm256_loadu_si256(qs.add(32 * c) as *const __m256i);
            let bit_lo = _mm256_and_si256(_mm256_srlv_epi64_const(qh, 2 * c), one);
            let bit_hi = _mm256_and_si256(_mm256_srlv_epi64_const(qh, 2 * c + 1), one);
            let lo = _mm256_or_si256(_mm256_and_si256(raw, mask), _mm256_slli_epi16(bit_lo, 4));
            let hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask),
                _mm256_slli_epi16(bit_hi, 4),
            );
            _mm256_storeu_si256(out.add(8 * b + 2 * c), lo);
            _mm256_storeu_si256(out.add(8 * b + 2 * c + 1), hi);
            for (j, v) in [(2 * c, lo), (2 * c + 1, hi)] {
                let g = 8 * b + j;
                scale[g * PANEL_ROWS + r] = d * sc[j] as f32;
                minv[g * PANEL_ROWS + r] = -dmin * mn[j] as f32;
                corr[g * PANEL_ROWS + r] = -128 * byte_sum(v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Q2_K and Q3_K: 16 groups of 16 with small integer scales

/// One decoded Q2_K/Q3_K block: 8 vectors of 32 unsigned values (vector v holds groups
/// 2v and 2v+1), the group scales, the offset subtracted from every value (0 or 4),
/// and the group mins (Q2_K only).
struct Small16 {
    u: [__m256i; 8],
    sc: [i16; 16],
    d: f32,
    offset: i32,
    mins: [i16; 16],
    dmin: f32,
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn small16_rows<const NT: usize, const BYTES: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
    decode: impl Fn(&[u8]) -> Small16,
) {
    let cols = acts.cols;
    let nb = cols / 256;
    assert!(row.len() >= nb * BYTES);
    let q = acts.q;
    let mut acc = [_mm256_setzero_ps(); TILE_TOKENS];
    let mut scalar = [0f32; TILE_TOKENS];
    for b in 0..nb {
        let blk = decode(&row[b * BYTES..(b + 1) * BYTES]);
        let sc: [__m256i; 8] = std::array::from_fn(|v| {
            _mm256_set_m128i(
                _mm_set1_epi16(blk.sc[2 * v + 1]),
                _mm_set1_epi16(blk.sc[2 * v]),
            )
        });
        let sc16 = _mm256_loadu_si256(blk.sc.as_ptr() as *const __m256i);
        let mins16 = _mm256_loadu_si256(blk.mins.as_ptr() as *const __m256i);
        for k in 0..NT {
            let ab = (t0 + k) * nb + b;
            let x = q.qs.as_ptr().add(ab * 256);
            let mut isum = _mm256_setzero_si256();
            for (v, (u, s)) in blk.u.iter().zip(&sc).enumerate() {
                let xv = _mm256_loadu_si256(x.add(32 * v) as *const __m256i);
                let prod = _mm256_maddubs_epi16(*u, xv);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(prod, *s));
            }
            let bs = _mm256_loadu_si256(q.bsums.as_ptr().add(ab * 16) as *const __m256i);
            let offset = hsum_i32(_mm256_madd_epi16(sc16, bs)) * blk.offset;
            let mins = hsum_i32(_mm256_madd_epi16(mins16, bs));
            let dx = *q.d.get_unchecked(ab);
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(blk.d * dx), acc[k]);
            scalar[k] += dx * (blk.d * offset as f32 + blk.dmin * mins as f32);
        }
    }
    for k in 0..NT {
        out[k] = hsum(acc[k]) - scalar[k];
    }
}

#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 1)))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    small16_rows::<NT, 84>(row, acts, t0, out, |blk| {
        let p = blk.as_ptr();
        let m3 = _mm256_set1_epi8(3);
        let mut u = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            let qv = _mm256_loadu_si256(p.add(16 + 32 * h) as *const __m256i);
            u[4 * h] = _mm256_and_si256(qv, m3);
            u[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(qv, 2), m3);
            u[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m3);
            u[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(qv, 6), m3);
        }
        Small16 {
            u,
            sc: std::array::from_fn(|g| (blk[g] & 15) as i16),
            d: load_f16(p.add(80)),
            offset: 0,
            mins: std::array::from_fn(|g| (blk[g] >> 4) as i16),
            dmin: load_f16(p.add(82)),
        }
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k_avx2<const NT: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    t0: usize,
    out: &mut [f32; TILE_TOKENS],
) {
    small16_rows::<NT, 110>(row, acts, t0, out, |blk| {
        let p = blk.as_ptr();
        let m3 = _mm256_set1_epi8(3);
        let one = _mm256_set1_epi8(1);
        let hmask = _mm256_loadu_si256(p as *const __m256i);
        let mut u = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            let qv = _mm256_loadu_si256(p.add(32 + 32 * h) as *const __m256i);
            for j in 0..4 {
                let low = _mm256_and_si256(_mm256_srlv_epi64_const(qv, 2 * j), m3);
                let high = _mm256_and_si256(_mm256_srlv_epi64_const(hmask, 4 * h + j), one);
                // low + 4·hbit, in 0..7; the value is that minus 4.
                u[4 * h + j] = _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
            }
        }
        let s = super::portable::q3k_scales(&blk[96..108]);
        Small16 {
            u,
            sc: s.map(|v| v as i16),
            d: load_f16(p.add(108)),
            offset: 4,
            mins: [0; 16],
            dmin: 0.0,
        }
    });
}

// ---------------------------------------------------------------------------------------
// Prefill panel tile (AVX2 has no vpdpbusd: maddubs + madd instead)

/// Whether the AVX2 panel tile can take this type (`maddubs` adds two u8·i8 products
/// into an i16, which would overflow only for full-range byte weights, none of which
/// the panels take).
pub fn panel_supports(ty: GgmlType) -> bool {
    super::panel::supported(ty)
}

/// The AVX2 version of [`super::x86_avx512::panel_tile`]: same contract.
pub fn panel_tile(
    panel: &super::panel::Panel,
    acts: &super::panel::PanelActs<'_>,
    t0: usize,
    nt: usize,
    g_cols: usize,
    mins: bool,
    out: &mut [[f32; PANEL_ROWS]; super::PANEL_TOKENS],
) {
    assert!((1..=super::PANEL_TOKENS).contains(&nt));
    panel.check();
    assert_eq!(panel.cols, acts.cols);
    assert_eq!(panel.groups * g_cols, panel.cols);
    assert!(acts.xu8.len() >= (t0 + nt) * acts.cols);
    assert!(acts.xs.len() >= (t0 + nt) * panel.groups);
    assert!(acts.dx.len() * acts.groups_per_block >= (t0 + nt) * panel.groups);
    macro_rules! go {
        ($g:literal, $sb:literal, $m:literal) => {
            for half in 0..PANEL_ROWS / 8 {
                match nt {
                    // SAFETY (all arms): the table gives this tile out only on the AVX2
                    // level or above; the bounds were asserted above.
                    1 => unsafe { panel_tile_avx2::<$g, $sb, 1, $m>(panel, acts, t0, half, out) },
                    2 => unsafe { panel_tile_avx2::<$g, $sb, 2, $m>(panel, acts, t0, half, out) },
                    3 => unsafe { panel_tile_avx2::<$g, $sb, 3, $m>(panel, acts, t0, half, out) },
                    _ => unsafe { panel_tile_avx2::<$g, $sb, 4, $m>(panel, acts, t0, half, out) },
                }
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

/// Rows `8·half .. 8·half + 8` of the panel against `NT` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn panel_tile_avx2<const G: usize, const SB: usize, const NT: usize, const MINS: bool>(
    panel: &super::panel::Panel,
    acts: &super::panel::PanelActs<'_>,
    t0: usize,
    half: usize,
    out: &mut [[f32; PANEL_ROWS]; super::PANEL_TOKENS],
) {
    let cols = acts.cols;
    let groups = panel.groups;
    let blocks = groups / SB;
    let w = (panel.w.as_ptr() as *const u8).add(32 * half);
    let x = acts.xu8.as_ptr().add(t0 * cols);
    let dx = acts.dx.as_ptr().add(t0 * blocks);
    let xs = acts.xs.as_ptr().add(t0 * groups);
    let ones = _mm256_set1_epi16(1);
    let mut facc = [_mm256_setzero_ps(); NT];
    for b in 0..blocks {
        let mut fblk = [_mm256_setzero_ps(); NT];
        for g in b * SB..(b + 1) * SB {
            let at = g * PANEL_ROWS + 8 * half;
            let corr = _mm256_loadu_si256(panel.corr.as_ptr().add(at) as *const __m256i);
            let mut iacc = [corr; NT];
            for k in 0..G / 4 {
                let col = g * G + 4 * k;
                let wv = _mm256_loadu_si256(w.add(col * PANEL_ROWS) as *const __m256i);
                for (t, acc) in iacc.iter_mut().enumerate() {
                    let quad = std::ptr::read_unaligned(x.add(t * cols + col) as *const i32);
                    let p = _mm256_maddubs_epi16(_mm256_set1_epi32(quad), wv);
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(p, ones));
                }
            }
            let scale = _mm256_loadu_ps(panel.scale.as_ptr().add(at));
            for (t, acc) in fblk.iter_mut().enumerate() {
                // One group per block (legacy formats): start from zero, saving the
                // registers of a separate block sum (AVX2 has only 16).
                let base = if SB == 1 { _mm256_setzero_ps() } else { *acc };
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[t]), scale, base);
                if MINS {
                    let minv = _mm256_loadu_ps(panel.minv.as_ptr().add(at));
                    *acc = _mm256_fmadd_ps(minv, _mm256_set1_ps(*xs.add(t * groups + g)), *acc);
                }
                if SB == 1 {
                    facc[t] =
                        _mm256_fmadd_ps(*acc, _mm256_set1_ps(*dx.add(t * blocks + b)), facc[t]);
                }
            }
        }
        if SB > 1 {
            for (t, acc) in facc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(fblk[t], _mm256_set1_ps(*dx.add(t * blocks + b)), *acc);
            }
        }
    }
    for (t, acc) in facc.iter().enumerate() {
        _mm256_storeu_ps(out[t].as_mut_ptr().add(8 * half), *acc);
    }
}

/// Interleaves 16 decoded rows (`rows_vals`: row after row, `quads` u32 each) into the
/// panel layout `w[quad][16 rows]` with 8×8 transposes. Returns false (doing nothing)
/// without AVX2 or when `quads` is not a multiple of 8.
pub fn interleave_panel(rows_vals: &[u32], quads: usize, w: &mut [u32]) -> bool {
    if !is_x86_feature_detected!("avx2") || !quads.is_multiple_of(8) {
        return false;
    }
    assert!(rows_vals.len() >= quads * PANEL_ROWS && w.len() >= quads * PANEL_ROWS);
    // SAFETY: AVX2 was detected just above; the lengths were checked.
    unsafe { interleave_panel_avx2(rows_vals, quads, w) };
    true
}

#[target_feature(enable = "avx2")]
unsafe fn interleave_panel_avx2(rows_vals: &[u32], quads: usize, w: &mut [u32]) {
    let src = rows_vals.as_ptr();
    let dst = w.as_mut_ptr();
    for k0 in (0..quads).step_by(8) {
        for half in 0..PANEL_ROWS / 8 {
            let r: [__m256i; 8] = std::array::from_fn(|i| {
                _mm256_loadu_si256(src.add((8 * half + i) * quads + k0) as *const __m256i)
            });
            let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
            let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
            let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
            let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
            let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
            let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
            let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
            let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
            let u0 = _mm256_unpacklo_epi64(t0, t2);
            let u1 = _mm256_unpackhi_epi64(t0, t2);
            let u2 = _mm256_unpacklo_epi64(t1, t3);
            let u3 = _mm256_unpackhi_epi64(t1, t3);
            let u4 = _mm256_unpacklo_epi64(t4, t6);
            let u5 = _mm256_unpackhi_epi64(t4, t6);
            let u6 = _mm256_unpacklo_epi64(t5, t7);
            let u7 = _mm256_unpackhi_epi64(t5, t7);
            let cols = [
                _mm256_permute2x128_si256(u0, u4, 0x20),
                _mm256_permute2x128_si256(u1, u5, 0x20),
                _mm256_permute2x128_si256(u2, u6, 0x20),
                _mm256_permute2x128_si256(u3, u7, 0x20),
                _mm256_permute2x128_si256(u0, u4, 0x31),
                _mm256_permute2x128_si256(u1, u5, 0x31),
                _mm256_permute2x128_si256(u2, u6, 0x31),
                _mm256_permute2x128_si256(u3, u7, 0x31),
            ];
            for (k, v) in cols.into_iter().enumerate() {
                _mm256_storeu_si256(dst.add((k0 + k) * PANEL_ROWS + 8 * half) as *mut __m256i, v);
            }
        }
    }
}
