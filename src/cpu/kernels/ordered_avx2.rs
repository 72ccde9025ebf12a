//! AVX2 row kernels (decode, and prefill below the AVX-512 level) of the types summed in
//! llama.cpp's order (see [`super::summation`]): Q5_0 and Q8_0 in eight lanes, Q6_K in
//! eight lanes per super-block, Q4_0 and Q4_K in one chain per output. Each produces the
//! bits of [`super::summation::dot`].

use std::arch::x86_64::*;

use crate::cpu::act_quant::ActFormat;
use crate::quant::GgmlType;

use super::x86_avx2::{fifth_bits, hsum, k4_scales_mins, load_f16, nibbles};
use super::{Acts, RowsKernel, RowsOut};

pub fn kernel(ty: GgmlType) -> Option<RowsKernel> {
    Some(match ty {
        GgmlType::Q4_0 => q4_0_kernel,
        GgmlType::Q5_0 => q5_0_kernel,
        GgmlType::Q8_0 => q8_0_kernel,
        GgmlType::Q4K => q4_k_kernel,
        GgmlType::Q6K => q6_k_kernel,
        _ => return None,
    })
}

/// A safe entry for the dispatch table around an AVX2 kernel: `nr` rows of `row_bytes`
/// each, `nt` tokens, both made constants so the accumulators stay in registers.
macro_rules! table_entry {
    ($name:ident, $inner:ident, $format:ident) => {
        fn $name(
            rows: &[u8],
            row_bytes: usize,
            nr: usize,
            acts: &Acts<'_>,
            t0: usize,
            nt: usize,
            out: &mut RowsOut,
        ) {
            acts.check(ActFormat::$format, t0, nt);
            assert!(rows.len() >= nr * row_bytes);
            macro_rules! tokens {
                ($nr:literal) => {
                    // SAFETY: the table holds this entry only when AVX2, FMA and F16C were
                    // detected; the activations and rows were bounds-checked above.
                    unsafe {
                        match nt {
                            1 => $inner::<$nr, 1>(rows, row_bytes, acts, t0, out),
                            2 => $inner::<$nr, 2>(rows, row_bytes, acts, t0, out),
                            3 => $inner::<$nr, 3>(rows, row_bytes, acts, t0, out),
                            _ => $inner::<$nr, 4>(rows, row_bytes, acts, t0, out),
                        }
                    }
                };
            }
            match nr {
                1 => tokens!(1),
                2 => tokens!(2),
                3 => tokens!(3),
                _ => tokens!(4),
            }
        }
    };
}

table_entry!(q4_0_kernel, q4_0_rows, Q8Block32);
table_entry!(q5_0_kernel, q5_0_rows, Q8Block32);
table_entry!(q8_0_kernel, q8_0_rows, Q8Block32);
table_entry!(q4_k_kernel, q4_k_rows, Q8K);
table_entry!(q6_k_kernel, q6_k_rows, Q8K);

/// The eight lane sums of a block: lane `k` = Σ w·x over elements `4k .. 4k+3` (the sign
/// trick makes the unsigned operand `|w|`; every pair sum fits i16).
#[inline(always)]
unsafe fn lanes32(w: __m256i, x: __m256i) -> __m256i {
    let aw = _mm256_sign_epi8(w, w);
    let sx = _mm256_sign_epi8(x, w);
    _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1))
}

/// The shared loop of Q5_0 and Q8_0: `decode` gives a block's signed values and
/// scale. One accumulator chain per token, in block order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_lane_rows<const NR: usize, const NT: usize, const BYTES: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
    decode: impl Fn(*const u8) -> (__m256i, f32),
) {
    let nb = acts.cols / 32;
    assert!(row_bytes >= nb * BYTES);
    let q = acts.q;
    let mut acc = [[_mm256_setzero_ps(); NT]; NR];
    for b in 0..nb {
        for (r, acc) in acc.iter_mut().enumerate() {
            let p = rows.as_ptr().add(r * row_bytes + b * BYTES);
            prefetch_ahead(p, NR * row_bytes, BYTES);
            let (w, dw) = decode(p);
            for (k, acc) in acc.iter_mut().enumerate() {
                let blk = (t0 + k) * nb + b;
                let x = _mm256_loadu_si256(q.qs.as_ptr().add(blk * 32) as *const __m256i);
                let d = _mm256_set1_ps(dw * *q.d.get_unchecked(blk));
                *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes32(w, x)), *acc);
            }
        }
    }
    for (o, acc) in out.iter_mut().zip(acc) {
        for (o, acc) in o.iter_mut().zip(acc) {
            *o = hsum(acc);
        }
    }
}

