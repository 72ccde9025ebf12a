//! The CPU kernels of the non-matmul operations: norms, rope, activations, attention.
//! Matrix products live in `matmul`.

use std::sync::Mutex;

use half::f16;

use crate::kv::{CpuKv, KvRows};
use crate::model::{AttnShape, RopePairing, RopeParams, SeqRun};

use super::attn_tiled::TILED_ATTENTION_MIN_QUERIES;
use super::ThreadPool;

/// Dot product of two equally long slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { x86::dot_avx2(a, b) };
    }
    dot_scalar(a, b)
}

/// Dot product with several accumulators so the compiler can vectorize it.
fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += a · x`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { x86::axpy_avx2(a, x, y) };
        return;
    }
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads): i + 16 <= n, resp. i + 8 <= n, keeps them inside both slices.
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let hi = _mm256_extractf128_ps(acc, 1);
        let lo = _mm256_castps256_ps128(acc);
        let s4 = _mm_add_ps(hi, lo);
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        let mut s = _mm_cvtss_f32(s1);
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    /// Dot products of `k` with four rows of `qs` (each `k.len()` long, a multiple of 8
    /// or not), loading each piece of `k` once.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_avx2(k: &[f32], qs: &[f32]) -> [f32; 4] {
        let d = k.len();
        assert!(qs.len() >= 4 * d);
        let pk = k.as_ptr();
        let pq = qs.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 8 <= d, and row r of qs spans r·d .. (r+1)·d <= qs.len().
        while i + 8 <= d {
            let kv = _mm256_loadu_ps(pk.add(i));
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(kv, _mm256_loadu_ps(pq.add(r * d + i)), *a);
            }
            i += 8;
        }
        let mut out = [0f32; 4];
        for (r, a) in acc.iter().enumerate() {
            out[r] = hsum(*a);
            for j in i..d {
                out[r] += k[j] * qs[r * d + j];
            }
        }
        out
    }

    /// `out = Σ_j w[j] · rows[j]`, 32 dimensions at a time kept in registers across all
    /// rows (`out.len()` a multiple of 32).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum_avx2(w: &[f32], rows: &[f32], out: &mut [f32]) {
        let d = out.len();
        assert!(d.is_multiple_of(32) && rows.len() >= w.len() * d);
        let pr = rows.as_ptr();
        let po = out.as_mut_ptr();
        let mut c = 0;
        while c < d {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (j, &s) in w.iter().enumerate() {
                let sv = _mm256_set1_ps(s);
                for (r, a) in acc.iter_mut().enumerate() {
                    // SAFETY: j < w.len() and c + 8r + 8 <= d keep the load inside rows.
                    *a = _mm256_fmadd_ps(sv, _mm256_loadu_ps(pr.add(j * d + c + 8 * r)), *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                // SAFETY: c + 8r + 8 <= d = out.len().
                _mm256_storeu_ps(po.add(c + 8 * r), *a);
            }
            c += 32;
        }
    }

    pub fn has_f16c() -> bool {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }

    /// Eight f16 values from `p` as f32.
    ///
    /// # Safety
    /// `p .. p + 8` must be readable; the CPU must support F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8_f16(p: *const half::f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    /// [`dot4_avx2`] with f16 keys (`k.len()` a multiple of 8).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_f16_avx2(k: &[half::f16], qs: &[f32]) -> [f32; 4] {
        let d = k.len();
        assert!(d.is_multiple_of(8) && qs.len() >= 4 * d);
        let pk = k.as_ptr();
        let pq = qs.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < d {
            // SAFETY: i + 8 <= d; row r of qs spans r·d .. (r+1)·d <= qs.len().
            let kv = load8_f16(pk.add(i));
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(kv, _mm256_loadu_ps(pq.add(r * d + i)), *a);
            }
            i += 8;
        }
        [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])]
    }

    /// `k · q` with f16 `k` (`k.len()` a multiple of 8, `q` as long).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx2(k: &[half::f16], q: &[f32]) -> f32 {
        let d = k.len();
        assert!(d.is_multiple_of(8) && q.len() >= d);
        let (pk, pq) = (k.as_ptr(), q.as_ptr());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < d {
            // SAFETY: i + 8 <= d <= both lengths.
            acc = _mm256_fmadd_ps(load8_f16(pk.add(i)), _mm256_loadu_ps(pq.add(i)), acc);
            i += 8;
        }
        hsum(acc)
    }

    /// [`super::dot_f16_ggml`] with AVX2: each 16-lane accumulator is a pair of 8-lane
    /// registers, so every lane sees the same operations.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_ggml_avx2(k: &[half::f16], q: &[f32]) -> f32 {
        let n = k.len();
        assert!(q.len() >= n);
        let np = n - n % 64;
        let (pk, pq) = (k.as_ptr(), q.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let mut i = 0;
        while i < np {
            for (j, a) in acc.iter_mut().enumerate() {
                for (h, a) in a.iter_mut().enumerate() {
                    let e = i + 16 * j + 8 * h;
                    // SAFETY: e + 8 <= np <= n <= both lengths.
                    let p = _mm256_mul_ps(load8_f16(pk.add(e)), _mm256_loadu_ps(pq.add(e)));
                    *a = _mm256_add_ps(*a, p);
                }
            }
            i += 64;
        }
        // x = (acc0 + acc2) + (acc1 + acc3), lane by lane; then the 16-lane fold.
        let x_lo = _mm256_add_ps(
            _mm256_add_ps(acc[0][0], acc[2][0]),
            _mm256_add_ps(acc[1][0], acc[3][0]),
        );
        let x_hi = _mm256_add_ps(
            _mm256_add_ps(acc[0][1], acc[2][1]),
            _mm256_add_ps(acc[1][1], acc[3][1]),
        );
        let t8 = _mm256_add_ps(x_hi, x_lo);
        let t4 = _mm_add_ps(_mm256_extractf128_ps(t8, 1), _mm256_castps256_ps128(t8));
        let t2 = _mm_add_ps(t4, _mm_shuffle_ps(t4, t4, 0b01_00_11_10));
        let mut sum = _mm_cvtss_f32(_mm_add_ss(t2, _mm_shuffle_ps(t2, t2, 1))) as f64;
        for e in np..n {
            sum += (k[e].to_f32() * q[e]) as f64;
        }
        sum as f32
    }

    /// [`weighted_sum_avx2`] with f16 rows.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn weighted_sum_f16_avx2(w: &[f32], rows: &[half::f16], out: &mut [f32]) {
        let d = out.len();
        assert!(d.is_multiple_of(32) && rows.len() >= w.len() * d);
        let pr = rows.as_ptr();
        let po = out.as_mut_ptr();
        let mut c = 0;
        while c < d {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (j, &s) in w.iter().enumerate() {
                let sv = _mm256_set1_ps(s);
                for (r, a) in acc.iter_mut().enumerate() {
                    // SAFETY: j < w.len() and c + 8r + 8 <= d keep the load inside rows.
                    *a = _mm256_fmadd_ps(sv, load8_f16(pr.add(j * d + c + 8 * r)), *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                // SAFETY: c + 8r + 8 <= d = out.len().
                _mm256_storeu_ps(po.add(c + 8 * r), *a);
            }
            c += 32;
        }
    }

    /// `acc = f16(acc · s)`, element by element (`acc.len()` a multiple of 8).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn scale_f16_avx2(acc: &mut [half::f16], s: f32) {
        assert!(acc.len().is_multiple_of(8));
        let pa = acc.as_mut_ptr();
        let sv = _mm256_set1_ps(s);
        for i in (0..acc.len()).step_by(8) {
            // SAFETY: i + 8 <= acc.len().
            let y = _mm256_mul_ps(load8_f16(pa.add(i)), sv);
            let h = _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT);
            _mm_storeu_si128(pa.add(i) as *mut __m128i, h);
        }
    }

    /// `acc = f16(fma(v, s, acc))`, element by element (lengths equal, multiples of 8).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn mad_f16_avx2(acc: &mut [half::f16], v: &[half::f16], s: f32) {
        assert!(acc.len().is_multiple_of(8) && v.len() == acc.len());
        let (pa, pv) = (acc.as_mut_ptr(), v.as_ptr());
        let sv = _mm256_set1_ps(s);
        for i in (0..acc.len()).step_by(8) {
            // SAFETY: i + 8 <= acc.len() == v.len().
            let y = _mm256_fmadd_ps(load8_f16(pv.add(i)), sv, load8_f16(pa.add(i)));
            let h = _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT);
            _mm_storeu_si128(pa.add(i) as *mut __m128i, h);
        }
    }

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(v, 1);
        let lo = _mm256_castps256_ps128(v);
        let s4 = _mm_add_ps(hi, lo);
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        _mm_cvtss_f32(s1)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy_avx2(alpha: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        let va = _mm256_set1_ps(alpha);
        let mut i = 0;
        // SAFETY (all loads and stores): i + 8 <= n keeps them inside both slices.
        while i + 8 <= n {
            let v = _mm256_fmadd_ps(va, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
            _mm256_storeu_ps(py.add(i), v);
            i += 8;
        }
        while i < n {
            y[i] += alpha * x[i];
            i += 1;
        }
    }
}

/// `dst = src / sqrt(mean(src²) + eps) ⊙ weight` for one group (`src.len() == weight.len()`),
/// rounded as llama.cpp's `rms_norm` then `mul`: f32 squares summed in f64, the mean
/// rounded to f32, `(x · scale) · w`.
pub fn rms_norm(src: &[f32], weight: &[f32], eps: f32, dst: &mut [f32]) {
    let scale = rms_scale(src, eps);
    for ((d, &s), &w) in dst.iter_mut().zip(src).zip(weight) {
        *d = s * scale * w;
    }
}

fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum_sq: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    1.0 / ((sum_sq / x.len() as f64) as f32 + eps).sqrt()
}

/// In-place [`rms_norm`].
pub fn rms_norm_inplace(buf: &mut [f32], weight: &[f32], eps: f32) {
    let scale = rms_scale(buf, eps);
    for (d, &w) in buf.iter_mut().zip(weight) {
        *d = *d * scale * w;
    }
}

/// Cosines and sines of the `n_dims / 2` rotation angles at `pos`, into `cs` as
/// (cos, sin) pairs.
pub fn rope_angles(rope: &RopeParams, pos: usize, cs: &mut [(f32, f32)]) {
    let theta_scale = rope.freq_base.powf(-2.0 / rope.n_dims as f32);
    let mut theta = pos as f32;
    for (j, c) in cs.iter_mut().enumerate() {
        let factor = rope.freq_factors.as_ref().map_or(1.0, |f| f[j]);
        let angle = rope.freq_scale * (theta / factor);
        *c = (angle.cos(), angle.sin());
        theta *= theta_scale;
    }
}

/// Rotates one head by the angles `cs` (from [`rope_angles`]).
pub fn rope_head(head: &mut [f32], cs: &[(f32, f32)], pairing: RopePairing) {
    let half = cs.len();
    for (j, &(c, s)) in cs.iter().enumerate() {
        let (i0, i1) = match pairing {
            RopePairing::Adjacent => (2 * j, 2 * j + 1),
            RopePairing::Neox => (j, j + half),
        };
        let (x0, x1) = (head[i0], head[i1]);
        // As llama.cpp's C compiles `x0*c - x1*s` and `x0*s + x1*c`: the first
        // product fused with the sum.
        head[i0] = x0.mul_add(c, -(x1 * s));
        head[i1] = x0.mul_add(s, x1 * c);
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// gelu, tanh approximation, as llama.cpp's CPU backend computes it for f32 data (its
/// `GGML_GELU_FP16` lookup): 0 at or below −10, `x` at or above 10, and in between the
/// input rounded to f16 and looked up in a table of `0.5·x·(1 + tanh(√(2/π)·x·(1 +
/// 0.044715·x²)))` rounded to f16. The f16 roundings move gemma3's outputs by more than
/// its greedy choices can bear, so they are reproduced rather than avoided.
pub fn gelu_tanh(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_f16_table()[f16::from_f32(x).to_bits() as usize]
    }
}

/// `gelu(h)` rounded to f16 (held as f32) for every f16 bit pattern `h`.
fn gelu_f16_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let h = f16::from_bits(bits).to_f32();
                f16::from_f32(gelu_tanh_exact(h)).to_f32()
            })
            .collect()
    })
}

