//! Which GGML type each tensor of a model gets when writing (`tandem synth`) or converting
//! (`tandem quantize`): one type for every weight matrix, or a llama.cpp-style mixture.

use std::fmt;

use crate::quant::GgmlType;

/// The requested weight type: a single format, or the `Q4_K_M` mixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightTypeChoice {
    Uniform(GgmlType),
    /// llama.cpp's Q4_K_M: Q4_K for most weights, Q6_K for the output matrix and for
    /// `attn_v`/`ffn_down` in the blocks that `use_more_bits` picks.
    Q4KM,
}

impl WeightTypeChoice {
    /// Parses `Q4_0`, `q8_0`, `F16`, `Q4_K_M`, ...
    pub fn from_name(name: &str) -> Option<WeightTypeChoice> {
        if name.eq_ignore_ascii_case("Q4_K_M") {
            return Some(WeightTypeChoice::Q4KM);
        }
        GgmlType::from_name(name).map(WeightTypeChoice::Uniform)
    }

    /// The value of `general.file_type` (llama.cpp's `llama_ftype`) for this choice.
    pub fn file_type(self) -> u32 {
        match self {
            WeightTypeChoice::Q4KM => 15,
            WeightTypeChoice::Uniform(t) => match t {
                GgmlType::F32 => 0,
                GgmlType::F16 => 1,
                GgmlType::Q4_0 => 2,
                GgmlType::Q4_1 => 3,
                GgmlType::Q8_0 => 7,
                GgmlType::Q5_0 => 8,
                GgmlType::Q5_1 => 9,
                GgmlType::Q2K => 10,
                GgmlType::Q3K => 11,
                GgmlType::Q4K => 14,
                GgmlType::Q5K => 16,
                GgmlType::Q6K => 18,
                GgmlType::BF16 => 32,
                // No llama_ftype names these; 1024 is llama.cpp's "guessed".
                GgmlType::Q8_1 | GgmlType::Q8K => 1024,
            },
        }
    }

    /// The type of a 2-D weight `name` (a GGUF tensor name) in a model of `n_blocks`
    /// blocks, before any fallback for rows that are not whole blocks. `tied_output`:
    /// the model has no `output.weight`, so `token_embd` also serves as the output.
    pub fn matrix_type(self, name: &str, n_blocks: usize, tied_output: bool) -> GgmlType {
        match self {
            WeightTypeChoice::Uniform(t) => t,
            WeightTypeChoice::Q4KM => {
                let is_output =
                    name == "output.weight" || (tied_output && name == "token_embd.weight");
                if is_output {
                    return GgmlType::Q6K;
                }
                let more_bits_kind =
                    name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight");
                match block_index(name) {
                    Some(i) if more_bits_kind && use_more_bits(i, n_blocks) => GgmlType::Q6K,
                    _ => GgmlType::Q4K,
                }
            }
        }
    }
}

impl fmt::Display for WeightTypeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightTypeChoice::Uniform(t) => write!(f, "{t}"),
            WeightTypeChoice::Q4KM => f.write_str("Q4_K_M"),
        }
    }
}

/// The block number N of a `blk.N.*` tensor name.
pub fn block_index(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// llama.cpp's rule for the blocks that get more bits in the `_M` mixtures: the first
/// eighth, the last eighth, and every third block in between.
pub fn use_more_bits(block: usize, n_blocks: usize) -> bool {
    let eighth = n_blocks / 8;
    block < eighth || block >= 7 * n_blocks / 8 || (block - eighth) % 3 == 2
}

/// `ty` when rows of `row_len` elements are whole blocks of it, else the type llama.cpp
/// falls back to (K-quants to a 32-element format of at least as many bits, then F16).
pub fn fit_type(ty: GgmlType, row_len: usize) -> GgmlType {
    if row_len.is_multiple_of(ty.block_elems()) {
        return ty;
    }
    let fallback = match ty {
        GgmlType::Q2K | GgmlType::Q3K => GgmlType::Q4_0,
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K | GgmlType::Q8K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    };
    if row_len.is_multiple_of(fallback.block_elems()) {
        fallback
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_blocks_match_llama_cpp_rule_for_32_blocks() {
        // n=32: eighth = 4; blocks 0-3, 28-31, and 4 + 3k + 2 = 6, 9, ..., 27.
        let picked: Vec<usize> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        let expected = vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
        assert_eq!(picked, expected);
    }

    #[test]
    fn q4_k_m_mixture() {
        let m = WeightTypeChoice::from_name("q4_k_m").unwrap();
        assert_eq!(m.matrix_type("output.weight", 32, false), GgmlType::Q6K);
        assert_eq!(m.matrix_type("token_embd.weight", 32, false), GgmlType::Q4K);
        assert_eq!(m.matrix_type("token_embd.weight", 32, true), GgmlType::Q6K);
        assert_eq!(
            m.matrix_type("blk.0.attn_v.weight", 32, false),
            GgmlType::Q6K
        );
        assert_eq!(
            m.matrix_type("blk.5.attn_v.weight", 32, false),
            GgmlType::Q4K
        );
        assert_eq!(
            m.matrix_type("blk.6.ffn_down.weight", 32, false),
            GgmlType::Q6K
        );
        assert_eq!(
            m.matrix_type("blk.0.attn_q.weight", 32, false),
            GgmlType::Q4K
        );
        assert_eq!(m.file_type(), 15);
    }

    #[test]
    fn fallbacks_fit_the_row() {
        assert_eq!(fit_type(GgmlType::Q4K, 640), GgmlType::Q5_0);
        assert_eq!(fit_type(GgmlType::Q6K, 640), GgmlType::Q8_0);
        assert_eq!(fit_type(GgmlType::Q4K, 512), GgmlType::Q4K);
        assert_eq!(fit_type(GgmlType::Q4_0, 48), GgmlType::F16);
        assert_eq!(block_index("blk.17.attn_v.weight"), Some(17));
        assert_eq!(block_index("output.weight"), None);
    }
}