/// Q4_0: per block the exact integer dot product of each row, one chain per output.
/// Two rows share a register (one per 128-bit half) against the block's activations
/// doubled; the unsigned codes' products are corrected by `8·Σx` (the same for every
/// row), and four rows are reduced into one vector.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_rows<const NR: usize, const NT: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
) {
    let nb = acts.cols / 32;
    assert!(row_bytes >= nb * 18);
    let q = acts.q;
    let mask = _mm256_set1_epi8(15);
    let ones = _mm256_set1_epi16(1);
    let eights = _mm256_set1_epi8(8);
    // Lane r: row r.
    let mut acc = [_mm_setzero_ps(); NT];
    for b in 0..nb {
        let base = rows.as_ptr().add(b * 18);
        let codes = |r: usize| {
            if r < NR {
                let p = base.add(r * row_bytes);
                prefetch_ahead(p, NR * row_bytes, 18);
                _mm_loadu_si128(p.add(2) as *const __m128i)
            } else {
                _mm_setzero_si128()
            }
        };
        // Rows 2i (low half) and 2i+1 (high half): low nibbles (elements 0..16) and
        // high nibbles (16..32).
        let mut low = [_mm256_setzero_si256(); 2];
        let mut high = [_mm256_setzero_si256(); 2];
        for i in 0..NR.div_ceil(2) {
            let raw = _mm256_set_m128i(codes(2 * i + 1), codes(2 * i));
            low[i] = _mm256_and_si256(raw, mask);
            high[i] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
        }
        let dw = f16_rows4::<NR>(base, row_bytes);
        for (k, acc) in acc.iter_mut().enumerate() {
            let blk = (t0 + k) * nb + b;
            let x = _mm256_loadu_si256(q.qs.as_ptr().add(blk * 32) as *const __m256i);
            let x_first = _mm256_permute2x128_si256(x, x, 0x00);
            let x_second = _mm256_permute2x128_si256(x, x, 0x11);
            let lanes = |l: __m256i, h: __m256i| {
                let pairs = _mm256_add_epi16(
                    _mm256_maddubs_epi16(l, x_first),
                    _mm256_maddubs_epi16(h, x_second),
                );
                _mm256_madd_epi16(pairs, ones)
            };
            let corr = lanes(eights, eights);
            let mut two_rows = [_mm256_setzero_si256(); 2];
            for i in 0..NR.div_ceil(2) {
                two_rows[i] = _mm256_sub_epi32(lanes(low[i], high[i]), corr);
            }
            // Halves: rows (0, 2) low, (1, 3) high, summed pairwise twice.
            let h = _mm256_hadd_epi32(two_rows[0], two_rows[1]);
            let h = _mm256_hadd_epi32(h, h);
            let exact =
                _mm_unpacklo_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            let d = _mm_mul_ps(dw, _mm_set1_ps(*q.d.get_unchecked(blk)));
            *acc = _mm_fmadd_ps(_mm_cvtepi32_ps(exact), d, *acc);
        }
    }
    for (k, acc) in acc.iter().enumerate() {
        store_rows4::<NR>(*acc, k, out);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_rows<const NR: usize, const NT: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
) {
    q8_lane_rows::<NR, NT, 22>(rows, row_bytes, acts, t0, out, |p| {
        let q = _mm256_or_si256(nibbles(p.add(6)), fifth_bits(p.add(2)));
        let w = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        (w, load_f16(p))
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_rows<const NR: usize, const NT: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
) {
    q8_lane_rows::<NR, NT, 34>(rows, row_bytes, acts, t0, out, |p| {
        (_mm256_loadu_si256(p.add(2) as *const __m256i), load_f16(p))
    });
}

/// Q4_K: per super-block the integer sums `Σ_j sc_j·Σ q·x` and `Σ_j mn_j·Σ x` over its
/// eight sub-blocks, as one term (a token on its own) or one per pair of sub-blocks (a
/// token in a whole group of four), fused-multiply-added into two chains.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_rows<const NR: usize, const NT: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
) {
    if (t0..t0 + NT).any(|t| acts.place(t).grouped) {
        q4_k_rows_grouped::<NR, NT>(rows, row_bytes, acts, t0, out)
    } else {
        q4_k_rows_single::<NR, NT>(rows, row_bytes, acts, t0, out)
    }
}

/// Asks for the `bytes` at `p + ahead` (the same block of the rows after this call's:
/// the rows of a chunk lie back to back, so a kernel reading rows side by side is not a
/// stream the hardware prefetcher follows).
#[inline(always)]
unsafe fn prefetch_ahead(p: *const u8, ahead: usize, bytes: usize) {
    let mut at = 0;
    while at < bytes {
        // Prefetches never fault; the address may lie past the weights.
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(ahead + at) as *const i8);
        at += 64;
    }
}

/// Four rows' eight-lane sums reduced to one lane per row.
#[inline(always)]
unsafe fn reduce_rows4(v: [__m256i; 4]) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
}

