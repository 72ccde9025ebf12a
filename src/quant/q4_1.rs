//! Q4_1: 32 elements as 4-bit codes with an f16 scale and an f16 minimum. 20 bytes.

use half::f16;

use super::block::{inverse_or_zero, min_max, nibbles, BlockFormat};
use super::q8_1::BlockQ8_1;
use super::GgmlType;

/// Nibbles as in Q4_0; value = q·d + m.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ4_1>() == 20);

impl BlockFormat for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const ELEMS: usize = 32;
    type Activation = BlockQ8_1;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        for (j, &b) in self.qs.iter().enumerate() {
            let (lo, hi) = nibbles(b);
            out[j] = lo as f32 * d + m;
            out[j + 16] = hi as f32 * d + m;
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let (min, max) = min_max(src);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        let code = |x: f32| (((x - min) * id + 0.5) as i8).min(15) as u8;
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = code(src[j]) | (code(src[j + 16]) << 4);
        }
        BlockQ4_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qs,
        }
    }
}
