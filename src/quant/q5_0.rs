//! Q5_0: 32 elements as 5-bit codes around 16, one f16 scale. 22 bytes.

use half::f16;

use super::block::{inverse_or_zero, nibbles, signed_abs_max, BlockFormat};
use super::q8_0::BlockQ8_0;
use super::GgmlType;

/// Low 4 bits as in Q4_0; bit `j` of the little-endian `qh` is bit 4 of element `j`.
/// value = (q − 16)·d. `qh` is bytes so the block stays 2-aligned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ5_0>() == 22);

impl BlockFormat for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const ELEMS: usize = 32;
    type Activation = BlockQ8_0;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for (j, &b) in self.qs.iter().enumerate() {
            let (lo, hi) = nibbles(b);
            let lo = lo as u32 | ((qh >> j) & 1) << 4;
            let hi = hi as u32 | ((qh >> (j + 16)) & 1) << 4;
            out[j] = (lo as i32 - 16) as f32 * d;
            out[j + 16] = (hi as i32 - 16) as f32 * d;
        }
    }

    fn quantize(src: &[f32]) -> Self {
        let d = signed_abs_max(src) / -16.0;
        let id = inverse_or_zero(d);
        let code = |x: f32| ((x * id + 16.5) as i8).min(31) as u32;
        let mut qs = [0u8; 16];
        let mut qh = 0u32;
        for (j, q) in qs.iter_mut().enumerate() {
            let (lo, hi) = (code(src[j]), code(src[j + 16]));
            *q = ((lo & 15) | (hi & 15) << 4) as u8;
            qh |= (lo >> 4) << j | (hi >> 4) << (j + 16);
        }
        BlockQ5_0 {
            d: f16::from_f32(d),
            qh: qh.to_le_bytes(),
            qs,
        }
    }
}
