//! Q8_0: 32 elements as signed bytes with one f16 scale. 34 bytes. Also the
//! activation format paired with Q4_0, Q5_0 and Q8_0 weights.

use half::f16;

use super::block::{inverse_or_zero, BlockFormat};
use super::GgmlType;

/// value = q·d.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; 32],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// The f32 scale (`max|x| / 127`) and codes of a block of 32, rounding half away from
/// zero as llama.cpp does; shared with Q8_1.
pub(crate) fn quantize_q8_codes(src: &[f32]) -> (f32, [i8; 32]) {
    let amax = src.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse_or_zero(d);
    let mut qs = [0i8; 32];
    for (q, &x) in qs.iter_mut().zip(src) {
        *q = (x * id).round() as i8;
    }
    (d, qs)
}

impl BlockFormat for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const ELEMS: usize = 32;
    type Activation = BlockQ8_0;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let (d, qs) = quantize_q8_codes(src);
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
    }
}
