//! The matmul kernels against the naive oracle, for every weight type, SIMD level,
//! thread count and a spread of token counts, on random blocks.
//!
//! The oracle is the dequantized weights times the activations exactly as the kernels
//! see them (quantized into the partner format and dequantized again), summed in f64;
//! so the only differences left are f32 rounding, and the tolerance can be tight.

use half::{bf16, f16};
use tandem::cpu::kernels::portable::dequantize_row_by_kernels;
use tandem::cpu::reference::activations_as_seen_by_kernels;
use tandem::cpu::{matmul_at_level, SimdLevel, ThreadPool, WeightRef};
use tandem::quant::GgmlType;

const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Offsets of the f16 scale fields in one block (the rest may be any bytes).
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        _ => &[],
    }
}

fn random_weights(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let n = rows * cols;
    match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.float().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.float()).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.float()).to_le_bytes())
            .collect(),
        _ => {
            let bytes = n / ty.block_elems() * ty.block_bytes();
            let mut data: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
            for block in data.chunks_exact_mut(ty.block_bytes()) {
                for &at in scale_offsets(ty) {
                    let scale = f16::from_f32(rng.float() * 0.05);
                    block[at..at + 2].copy_from_slice(&scale.to_le_bytes());
                }
            }
            data
        }
    }
}

/// The oracle's weights: `quant`'s dequantizers, written independently of the kernels.
fn dequantize(ty: GgmlType, row: &[u8], dst: &mut [f32]) {
    ty.dequantize_row(row, dst);
}

/// The oracle and, per output, the sum of |terms| (the scale for the tolerance).
fn oracle(w: WeightRef<'_>, x: &[f32], n_tokens: usize) -> (Vec<f64>, Vec<f64>) {
    let xs = activations_as_seen_by_kernels(w, x, n_tokens);
    let rb = w.row_bytes();
    let mut row = vec![0f32; w.cols];
    let mut y = vec![0f64; n_tokens * w.rows];
    let mut mag = vec![0f64; n_tokens * w.rows];
    for r in 0..w.rows {
        dequantize(w.ty, &w.data[r * rb..(r + 1) * rb], &mut row);
        for t in 0..n_tokens {
            let xt = &xs[t * w.cols..(t + 1) * w.cols];
            for (a, b) in row.iter().zip(xt) {
                y[t * w.rows + r] += *a as f64 * *b as f64;
                mag[t * w.rows + r] += (*a as f64 * *b as f64).abs();
            }
        }
    }
    (y, mag)
}

