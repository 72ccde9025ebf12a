//! Binding a file's tensors by name, with shape checks, to the backend that runs them.

use std::sync::Arc;

use anyhow::{bail, Context};

use crate::gguf::{GgufFile, TensorInfo};

use super::backend::Backend;
use super::hparams::Hparams;

/// The weights of one transformer block; optional parts depend on the architecture.
pub struct BlockWeights<B: Backend> {
    pub attn_norm: B::Vector,
    pub wq: B::Matrix,
    pub wk: B::Matrix,
    pub wv: B::Matrix,
    /// q, k, v biases (qwen2).
    pub qkv_bias: Option<[B::Vector; 3]>,
    /// Per-head q and k norms (qwen3, gemma3).
    pub qk_norm: Option<[B::Vector; 2]>,
    pub wo: B::Matrix,
    /// Norm applied to the attention output before the residual add (gemma3).
    pub post_attn_norm: Option<B::Vector>,
    pub ffn_norm: B::Vector,
    pub w_gate: B::Matrix,
    pub w_up: B::Matrix,
    pub w_down: B::Matrix,
    /// Norm applied to the feed-forward output before the residual add (gemma3).
    pub post_ffn_norm: Option<B::Vector>,
}

/// Where the output norm and the vocabulary projection run.
pub enum Head<H: Backend, D: Backend> {
    Host {
        norm: H::Vector,
        /// `None`: the projection is tied to the token embedding.
        output: Option<H::Matrix>,
    },
    /// On the device; a tied projection is the token embedding uploaded a second time
    /// (the embedding itself stays in host memory).
    Device { norm: D::Vector, output: D::Matrix },
}

/// Which parts of the model go to the device; the rest runs on the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Blocks `0 .. device_blocks` run on the device.
    pub device_blocks: usize,
    pub head_on_device: bool,
}

impl Split {
    pub fn uses_device(&self) -> bool {
        self.device_blocks > 0 || self.head_on_device
    }
}

/// All weights of a model, each bound to the backend of the side it runs on.
pub struct ModelWeights<H: Backend, D: Backend> {
    /// Stays in host memory: a batch reads only its tokens' rows.
    pub token_embd: H::Matrix,
    /// Blocks `0 .. device_blocks.len()`.
    pub device_blocks: Vec<BlockWeights<D>>,
    /// The blocks after those.
    pub host_blocks: Vec<BlockWeights<H>>,
    pub head: Head<H, D>,
}

impl<H: Backend, D: Backend> ModelWeights<H, D> {
    /// Binds every tensor to the backend of its side — the one place (with the hidden
    /// state's hand-over in the forward pass) where placement enters the model. Device
    /// parts are bound first, in block order, so that running out of device memory
    /// shows how many blocks fit; `on_block(i)` follows each block.
    pub fn bind(
        file: &Arc<GgufFile>,
        hp: &Hparams,
        host: &mut H,
        mut device: Option<&mut D>,
        split: Split,
        mut on_block: impl FnMut(usize),
    ) -> anyhow::Result<ModelWeights<H, D>> {
        let binder = Binder { file, hp };
        let n_device = split.device_blocks.min(hp.n_layer);
        if split.uses_device() && device.is_none() {
            bail!("parts of the model were placed on a GPU but none is open");
        }
        let mut device_blocks = Vec::with_capacity(n_device);
        let mut host_blocks = Vec::with_capacity(hp.n_layer - n_device);
        for i in 0..n_device {
            let dev = device.as_deref_mut().expect("checked above");
            device_blocks.push(binder.block(dev, i)?);
            on_block(i);
        }
        let head = if split.head_on_device {
            let dev = device.expect("checked above");
            let output_name = match file.tensor("output.weight") {
                Some(_) => "output.weight",
                None => "token_embd.weight",
            };
            Head::Device {
                norm: binder.vector(dev, "output_norm.weight", hp.n_embd)?,
                output: binder.matrix(dev, output_name, hp.n_embd, hp.n_vocab)?,
            }
        } else {
            Head::Host {
                norm: binder.vector(host, "output_norm.weight", hp.n_embd)?,
                output: match file.tensor("output.weight") {
                    Some(_) => Some(binder.matrix(host, "output.weight", hp.n_embd, hp.n_vocab)?),
                    None => None,
                },
            }
        };
        for i in n_device..hp.n_layer {
            host_blocks.push(binder.block(host, i)?);
            on_block(i);
        }
        let token_embd = binder.matrix(host, "token_embd.weight", hp.n_embd, hp.n_vocab)?;
        Ok(ModelWeights {
            token_embd,
            device_blocks,
            host_blocks,
            head,
        })
    }
}

