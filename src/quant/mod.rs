//! Block formats of ggml/GGUF tensors.
//!
//! [`GgmlType`] is the registry: every format's id, name, block geometry and its row
//! conversions to and from f32. Each block format is one file holding its
//! `#[repr(C)]` block struct (plain old data, so kernels can view tensor bytes as
//! `&[BlockQ4K]` etc. with `bytemuck::cast_slice`) and its [`BlockFormat`] impl: layout,
//! activation partner, decoding and the reference quantizer. Adding a format is one
//! file plus one line in each `match` below.
//!
//! The legacy quantizers (Q4_0 … Q8_1) and Q8_K write exactly llama.cpp's reference
//! bytes; the K-quant quantizers are tandem's own error-minimising search
//! (`kquant_fit.rs`).

use std::fmt;

pub mod block;
pub mod float;
mod kquant_fit;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;

pub use block::{
    dequantize_blocks, quantize_blocks, quantize_into_blocks, quantize_to_blocks, BlockFormat,
};
pub use q2_k::BlockQ2K;
pub use q3_k::BlockQ3K;
pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q4_k::BlockQ4K;
pub use q5_0::BlockQ5_0;
pub use q5_1::BlockQ5_1;
pub use q5_k::BlockQ5K;
pub use q6_k::BlockQ6K;
pub use q8_0::BlockQ8_0;
pub use q8_1::BlockQ8_1;
pub use q8_k::BlockQ8K;

/// The tensor element formats tandem reads and writes, with their GGUF type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    BF16,
}

/// A type id that tandem does not support (yet), with its name where ggml gives it one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tensor type {name} (ggml type id {id}) is not supported")]
pub struct UnsupportedType {
    pub id: u32,
    pub name: &'static str,
}

impl GgmlType {
    /// Every supported type, in id order.
    pub const ALL: [GgmlType; 15] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q8K,
        GgmlType::BF16,
    ];

    /// The GGUF type id.
    pub const fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q8_1 => 9,
            GgmlType::Q2K => 10,
            GgmlType::Q3K => 11,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::Q8K => 15,
            GgmlType::BF16 => 30,
        }
    }

    /// Looks up a GGUF type id; unsupported ids are refused by their ggml name.
    pub fn from_id(id: u32) -> Result<GgmlType, UnsupportedType> {
        if let Some(t) = Self::ALL.iter().find(|t| t.id() == id) {
            return Ok(*t);
        }
        let name = match id {
            4 => "Q4_2 (removed from ggml)",
            5 => "Q4_3 (removed from ggml)",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            _ => "unknown",
        };
        Err(UnsupportedType { id, name })
    }

    /// The name llama.cpp prints for this type.
    pub const fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q8_1 => "Q8_1",
            GgmlType::Q2K => "Q2_K",
            GgmlType::Q3K => "Q3_K",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
            GgmlType::Q8K => "Q8_K",
            GgmlType::BF16 => "BF16",
        }
    }

    /// Parses a type name as users write it (`q4_k`, `Q4_K`, `f16`, ...).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        let upper = name.to_ascii_uppercase();
        Self::ALL.iter().copied().find(|t| t.name() == upper)
    }

    /// Elements in one block (1 for the float formats).
    pub const fn block_elems(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q8_1 => 32,
            GgmlType::Q2K
            | GgmlType::Q3K
            | GgmlType::Q4K
            | GgmlType::Q5K
            | GgmlType::Q6K
            | GgmlType::Q8K => 256,
        }
    }

    /// Bytes in one block.
    pub const fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q8_1 => 36,
            GgmlType::Q2K => 84,
            GgmlType::Q3K => 110,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
            GgmlType::Q8K => 292,
        }
    }

    /// Bytes taken by `n_elems` elements, or `None` when `n_elems` is not a whole
    /// number of blocks (or the size overflows).
    pub fn bytes_for(self, n_elems: u64) -> Option<u64> {
        let be = self.block_elems() as u64;
        if !n_elems.is_multiple_of(be) {
            return None;
        }
        (n_elems / be).checked_mul(self.block_bytes() as u64)
    }

    /// The format activations are converted to before dot products with weights of
    /// this type (llama.cpp's pairing): Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1,
    /// Q8_K for the K-quants; activation formats and floats pair with themselves.
    pub fn activation_type(self) -> GgmlType {
        fn partner<B: BlockFormat>() -> GgmlType {
            <B::Activation as BlockFormat>::TYPE
        }
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => self,
            GgmlType::Q4_0 => partner::<BlockQ4_0>(),
            GgmlType::Q4_1 => partner::<BlockQ4_1>(),
            GgmlType::Q5_0 => partner::<BlockQ5_0>(),
            GgmlType::Q5_1 => partner::<BlockQ5_1>(),
            GgmlType::Q8_0 => partner::<BlockQ8_0>(),
            GgmlType::Q8_1 => partner::<BlockQ8_1>(),
            GgmlType::Q2K => partner::<BlockQ2K>(),
            GgmlType::Q3K => partner::<BlockQ3K>(),
            GgmlType::Q4K => partner::<BlockQ4K>(),
            GgmlType::Q5K => partner::<BlockQ5K>(),
            GgmlType::Q6K => partner::<BlockQ6K>(),
            GgmlType::Q8K => partner::<BlockQ8K>(),
        }
    }

    /// Whether this is a block-quantized format (not a plain float).
    pub const fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }
}

