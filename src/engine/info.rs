//! A summary of a loaded model for display.

use crate::gguf::GgufFile;
use crate::model::Hparams;

/// What `tandem` prints about a model.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Architecture name as in the file (`llama`, `gemma3`, ...).
    pub arch: String,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// Number of weights (elements of all tensors).
    pub n_params: u64,
    /// Bytes of all tensor data.
    pub size_bytes: u64,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_layer: usize,
    pub n_embd: usize,
    /// llama.cpp's name of the file type (`Q4_K - Medium`, ...).
    pub file_type: String,
}

impl ModelInfo {
    pub fn of(file: &GgufFile, hp: &Hparams) -> anyhow::Result<ModelInfo> {
        let md = file.metadata();
        let ftype = md.opt_u64("general.file_type")?;
        Ok(ModelInfo {
            arch: hp.arch.name().to_string(),
            name: md.opt_str("general.name")?.map(str::to_string),
            n_params: file.tensors().iter().map(|t| t.n_elements()).sum(),
            size_bytes: file.tensors().iter().map(|t| t.n_bytes).sum(),
            n_vocab: hp.n_vocab,
            n_ctx_train: hp.n_ctx_train,
            n_layer: hp.n_layer,
            n_embd: hp.n_embd,
            file_type: ftype.map_or_else(|| "unknown".to_string(), file_type_name),
        })
    }
}

/// llama.cpp's names of `general.file_type` values.
fn file_type_name(ftype: u64) -> String {
    let name = match ftype {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        32 => "BF16",
        other => return format!("file type {other}"),
    };
    name.to_string()
}
