//! Q8_K: 256 elements as signed bytes with an f32 scale and the sums of each group of
//! 16 codes. The activation format paired with every K-quant weight. 292 bytes.

use bytemuck::Zeroable;

use super::block::{signed_abs_max, BlockFormat};
use super::GgmlType;

/// value = q·d; `bsums[i]` = Σ qs[16i .. 16i+16].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; 256],
    pub bsums: [i16; 16],
}

const _: () = assert!(size_of::<BlockQ8K>() == 292);

impl BlockFormat for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8K;
    const ELEMS: usize = 256;
    type Activation = BlockQ8K;

    fn dequantize(&self, out: &mut [f32]) {
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * self.d;
        }
    }

    /// The largest-magnitude element maps to −127 (d carries its sign); codes round
    /// half to even, as llama.cpp's `nearest_int`.
    fn quantize(src: &[f32]) -> Self {
        let max = signed_abs_max(src);
        let mut block = BlockQ8K::zeroed();
        if max == 0.0 {
            return block;
        }
        let iscale = -127.0 / max;
        for (q, &x) in block.qs.iter_mut().zip(src) {
            *q = ((iscale * x).round_ties_even() as i32).min(127) as i8;
        }
        for (sum, group) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
            *sum = group.iter().map(|&q| q as i16).sum();
        }
        block.d = 1.0 / iscale;
        block
    }
}
