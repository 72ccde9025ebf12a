//! What the planner knows of a model: its dimensions and the bytes of each tensor, read
//! from a GGUF header or made from a preset (the shapes of the published models), so a
//! plan needs neither the weights nor a GPU.

use anyhow::Context;

use crate::gguf::GgufFile;
use crate::model::{ActWidths, Hparams};
use crate::quant::GgmlType;
use crate::synth::SynthSpec;
use crate::weight_types::{block_index, WeightTypeChoice};

/// One tensor as the planner sees it.
#[derive(Clone, Debug)]
pub struct TensorShape {
    pub name: String,
    pub ty: GgmlType,
    pub dims: Vec<u64>,
    /// Bytes in the file (what a matrix upload takes).
    pub n_bytes: u64,
}

impl TensorShape {
    fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// A one-dimensional tensor (norm weights, biases), which the GPU holds as f32.
    pub fn is_vector(&self) -> bool {
        self.dims.len() == 1
    }
}

/// A model's dimensions and tensors.
#[derive(Clone, Debug)]
pub struct ModelShape {
    /// The file's `general.name`, or the preset's.
    pub name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    pub widths: ActWidths,
    /// Length of the rope frequency factors, when the model has them.
    pub freq_factors: Option<usize>,
    pub tensors: Vec<TensorShape>,
}

impl ModelShape {
    /// The shape of a model file (its header only is read).
    pub fn of_file(file: &GgufFile) -> anyhow::Result<ModelShape> {
        let hp = Hparams::from_file(file)
            .with_context(|| format!("{}: cannot read the model", file.path().display()))?;
        Ok(Self::of_model(file, &hp))
    }

    /// The shape of a model file whose hyperparameters `hp` were read already.
    pub fn of_model(file: &GgufFile, hp: &Hparams) -> ModelShape {
        let name = file
            .metadata()
            .opt_str("general.name")
            .ok()
            .flatten()
            .unwrap_or("model")
            .to_string();
        let tensors = file
            .tensors()
            .iter()
            .map(|t| TensorShape {
                name: t.name.clone(),
                ty: t.ty,
                dims: t.dims.clone(),
                n_bytes: t.n_bytes,
            })
            .collect();
        ModelShape {
            name,
            n_layer: hp.n_layer,
            n_embd: hp.n_embd,
            n_vocab: hp.n_vocab,
            n_ctx_train: hp.n_ctx_train,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
            head_dim_v: hp.head_dim_v,
            widths: hp.act_widths(),
            freq_factors: hp.rope.freq_factors.as_ref().map(Vec::len),
            tensors,
        }
    }

    /// A llama model of a `tandem synth` preset (`7b`, `13b`, `33b`, `70b`: LLaMA 2's
    /// shapes, 70B with LLaMA 3's 8 K/V heads) in weight type `ty`, with a vocabulary of
    /// `n_vocab` (LLaMA 2: 32000, LLaMA 3: 128256).
    pub fn of_preset(
        preset: &str,
        ty: WeightTypeChoice,
        n_vocab: usize,
    ) -> anyhow::Result<ModelShape> {
        let mut spec = SynthSpec::preset(crate::model::Arch::Llama, preset)?;
        spec.weight_type = ty;
        spec.name = format!("llama {preset} {ty} (preset)");
        let tensors = spec
            .tensor_descs(n_vocab)
            .into_iter()
            .map(|d| TensorShape {
                n_bytes: d.n_bytes(),
                name: d.name,
                ty: d.ty,
                dims: d.dims,
            })
            .collect();
        Ok(ModelShape {
            name: spec.name.clone(),
            n_layer: spec.n_blocks,
            n_embd: spec.n_embd,
            n_vocab,
            n_ctx_train: spec.context_length,
            n_head_kv: spec.n_head_kv,
            head_dim: spec.head_dim,
            head_dim_v: spec.head_dim,
            widths: ActWidths {
                n_embd: spec.n_embd,
                q_dim: spec.n_head * spec.head_dim,
                k_dim: spec.n_head_kv * spec.head_dim,
                v_dim: spec.n_head_kv * spec.head_dim,
                attn_out_dim: spec.n_head * spec.head_dim,
                n_ff: spec.n_ff,
            },
            freq_factors: None,
            tensors,
        })
    }

    fn tensor(&self, name: &str) -> Option<&TensorShape> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensors of block `i`.
    pub fn block_tensors(&self, i: usize) -> impl Iterator<Item = &TensorShape> {
        self.tensors
            .iter()
            .filter(move |t| block_index(&t.name) == Some(i))
    }

    /// File bytes of block `i`'s tensors (what a token reads of it).
    pub fn block_file_bytes(&self, i: usize) -> u64 {
        self.block_tensors(i).map(|t| t.n_bytes).sum()
    }

    /// The output projection: `output.weight`, or the token embedding it is tied to.
    pub fn head_matrix(&self) -> Option<&TensorShape> {
        self.tensor("output.weight")
            .or_else(|| self.tensor("token_embd.weight"))
    }

    pub fn output_norm(&self) -> Option<&TensorShape> {
        self.tensor("output_norm.weight")
    }

    /// Bytes of every tensor.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }

    /// Multiply-adds per token in the matrices a token goes through (blocks and head).
    pub fn macs_per_token(&self) -> u64 {
        let blocks: u64 = (0..self.n_layer)
            .flat_map(|i| self.block_tensors(i))
            .filter(|t| !t.is_vector())
            .map(TensorShape::n_elements)
            .sum();
        blocks + self.head_matrix().map_or(0, TensorShape::n_elements)
    }

    /// The weight type most of the block bytes are in.
    pub fn main_type(&self) -> GgmlType {
        let mut by_type: Vec<(GgmlType, u64)> = Vec::new();
        for t in self
            .tensors
            .iter()
            .filter(|t| block_index(&t.name).is_some())
        {
            match by_type.iter_mut().find(|(ty, _)| *ty == t.ty) {
                Some((_, b)) => *b += t.n_bytes,
                None => by_type.push((t.ty, t.n_bytes)),
            }
        }
        by_type
            .into_iter()
            .max_by_key(|&(_, b)| b)
            .map_or(GgmlType::F32, |(ty, _)| ty)
    }
}
