//! Quantize → dequantize round trips on random rows, checked against error bounds
//! derived from each format's step size (recomputed here from the block's own data).

use half::f16;
use proptest::prelude::*;
use tandem::quant::GgmlType;

/// A row of `n` values: Gaussian-like with occasional outliers, times `scale`, from a
/// small deterministic generator so proptest can explore seeds and scales.
fn make_row(n: usize, seed: u64, scale: f32, outliers: bool) -> Vec<f32> {
    let mut s = seed | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let u1 = uniform().max(1e-12);
            let u2 = uniform();
            let g = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let boost = if outliers && uniform() < 0.01 {
                8.0
            } else {
                1.0
            };
            (g * boost) as f32 * scale
        })
        .collect()
}

fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let mut bytes = vec![0u8; ty.bytes_for(x.len() as u64).unwrap() as usize];
    ty.quantize_row(x, &mut bytes);
    let mut back = vec![0f32; x.len()];
    ty.dequantize_row(&bytes, &mut back);
    back
}

fn row_strategy(block: usize) -> impl Strategy<Value = Vec<f32>> {
    (
        prop::sample::select(vec![1usize, 2, 3, 5]),
        any::<u64>(),
        -3i32..=3,
        any::<bool>(),
    )
        .prop_map(move |(blocks, seed, exp, outliers)| {
            make_row(blocks * block, seed, 10f32.powi(exp), outliers)
        })
}