/// gelu, tanh approximation, in plain f32 as llama.cpp's C compiles it (the inner
/// `1 + 0.044715·x·x` as one fused multiply-add).
pub fn gelu_tanh_exact(x: f32) -> f32 {
    #[allow(clippy::excessive_precision)]
    const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_355_879_892_119_868_76;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (0.044_715 * x).mul_add(x, 1.0)).tanh())
}

/// Runs `f(row_index, row)` over the `row_len`-wide rows of `data`, rows split evenly
/// between the pool's threads.
pub fn par_rows(
    pool: &ThreadPool,
    data: &mut [f32],
    row_len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let n_rows = data.len() / row_len;
    let nt = pool.n_threads().min(n_rows).max(1);
    if nt == 1 {
        data.chunks_mut(row_len)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
        return;
    }
    let per = n_rows.div_ceil(nt);
    // One uncontended lock per thread's share hands out the disjoint slices.
    let shares: Vec<Mutex<&mut [f32]>> = data.chunks_mut(per * row_len).map(Mutex::new).collect();
    pool.run(|ti, _| {
        if let Some(share) = shares.get(ti) {
            let mut rows = share.lock().unwrap_or_else(|e| e.into_inner());
            for (i, r) in rows.chunks_mut(row_len).enumerate() {
                f(ti * per + i, r);
            }
        }
    });
}

