//! Hand-built blocks of the formats the gemma3 file does not contain, decoded through
//! `dequantize_row` and compared with values worked out from the format description.

use half::f16;
use tandem::quant::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_1, BlockQ5K, BlockQ5_1, BlockQ8K, BlockQ8_1, GgmlType,
};

fn decode<B: bytemuck::Pod>(ty: GgmlType, block: &B) -> Vec<f32> {
    let mut out = vec![0f32; ty.block_elems()];
    ty.dequantize_row(bytemuck::bytes_of(block), &mut out);
    out
}

#[test]
fn q4_1_nibbles_scale_and_min() {
    let mut qs = [0u8; 16];
    qs[0] = 0x2f; // element 0 → 15, element 16 → 2
    qs[9] = 0x70; // element 9 → 0, element 25 → 7
    let block = BlockQ4_1 {
        d: f16::from_f32(0.5),
        m: f16::from_f32(-3.0),
        qs,
    };
    let out = decode(GgmlType::Q4_1, &block);
    assert_eq!(out[0], 15.0 * 0.5 - 3.0);
    assert_eq!(out[16], 2.0 * 0.5 - 3.0);
    assert_eq!(out[9], -3.0);
    assert_eq!(out[25], 7.0 * 0.5 - 3.0);
    assert_eq!(out[1], -3.0);
}

#[test]
fn q5_1_fifth_bit_from_qh() {
    let mut qs = [0u8; 16];
    qs[3] = 0x41; // element 3 low bits 1, element 19 low bits 4
    qs[15] = 0xf0; // element 15 low bits 0, element 31 low bits 15
                   // qh bit 3 (element 3) and bit 31 (element 31) set; bit 19 clear.
    let qh: u32 = 1 << 3 | 1 << 31;
    let block = BlockQ5_1 {
        d: f16::from_f32(0.25),
        m: f16::from_f32(1.0),
        qh: qh.to_le_bytes(),
        qs,
    };
    let out = decode(GgmlType::Q5_1, &block);
    assert_eq!(out[3], 17.0 * 0.25 + 1.0);
    assert_eq!(out[19], 4.0 * 0.25 + 1.0);
    assert_eq!(out[15], 1.0);
    assert_eq!(out[31], 31.0 * 0.25 + 1.0);
}

#[test]
fn q8_1_decodes_like_q8_0() {
    let mut qs = [0i8; 32];
    qs[0] = -128;
    qs[31] = 77;
    let block = BlockQ8_1 {
        d: f16::from_f32(0.125),
        s: f16::from_f32(-6.375),
        qs,
    };
    let out = decode(GgmlType::Q8_1, &block);
    assert_eq!((out[0], out[1], out[31]), (-16.0, 0.0, 77.0 * 0.125));
}

#[test]
fn q8_k_decodes_codes_times_d() {
    let mut block: BlockQ8K = bytemuck::Zeroable::zeroed();
    block.d = -0.5;
    block.qs[0] = 3;
    block.qs[255] = -127;
    let out = decode(GgmlType::Q8K, &block);
    assert_eq!((out[0], out[1], out[255]), (-1.5, 0.0, 63.5));
}

#[test]
fn q2_k_code_order_scales_and_mins() {
    // Sub-block j: scale j, min 15 − j.
    let scales: [u8; 16] = std::array::from_fn(|j| j as u8 | (15 - j as u8) << 4);
    let mut qs = [0u8; 64];
    // First half, byte 0: bits 0-1 → element 0, 2-3 → element 32, 4-5 → 64, 6-7 → 96.
    qs[0] = 0b11_10_01_00;
    // Byte 21 is byte 5 of the half's second 16: elements 21, 53, 85, 117.
    qs[21] = 0xff;
    // Second half, byte 63: elements 128+31 = 159, 191, 223, 255.
    qs[63] = 0b10_00_00_01;
    let (d, dmin) = (2.0f32, 0.25f32);
    let block = BlockQ2K {
        scales,
        qs,
        d: f16::from_f32(d),
        dmin: f16::from_f32(dmin),
    };
    let out = decode(GgmlType::Q2K, &block);
    // value = d·scale·q − dmin·min, with (scale, min) = (j, 15 − j) for e in sub-block j = e/16.
    let expect = |j: f32, q: f32| d * j * q - dmin * (15.0 - j);
    for (e, j, q) in [
        (0, 0.0, 0.0),
        (32, 2.0, 1.0),
        (64, 4.0, 2.0),
        (96, 6.0, 3.0),
        (21, 1.0, 3.0),
        (53, 3.0, 3.0),
        (85, 5.0, 3.0),
        (117, 7.0, 3.0),
        (159, 9.0, 1.0),
        (191, 11.0, 0.0),
        (223, 13.0, 0.0),
        (255, 15.0, 2.0),
        (1, 0.0, 0.0),
    ] {
        assert_eq!(out[e], expect(j, q), "element {e}");
    }
}

