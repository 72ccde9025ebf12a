//! Q2_K: 256 elements in sixteen sub-blocks of 16, 2-bit codes, each sub-block with a
//! 4-bit scale and 4-bit minimum under f16 super-block factors. 84 bytes.

use half::f16;

use super::block::{inverse_or_zero, BlockFormat};
use super::kquant_fit::{
    affine_code, fit_scale_min, quantize_unsigned_factors, refine_affine_codes,
};
use super::q8_k::BlockQ8K;
use super::GgmlType;

/// value = d·(s & 15)·q − dmin·(s >> 4) with s = scales[e/16]; codes as in
/// [`k2_code_position`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; 16],
    pub qs: [u8; 64],
    pub d: f16,
    pub dmin: f16,
}

const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// Where element `e` (0..256) keeps its 2-bit code in a 64-byte `qs` (shared with
/// Q3_K's low bits): `(byte, shift)`. Half h covers `qs[32h..32h+32]`; its k-th group
/// of 32 elements takes bits 2k, 2k+1 of those bytes in order.
#[inline]
pub fn k2_code_position(e: usize) -> (usize, u32) {
    let (h, r) = (e / 128, e % 128);
    (32 * h + r % 32, 2 * (r / 32) as u32)
}

impl BlockFormat for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2K;
    const ELEMS: usize = 256;
    type Activation = BlockQ8K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let dmin = self.dmin.to_f32();
        // Sub-blocks of 16 in element order; see `k2_code_position`.
        for (j, out) in out.chunks_exact_mut(16).enumerate().take(16) {
            let s = self.scales[j];
            let (scale, min) = (d * (s & 15) as f32, dmin * (s >> 4) as f32);
            let (byte, shift) = k2_code_position(16 * j);
            for (o, &b) in out.iter_mut().zip(&self.qs[byte..byte + 16]) {
                *o = scale * ((b >> shift) & 3) as f32 - min;
            }
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        for (j, x) in src.chunks_exact(16).enumerate() {
            (scales[j], mins[j]) = fit_scale_min(x, 3);
        }
        let (d, mut sc) = quantize_unsigned_factors(&scales, 15);
        let (dmin, mut m) = quantize_unsigned_factors(&mins, 15);
        let steps = (d.to_f32(), dmin.to_f32());
        for (j, x) in src.chunks_exact(16).enumerate() {
            (sc[j], m[j]) = refine_affine_codes(x, steps, (sc[j], m[j]), 15, 3.0);
        }
        let mut block = BlockQ2K {
            scales: std::array::from_fn(|j| sc[j] | m[j] << 4),
            qs: [0; 64],
            d,
            dmin,
        };
        for (e, &x) in src.iter().enumerate().take(256) {
            let j = e / 16;
            let inv = inverse_or_zero(d.to_f32() * sc[j] as f32);
            let q = affine_code(x, inv, -(dmin.to_f32() * m[j] as f32), 3.0) as u8;
            let (byte, shift) = k2_code_position(e);
            block.qs[byte] |= q << shift;
        }
        block
    }
}