/// Token `k`'s outputs of rows `0..NR`, lane r holding row r.
#[inline(always)]
unsafe fn store_rows4<const NR: usize>(v: __m128, k: usize, out: &mut RowsOut) {
    let mut lanes = [0f32; 4];
    _mm_storeu_ps(lanes.as_mut_ptr(), v);
    for (o, v) in out.iter_mut().zip(lanes).take(NR) {
        o[k] = v;
    }
}

/// Four f16 values, one per row at `p + r·row_bytes`, as floats.
#[inline(always)]
unsafe fn f16_rows4<const NR: usize>(p: *const u8, row_bytes: usize) -> __m128 {
    let mut bits = [0i16; 4];
    for (r, v) in bits.iter_mut().enumerate().take(NR) {
        *v = std::ptr::read_unaligned(p.add(r * row_bytes) as *const i16);
    }
    let [b0, b1, b2, b3] = bits;
    _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, b3, b2, b1, b0))
}

/// Q4_K for tokens outside whole groups of four (decode): one exact `Σ sc·Σ q·x` and
/// one `Σ mn·Σ x` per row and super-block, four rows reduced together.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_rows_single<const NR: usize, const NT: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
) {
    let nb = acts.cols / 256;
    assert!(row_bytes >= nb * 144);
    let q = acts.q;
    let mask = _mm256_set1_epi8(15);
    // Lane r: row r.
    let mut acc = [_mm_setzero_ps(); NT];
    let mut acc_min = [_mm_setzero_ps(); NT];
    for b in 0..nb {
        let base = rows.as_ptr().add(b * 144);
        let d = f16_rows4::<NR>(base, row_bytes);
        let dmin = f16_rows4::<NR>(base.add(2), row_bytes);
        for k in 0..NT {
            let ab = (t0 + k) * nb + b;
            let x = q.qs.as_ptr().add(ab * 256);
            let bsums = _mm256_loadu_si256(q.bsums.as_ptr().add(ab * 16) as *const __m256i);
            let mut scaled = [_mm256_setzero_si256(); 4];
            let mut mins = [_mm256_setzero_si256(); 4];
            for r in 0..NR {
                let p = base.add(r * row_bytes);
                if k == 0 {
                    prefetch_ahead(p, NR * row_bytes, 144);
                }
                let (sc, mn) = k4_scales_mins(std::slice::from_raw_parts(p.add(4), 12));
                let m8 = _mm_loadu_si128(mn.as_ptr() as *const __m128i);
                let mins_twice =
                    _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
                mins[r] = _mm256_madd_epi16(bsums, mins_twice);
                let mut sumi = _mm256_setzero_si256();
                for c in 0..4 {
                    let raw = _mm256_loadu_si256(p.add(16 + 32 * c) as *const __m256i);
                    let lo = _mm256_and_si256(raw, mask);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
                    let x0 = _mm256_loadu_si256(x.add(64 * c) as *const __m256i);
                    let x1 = _mm256_loadu_si256(x.add(64 * c + 32) as *const __m256i);
                    let s0 = _mm256_set1_epi16(sc[2 * c]);
                    let s1 = _mm256_set1_epi16(sc[2 * c + 1]);
                    sumi =
                        _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), s0));
                    sumi =
                        _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), s1));
                }
                scaled[r] = sumi;
            }
            let dx = _mm_set1_ps(*q.d.get_unchecked(ab));
            let s = _mm_cvtepi32_ps(reduce_rows4(scaled));
            let m = _mm_cvtepi32_ps(reduce_rows4(mins));
            acc[k] = _mm_fmadd_ps(s, _mm_mul_ps(d, dx), acc[k]);
            acc_min[k] = _mm_fmadd_ps(m, _mm_mul_ps(dmin, dx), acc_min[k]);
        }
    }
    for k in 0..NT {
        store_rows4::<NR>(_mm_sub_ps(acc[k], acc_min[k]), k, out);
    }
}

