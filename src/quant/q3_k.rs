//! Q3_K: 256 elements in sixteen sub-blocks of 16, 3-bit signed codes, a 6-bit signed
//! scale per sub-block under one f16 factor. 110 bytes.

use half::f16;

use super::block::{inverse_or_zero, BlockFormat};
use super::kquant_fit::{
    fit_symmetric_scale, quantize_signed_factors, refine_symmetric_code, symmetric_code,
};
use super::q2_k::k2_code_position;
use super::q8_k::BlockQ8K;
use super::GgmlType;

/// value = d·(s − 32)·q with s from [`q3k_scales`]; q = low2 − (hbit ? 0 : 4), the low
/// two bits placed as in Q2_K, the high bit of element e at bit e/32 of `hmask[e % 32]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; 32],
    pub qs: [u8; 64],
    pub scales: [u8; 12],
    pub d: f16,
}

const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// The sixteen 6-bit scales (stored with +32, not yet re-centred) from the packed bytes.
pub fn q3k_scales(b: &[u8; 12]) -> [u8; 16] {
    let mut s = [0u8; 16];
    for i in 0..4 {
        s[i] = (b[i] & 15) | (b[8 + i] & 3) << 4;
        s[4 + i] = (b[4 + i] & 15) | ((b[8 + i] >> 2) & 3) << 4;
        s[8 + i] = (b[i] >> 4) | ((b[8 + i] >> 4) & 3) << 4;
        s[12 + i] = (b[4 + i] >> 4) | ((b[8 + i] >> 6) & 3) << 4;
    }
    s
}

fn pack_q3k_scales(s: &[u8; 16]) -> [u8; 12] {
    let mut b = [0u8; 12];
    for i in 0..4 {
        b[i] = (s[i] & 15) | (s[8 + i] & 15) << 4;
        b[4 + i] = (s[4 + i] & 15) | (s[12 + i] & 15) << 4;
        b[8 + i] =
            (s[i] >> 4) | (s[4 + i] >> 4) << 2 | (s[8 + i] >> 4) << 4 | (s[12 + i] >> 4) << 6;
    }
    b
}

impl BlockFormat for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3K;
    const ELEMS: usize = 256;
    type Activation = BlockQ8K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let scales = q3k_scales(&self.scales);
        // Sub-blocks of 16 in element order; element e's high bit is bit e/32 of
        // hmask[e % 32].
        for (j, out) in out.chunks_exact_mut(16).enumerate().take(16) {
            let scale = d * (scales[j] as i32 - 32) as f32;
            let (byte, shift) = k2_code_position(16 * j);
            let (group, lane) = (16 * j / 32, 16 * j % 32);
            let hmask = &self.hmask[lane..lane + 16];
            for ((o, &b), &h) in out.iter_mut().zip(&self.qs[byte..byte + 16]).zip(hmask) {
                let low = ((b >> shift) & 3) as i32;
                let q = low - if (h >> group) & 1 == 1 { 0 } else { 4 };
                *o = scale * q as f32;
            }
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let mut scales = [0f32; 16];
        for (s, x) in scales.iter_mut().zip(src.chunks_exact(16)) {
            *s = fit_symmetric_scale(x, 4, 3);
        }
        let (d, mut sc) = quantize_signed_factors(&scales, 32, 31);
        for (j, x) in src.chunks_exact(16).enumerate() {
            sc[j] = refine_symmetric_code(x, d.to_f32(), sc[j], (-32, 31), (-4.0, 3.0));
        }
        let mut block = BlockQ3K {
            hmask: [0; 32],
            qs: [0; 64],
            scales: pack_q3k_scales(&sc.map(|s| (s + 32) as u8)),
            d,
        };
        for (e, &x) in src.iter().enumerate().take(256) {
            let inv = inverse_or_zero(d.to_f32() * sc[e / 16] as f32);
            let biased = (symmetric_code(x, inv, -4.0, 3.0) as i32 + 4) as u8;
            let (byte, shift) = k2_code_position(e);
            block.qs[byte] |= (biased & 3) << shift;
            block.hmask[e % 32] |= (biased >> 2) << (e / 32);
        }
        block
    }
}