/// In-place softmax.
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x as f64;
    }
    let inv = (1.0 / sum) as f32;
    for x in v.iter_mut() {
        *x *= inv;
    }
}

/// `k · q` for f16 keys and queries already rounded to f16 (held as f32), summed in
/// the order of llama.cpp's `ggml_vec_dot_f16` on AVX-512: four accumulators of 16 lanes
/// take elements `64i + 16j + l`; they are added pairwise (0+2, 1+3, then the two), the
/// 16 lanes folded in halves (8, 4, then 2+2 and the last pair), and elements past the
/// last whole 64 added afterwards in f64. Products of two f16 values are exact in f32,
/// so a multiply and an add equal llama.cpp's fused ones.
pub fn dot_f16_ggml(k: &[f16], q: &[f32]) -> f32 {
    let n = k.len();
    let np = n - n % 64;
    let mut acc = [[0f32; 16]; 4];
    for i in (0..np).step_by(64) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, a) in a.iter_mut().enumerate() {
                let e = i + 16 * j + l;
                *a += k[e].to_f32() * q[e];
            }
        }
    }
    let mut x = [0f32; 16];
    for l in 0..16 {
        x[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let mut sum = fold16(x) as f64;
    for e in np..n {
        sum += (k[e].to_f32() * q[e]) as f64;
    }
    sum as f32
}

/// The lane fold of `_mm512_reduce_add_ps` (as GCC writes it): halves, then quarters,
/// then lanes 0+2 and 1+3, then the two.
#[inline(always)]
pub(crate) fn fold16(x: [f32; 16]) -> f32 {
    let mut t8 = [0f32; 8];
    for i in 0..8 {
        t8[i] = x[i + 8] + x[i];
    }
    let mut t4 = [0f32; 4];
    for i in 0..4 {
        t4[i] = t8[i + 4] + t8[i];
    }
    (t4[0] + t4[2]) + (t4[1] + t4[3])
}

/// Per-thread scratch space of the attention kernel.
#[derive(Default)]
pub struct AttnScratch {
    scores: Vec<f32>,
    /// A query head rounded to f16.
    query: Vec<f32>,
    /// The f16 output accumulator of [`KvElem::attend`] over an f16 cache.
    acc16: Vec<f16>,
    /// llama.cpp's tiled path (64 or more queries over an f16 cache).
    tiled: super::attn_tiled::TiledScratch,
}

/// Query heads whose dot products with a key row are taken in one pass over the row.
const MAX_HEADS_AT_ONCE: usize = 4;

/// `out[i] = k · qs[i]` for the `out.len()` (at most 4) rows of `qs`, each `k.len()` long.
pub fn dot_many(k: &[f32], qs: &[f32], out: &mut [f32]) {
    let d = k.len();
    #[cfg(target_arch = "x86_64")]
    if out.len() == 4
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
    {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        let r = unsafe { x86::dot4_avx2(k, qs) };
        out.copy_from_slice(&r);
        return;
    }
    for (o, q) in out.iter_mut().zip(qs.chunks_exact(d)) {
        *o = dot(k, q);
    }
}

/// `out = Σ_j w[j] · rows[j]` for the `w.len()` rows of `out.len()` floats in `rows`.
pub fn weighted_sum(w: &[f32], rows: &[f32], out: &mut [f32]) {
    let d = out.len();
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(32)
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
    {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { x86::weighted_sum_avx2(w, rows, out) };
        return;
    }
    out.fill(0.0);
    for (&s, row) in w.iter().zip(rows.chunks_exact(d)) {
        axpy(s, row, out);
    }
}

/// Tokens of one attention work item: items are (kv head, run of tokens), so a run's keys
/// stay in cache for all its tokens and query heads.
const ATTN_TOKENS_PER_ITEM: usize = 16;

/// Causal attention of the batch's queries (`q`: rows × n_head × head_dim, the rows of
/// `runs` in order, each row seeing the cells of its own sequence up to its position)
/// over `kv`, writing `out` (rows × n_head × head_dim_v). Query head h reads kv head
/// h / (n_head / n_head_kv).
pub fn attention(
    pool: &ThreadPool,
    scratch: &[Mutex<AttnScratch>],
    kv: &CpuKv,
    q: &[f32],
    runs: &[SeqRun],
    shape: &AttnShape,
    out: &mut [f32],
) {
    let group = shape.n_head / shape.n_head_kv;
    let (hd, hdv) = (shape.head_dim, shape.head_dim_v);
    let q_row = shape.n_head * hd;
    let out_row = shape.n_head * hdv;
    // Chunks of at most ATTN_TOKENS_PER_ITEM rows of one run: (run index, first row of
    // the run, rows of the chunk).
    let mut chunks = Vec::new();
    let mut row0 = 0;
    for (r, run) in runs.iter().enumerate() {
        for t0 in (0..run.len).step_by(ATTN_TOKENS_PER_ITEM) {
            let t1 = (t0 + ATTN_TOKENS_PER_ITEM).min(run.len);
            chunks.push((r, row0, row0 + t0..row0 + t1));
        }
        row0 += run.len;
    }
    let n_chunks = chunks.len();
    // Few tokens (decode): split a group's query heads across threads too, at the cost of
    // reading the group's keys once per head instead of once per group.
    let heads_per_item = if n_chunks * shape.n_head_kv >= pool.n_threads() {
        group
    } else {
        1
    };
    let splits = group / heads_per_item;
    let n_items = n_chunks * shape.n_head_kv * splits;
    // Item (head block, chunk); the chunk of row t is found by a scan (few chunks).
    let chunk_of_row = |t: usize| {
        chunks
            .iter()
            .position(|(_, _, rows)| rows.contains(&t))
            .expect("every row lies in a chunk")
    };
    // Each item writes the outputs of its tokens' heads; those slices are disjoint, so
    // each item gets its slices behind an uncontended lock.
    let mut outs: Vec<Vec<&mut [f32]>> = (0..n_items).map(|_| Vec::new()).collect();
    let mut chunk = 0;
    for (t, row) in out.chunks_mut(out_row).take(row0).enumerate() {
        if !chunks[chunk].2.contains(&t) {
            chunk = chunk_of_row(t);
        }
        for (i, heads) in row.chunks_mut(heads_per_item * hdv).enumerate() {
            outs[i * n_chunks + chunk].push(heads);
        }
    }
    let outs: Vec<Mutex<Vec<&mut [f32]>>> = outs.into_iter().map(Mutex::new).collect();
    let first_pos = |p: usize| match shape.window {
        Some(w) => (p + 1).saturating_sub(w),
        None => 0,
    };
    pool.run(|ti, nt| {
        let mut guard = scratch[ti].lock().unwrap_or_else(|e| e.into_inner());
        for item in (ti..n_items).step_by(nt) {
            let (head_block, c) = (item / n_chunks, item % n_chunks);
            let (r, run_row0, ref rows) = chunks[c];
            let run = &runs[r];
            // llama.cpp's CPU flash attention over an f16 cache takes two paths, both
            // reproduced bit for bit, chosen by the queries of the batch (here: of the
            // run, which is the batch the sequence would be alone): below 64 queries one
            // query at a time, the query converted to f16 and the output accumulated in
            // f16 (`KvElem::attend`); from 64 on, tiles of keys in f32 (`attn_tiled`).
            let one_at_a_time = kv.is_f16() && run.len < TILED_ATTENTION_MIN_QUERIES;
            let tiled = kv.is_f16() && !one_at_a_time;
            let head0 = head_block * heads_per_item;
            let g = head0 / group;
            let pos_of = |t: usize| run.pos0 + (t - run_row0);
            let lo = first_pos(pos_of(rows.start));
            let hi = pos_of(rows.end - 1) + 1;
            let job = RunJob {
                q,
                q_row,
                head0,
                heads_per_item,
                tokens: rows.clone(),
                pos0: run.pos0,
                row0: run_row0,
                lo,
                first_pos: &first_pos,
                shape,
                one_at_a_time,
            };
            let mut out_heads = outs[item].lock().unwrap_or_else(|e| e.into_inner());
            let (clo, chi) = (run.cell0 + lo, run.cell0 + hi);
            match (kv.keys(g, clo, chi), kv.values(g, clo, chi)) {
                (KvRows::F32(k), KvRows::F32(v)) => job.run(k, v, &mut guard, &mut out_heads),
                (KvRows::F16(k), KvRows::F16(v)) if tiled => {
                    job.run_tiled(k, v, &mut guard, &mut out_heads)
                }
                (KvRows::F16(k), KvRows::F16(v)) => job.run(k, v, &mut guard, &mut out_heads),
                _ => unreachable!("keys and values share one element type"),
            }
        }
    });
}

/// One attention work item: a run of tokens and some query heads of one kv head.
struct RunJob<'a, F: Fn(usize) -> usize> {
    q: &'a [f32],
    q_row: usize,
    head0: usize,
    heads_per_item: usize,
    /// Rows of the batch.
    tokens: std::ops::Range<usize>,
    /// Row `row0` of the batch is at position `pos0` of its sequence (the run's start).
    pos0: usize,
    row0: usize,
    /// First position of `keys`/`values`.
    lo: usize,
    /// First position a query at position p sees.
    first_pos: &'a F,
    shape: &'a AttnShape,
    /// llama.cpp's one-query-at-a-time path (f16 queries and accumulator).
    one_at_a_time: bool,
}