fn check_type(ty: GgmlType, rows: usize, cols: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ty.id() as u64);
    let data = random_weights(ty, rows, cols, &mut rng);
    let w = WeightRef {
        ty,
        data: &data,
        rows,
        cols,
    };
    for n_tokens in [1, 3, 7, 64] {
        let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.float() * 2.0).collect();
        let (want, mag) = oracle(w, &x, n_tokens);
        let mut scalar = vec![0f32; n_tokens * rows];
        for threads in [1, 2] {
            let pool = ThreadPool::new(threads);
            for level in SimdLevel::available() {
                let mut got = vec![f32::NAN; n_tokens * rows];
                matmul_at_level(&pool, level, w, &x, n_tokens, &mut got);
                for i in 0..got.len() {
                    let err = (got[i] as f64 - want[i]).abs();
                    assert!(
                        err <= 1e-4 * mag[i] + 1e-6,
                        "{ty} {level:?} threads {threads} tokens {n_tokens} out {i}: got {} want {} (|terms| {})",
                        got[i],
                        want[i],
                        mag[i]
                    );
                }
                if level == SimdLevel::Scalar {
                    scalar.copy_from_slice(&got);
                } else {
                    // SIMD against portable: same arithmetic up to summation order.
                    for i in 0..got.len() {
                        let err = (got[i] - scalar[i]).abs() as f64;
                        assert!(
                            err <= 1e-5 * mag[i] + 1e-6,
                            "{ty} {level:?} vs scalar, tokens {n_tokens} out {i}: {} vs {}",
                            got[i],
                            scalar[i]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn kernel_block_decoding_equals_quant_dequantize() {
    for ty in WEIGHT_TYPES.into_iter().filter(|t| t.is_quantized()) {
        let mut rng = Rng(0x1234_5678 ^ ty.id() as u64);
        let cols = 1024;
        let data = random_weights(ty, 4, cols, &mut rng);
        let mut ours = vec![0f32; cols];
        let mut theirs = vec![0f32; cols];
        let rb = data.len() / 4;
        for row in data.chunks_exact(rb) {
            dequantize_row_by_kernels(ty, row, &mut ours);
            ty.dequantize_row(row, &mut theirs);
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                    "{ty} element {i}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn every_weight_type_matches_the_oracle() {
    for ty in WEIGHT_TYPES {
        check_type(ty, 37, 512);
    }
}

#[test]
fn short_rows_of_legacy_and_float_types() {
    for ty in WEIGHT_TYPES.into_iter().filter(|t| t.block_elems() <= 32) {
        check_type(ty, 5, 96);
    }
}

#[test]
fn activation_formats_as_weights_take_the_fallback() {
    for ty in [GgmlType::Q8_1, GgmlType::Q8K] {
        let rows = 5;
        let cols = 512;
        let mut rng = Rng(99);
        // Whole blocks from the reference quantizer (valid scales and sums).
        let values: Vec<f32> = (0..rows * cols).map(|_| rng.float()).collect();
        let mut data = vec![0u8; rows * cols / ty.block_elems() * ty.block_bytes()];
        ty.quantize_row(&values, &mut data);
        let w = WeightRef {
            ty,
            data: &data,
            rows,
            cols,
        };
        let x: Vec<f32> = (0..3 * cols).map(|_| rng.float()).collect();
        let (want, mag) = oracle(w, &x, 3);
        let mut got = vec![0f32; 3 * rows];
        tandem::cpu::matmul(&ThreadPool::new(2), w, &x, 3, &mut got);
        for i in 0..got.len() {
            assert!(
                (got[i] as f64 - want[i]).abs() <= 1e-4 * mag[i] + 1e-6,
                "{ty} out {i}"
            );
        }
    }
}

#[test]
fn simd_level_names_parse() {
    assert_eq!(SimdLevel::from_name("scalar"), Some(SimdLevel::Scalar));
    assert_eq!(SimdLevel::from_name(" AVX2 "), Some(SimdLevel::Avx2));
    assert_eq!(SimdLevel::from_name("avx512"), Some(SimdLevel::Avx512));
    assert_eq!(SimdLevel::from_name("neon"), None);
    assert!(SimdLevel::available().contains(&SimdLevel::Scalar));
    assert!(SimdLevel::available().contains(&SimdLevel::selected()));
}

#[test]
fn long_rows_of_k_quants() {
    for ty in WEIGHT_TYPES.into_iter().filter(|t| t.block_elems() == 256) {
        check_type(ty, 3, 2816);
    }
}

#[test]
fn simd_activation_quantizers_are_bit_exact() {
    use tandem::cpu::act_quant::{quantize_block32, quantize_q8k};
    use tandem::cpu::kernels::KernelTable;
    let mut rng = Rng(42);
    let cols = 256 * 4;
    let mut x: Vec<f32> = (0..cols).map(|_| rng.float() * 3.0).collect();
    // Block 0: scale exactly 1 with ties at .5 (127 is the max); block 1 of Q8K too.
    x[0] = 127.0;
    for (i, v) in [2.5f32, -3.5, 0.5, -0.5, 126.5, 1.5].iter().enumerate() {
        x[1 + i] = *v;
    }
    x[256] = -127.0;
    for (i, v) in [2.5f32, -3.5, 0.5, -0.5, 126.5, 1.5].iter().enumerate() {
        x[257 + i] = *v;
    }
    // An all-zero block.
    x[512..768].fill(0.0);
    let (mut q0, mut d0, mut s0) = (
        vec![0i8; cols],
        vec![0f32; cols / 32],
        vec![0f32; cols / 32],
    );
    quantize_block32(&x, &mut q0, &mut d0, &mut s0);
    let (mut k0, mut kd0, mut b0) = (
        vec![0i8; cols],
        vec![0f32; cols / 256],
        vec![0i16; cols / 16],
    );
    quantize_q8k(&x, &mut k0, &mut kd0, &mut b0);
    for level in SimdLevel::available() {
        let table = KernelTable::for_level(level);
        let (mut q, mut d, mut s) = (
            vec![0i8; cols],
            vec![0f32; cols / 32],
            vec![0f32; cols / 32],
        );
        (table.quantize_block32)(&x, &mut q, &mut d, &mut s);
        assert_eq!((&q, &d, &s), (&q0, &d0, &s0), "{level:?} block32");
        let (mut k, mut kd, mut b) = (
            vec![0i8; cols],
            vec![0f32; cols / 256],
            vec![0i16; cols / 16],
        );
        (table.quantize_q8k)(&x, &mut k, &mut kd, &mut b);
        assert_eq!((&k, &kd, &b), (&k0, &kd0, &b0), "{level:?} q8k");
    }
}

/// The types summed in llama.cpp's order give exactly the bits of the specification
/// (`summation::dot`) at every SIMD level, on both paths (row kernels for up to four
/// tokens, prefill tiles beyond), with tokens inside and outside whole groups of four.
#[test]
fn ordered_types_give_the_specified_bits_at_every_level() {
    use tandem::cpu::act_quant::{ActFormat, QuantizedActs};
    use tandem::cpu::kernels::summation;
    for ty in WEIGHT_TYPES
        .into_iter()
        .filter(|&t| summation::follows_llama_cpp(t))
    {
        // 47 rows: decode chunks end in groups of 4, 3 and fewer rows.
        let (rows, cols) = (47, if ty.block_elems() == 256 { 768 } else { 160 });
        let mut rng = Rng(0x5eed ^ ty.id() as u64);
        let data = random_weights(ty, rows, cols, &mut rng);
        let w = WeightRef {
            ty,
            data: &data,
            rows,
            cols,
        };
        let rb = w.row_bytes();
        for n_tokens in [1, 2, 3, 4, 5, 6, 7, 9, 12, 35] {
            let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.float() * 4.0).collect();
            let format = ActFormat::for_weight(ty);
            let q = QuantizedActs::quantize(format, &x, n_tokens, cols);
            let nb = cols / format.block_elems();
            let want: Vec<f32> = (0..n_tokens * rows)
                .map(|i| {
                    let (t, r) = (i / rows, i % rows);
                    let bsums = if q.bsums.is_empty() {
                        &[][..]
                    } else {
                        &q.bsums[t * cols / 16..(t + 1) * cols / 16]
                    };
                    summation::dot(
                        ty,
                        &data[r * rb..(r + 1) * rb],
                        &q.qs[t * cols..(t + 1) * cols],
                        &q.d[t * nb..(t + 1) * nb],
                        bsums,
                        summation::BatchPlace::of(t, n_tokens),
                    )
                    .unwrap()
                })
                .collect();
            for threads in [1, 2] {
                let pool = ThreadPool::new(threads);
                for level in SimdLevel::available() {
                    let mut got = vec![f32::NAN; n_tokens * rows];
                    matmul_at_level(&pool, level, w, &x, n_tokens, &mut got);
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            e.to_bits(),
                            "{ty} {level:?} threads {threads} tokens {n_tokens} token {} row {}: {g} vs {e}",
                            i / rows,
                            i % rows
                        );
                    }
                }
            }
        }
    }
}

/// A batched decode step sums every token as a lone one: for every weight type and SIMD
/// level, each row of a `RowOrder::Lone` product of n tokens has exactly the bits of
/// that token's product on its own (a batch of one), whatever n and the thread count.
#[test]
fn lone_order_gives_every_token_the_bits_of_a_batch_of_one() {
    use tandem::cpu::{matmul_ordered_at_level, RowOrder};
    for ty in WEIGHT_TYPES {
        let (rows, cols) = (37, if ty.block_elems() == 256 { 512 } else { 96 });
        let mut rng = Rng(0x10e ^ ty.id() as u64);
        let data = random_weights(ty, rows, cols, &mut rng);
        let w = WeightRef {
            ty,
            data: &data,
            rows,
            cols,
        };
        let n_tokens = 9;
        let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.float() * 4.0).collect();
        for level in SimdLevel::available() {
            let alone_pool = ThreadPool::new(1);
            let mut alone = vec![f32::NAN; n_tokens * rows];
            for (xt, yt) in x.chunks(cols).zip(alone.chunks_mut(rows)) {
                matmul_at_level(&alone_pool, level, w, xt, 1, yt);
            }
            for threads in [1, 2] {
                let pool = ThreadPool::new(threads);
                for n in [2, 3, 5, 7, 9] {
                    let mut got = vec![f32::NAN; n * rows];
                    let order = RowOrder::Lone;
                    matmul_ordered_at_level(&pool, level, w, &x[..n * cols], n, order, &mut got);
                    for (i, (g, e)) in got.iter().zip(&alone).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            e.to_bits(),
                            "{ty} {level:?} threads {threads} tokens {n}: token {} row {}",
                            i / rows,
                            i % rows
                        );
                    }
                }
            }
        }
    }
}
