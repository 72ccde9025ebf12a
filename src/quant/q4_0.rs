//! Q4_0: 32 elements as 4-bit codes around 8, one f16 scale. 18 bytes.

use half::f16;

use super::block::{inverse_or_zero, nibbles, signed_abs_max, BlockFormat};
use super::q8_0::BlockQ8_0;
use super::GgmlType;

/// Byte `j` of `qs` holds element `j` (low nibble) and element `j + 16` (high nibble);
/// value = (q − 8)·d.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);

impl BlockFormat for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const ELEMS: usize = 32;
    type Activation = BlockQ8_0;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (j, &b) in self.qs.iter().enumerate() {
            let (lo, hi) = nibbles(b);
            out[j] = (lo as i32 - 8) as f32 * d;
            out[j + 16] = (hi as i32 - 8) as f32 * d;
        }
    }

    /// The largest-magnitude element maps to code 0 (value −8·d), so d carries its sign.
    fn quantize(src: &[f32]) -> Self {
        let d = signed_abs_max(src) / -8.0;
        let id = inverse_or_zero(d);
        // Truncation of x·id + 8.5 is round-to-nearest for the non-negative code range.
        let code = |x: f32| ((x * id + 8.5) as i8).min(15) as u8;
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = code(src[j]) | (code(src[j + 16]) << 4);
        }
        BlockQ4_0 {
            d: f16::from_f32(d),
            qs,
        }
    }
}