/// Q4_K for calls with tokens in whole groups of four (prefill below AVX-512): terms
/// per pair of sub-blocks for those tokens.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_rows_grouped<const NR: usize, const NT: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
) {
    let nb = acts.cols / 256;
    assert!(row_bytes >= nb * 144);
    let q = acts.q;
    let mut acc = [[(0f32, 0f32); NT]; NR];
    let mask = _mm256_set1_epi8(15);
    for b in 0..nb {
        for (r, acc) in acc.iter_mut().enumerate() {
            let blk = &rows[r * row_bytes + b * 144..r * row_bytes + (b + 1) * 144];
            let p = blk.as_ptr();
            let (d, dmin) = (load_f16(p), load_f16(p.add(2)));
            let (sc, mn) = k4_scales_mins(&blk[4..16]);
            let mut w = [_mm256_setzero_si256(); 8];
            for c in 0..4 {
                let raw = _mm256_loadu_si256(p.add(16 + 32 * c) as *const __m256i);
                w[2 * c] = _mm256_and_si256(raw, mask);
                w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
            }
            for (k, acc) in acc.iter_mut().enumerate() {
                let t = t0 + k;
                let ab = t * nb + b;
                let x = q.qs.as_ptr().add(ab * 256);
                // Scaled sums of the sub-block pairs 0-1, 2-3, 4-5, 6-7.
                let mut pairs = [0i32; 4];
                for (sb, pair) in pairs.iter_mut().enumerate() {
                    let mut v = _mm256_setzero_si256();
                    for j in 2 * sb..2 * sb + 2 {
                        let xv = _mm256_loadu_si256(x.add(32 * j) as *const __m256i);
                        let prod = _mm256_maddubs_epi16(w[j], xv);
                        v = _mm256_add_epi32(v, _mm256_madd_epi16(prod, _mm256_set1_epi16(sc[j])));
                    }
                    *pair = hsum_i32(v);
                }
                let bs = q.bsums.get_unchecked(ab * 16..ab * 16 + 16);
                let mins: [i32; 4] = std::array::from_fn(|sb| {
                    (2 * sb..2 * sb + 2)
                        .map(|j| mn[j] as i32 * (bs[2 * j] as i32 + bs[2 * j + 1] as i32))
                        .sum()
                });
                let dx = *q.d.get_unchecked(ab);
                let (ds, dm) = (d * dx, dmin * dx);
                if acts.place(t).grouped {
                    for sb in 0..4 {
                        acc.0 = (pairs[sb] as f32).mul_add(ds, acc.0);
                        acc.1 = (mins[sb] as f32).mul_add(dm, acc.1);
                    }
                } else {
                    let s: i32 = pairs.iter().sum();
                    let m: i32 = mins.iter().sum();
                    acc.0 = (s as f32).mul_add(ds, acc.0);
                    acc.1 = (m as f32).mul_add(dm, acc.1);
                }
            }
        }
    }
    for (o, acc) in out.iter_mut().zip(acc) {
        for (o, (a, m)) in o.iter_mut().zip(acc) {
            *o = a - m;
        }
    }
}