impl<F: Fn(usize) -> usize> RunJob<'_, F> {
    /// The item by [`super::attn_tiled`]: every query row of its tokens and heads.
    fn run_tiled(
        &self,
        keys: &[f16],
        values: &[f16],
        scratch: &mut AttnScratch,
        out_heads: &mut [&mut [f32]],
    ) {
        let (hd, hdv) = (self.shape.head_dim, self.shape.head_dim_v);
        let mut rows = Vec::with_capacity(self.tokens.len() * self.heads_per_item);
        let mut outs = Vec::with_capacity(rows.capacity());
        for (t, out_t) in self.tokens.clone().zip(out_heads.iter_mut()) {
            let p = self.pos0 + (t - self.row0);
            for (h, out) in out_t.chunks_mut(hdv).enumerate() {
                let start = t * self.q_row + (self.head0 + h) * hd;
                rows.push(super::attn_tiled::QueryRow {
                    q: &self.q[start..start + hd],
                    first: (self.first_pos)(p),
                    last: p,
                });
                outs.push(out);
            }
        }
        let kv = super::attn_tiled::KvRows {
            keys,
            values,
            lo: self.lo,
            hd,
            hdv,
        };
        super::attn_tiled::attend(&rows, &kv, self.shape.scale, &mut scratch.tiled, &mut outs);
    }

    /// `keys`/`values`: the kv head's rows from position `lo` on.
    fn run<E: KvElem>(
        &self,
        keys: &[E],
        values: &[E],
        scratch: &mut AttnScratch,
        out_heads: &mut [&mut [f32]],
    ) {
        let (hd, hdv) = (self.shape.head_dim, self.shape.head_dim_v);
        let AttnScratch {
            scores,
            query,
            acc16,
            ..
        } = scratch;
        for (t, out_heads_t) in self.tokens.clone().zip(out_heads.iter_mut()) {
            let p = self.pos0 + (t - self.row0);
            let (klo, khi) = ((self.first_pos)(p) - self.lo, p + 1 - self.lo);
            let n_keys = khi - klo;
            // The queries of this item's heads, side by side (rounded to f16 where the cache
            // is f16).
            let start = t * self.q_row + self.head0 * hd;
            let q_t = &self.q[start..start + self.heads_per_item * hd];
            query.clear();
            if self.one_at_a_time {
                query.extend(q_t.iter().map(|&x| f16::from_f32(x).to_f32()));
            } else {
                query.extend_from_slice(q_t);
            }
            // scores[h][j]: every key row is read once for all heads.
            scores.clear();
            scores.resize(self.heads_per_item * n_keys, 0.0);
            let mut dots = [0f32; MAX_HEADS_AT_ONCE];
            for j in 0..n_keys {
                let k = &keys[(klo + j) * hd..(klo + j + 1) * hd];
                for (h0, qs) in query.chunks(MAX_HEADS_AT_ONCE * hd).enumerate() {
                    let n = qs.len() / hd;
                    E::dot_many(k, qs, &mut dots[..n], self.one_at_a_time);
                    for (i, &d) in dots[..n].iter().enumerate() {
                        scores[(h0 * MAX_HEADS_AT_ONCE + i) * n_keys + j] = d * self.shape.scale;
                    }
                }
            }
            for (h, row) in scores.chunks_mut(n_keys).enumerate() {
                let o = &mut out_heads_t[h * hdv..(h + 1) * hdv];
                if self.one_at_a_time {
                    E::attend(row, &values[klo * hdv..khi * hdv], acc16, o);
                } else {
                    softmax(row);
                    E::weighted_sum(row, &values[klo * hdv..khi * hdv], o);
                }
            }
        }
    }
}

