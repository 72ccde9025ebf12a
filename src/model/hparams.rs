//! Hyperparameters read from a GGUF file's metadata, and the small per-architecture flags
//! that make one block description serve llama, qwen2, qwen3 and gemma3.

use anyhow::{bail, Context};

use crate::gguf::{GgufFile, Metadata};

/// The architectures tandem runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Gemma3];

    pub fn from_name(name: &str) -> anyhow::Result<Arch> {
        Ok(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            other => {
                bail!("unknown architecture `{other}` (supported: llama, qwen2, qwen3, gemma3)")
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// How rope pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopePairing {
    /// Dimensions (2j, 2j+1): llama files (the converter permuted Wq/Wk for this).
    Adjacent,
    /// Dimensions (j, j + d/2): qwen2, qwen3, gemma3.
    Neox,
}

/// The nonlinearity of the gated feed-forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// The tanh approximation of gelu.
    GeluTanh,
}

/// Rope settings of one block.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeParams {
    pub pairing: RopePairing,
    /// Rotated width of each head (the rest of the head is left as it is).
    pub n_dims: usize,
    pub freq_base: f32,
    /// Positions are multiplied by this (1 / the linear scaling factor).
    pub freq_scale: f32,
    /// Per-pair frequency divisors (`rope_freqs.weight`, llama 3.1+).
    pub freq_factors: Option<Vec<f32>>,
}

/// Which optional parts a block has; everything else is shared by all architectures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockFlags {
    /// q, k and v have biases (qwen2).
    pub qkv_bias: bool,
    /// Each head of q and k is RMS-normalized before rope (qwen3, gemma3).
    pub qk_norm: bool,
    /// The attention and feed-forward outputs are normalized before the residual add (gemma3).
    pub post_norms: bool,
    pub activation: Activation,
    /// The embedding is multiplied by this (gemma3: sqrt(n_embd)).
    pub embed_scale: Option<f32>,
    /// q is multiplied by this after rope and attention then uses scale 1 (gemma3);
    /// `None`: attention uses 1/sqrt(head_dim).
    pub q_scale: Option<f32>,
}

/// Everything the forward pass needs to know about the model's shape.
#[derive(Clone, Debug)]
pub struct Hparams {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Width of each q/k head.
    pub head_dim: usize,
    /// Width of each v head.
    pub head_dim_v: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub norm_eps: f32,
    pub flags: BlockFlags,
    /// Rope of full-attention blocks.
    pub rope: RopeParams,
    /// Sliding-window attention, when the model uses it.
    pub swa: Option<SlidingWindow>,
    /// How the model's metadata says to pool token embeddings into one vector
    /// (`{arch}.pooling_type`); `None` when it says nothing.
    pub pooling: Option<Pooling>,
}

/// Pooling of per-token embeddings into one vector (llama.cpp's `pooling_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The mean of every token's normalized hidden state.
    Mean,
    /// The first token's (BERT-style classifier token).
    Cls,
    /// The last token's.
    Last,
}