#[test]
fn q3_k_scales_high_bits_and_signed_codes() {
    // Scale bytes chosen so the four packing rules give distinct values:
    // b[8] = 0b11_10_01_00 supplies high bits 0, 1, 2, 3 for s[0], s[4], s[8], s[12].
    let scales = [
        0x21,
        0x43,
        0x65,
        0x87,
        0xa9,
        0xcb,
        0xed,
        0x0f,
        0b11_10_01_00,
        0,
        0,
        0,
    ];
    // s[0] = 1 | 0 << 4 = 1; s[4] = 9 | 1 << 4 = 25; s[8] = 2 | 2 << 4 = 34;
    // s[12] = 10 | 3 << 4 = 58; s[1] = 3 (b[1] & 15, no high bits).
    let mut hmask = [0u8; 32];
    let mut qs = [0u8; 64];
    // Element 0 (group 0): low bits 3, high bit set → q = 3.
    qs[0] |= 3;
    hmask[0] |= 1;
    // Element 64 (group 2, shift 4 of byte 0): low bits 1, high bit clear → q = 1 − 4.
    qs[0] |= 1 << 4;
    // Element 128 (second half, group 4: byte 32 shift 0): low 2, high set → 2.
    qs[32] |= 2;
    hmask[0] |= 1 << 4;
    // Element 192 (group 6: byte 32, shift 4): low 0, high clear → −4.
    // Element 16 (sub-block 1, byte 16 shift 0): low 0, high set → 0.
    hmask[16] |= 1;
    let d = 0.5f32;
    let block = BlockQ3K {
        hmask,
        qs,
        scales,
        d: f16::from_f32(d),
    };
    let out = decode(GgmlType::Q3K, &block);
    // value = d·(s − 32)·q.
    assert_eq!(out[0], d * (1.0 - 32.0) * 3.0);
    assert_eq!(out[64], d * (25.0 - 32.0) * -3.0);
    assert_eq!(out[128], d * (34.0 - 32.0) * 2.0);
    assert_eq!(out[192], d * (58.0 - 32.0) * -4.0);
    assert_eq!(out[16], 0.0);
    // Element 17: sub-block 1 (s = 3), low 0, high clear → q = −4.
    assert_eq!(out[17], d * (3.0 - 32.0) * -4.0);
}

/// Scale bytes for Q4_K/Q5_K tests: sub-block j < 4 reads b[j] & 63 and b[j+4] & 63;
/// j ≥ 4 takes its low four bits from b[j+4] and its top two from bits 6-7 of b[j−4]
/// (scale) or b[j] (min).
fn k4_scales() -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = 5 | 2 << 6; // sc0 = 5, top bits of sc4 = 2
    b[4] = 7 | 1 << 6; // m0 = 7, top bits of m4 = 1
    b[8] = 9 | 3 << 4; // sc4 = 9 | 2 << 4 = 41, m4 = 3 | 1 << 4 = 19
    b[1] = 4; // sc1 = 4
    b[5] = 2; // m1 = 2
    b[2] = 3; // sc2 = 3, m2 = b[6] & 63 = 0
    b[3] = 63; // sc3 = 63
    b[7] = 0; // m3 = 0
    b[11] = 0xff; // sc7 = 15 | 0 << 4 = 15 (b[3] top bits 0), m7 = 15
    b
}