/// Element types of the KV cache, with the two products attention needs.
pub trait KvElem: Copy {
    /// `out[i] = k · qs[i]` for the `out.len()` (at most 4) rows of `qs`; `ordered`:
    /// summed in llama.cpp's order.
    fn dot_many(k: &[Self], qs: &[f32], out: &mut [f32], ordered: bool);
    /// `out = Σ_j w[j] · rows[j]` for the `w.len()` rows of `out.len()` elements.
    fn weighted_sum(w: &[f32], rows: &[Self], out: &mut [f32]);
    /// `out = Σ_j softmax(scores)[j] · values[j]` (`scores` may be overwritten; `acc16`
    /// is scratch).
    fn attend(scores: &mut [f32], values: &[Self], acc16: &mut Vec<f16>, out: &mut [f32]) {
        let _ = acc16;
        softmax(scores);
        Self::weighted_sum(scores, values, out);
    }
}

impl KvElem for f32 {
    fn dot_many(k: &[f32], qs: &[f32], out: &mut [f32], _ordered: bool) {
        dot_many(k, qs, out);
    }

    fn weighted_sum(w: &[f32], rows: &[f32], out: &mut [f32]) {
        weighted_sum(w, rows, out);
    }
}

/// f16 rows are read in place (converted eight at a time with F16C where available).
impl KvElem for f16 {
    /// `ordered`: each product summed as llama.cpp's f16 dot (see [`dot_f16_ggml`]).
    fn dot_many(k: &[f16], qs: &[f32], out: &mut [f32], ordered: bool) {
        let d = k.len();
        #[cfg(target_arch = "x86_64")]
        if x86::has_f16c() {
            if ordered {
                for (o, q) in out.iter_mut().zip(qs.chunks_exact(d)) {
                    // SAFETY: the CPU supports AVX2, FMA and F16C (checked just above).
                    *o = unsafe { x86::dot_f16_ggml_avx2(k, q) };
                }
            } else if out.len() == 4 && d.is_multiple_of(8) {
                // SAFETY: as above.
                out.copy_from_slice(&unsafe { x86::dot4_f16_avx2(k, qs) });
            } else if d.is_multiple_of(8) {
                for (o, q) in out.iter_mut().zip(qs.chunks_exact(d)) {
                    // SAFETY: as above.
                    *o = unsafe { x86::dot_f16_avx2(k, q) };
                }
            } else {
                for (o, q) in out.iter_mut().zip(qs.chunks_exact(d)) {
                    *o = dot_f16_ggml(k, q);
                }
            }
            return;
        }
        for (o, q) in out.iter_mut().zip(qs.chunks_exact(d)) {
            *o = dot_f16_ggml(k, q);
        }
    }