struct Binder<'a> {
    file: &'a Arc<GgufFile>,
    hp: &'a Hparams,
}

impl Binder<'_> {
    fn info(&self, name: &str, expected: &[usize]) -> anyhow::Result<&TensorInfo> {
        let shape = || {
            let dims: Vec<String> = expected.iter().map(usize::to_string).collect();
            format!("[{}]", dims.join(", "))
        };
        let info = self
            .file
            .tensor(name)
            .with_context(|| format!("tensor {name} (shape {}) is missing", shape()))?;
        let matches = info.dims.len() == expected.len()
            && info
                .dims
                .iter()
                .zip(expected)
                .all(|(&d, &e)| d as usize == e);
        if !matches {
            bail!(
                "tensor {name} has shape {} but {} was expected",
                info.shape_string(),
                shape()
            );
        }
        Ok(info)
    }

    /// A matrix of `rows` rows of `cols` elements (GGUF dims [cols, rows]).
    fn matrix<B: Backend>(
        &self,
        b: &mut B,
        name: &str,
        cols: usize,
        rows: usize,
    ) -> anyhow::Result<B::Matrix> {
        let info = self.info(name, &[cols, rows])?;
        if !cols.is_multiple_of(info.ty.block_elems()) {
            bail!(
                "tensor {name}: rows of {cols} elements are not whole {} blocks",
                info.ty
            );
        }
        b.bind_matrix(self.file, info)
            .with_context(|| format!("tensor {name}"))
    }

    fn vector<B: Backend>(&self, b: &mut B, name: &str, len: usize) -> anyhow::Result<B::Vector> {
        let info = self.info(name, &[len])?;
        b.bind_vector(self.file, info)
            .with_context(|| format!("tensor {name}"))
    }

    fn block<B: Backend>(&self, b: &mut B, i: usize) -> anyhow::Result<BlockWeights<B>> {
        let hp = self.hp;
        let flags = &hp.flags;
        let n = |s: &str| format!("blk.{i}.{s}");
        let qkv_bias = if flags.qkv_bias {
            Some([
                self.vector(b, &n("attn_q.bias"), hp.q_dim())?,
                self.vector(b, &n("attn_k.bias"), hp.k_dim())?,
                self.vector(b, &n("attn_v.bias"), hp.v_dim())?,
            ])
        } else {
            None
        };
        let qk_norm = if flags.qk_norm {
            Some([
                self.vector(b, &n("attn_q_norm.weight"), hp.head_dim)?,
                self.vector(b, &n("attn_k_norm.weight"), hp.head_dim)?,
            ])
        } else {
            None
        };
        let post = |b: &mut B, name: &str| -> anyhow::Result<Option<B::Vector>> {
            if flags.post_norms {
                Ok(Some(self.vector(b, &n(name), hp.n_embd)?))
            } else {
                Ok(None)
            }
        };
        Ok(BlockWeights {
            attn_norm: self.vector(b, &n("attn_norm.weight"), hp.n_embd)?,
            wq: self.matrix(b, &n("attn_q.weight"), hp.n_embd, hp.q_dim())?,
            wk: self.matrix(b, &n("attn_k.weight"), hp.n_embd, hp.k_dim())?,
            wv: self.matrix(b, &n("attn_v.weight"), hp.n_embd, hp.v_dim())?,
            qkv_bias,
            qk_norm,
            wo: self.matrix(b, &n("attn_output.weight"), hp.attn_out_dim(), hp.n_embd)?,
            post_attn_norm: post(b, "post_attention_norm.weight")?,
            ffn_norm: self.vector(b, &n("ffn_norm.weight"), hp.n_embd)?,
            w_gate: self.matrix(b, &n("ffn_gate.weight"), hp.n_embd, hp.n_ff)?,
            w_up: self.matrix(b, &n("ffn_up.weight"), hp.n_embd, hp.n_ff)?,
            w_down: self.matrix(b, &n("ffn_down.weight"), hp.n_ff, hp.n_embd)?,
            post_ffn_norm: post(b, "post_ffw_norm.weight")?,
        })
    }
}