#[test]
fn q4_k_sub_block_scales_and_nibble_order() {
    let mut qs = [0u8; 128];
    qs[0] = 0x3c; // element 0 → 12 (sub-block 0), element 32 → 3 (sub-block 1)
    qs[64 + 10] = 0x0e; // element 128 + 10 → 14 (sub-block 4)
    qs[96 + 31] = 0xb0; // element 255 → 11 (sub-block 7)
    qs[32 + 31] = 0x0f; // element 64 + 31 = 95 → 15 (sub-block 2, chunk 1 low nibble)
    let (d, dmin) = (0.5f32, 0.25f32);
    let block = BlockQ4K {
        d: f16::from_f32(d),
        dmin: f16::from_f32(dmin),
        scales: k4_scales(),
        qs,
    };
    let out = decode(GgmlType::Q4K, &block);
    assert_eq!(out[0], d * 5.0 * 12.0 - dmin * 7.0);
    assert_eq!(out[32], d * 4.0 * 3.0 - dmin * 2.0);
    assert_eq!(out[138], d * 41.0 * 14.0 - dmin * 19.0);
    assert_eq!(out[255], d * 15.0 * 11.0 - dmin * 15.0);
    assert_eq!(out[95], d * 3.0 * 15.0);
    // sub-block 3: scale 63, min 0, every code 0.
    assert_eq!(out[96], 0.0);
}

#[test]
fn q5_k_fifth_bit_per_chunk() {
    let mut qs = [0u8; 128];
    let mut qh = [0u8; 32];
    qs[0] = 0x21; // element 0 low 1, element 32 low 2
    qh[0] = 0b01; // element 0 (chunk 0, low half) gets +16
    qs[64 + 5] = 0x07; // element 128 + 5 low 7 (chunk 2, sub-block 4)
    qh[5] = 1 << 4; // bit 2c = 4 → element 133 gets +16
    qh[31] = 1 << 7; // bit 2c+1 = 7 → element 64·3 + 32 + 31 = 255 gets +16
    let (d, dmin) = (0.5f32, 0.25f32);
    let block = BlockQ5K {
        d: f16::from_f32(d),
        dmin: f16::from_f32(dmin),
        scales: k4_scales(),
        qh,
        qs,
    };
    let out = decode(GgmlType::Q5K, &block);
    assert_eq!(out[0], d * 5.0 * 17.0 - dmin * 7.0);
    assert_eq!(out[133], d * 41.0 * 23.0 - dmin * 19.0);
    assert_eq!(out[255], d * 15.0 * 16.0 - dmin * 15.0);
    // element 132: same chunk, no fifth bit, code 0.
    assert_eq!(out[132], -dmin * 19.0);
}

#[test]
fn blocks_view_tensor_bytes_in_place() {
    // Kernels reinterpret tensor bytes as block slices; two Q4_K blocks in a row.
    let x: Vec<f32> = (0..512)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
        .collect();
    let mut bytes = vec![0u8; 2 * 144];
    GgmlType::Q4K.quantize_row(&x, &mut bytes);
    let blocks: &[BlockQ4K] = bytemuck::cast_slice(&bytes);
    assert_eq!(blocks.len(), 2);
    let mut whole = vec![0f32; 512];
    GgmlType::Q4K.dequantize_row(&bytes, &mut whole);
    let second = decode(GgmlType::Q4K, &blocks[1]);
    assert_eq!(&whole[256..], &second[..]);
    // The typed helpers write the same blocks as the byte-level row API.
    let mut typed = vec![<BlockQ4K as bytemuck::Zeroable>::zeroed(); 2];
    tandem::quant::quantize_into_blocks(&x, &mut typed);
    assert_eq!(typed, blocks);
    assert_eq!(tandem::quant::quantize_to_blocks::<BlockQ4K>(&x), blocks);
}

#[test]
fn unaligned_bytes_decode_like_aligned() {
    // Q8_K holds an f32, so its blocks want 4-byte alignment; rows cut from arbitrary
    // buffers must still decode.
    let x: Vec<f32> = (0..256).map(|i| (i as f32 - 100.0) / 7.0).collect();
    let mut aligned = vec![0u8; 292];
    GgmlType::Q8K.quantize_row(&x, &mut aligned);
    let mut shifted = vec![0u8; 293];
    shifted[1..].copy_from_slice(&aligned);
    let (mut a, mut b) = (vec![0f32; 256], vec![0f32; 256]);
    GgmlType::Q8K.dequantize_row(&aligned, &mut a);
    GgmlType::Q8K.dequantize_row(&shifted[1..], &mut b);
    assert_eq!(a, b);
}

#[test]
fn non_finite_input_does_not_panic() {
    for ty in GgmlType::ALL.into_iter().filter(|t| t.is_quantized()) {
        let n = ty.block_elems();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX] {
            let mut x: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
            x[n / 3] = bad;
            let mut bytes = vec![0u8; ty.block_bytes()];
            ty.quantize_row(&x, &mut bytes);
            let mut out = vec![0f32; n];
            ty.dequantize_row(&bytes, &mut out);
        }
    }
}