    /// As llama.cpp's CPU flash attention over an f16 cache (its default): keys in
    /// order with a running maximum and sum, the output accumulated in f16 — rescaled
    /// when the maximum grows, and each `value · weight` added with one f16 rounding —
    /// then divided by the sum. Rounding like this puts gemma3's GPL-3 perplexity on
    /// llama.cpp's figure (13.917 against 13.906; exact f32 sums gave 13.877).
    fn attend(scores: &mut [f32], values: &[f16], acc16: &mut Vec<f16>, out: &mut [f32]) {
        let d = out.len();
        acc16.clear();
        acc16.resize(d, f16::ZERO);
        #[cfg(target_arch = "x86_64")]
        let simd = d.is_multiple_of(8) && x86::has_f16c();
        #[cfg(not(target_arch = "x86_64"))]
        let simd = false;
        let mut max = f32::NEG_INFINITY;
        let mut sum = 0f32;
        for (&s, v) in scores.iter().zip(values.chunks_exact(d)) {
            // The new key's weight, and the factor that rescales what came before.
            let (weight, rescale) = if s > max {
                let rescale = (max - s).exp();
                max = s;
                (1.0, rescale)
            } else {
                ((s - max).exp(), 1.0)
            };
            if simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU supports AVX2, FMA and F16C (checked above); lengths
                // are d, a multiple of 8.
                unsafe {
                    if rescale != 1.0 {
                        x86::scale_f16_avx2(acc16, rescale);
                    }
                    x86::mad_f16_avx2(acc16, v, weight);
                }
            } else {
                for (a, x) in acc16.iter_mut().zip(v) {
                    let scaled = if rescale != 1.0 {
                        f16::from_f32(a.to_f32() * rescale).to_f32()
                    } else {
                        a.to_f32()
                    };
                    *a = f16::from_f32(x.to_f32().mul_add(weight, scaled));
                }
            }
            sum = sum.mul_add(rescale, weight);
        }
        let inv = 1.0 / sum;
        for (o, a) in out.iter_mut().zip(acc16.iter()) {
            *o = a.to_f32() * inv;
        }
    }

    fn weighted_sum(w: &[f32], rows: &[f16], out: &mut [f32]) {
        let d = out.len();
        #[cfg(target_arch = "x86_64")]
        if d.is_multiple_of(32) && x86::has_f16c() {
            // SAFETY: the CPU supports AVX2, FMA and F16C (checked just above).
            unsafe { x86::weighted_sum_f16_avx2(w, rows, out) };
            return;
        }
        out.fill(0.0);
        for (&s, row) in w.iter().zip(rows.chunks_exact(d)) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += s * v.to_f32();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_dot_and_axpy_agree_with_scalar() {
        for n in [0, 1, 7, 8, 15, 16, 17, 33, 256, 259] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4, "n {n}");
            let mut y = b.clone();
            axpy(0.5, &a, &mut y);
            for i in 0..n {
                assert!((y[i] - (b[i] + 0.5 * a[i])).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn dot_many_and_weighted_sum_agree_with_scalar() {
        for d in [8, 30, 64, 256] {
            let k: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let qs: Vec<f32> = (0..4 * d).map(|i| (i as f32 * 0.13).cos()).collect();
            for n in 1..=4 {
                let mut out = vec![0f32; n];
                dot_many(&k, &qs[..n * d], &mut out);
                for (r, o) in out.iter().enumerate() {
                    assert!((o - dot_scalar(&k, &qs[r * d..(r + 1) * d])).abs() < 1e-4);
                }
            }
            let w = [0.5f32, -0.25, 2.0];
            let mut out = vec![7f32; d];
            weighted_sum(&w, &qs[..3 * d], &mut out);
            for (i, o) in out.iter().enumerate() {
                let want: f32 = (0..3).map(|j| w[j] * qs[j * d + i]).sum();
                assert!((o - want).abs() < 1e-5, "d {d} i {i}");
            }
        }
    }

    /// The AVX2 form of llama.cpp's f16 dot gives the scalar form's bits, with and
    /// without elements past the last whole 64.
    #[test]
    fn ordered_f16_dot_is_the_same_at_every_level() {
        #[cfg(target_arch = "x86_64")]
        if x86::has_f16c() {
            for d in [64, 100, 256, 320] {
                let k: Vec<f16> = (0..d)
                    .map(|i| f16::from_f32((i as f32 * 0.71).sin() * 3.0))
                    .collect();
                let q: Vec<f32> = (0..d)
                    .map(|i| f16::from_f32((i as f32 * 0.29).cos() * 7.0).to_f32())
                    .collect();
                // SAFETY: F16C, AVX2 and FMA were detected just above.
                let simd = unsafe { x86::dot_f16_ggml_avx2(&k, &q) };
                assert_eq!(simd.to_bits(), dot_f16_ggml(&k, &q).to_bits(), "d {d}");
            }
        }
    }

    #[test]
    fn f16_rows_give_the_products_of_their_f32_values() {
        for d in [8, 24, 64, 256] {
            let k16: Vec<f16> = (0..d)
                .map(|i| f16::from_f32((i as f32 * 0.37).sin()))
                .collect();
            let k32: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
            let qs: Vec<f32> = (0..4 * d).map(|i| (i as f32 * 0.13).cos()).collect();
            for (n, ordered) in (1..=4).flat_map(|n| [(n, false), (n, true)]) {
                let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
                <f16 as KvElem>::dot_many(&k16, &qs[..n * d], &mut a, ordered);
                <f32 as KvElem>::dot_many(&k32, &qs[..n * d], &mut b, ordered);
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() < 1e-4, "d {d} n {n}");
                }
            }
            if d % 32 == 0 {
                let rows16: Vec<f16> = qs[..3 * d].iter().map(|&x| f16::from_f32(x)).collect();
                let rows32: Vec<f32> = rows16.iter().map(|x| x.to_f32()).collect();
                let w = [0.5f32, -0.25, 2.0];
                let (mut a, mut b) = (vec![1f32; d], vec![2f32; d]);
                <f16 as KvElem>::weighted_sum(&w, &rows16, &mut a);
                <f32 as KvElem>::weighted_sum(&w, &rows32, &mut b);
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn f16_attend_is_the_softmax_weighted_sum_up_to_f16_rounding() {
        let (d, n) = (64, 37);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        // Rising and falling scores, so the running maximum is replaced several times.
        let scores: Vec<f32> = (0..n)
            .map(|j| 3.0 * next() + (j % 7) as f32 * 0.5)
            .collect();
        let values: Vec<f16> = (0..n * d).map(|_| f16::from_f32(4.0 * next())).collect();
        // f64 reference of the exact softmax-weighted sum of the f16 values.
        let m = scores
            .iter()
            .fold(f64::NEG_INFINITY, |m, &s| m.max(s as f64));
        let w: Vec<f64> = scores.iter().map(|&s| (s as f64 - m).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut acc = Vec::new();
        let mut out = vec![0f32; d];
        <f16 as KvElem>::attend(&mut scores.clone(), &values, &mut acc, &mut out);
        for (i, &o) in out.iter().enumerate() {
            let want: f64 = (0..n)
                .map(|j| w[j] / total * values[j * d + i].to_f32() as f64)
                .sum();
            // f16 keeps 11 bits; a few dozen roundings of values below ~4·Σw stay far
            // inside this bound, a wrong weight or rescale does not.
            assert!((o as f64 - want).abs() < 2e-2, "{i}: {o} vs {want}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut v = vec![1.0, 3.0, 2.0, -1000.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[1] > v[2] && v[2] > v[0] && v[3] == 0.0);
    }

    #[test]
    fn gelu_tanh_matches_hand_values() {
        // 0.5·1·(1 + tanh(sqrt(2/π)·1.044715)) = 0.841192
        assert!((gelu_tanh_exact(1.0) - 0.841_192).abs() < 1e-6);
        // The lookup rounds the result to f16: 0.841192 lies between 0.84082 and
        // 0.84131 (steps of 2^-11), nearer the latter.
        assert_eq!(gelu_tanh(1.0), 0.841_308_6);
        assert_eq!(gelu_tanh(0.0), 0.0);
        // The input is rounded to f16 first: 1.0007 is 1 + 0.72 steps of 2^-10 → 1.0009766,
        // so its gelu is f16(gelu(1.0009766)) = 0.84228516, not f16(gelu(1.0007)) = 0.8417969.
        let h = 1.000_976_6f32;
        assert_eq!(
            gelu_tanh(1.0007),
            f16::from_f32(gelu_tanh_exact(h)).to_f32()
        );
        assert_eq!(gelu_tanh(1.0007), 0.842_285_16);
        assert_ne!(
            gelu_tanh(1.0007),
            f16::from_f32(gelu_tanh_exact(1.0007)).to_f32()
        );
        // Outside ±10 the lookup is skipped: 0 below, the identity above.
        assert_eq!(gelu_tanh(-10.0), 0.0);
        assert_eq!(gelu_tanh(12.345), 12.345);
        assert_eq!(
            gelu_tanh(-9.0),
            f16::from_f32(gelu_tanh_exact(-9.0)).to_f32()
        );
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
    }
}
