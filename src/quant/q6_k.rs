//! Q6_K: 256 elements in sixteen sub-blocks of 16, 6-bit codes around 32, a signed
//! 8-bit scale per sub-block under one f16 factor. 210 bytes.

use half::f16;

use super::block::{inverse_or_zero, BlockFormat};
use super::kquant_fit::{
    fit_symmetric_scale, quantize_signed_factors, refine_symmetric_code, symmetric_code,
};
use super::q8_k::BlockQ8K;
use super::GgmlType;

/// value = d·scales[e/16]·(q − 32). Each half of 128 elements uses 64 bytes of `ql`
/// and 32 of `qh`; see [`q6k_code_position`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: f16,
}

const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// Where element `e` (0..256) keeps its code: `(ql byte, ql nibble shift, qh byte,
/// qh shift)`. In half h, quarter k = 0..4 of 32 elements, lane l: the low nibble comes
/// from `ql[64h + 32(k mod 2) + l]` (high nibble for k ≥ 2), the top two bits from
/// bits 2k, 2k+1 of `qh[32h + l]`.
#[inline]
pub fn q6k_code_position(e: usize) -> (usize, u32, usize, u32) {
    let (h, r) = (e / 128, e % 128);
    let (k, l) = (r / 32, r % 32);
    (
        64 * h + 32 * (k % 2) + l,
        4 * (k / 2) as u32,
        32 * h + l,
        2 * k as u32,
    )
}

impl BlockFormat for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6K;
    const ELEMS: usize = 256;
    type Activation = BlockQ8K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (h, out) in out.chunks_exact_mut(128).enumerate().take(2) {
            let ql = &self.ql[64 * h..64 * h + 64];
            let qh = &self.qh[32 * h..32 * h + 32];
            let scales = &self.scales[8 * h..8 * h + 8];
            for l in 0..32 {
                let is = l / 16;
                let codes = [
                    (ql[l] & 15) | (qh[l] & 3) << 4,
                    (ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4,
                    (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4,
                    (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4,
                ];
                for (k, q) in codes.into_iter().enumerate() {
                    let scale = d * scales[is + 2 * k] as f32;
                    out[l + 32 * k] = scale * (q as i32 - 32) as f32;
                }
            }
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let mut scales = [0f32; 16];
        for (s, x) in scales.iter_mut().zip(src.chunks_exact(16)) {
            *s = fit_symmetric_scale(x, 32, 31);
        }
        let (d, mut sc) = quantize_signed_factors(&scales, 128, 127);
        for (j, x) in src.chunks_exact(16).enumerate() {
            sc[j] = refine_symmetric_code(x, d.to_f32(), sc[j], (-128, 127), (-32.0, 31.0));
        }
        let mut block = BlockQ6K {
            ql: [0; 128],
            qh: [0; 64],
            scales: sc.map(|s| s as i8),
            d,
        };
        for (e, &x) in src.iter().enumerate().take(256) {
            let inv = inverse_or_zero(d.to_f32() * sc[e / 16] as f32);
            let q = (symmetric_code(x, inv, -32.0, 31.0) as i32 + 32) as u8;
            let (lb, ls, hb, hs) = q6k_code_position(e);
            block.ql[lb] |= (q & 15) << ls;
            block.qh[hb] |= (q >> 4) << hs;
        }
        block
    }
}
