//! The legacy quantizers must write exactly the bytes of llama.cpp's reference
//! algorithm. Expected bytes were worked out from the written-out algorithm (f32
//! arithmetic, f16 round-to-nearest-even) and are spelled out literally; the inputs are
//! chosen so scales are exact and several elements land on rounding ties and clamps.

use half::f16;
use tandem::quant::{BlockQ8K, GgmlType};

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.bytes_for(x.len() as u64).unwrap() as usize];
    ty.quantize_row(x, &mut out);
    out
}

/// x[j] = (j − 16)/4: the largest magnitude is x[0] = −4, so d = −4/−8 = 0.5 (Q4_0).
fn ramp_negative_max() -> Vec<f32> {
    (0..32).map(|j| (j as f32 - 16.0) * 0.25).collect()
}

/// x[j] = (j − 15)/4: the largest magnitude is x[31] = +4, so d is negative.
fn ramp_positive_max() -> Vec<f32> {
    (0..32).map(|j| (j as f32 - 15.0) * 0.25).collect()
}

#[test]
fn q4_0_matches_reference_bytes() {
    // d = 0.5 (f16 0x3800), id = 2, q = min(15, trunc(2x + 8.5)): x = −4 → 0, x = −0.25
    // → trunc(8.0) = 8 and x = 0.25 → 9 (ties go up), x = 3.75 → 16 clamps to 15.
    assert_eq!(
        quantize(GgmlType::Q4_0, &ramp_negative_max()),
        [
            0x00, 0x38, 0x80, 0x91, 0x91, 0xa2, 0xa2, 0xb3, 0xb3, 0xc4, 0xc4, 0xd5, 0xd5, 0xe6,
            0xe6, 0xf7, 0xf7, 0xf8
        ]
    );
    // d = 4/−8 = −0.5 (f16 0xb800): x = 4 → code 0, x = −3.75 → 16 → 15.
    assert_eq!(
        quantize(GgmlType::Q4_0, &ramp_positive_max()),
        [
            0x00, 0xb8, 0x8f, 0x7f, 0x7f, 0x6e, 0x6e, 0x5d, 0x5d, 0x4c, 0x4c, 0x3b, 0x3b, 0x2a,
            0x2a, 0x19, 0x19, 0x08
        ]
    );
    // All zeros: d = 0, id = 0, every code trunc(8.5) = 8.
    let mut zeros = vec![0x00, 0x80];
    zeros.extend([0x88; 16]);
    assert_eq!(quantize(GgmlType::Q4_0, &[0.0; 32]), zeros);
}

#[test]
fn q5_0_matches_reference_bytes() {
    // d = −4/−16 = 0.25 (f16 0x3400), id = 4, q = min(31, trunc(4x + 16.5)) = j for
    // elements 0..31 except x[31] = 3.75 → 31: qs low/high nibbles j & 15, qh bit 4.
    assert_eq!(
        quantize(GgmlType::Q5_0, &ramp_negative_max()),
        [
            0x00, 0x34, 0x00, 0x00, 0xff, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
            0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff
        ]
    );
    assert_eq!(
        quantize(GgmlType::Q5_0, &ramp_positive_max()),
        [
            0x00, 0xb4, 0xff, 0xff, 0x00, 0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88,
            0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00
        ]
    );
    // All zeros: every code is 16, i.e. low nibble 0 and every qh bit set.
    let mut zeros = vec![0x00, 0x80, 0xff, 0xff, 0xff, 0xff];
    zeros.extend([0x00; 16]);
    assert_eq!(quantize(GgmlType::Q5_0, &[0.0; 32]), zeros);
}

