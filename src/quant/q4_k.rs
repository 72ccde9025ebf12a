//! Q4_K: 256 elements in eight sub-blocks of 32, 4-bit codes, each sub-block with a
//! 6-bit scale and 6-bit minimum under f16 super-block factors. 144 bytes.

use half::f16;

use super::block::{inverse_or_zero, BlockFormat};
use super::kquant_fit::{
    affine_code, fit_scale_min, quantize_unsigned_factors, refine_affine_codes,
};
use super::q8_k::BlockQ8K;
use super::GgmlType;

/// value = d·sc·q − dmin·m, with (sc, m) from [`scale_min_k4`]. `qs[32c + l]` holds
/// element `64c + l` (low nibble) and `64c + 32 + l` (high nibble).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// The 6-bit (scale, min) of sub-block `j` (0..8) from the 12 packed bytes shared by
/// Q4_K and Q5_K.
#[inline]
pub fn scale_min_k4(j: usize, b: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (b[j] & 63, b[j + 4] & 63)
    } else {
        (
            (b[j + 4] & 15) | ((b[j - 4] >> 6) << 4),
            (b[j + 4] >> 4) | ((b[j] >> 6) << 4),
        )
    }
}

/// Inverse of [`scale_min_k4`] for codes below 64.
pub(crate) fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut b = [0u8; 12];
    for j in 0..4 {
        b[j] = sc[j] | (sc[j + 4] >> 4) << 6;
        b[j + 4] = m[j] | (m[j + 4] >> 4) << 6;
        b[j + 8] = (sc[j + 4] & 15) | (m[j + 4] & 15) << 4;
    }
    b
}

/// Sub-block fits shared by Q4_K and Q5_K: per-sub-block (scale, min) searched for
/// codes `0..=nmax`, then quantized to 6 bits under f16 `d` and `dmin`. Returns
/// `(d, dmin, packed scales, codes)`.
pub(crate) fn quantize_k4_like(src: &[f32], nmax: u8) -> (f16, f16, [u8; 12], [u8; 256]) {
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for (j, x) in src.chunks_exact(32).enumerate() {
        (scales[j], mins[j]) = fit_scale_min(x, nmax);
    }
    let (d, mut sc) = quantize_unsigned_factors(&scales, 63);
    let (dmin, mut m) = quantize_unsigned_factors(&mins, 63);
    let steps = (d.to_f32(), dmin.to_f32());
    for (j, x) in src.chunks_exact(32).enumerate() {
        (sc[j], m[j]) = refine_affine_codes(x, steps, (sc[j], m[j]), 63, nmax as f32);
    }
    let mut codes = [0u8; 256];
    for (j, (x, q)) in src
        .chunks_exact(32)
        .zip(codes.chunks_exact_mut(32))
        .enumerate()
    {
        let scale = d.to_f32() * sc[j] as f32;
        let offset = -(dmin.to_f32() * m[j] as f32);
        let inv = inverse_or_zero(scale);
        for (q, &v) in q.iter_mut().zip(x) {
            *q = affine_code(v, inv, offset, nmax as f32) as u8;
        }
    }
    (d, dmin, pack_scale_min_k4(&sc, &m), codes)
}

impl BlockFormat for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4K;
    const ELEMS: usize = 256;
    type Activation = BlockQ8K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let dmin = self.dmin.to_f32();
        for (j, out) in out.chunks_exact_mut(32).enumerate() {
            let (sc, m) = scale_min_k4(j, &self.scales);
            let (scale, min) = (d * sc as f32, dmin * m as f32);
            let bytes = &self.qs[32 * (j / 2)..32 * (j / 2) + 32];
            let shift = 4 * (j % 2);
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = scale * ((b >> shift) & 15) as f32 - min;
            }
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let (d, dmin, scales, codes) = quantize_k4_like(src, 15);
        let mut qs = [0u8; 128];
        for c in 0..4 {
            for l in 0..32 {
                qs[32 * c + l] = codes[64 * c + l] | codes[64 * c + 32 + l] << 4;
            }
        }
        BlockQ4K {
            d,
            dmin,
            scales,
            qs,
        }
    }
}
