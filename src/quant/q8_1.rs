//! Q8_1: Q8_0 plus `s = d·Σq`, the activation format paired with Q4_1 and Q5_1
//! weights (their minimum term needs the activation sum). 36 bytes.

use half::f16;

use super::block::BlockFormat;
use super::q8_0::quantize_q8_codes;
use super::GgmlType;

/// value = q·d; `s` = d·Σq (with the unrounded f32 d).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; 32],
}

const _: () = assert!(size_of::<BlockQ8_1>() == 36);

impl BlockFormat for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    const ELEMS: usize = 32;
    type Activation = BlockQ8_1;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let (d, qs) = quantize_q8_codes(src);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        BlockQ8_1 {
            d: f16::from_f32(d),
            s: f16::from_f32(sum as f32 * d),
            qs,
        }
    }
}
