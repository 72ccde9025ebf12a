//! Q5_K: Q4_K with a fifth code bit per element. 176 bytes.

use half::f16;

use super::block::BlockFormat;
use super::q4_k::{quantize_k4_like, scale_min_k4};
use super::q8_k::BlockQ8K;
use super::GgmlType;

/// As Q4_K; element `64c + l` adds bit `2c` of `qh[l]` and element `64c + 32 + l` adds
/// bit `2c + 1` of `qh[l]`, each worth 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

const _: () = assert!(size_of::<BlockQ5K>() == 176);

impl BlockFormat for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5K;
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
            for (l, o) in out.iter_mut().enumerate() {
                let q = ((bytes[l] >> shift) & 15) | ((self.qh[l] >> j) & 1) << 4;
                *o = scale * q as f32 - min;
            }
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let (d, dmin, scales, codes) = quantize_k4_like(src, 31);
        let mut qs = [0u8; 128];
        let mut qh = [0u8; 32];
        for c in 0..4 {
            for l in 0..32 {
                let (lo, hi) = (codes[64 * c + l], codes[64 * c + 32 + l]);
                qs[32 * c + l] = (lo & 15) | (hi & 15) << 4;
                qh[l] |= (lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1);
            }
        }
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
    }
}