impl Pooling {
    /// The GGUF code (`0` none, `1` mean, `2` cls, `3` last); others are not supported.
    pub fn from_code(code: usize) -> anyhow::Result<Option<Pooling>> {
        Ok(match code {
            0 => None,
            1 => Some(Pooling::Mean),
            2 => Some(Pooling::Cls),
            3 => Some(Pooling::Last),
            other => bail!("pooling type {other} is not supported (mean, cls or last)"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Last => "last",
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Pooling, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "last" => Ok(Pooling::Last),
            _ => Err(format!("`{s}` is not a pooling (mean, cls or last)")),
        }
    }
}

/// Sliding-window attention (gemma3): block i uses a window when `i % period < period - 1`.
#[derive(Clone, Debug)]
pub struct SlidingWindow {
    pub window: usize,
    pub period: usize,
    /// Rope base of the windowed blocks.
    pub freq_base: f32,
}

/// The settings one block runs with.
#[derive(Clone, Debug)]
pub struct BlockParams {
    pub rope: RopeParams,
    /// A query at position p sees keys p − window + 1 … p; `None`: all earlier keys.
    pub window: Option<usize>,
}

impl Hparams {
    pub fn from_file(file: &GgufFile) -> anyhow::Result<Hparams> {
        let md = file.metadata();
        let arch_name = md.str("general.architecture")?;
        let arch = Arch::from_name(arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");

        let n_embd = md.usize(&key("embedding_length"))?;
        let n_layer = md.usize(&key("block_count"))?;
        let n_head = md.usize(&key("attention.head_count"))?;
        let n_head_kv = md
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(n_head);
        let n_ff = md.usize(&key("feed_forward_length"))?;
        if n_embd == 0 || n_layer == 0 || n_head == 0 || n_head_kv == 0 || n_ff == 0 {
            bail!("model hyperparameters must be positive (n_embd {n_embd}, n_layer {n_layer}, n_head {n_head}, n_head_kv {n_head_kv}, n_ff {n_ff})");
        }
        if n_head % n_head_kv != 0 {
            bail!("n_head {n_head} is not a multiple of n_head_kv {n_head_kv}");
        }
        let head_dim = md
            .opt_usize(&key("attention.key_length"))?
            .unwrap_or(n_embd / n_head);
        let head_dim_v = md
            .opt_usize(&key("attention.value_length"))?
            .unwrap_or(head_dim);
        let n_ctx_train = md.opt_usize(&key("context_length"))?.unwrap_or(2048);
        let norm_eps = md
            .opt_f32(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5);
        let n_vocab = vocab_size(file, md)?;

        let n_dims = md
            .opt_usize(&key("rope.dimension_count"))?
            .unwrap_or(head_dim);
        if n_dims > head_dim || n_dims % 2 != 0 {
            bail!(
                "rope dimension count {n_dims} must be even and at most the head width {head_dim}"
            );
        }
        let freq_base = md.opt_f32(&key("rope.freq_base"))?.unwrap_or(10000.0);
        let freq_scale = rope_freq_scale(md, &key)?;
        let freq_factors = match file.tensor("rope_freqs.weight") {
            None => None,
            Some(info) => {
                if info.n_elements() as usize != n_dims / 2 {
                    bail!(
                        "tensor rope_freqs.weight has shape {} but [{}] was expected",
                        info.shape_string(),
                        n_dims / 2
                    );
                }
                let mut f = vec![0f32; n_dims / 2];
                info.ty.dequantize_row(file.tensor_data(info), &mut f);
                Some(f)
            }
        };
        let pairing = match arch {
            Arch::Llama => RopePairing::Adjacent,
            Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma3 => RopePairing::Neox,
        };
        let rope = RopeParams {
            pairing,
            n_dims,
            freq_base,
            freq_scale,
            freq_factors,
        };

        let flags = BlockFlags {
            qkv_bias: arch == Arch::Qwen2,
            qk_norm: matches!(arch, Arch::Qwen3 | Arch::Gemma3),
            post_norms: arch == Arch::Gemma3,
            activation: if arch == Arch::Gemma3 {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            embed_scale: (arch == Arch::Gemma3).then(|| (n_embd as f32).sqrt()),
            q_scale: (arch == Arch::Gemma3).then(|| 1.0 / (head_dim as f32).sqrt()),
        };
        let swa = match arch {
            Arch::Gemma3 => Some(SlidingWindow {
                window: md
                    .opt_usize(&key("attention.sliding_window"))?
                    .unwrap_or(512)
                    .max(1),
                period: 6,
                freq_base: 10000.0,
            }),
            _ => None,
        };
        let pooling = match md.opt_usize(&key("pooling_type"))? {
            Some(code) => Pooling::from_code(code)?,
            None => None,
        };
        Ok(Hparams {
            pooling,
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_ff,
            n_ctx_train,
            norm_eps,
            flags,
            rope,
            swa,
        })
    }

    /// Rope and window of block `i`.
    pub fn block_params(&self, i: usize) -> BlockParams {
        match &self.swa {
            Some(swa) if i % swa.period < swa.period - 1 => BlockParams {
                rope: RopeParams {
                    freq_base: swa.freq_base,
                    freq_scale: 1.0,
                    ..self.rope.clone()
                },
                window: Some(swa.window),
            },
            _ => BlockParams {
                rope: self.rope.clone(),
                window: None,
            },
        }
    }

    /// Widths of the activation buffers a forward pass of this model uses.
    pub fn act_widths(&self) -> super::backend::ActWidths {
        super::backend::ActWidths {
            n_embd: self.n_embd,
            q_dim: self.q_dim(),
            k_dim: self.k_dim(),
            v_dim: self.v_dim(),
            attn_out_dim: self.attn_out_dim(),
            n_ff: self.n_ff,
        }
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn k_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    pub fn v_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }

    /// Width of the attention output (input of Wo).
    pub fn attn_out_dim(&self) -> usize {
        self.n_head * self.head_dim_v
    }
}

/// The vocabulary size: the embedding's row count, which the tokenizer must agree with.
fn vocab_size(file: &GgufFile, md: &Metadata) -> anyhow::Result<usize> {
    let embd = file
        .tensor("token_embd.weight")
        .context("tensor token_embd.weight is missing")?;
    if embd.dims.len() != 2 {
        bail!(
            "tensor token_embd.weight has shape {} but a matrix was expected",
            embd.shape_string()
        );
    }
    let n_vocab = embd.dims[1] as usize;
    if let Some(tokens) = md.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        if tokens.len() > n_vocab {
            bail!(
                "the tokenizer has {} tokens but token_embd.weight has only {n_vocab} rows",
                tokens.len()
            );
        }
    }
    Ok(n_vocab)
}

fn rope_freq_scale(md: &Metadata, key: &dyn Fn(&str) -> String) -> anyhow::Result<f32> {
    let scaling = md
        .opt_str(&key("rope.scaling.type"))?
        .unwrap_or("none")
        .to_string();
    let factor = md.opt_f32(&key("rope.scaling.factor"))?;
    // Older files only give rope.scale_linear.
    let legacy = md.opt_f32(&key("rope.scale_linear"))?;
    Ok(match (scaling.as_str(), factor, legacy) {
        ("linear", Some(f), _) if f > 0.0 => 1.0 / f,
        ("none", _, Some(f)) if f > 0.0 => 1.0 / f,
        ("none" | "linear", _, _) => 1.0,
        (other, _, _) => bail!("rope scaling type `{other}` is not supported (only linear)"),
    })
}
