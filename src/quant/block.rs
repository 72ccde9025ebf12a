//! The shape every block format shares, and the generic row loops built on it.
//!
//! A block format is a `#[repr(C)]` plain-old-data struct holding one block exactly as
//! it lies in a GGUF file, so kernels can view tensor bytes as `&[Block]` with
//! `bytemuck::cast_slice`. Adding a format means one file implementing [`BlockFormat`]
//! and one line in the registry (`GgmlType::dequantize_row` / `quantize_row`).

use bytemuck::{Pod, Zeroable};

use super::GgmlType;

/// One block of a quantized format.
pub trait BlockFormat: Pod + Zeroable {
    /// The registry entry of this format.
    const TYPE: GgmlType;
    /// Elements in one block.
    const ELEMS: usize;
    /// The format activations are quantized to before integer dot products with
    /// weights of this format (llama.cpp's pairing; activation formats pair with themselves).
    type Activation: BlockFormat;

    /// Decodes the block into `out` (`out.len() == ELEMS`).
    fn dequantize(&self, out: &mut [f32]);

    /// Encodes `src` (`src.len() == ELEMS`) with this format's reference quantizer.
    fn quantize(src: &[f32]) -> Self;
}

/// Decodes `dst.len()` elements from whole blocks of `B` in `src`.
///
/// # Panics
/// When `dst.len()` is not a multiple of the block size or `src` is too short.
pub fn dequantize_blocks<B: BlockFormat>(src: &[u8], dst: &mut [f32]) {
    let n_blocks = check_row::<B>(dst.len(), src.len());
    let src = &src[..n_blocks * size_of::<B>()];
    match bytemuck::try_cast_slice::<u8, B>(src) {
        Ok(blocks) => {
            for (block, out) in blocks.iter().zip(dst.chunks_exact_mut(B::ELEMS)) {
                block.dequantize(out);
            }
        }
        // Bytes not aligned for `B` (only formats with 4-byte fields can hit this).
        Err(_) => {
            for (bytes, out) in src
                .chunks_exact(size_of::<B>())
                .zip(dst.chunks_exact_mut(B::ELEMS))
            {
                bytemuck::pod_read_unaligned::<B>(bytes).dequantize(out);
            }
        }
    }
}

/// Encodes `src` (whole blocks of `B`) into the first bytes of `dst`.
///
/// # Panics
/// When `src.len()` is not a multiple of the block size or `dst` is too short.
pub fn quantize_blocks<B: BlockFormat>(src: &[f32], dst: &mut [u8]) {
    let n_blocks = check_row::<B>(src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(B::ELEMS)
        .zip(dst[..n_blocks * size_of::<B>()].chunks_exact_mut(size_of::<B>()))
    {
        out.copy_from_slice(bytemuck::bytes_of(&B::quantize(x)));
    }
}

/// Encodes `src` (whole blocks of `B`) into a vector of blocks.
pub fn quantize_to_blocks<B: BlockFormat>(src: &[f32]) -> Vec<B> {
    assert_eq!(
        src.len() % B::ELEMS,
        0,
        "{} rows must be whole blocks of {} elements",
        B::TYPE,
        B::ELEMS
    );
    src.chunks_exact(B::ELEMS).map(B::quantize).collect()
}

/// Encodes `src` (whole blocks of `B`) into the caller's block buffer, e.g. activations
/// converted once per matmul into a reused `Vec<BlockQ8K>`.
///
/// # Panics
/// When `src.len()` is not `dst.len()` whole blocks.
pub fn quantize_into_blocks<B: BlockFormat>(src: &[f32], dst: &mut [B]) {
    assert_eq!(
        src.len(),
        dst.len() * B::ELEMS,
        "{} needs {} elements per block",
        B::TYPE,
        B::ELEMS
    );
    for (x, block) in src.chunks_exact(B::ELEMS).zip(dst) {
        *block = B::quantize(x);
    }
}

fn check_row<B: BlockFormat>(n_elems: usize, n_bytes: usize) -> usize {
    assert_eq!(
        n_elems % B::ELEMS,
        0,
        "{} rows must be whole blocks of {} elements, got {n_elems}",
        B::TYPE,
        B::ELEMS
    );
    let n_blocks = n_elems / B::ELEMS;
    assert!(
        n_bytes >= n_blocks * size_of::<B>(),
        "{} row of {n_elems} elements needs {} bytes, got {n_bytes}",
        B::TYPE,
        n_blocks * size_of::<B>()
    );
    n_blocks
}

/// Splits a byte into its low and high nibble.
#[inline]
pub(crate) fn nibbles(b: u8) -> (u8, u8) {
    (b & 0x0f, b >> 4)
}

/// The element of largest magnitude, with its sign (the first one on ties), as
/// llama.cpp's symmetric quantizers pick it.
pub(crate) fn signed_abs_max(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Smallest and largest element (`(f32::MAX, -f32::MAX)` for an empty slice).
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::MAX, -f32::MAX), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// `1/d`, or 0 for a zero scale (so an all-zero block quantizes to zeros).
#[inline]
pub(crate) fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}