fn abs_max(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

fn signed_abs_max(x: &[f32]) -> f32 {
    let mut best = 0.0f32;
    for &v in x {
        if v.abs() > best.abs() {
            best = v;
        }
    }
    best
}

/// Q4_0 / Q5_0: d = mx/−half; codes run −half..half−1 so elements beyond
/// (half − 0.5)·|d| on the far side clip (error up to |d|); all others round (|d|/2).
/// The stored d is f16, adding at most `half·|d − d16|`.
fn check_symmetric_legacy(x: &[f32], back: &[f32], half: f32) {
    for (xb, bb) in x.chunks_exact(32).zip(back.chunks_exact(32)) {
        let d = signed_abs_max(xb) / -half;
        let d16 = f16::from_f32(d).to_f32();
        let eps = 1e-6 * abs_max(xb);
        for (&v, &b) in xb.iter().zip(bb) {
            let ratio = if d != 0.0 { v / d } else { 0.0 };
            let step_err = if ratio > half - 0.5 {
                d.abs()
            } else {
                d.abs() / 2.0
            };
            let bound = step_err + half * (d - d16).abs() + eps;
            assert!((v - b).abs() <= bound, "x {v} got {b} bound {bound} d {d}");
        }
    }
}

/// Q4_1 / Q5_1: d = (max − min)/levels, rounding to the nearest of levels+1 codes;
/// f16 storage of d and m adds `levels·|d − d16| + |min − m16|`.
fn check_affine_legacy(x: &[f32], back: &[f32], levels: f32) {
    for (xb, bb) in x.chunks_exact(32).zip(back.chunks_exact(32)) {
        let min = xb.iter().copied().fold(f32::MAX, f32::min);
        let max = xb.iter().copied().fold(f32::MIN, f32::max);
        let d = (max - min) / levels;
        let d16 = f16::from_f32(d).to_f32();
        let m16 = f16::from_f32(min).to_f32();
        let eps = 1e-6 * abs_max(xb);
        let bound = d / 2.0 + levels * (d - d16).abs() + (min - m16).abs() + eps;
        for (&v, &b) in xb.iter().zip(bb) {
            assert!((v - b).abs() <= bound, "x {v} got {b} bound {bound}");
        }
    }
}

/// Q8_0 / Q8_1: d = max|x|/127, round to nearest; f16 d adds `127·|d − d16|`.
fn check_q8_legacy(x: &[f32], back: &[f32]) {
    for (xb, bb) in x.chunks_exact(32).zip(back.chunks_exact(32)) {
        let d = abs_max(xb) / 127.0;
        let d16 = f16::from_f32(d).to_f32();
        let bound = d / 2.0 + 127.0 * (d - d16).abs() + 1e-6 * abs_max(xb);
        for (&v, &b) in xb.iter().zip(bb) {
            assert!((v - b).abs() <= bound, "x {v} got {b} bound {bound}");
        }
    }
}

/// K-quant geometry: sub-block length and code range (asymmetric formats: codes
/// 0..=nmax over [min(x,0), max(x)]; symmetric: −nneg..=npos).
#[derive(Clone, Copy)]
enum Codes {
    Affine { nmax: f32 },
    Symmetric { levels: f32 },
}

/// Per super-block: the RMS error must stay within `rms_factor` times that of an
/// ideal uniform quantizer with each sub-block's own range (step/√12 per element; the
/// factor allows for the sub-block scales being quantized to 4-8 bits under an f16
/// step, which costs most where that step is an f16 subnormal), and no element may be
/// off by more than 1.25 ideal steps of the block's widest sub-block (half a step from
/// rounding, the rest from scale-code rounding shrinking a narrower sub-block's grid).
fn check_k_quant(x: &[f32], back: &[f32], sub: usize, codes: Codes, rms_factor: f32) {
    for (xb, bb) in x.chunks_exact(256).zip(back.chunks_exact(256)) {
        let mut ideal_sq = 0.0f64;
        let mut widest_step = 0.0f32;
        for s in xb.chunks_exact(sub) {
            let step = match codes {
                Codes::Affine { nmax } => {
                    let lo = s.iter().copied().fold(0.0f32, f32::min);
                    let hi = s.iter().copied().fold(f32::MIN, f32::max);
                    (hi - lo) / nmax
                }
                Codes::Symmetric { levels } => 2.0 * abs_max(s) / levels,
            };
            widest_step = widest_step.max(step);
            ideal_sq += (step as f64).powi(2) / 12.0 * sub as f64;
        }
        let ideal_rms = (ideal_sq / 256.0).sqrt() as f32;
        let err_sq: f64 = xb
            .iter()
            .zip(bb)
            .map(|(&v, &b)| ((v - b) as f64).powi(2))
            .sum();
        let rms = (err_sq / 256.0).sqrt() as f32;
        assert!(
            rms <= rms_factor * ideal_rms + 1e-6 * abs_max(xb),
            "rms error {rms} vs ideal {ideal_rms}"
        );
        for (&v, &b) in xb.iter().zip(bb) {
            assert!(
                (v - b).abs() <= widest_step * 1.25 + 1e-6 * abs_max(xb),
                "x {v} got {b}, widest step {widest_step}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn q4_0_within_half_step(x in row_strategy(32)) {
        check_symmetric_legacy(&x, &round_trip(GgmlType::Q4_0, &x), 8.0);
    }

    #[test]
    fn q5_0_within_half_step(x in row_strategy(32)) {
        check_symmetric_legacy(&x, &round_trip(GgmlType::Q5_0, &x), 16.0);
    }

    #[test]
    fn q4_1_within_half_step(x in row_strategy(32)) {
        check_affine_legacy(&x, &round_trip(GgmlType::Q4_1, &x), 15.0);
    }

    #[test]
    fn q5_1_within_half_step(x in row_strategy(32)) {
        check_affine_legacy(&x, &round_trip(GgmlType::Q5_1, &x), 31.0);
    }

    #[test]
    fn q8_0_within_half_step(x in row_strategy(32)) {
        check_q8_legacy(&x, &round_trip(GgmlType::Q8_0, &x));
    }

    #[test]
    fn q8_1_within_half_step_and_sum_matches(x in row_strategy(32)) {
        check_q8_legacy(&x, &round_trip(GgmlType::Q8_1, &x));
        let mut bytes = vec![0u8; x.len() / 32 * 36];
        GgmlType::Q8_1.quantize_row(&x, &mut bytes);
        for (block, xb) in bytes.chunks_exact(36).zip(x.chunks_exact(32)) {
            let d = abs_max(xb) / 127.0;
            let s = f16::from_le_bytes([block[2], block[3]]).to_f32();
            let sum: i32 = block[4..].iter().map(|&q| q as i8 as i32).sum();
            // s is f16(d·Σq) with the unrounded d: off by at most half an f16 ulp
            // (2⁻¹¹ relative, or 2⁻²⁵ among subnormals).
            let expected = sum as f32 * d;
            prop_assert!((s - expected).abs() <= expected.abs() / 2048.0 + 3e-8, "s {} vs {}", s, expected);
        }
    }

    #[test]
    fn q8_k_within_half_step_and_bsums_match(x in row_strategy(256)) {
        let back = round_trip(GgmlType::Q8K, &x);
        let mut bytes = vec![0u8; x.len() / 256 * 292];
        GgmlType::Q8K.quantize_row(&x, &mut bytes);
        for ((xb, bb), block) in x.chunks_exact(256).zip(back.chunks_exact(256)).zip(bytes.chunks_exact(292)) {
            let d = (signed_abs_max(xb) / -127.0).abs();
            for (&v, &b) in xb.iter().zip(bb) {
                prop_assert!((v - b).abs() <= d / 2.0 * 1.0001 + 1e-7 * d, "x {} got {}", v, b);
            }
            for g in 0..16 {
                let sum: i32 = block[4 + 16 * g..4 + 16 * g + 16].iter().map(|&q| q as i8 as i32).sum();
                let stored = i16::from_le_bytes([block[260 + 2 * g], block[261 + 2 * g]]);
                prop_assert_eq!(sum, stored as i32);
            }
        }
    }

    #[test]
    fn q2_k_error_bounded(x in row_strategy(256)) {
        check_k_quant(&x, &round_trip(GgmlType::Q2K, &x), 16, Codes::Affine { nmax: 3.0 }, 1.0);
    }

    #[test]
    fn q3_k_error_bounded(x in row_strategy(256)) {
        check_k_quant(&x, &round_trip(GgmlType::Q3K, &x), 16, Codes::Symmetric { levels: 7.0 }, 1.15);
    }

    #[test]
    fn q4_k_error_bounded(x in row_strategy(256)) {
        check_k_quant(&x, &round_trip(GgmlType::Q4K, &x), 32, Codes::Affine { nmax: 15.0 }, 1.2);
    }

    #[test]
    fn q5_k_error_bounded(x in row_strategy(256)) {
        check_k_quant(&x, &round_trip(GgmlType::Q5K, &x), 32, Codes::Affine { nmax: 31.0 }, 1.2);
    }

    #[test]
    fn q6_k_error_bounded(x in row_strategy(256)) {
        check_k_quant(&x, &round_trip(GgmlType::Q6K, &x), 16, Codes::Symmetric { levels: 63.0 }, 1.35);
    }
}

/// Typical-use quality: relative RMS error on Gaussian rows stays at the level these
/// formats reach (bits per weight 2.6 / 3.4 / 4.5 / 5.5 / 6.6 / 8.1). For scale: an
/// ideal uniform 4-bit grid over the ~4.1σ range of 32 Gaussian samples gives
/// 4.1/15/√12 ≈ 0.079, which the Q4_K search must beat.
#[test]
fn k_quants_reach_expected_quality_on_gaussian_rows() {
    let x = make_row(256 * 64, 0x5eed, 0.02, false);
    let rms_x = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    for (ty, max_rel) in [
        (GgmlType::Q2K, 0.27),
        (GgmlType::Q3K, 0.15),
        (GgmlType::Q4K, 0.073),
        (GgmlType::Q5K, 0.036),
        (GgmlType::Q6K, 0.0175),
        (GgmlType::Q8K, 0.0075),
    ] {
        let back = round_trip(ty, &x);
        let err = (x
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / x.len() as f32)
            .sqrt();
        assert!(
            err / rms_x <= max_rel,
            "{ty}: relative RMS error {}",
            err / rms_x
        );
    }
}

#[test]
fn constant_and_zero_blocks_round_trip() {
    for ty in GgmlType::ALL.into_iter().filter(|t| t.is_quantized()) {
        let n = ty.block_elems();
        assert!(
            round_trip(ty, &vec![0.0; n]).iter().all(|&v| v == 0.0),
            "{ty} zeros"
        );
        // A constant block must come back close: every format can represent one value
        // to within its step.
        for c in [0.5f32, -0.25] {
            let back = round_trip(ty, &vec![c; n]);
            for v in back {
                assert!(
                    (v - c).abs() <= c.abs() * 0.02,
                    "{ty}: {c} came back as {v}"
                );
            }
        }
    }
}