/// Row conversions. A row is a whole number of blocks; `src`/`dst` lengths must match
/// `n = dst.len()` (dequantize) or `n = src.len()` (quantize) elements.
impl GgmlType {
    /// Decodes `dst.len()` elements from the bytes of whole blocks in `src`.
    ///
    /// # Panics
    /// When `dst.len()` is not a whole number of blocks or `src` holds too few bytes.
    pub fn dequantize_row(self, src: &[u8], dst: &mut [f32]) {
        match self {
            GgmlType::F32 => float::dequantize_f32(src, dst),
            GgmlType::F16 => float::dequantize_f16(src, dst),
            GgmlType::BF16 => float::dequantize_bf16(src, dst),
            GgmlType::Q4_0 => dequantize_blocks::<BlockQ4_0>(src, dst),
            GgmlType::Q4_1 => dequantize_blocks::<BlockQ4_1>(src, dst),
            GgmlType::Q5_0 => dequantize_blocks::<BlockQ5_0>(src, dst),
            GgmlType::Q5_1 => dequantize_blocks::<BlockQ5_1>(src, dst),
            GgmlType::Q8_0 => dequantize_blocks::<BlockQ8_0>(src, dst),
            GgmlType::Q8_1 => dequantize_blocks::<BlockQ8_1>(src, dst),
            GgmlType::Q2K => dequantize_blocks::<BlockQ2K>(src, dst),
            GgmlType::Q3K => dequantize_blocks::<BlockQ3K>(src, dst),
            GgmlType::Q4K => dequantize_blocks::<BlockQ4K>(src, dst),
            GgmlType::Q5K => dequantize_blocks::<BlockQ5K>(src, dst),
            GgmlType::Q6K => dequantize_blocks::<BlockQ6K>(src, dst),
            GgmlType::Q8K => dequantize_blocks::<BlockQ8K>(src, dst),
        }
    }

    /// Encodes `src` (a whole number of blocks) into `dst` with the reference quantizer.
    ///
    /// # Panics
    /// When `src.len()` is not a whole number of blocks or `dst` is too short.
    pub fn quantize_row(self, src: &[f32], dst: &mut [u8]) {
        match self {
            GgmlType::F32 => float::quantize_f32(src, dst),
            GgmlType::F16 => float::quantize_f16(src, dst),
            GgmlType::BF16 => float::quantize_bf16(src, dst),
            GgmlType::Q4_0 => quantize_blocks::<BlockQ4_0>(src, dst),
            GgmlType::Q4_1 => quantize_blocks::<BlockQ4_1>(src, dst),
            GgmlType::Q5_0 => quantize_blocks::<BlockQ5_0>(src, dst),
            GgmlType::Q5_1 => quantize_blocks::<BlockQ5_1>(src, dst),
            GgmlType::Q8_0 => quantize_blocks::<BlockQ8_0>(src, dst),
            GgmlType::Q8_1 => quantize_blocks::<BlockQ8_1>(src, dst),
            GgmlType::Q2K => quantize_blocks::<BlockQ2K>(src, dst),
            GgmlType::Q3K => quantize_blocks::<BlockQ3K>(src, dst),
            GgmlType::Q4K => quantize_blocks::<BlockQ4K>(src, dst),
            GgmlType::Q5K => quantize_blocks::<BlockQ5K>(src, dst),
            GgmlType::Q6K => quantize_blocks::<BlockQ6K>(src, dst),
            GgmlType::Q8K => quantize_blocks::<BlockQ8K>(src, dst),
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unsupported_are_named() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Ok(t));
            assert_eq!(GgmlType::from_name(&t.name().to_lowercase()), Some(t));
        }
        let err = GgmlType::from_id(23).unwrap_err();
        assert_eq!(err.name, "IQ4_XS");
        assert!(err.to_string().contains("IQ4_XS"));
    }

    #[test]
    fn block_structs_match_the_registry() {
        fn check<B: BlockFormat>() {
            assert_eq!(size_of::<B>(), B::TYPE.block_bytes(), "{}", B::TYPE);
            assert_eq!(B::ELEMS, B::TYPE.block_elems(), "{}", B::TYPE);
        }
        check::<BlockQ4_0>();
        check::<BlockQ4_1>();
        check::<BlockQ5_0>();
        check::<BlockQ5_1>();
        check::<BlockQ8_0>();
        check::<BlockQ8_1>();
        check::<BlockQ2K>();
        check::<BlockQ3K>();
        check::<BlockQ4K>();
        check::<BlockQ5K>();
        check::<BlockQ6K>();
        check::<BlockQ8K>();
    }

    #[test]
    fn activation_pairing_follows_llama_cpp() {
        use GgmlType::*;
        for (weight, act) in [
            (Q4_0, Q8_0),
            (Q5_0, Q8_0),
            (Q8_0, Q8_0),
            (Q4_1, Q8_1),
            (Q5_1, Q8_1),
            (Q2K, Q8K),
            (Q3K, Q8K),
            (Q4K, Q8K),
            (Q5K, Q8K),
            (Q6K, Q8K),
            (F32, F32),
        ] {
            assert_eq!(weight.activation_type(), act, "{weight}");
        }
    }

    #[test]
    fn sizes_follow_block_geometry() {
        assert_eq!(GgmlType::Q4K.block_bytes(), 144);
        assert_eq!(GgmlType::Q4K.bytes_for(512), Some(288));
        assert_eq!(GgmlType::Q4K.bytes_for(100), None);
        assert_eq!(GgmlType::F16.bytes_for(3), Some(6));
    }
}