#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Q6_K as `ggml_vec_dot_q6_K_q8_K` (AVX2): per super-block eight lanes of scaled
/// products of the unsigned 6-bit values, minus `32·Σ scale·bsum` per lane pair of
/// groups, fused-multiply-added with `d_x·d_w`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_rows<const NR: usize, const NT: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &Acts<'_>,
    t0: usize,
    out: &mut RowsOut,
) {
    let nb = acts.cols / 256;
    assert!(row_bytes >= nb * 210);
    let q = acts.q;
    let mut acc = [[_mm256_setzero_ps(); NT]; NR];
    let m4 = _mm256_set1_epi8(15);
    let m2 = _mm256_set1_epi8(3);
    for b in 0..nb {
        for (r, acc) in acc.iter_mut().enumerate() {
            let p = rows.as_ptr().add(r * row_bytes + b * 210);
            prefetch_ahead(p, NR * row_bytes, 210);
            let dw = load_f16(p.add(208));
            let scales = _mm_loadu_si128(p.add(192) as *const __m128i);
            // 8 vectors of 32 unsigned 6-bit values, in element order.
            let mut w = [_mm256_setzero_si256(); 8];
            for h in 0..2 {
                let ql0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
                let ql1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
                let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                let high = |v: __m256i| _mm256_slli_epi16(_mm256_and_si256(v, m2), 4);
                w[4 * h] = _mm256_or_si256(_mm256_and_si256(ql0, m4), high(qh));
                w[4 * h + 1] =
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), high(_mm256_srli_epi16(qh, 2)));
                w[4 * h + 2] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    high(_mm256_srli_epi16(qh, 4)),
                );
                w[4 * h + 3] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    high(_mm256_srli_epi16(qh, 6)),
                );
            }
            // Vector v covers scale groups 2v and 2v+1 (one per 128-bit half).
            let sc16 = _mm256_cvtepi8_epi16(scales);
            let sc: [__m256i; 8] = std::array::from_fn(|v| {
                let s = std::ptr::read_unaligned(p.add(192 + 2 * v) as *const [i8; 2]);
                _mm256_set_m128i(_mm_set1_epi16(s[1] as i16), _mm_set1_epi16(s[0] as i16))
            });
            for (k, acc) in acc.iter_mut().enumerate() {
                let ab = (t0 + k) * nb + b;
                let x = q.qs.as_ptr().add(ab * 256);
                let bsums = _mm256_loadu_si256(q.bsums.as_ptr().add(ab * 16) as *const __m256i);
                let offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16), 5);
                let mut sumi = _mm256_setzero_si256();
                for v in 0..8 {
                    let xv = _mm256_loadu_si256(x.add(32 * v) as *const __m256i);
                    let prod = _mm256_madd_epi16(sc[v], _mm256_maddubs_epi16(w[v], xv));
                    sumi = _mm256_add_epi32(sumi, prod);
                }
                sumi = _mm256_sub_epi32(sumi, offset);
                let dx = *q.d.get_unchecked(ab);
                if acts.place(t0 + k).wide {
                    // Lane 0 carries the rounded running sum (see the summation module).
                    let total = hsum_i32(sumi) as f32;
                    let prev = _mm256_cvtss_f32(*acc);
                    *acc = _mm256_set1_ps((total * dw).mul_add(dx, prev));
                } else {
                    let d = _mm256_set1_ps(dx * dw);
                    *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), *acc);
                }
            }
        }
    }
    for (o, acc) in out.iter_mut().zip(acc) {
        for (k, (o, acc)) in o.iter_mut().zip(acc).enumerate() {
            *o = if acts.place(t0 + k).wide {
                _mm256_cvtss_f32(acc)
            } else {
                hsum(acc)
            };
        }
    }
}
