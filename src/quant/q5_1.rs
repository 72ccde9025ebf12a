//! Q5_1: 32 elements as 5-bit codes with an f16 scale and an f16 minimum. 24 bytes.

use half::f16;

use super::block::{inverse_or_zero, min_max, nibbles, BlockFormat};
use super::q8_1::BlockQ8_1;
use super::GgmlType;

/// Bits as in Q5_0; value = q·d + m.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ5_1>() == 24);

impl BlockFormat for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const ELEMS: usize = 32;
    type Activation = BlockQ8_1;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for (j, &b) in self.qs.iter().enumerate() {
            let (lo, hi) = nibbles(b);
            let lo = lo as u32 | ((qh >> j) & 1) << 4;
            let hi = hi as u32 | ((qh >> (j + 16)) & 1) << 4;
            out[j] = lo as f32 * d + m;
            out[j + 16] = hi as f32 * d + m;
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let (min, max) = min_max(src);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        let code = |x: f32| (((x - min) * id + 0.5) as u8).min(31) as u32;
        let mut qs = [0u8; 16];
        let mut qh = 0u32;
        for (j, q) in qs.iter_mut().enumerate() {
            let (lo, hi) = (code(src[j]), code(src[j + 16]));
            *q = ((lo & 15) | (hi & 15) << 4) as u8;
            qh |= (lo >> 4) << j | (hi >> 4) << (j + 16);
        }
        BlockQ5_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qh: qh.to_le_bytes(),
            qs,
        }
    }
}