#[test]
fn q8_0_matches_reference_bytes() {
    // d = 4/127 (f16 0x2808); codes round(x·127/4) e.g. −4 → −127 (0x81).
    assert_eq!(
        quantize(GgmlType::Q8_0, &ramp_negative_max()),
        [
            0x08, 0x28, 0x81, 0x89, 0x91, 0x99, 0xa1, 0xa9, 0xb1, 0xb9, 0xc0, 0xc8, 0xd0, 0xd8,
            0xe0, 0xe8, 0xf0, 0xf8, 0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40, 0x47,
            0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77
        ]
    );
    // max|x| = 7.9375 gives d = 1/16 exactly (0x2c00), id = 16; ties round away from
    // zero: ±0.03125 → ±0.5 → ±1, ±0.09375 → ±2, ±0.15625 → ±2.5 → ±3.
    let mut x = vec![
        7.9375, 0.03125, -0.03125, 0.09375, -0.09375, 0.15625, -0.15625, -7.9375,
    ];
    x.extend((8..32).map(|j| (j as f32 - 20.0) * 0.125));
    assert_eq!(
        quantize(GgmlType::Q8_0, &x),
        [
            0x00, 0x2c, 0x7f, 0x01, 0xff, 0x02, 0xfe, 0x03, 0xfd, 0x81, 0xe8, 0xea, 0xec, 0xee,
            0xf0, 0xf2, 0xf4, 0xf6, 0xf8, 0xfa, 0xfc, 0xfe, 0x00, 0x02, 0x04, 0x06, 0x08, 0x0a,
            0x0c, 0x0e, 0x10, 0x12, 0x14, 0x16
        ]
    );
    // Q8_1 writes the same d and codes, plus s = d·Σq.
    let q8_1 = quantize(GgmlType::Q8_1, &x);
    let q8_0 = quantize(GgmlType::Q8_0, &x);
    assert_eq!(q8_1[..2], q8_0[..2]);
    assert_eq!(q8_1[4..], q8_0[2..]);
    // Σq = 127 + 1 − 1 + 2 − 2 + 3 − 3 − 127 + 2·(−12 − 11 − … + 11) = −24.
    let sum: i32 = q8_0[2..].iter().map(|&b| b as i8 as i32).sum();
    assert_eq!(sum, -24);
    assert_eq!(q8_1[2..4], f16::from_f32(-24.0 / 16.0).to_le_bytes());
}

#[test]
fn q4_1_matches_reference_bytes() {
    // min = −1, max = 2.75: d = 3.75/15 = 0.25 (0x3400), m = −1 (0xbc00), id = 4,
    // q = min(15, trunc((x + 1)·4 + 0.5)); x = −0.875 sits on a tie and goes up to 1.
    let mut x: Vec<f32> = (0..16).map(|j| -1.0 + 0.125 * j as f32).collect();
    x.extend((0..16).map(|j| 2.75 - 0.1875 * j as f32));
    assert_eq!(
        quantize(GgmlType::Q4_1, &x),
        [
            0x00, 0x34, 0x00, 0xbc, 0xf0, 0xe1, 0xe1, 0xd2, 0xc2, 0xb3, 0xb3, 0xa4, 0x94, 0x85,
            0x85, 0x76, 0x66, 0x57, 0x57, 0x48
        ]
    );
    assert_eq!(quantize(GgmlType::Q4_1, &[0.0; 32]), [0u8; 20]);
}

#[test]
fn q5_1_matches_reference_bytes() {
    // min = −1, max = 6.75: d = 7.75/31 = 0.25, m = −1, id = 4.
    let mut x: Vec<f32> = (0..16).map(|j| -1.0 + 0.375 * j as f32).collect();
    x.extend((0..16).map(|j| 6.75 - 0.4375 * j as f32));
    assert_eq!(
        quantize(GgmlType::Q5_1, &x),
        [
            0x00, 0x34, 0x00, 0xbc, 0x00, 0xf8, 0xff, 0x01, 0xf0, 0xd2, 0xc3, 0xa5, 0x86, 0x68,
            0x59, 0x3b, 0x1c, 0xfe, 0xef, 0xc1, 0xa2, 0x84, 0x75, 0x57
        ]
    );
}

#[test]
fn q8_k_scales_from_signed_max_and_rounds_ties_to_even() {
    // x[0] = −63.5 is the largest magnitude: iscale = −127/−63.5 = 2, d = 0.5.
    let mut x = vec![0.0f32; 256];
    x[0] = -63.5;
    x[1] = 0.25; // 0.5 → 0 (tie to even)
    x[2] = 0.75; // 1.5 → 2
    x[3] = -1.25; // −2.5 → −2
    x[4] = 63.5; // 127
    x[16] = 10.0; // 20, in the second group of 16
    x[255] = -0.75; // −1.5 → −2
    let bytes = quantize(GgmlType::Q8K, &x);
    let block: BlockQ8K = bytemuck::pod_read_unaligned(&bytes);
    assert_eq!(block.d, 0.5);
    assert_eq!(block.qs[..6], [-127, 0, 2, -2, 127, 0]);
    assert_eq!(block.qs[16], 20);
    assert_eq!(block.qs[255], -2);
    let mut bsums = [0i16; 16];
    bsums[0] = -127 + 2 - 2 + 127;
    bsums[1] = 20;
    bsums[15] = -2;
    assert_eq!(block.bsums, bsums);
    // A positive signed max flips the scale's sign: d = 1/(−127/4).
    let mut y = vec![0.0f32; 256];
    y[7] = 4.0;
    y[8] = -2.0;
    let block: BlockQ8K = bytemuck::pod_read_unaligned(&quantize(GgmlType::Q8K, &y));
    assert_eq!(block.d, 1.0 / (-127.0f32 / 4.0));
    assert_eq!((block.qs[7], block.qs[8]), (-127, 64)); // 2·127/4 = 63.5 → 64
}
