//! The operations a forward pass is written in. A backend (the CPU now, a GPU later) owns
//! the activation buffers and the bound weights and implements each operation on them.

use std::sync::Arc;

use crate::gguf::{GgufFile, TensorInfo};
use crate::kv::BlockKv;

use super::hparams::{Activation, RopeParams};

/// The activation buffers of a micro-batch; each holds one row per token of the batch,
/// of a width fixed by the model (see [`Act::width`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// The residual stream (n_embd).
    X,
    /// A normalized copy of the residual stream (n_embd).
    Norm,
    /// Queries (n_head × head_dim).
    Q,
    /// Keys of the batch (n_head_kv × head_dim).
    K,
    /// Values of the batch (n_head_kv × head_dim_v).
    V,
    /// Attention output (n_head × head_dim_v).
    Attn,
    /// Output of a sub-layer before the residual add (n_embd).
    Out,
    /// Feed-forward gate (n_ff).
    Gate,
    /// Feed-forward up projection (n_ff).
    Up,
}

impl Act {
    pub const ALL: [Act; 9] = [
        Act::X,
        Act::Norm,
        Act::Q,
        Act::K,
        Act::V,
        Act::Attn,
        Act::Out,
        Act::Gate,
        Act::Up,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Widths of the activation buffers.
#[derive(Clone, Copy, Debug)]
pub struct ActWidths {
    pub n_embd: usize,
    pub q_dim: usize,
    pub k_dim: usize,
    pub v_dim: usize,
    pub attn_out_dim: usize,
    pub n_ff: usize,
}

impl ActWidths {
    pub fn of(&self, a: Act) -> usize {
        match a {
            Act::X | Act::Norm | Act::Out => self.n_embd,
            Act::Q => self.q_dim,
            Act::K => self.k_dim,
            Act::V => self.v_dim,
            Act::Attn => self.attn_out_dim,
            Act::Gate | Act::Up => self.n_ff,
        }
    }
}

/// Shape of an attention operation.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    /// Multiplies q·k before the softmax.
    pub scale: f32,
    /// A query at position p sees keys p − window + 1 … p; `None`: all earlier keys.
    pub window: Option<usize>,
}

/// The operations of a forward pass. Every operation works on the first `n_tokens` rows
/// of its buffers, `n_tokens` being set by [`Backend::begin_batch`].
pub trait Backend {
    /// A weight matrix bound to this backend.
    type Matrix;
    /// A weight vector (norm weights, biases) bound to this backend.
    type Vector;

    /// Binds a matrix tensor of `file` (already shape-checked by the caller).
    fn bind_matrix(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Self::Matrix;
    /// Binds a vector tensor of `file` (already shape-checked by the caller).
    fn bind_vector(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Self::Vector;

    /// Starts a micro-batch of `n_tokens` tokens.
    fn begin_batch(&mut self, n_tokens: usize);
    /// `dst[t] = table[tokens[t]] · scale` (rows of the embedding matrix).
    fn embed(&mut self, table: &Self::Matrix, tokens: &[u32], scale: Option<f32>, dst: Act);
    /// `dst[t] = W · src[t]`.
    fn matmul(&mut self, w: &Self::Matrix, src: Act, dst: Act);
    /// `dst[t] += bias`.
    fn add_bias(&mut self, dst: Act, bias: &Self::Vector);
    /// RMS-normalizes every `weight.len()`-wide group of `src` into `dst` (which may be
    /// `src`) and multiplies it by `weight`: a whole row, or each head of a row.
    fn rms_norm(&mut self, src: Act, dst: Act, weight: &Self::Vector, eps: f32);
    /// Rotates each `head_dim`-wide head of `buf`; token t is at position `pos0 + t`.
    fn rope(&mut self, buf: Act, head_dim: usize, rope: &RopeParams, pos0: usize);
    /// `buf *= s`.
    fn scale(&mut self, buf: Act, s: f32);
    /// Writes the batch's keys and values into `kv` at positions `pos0 ..`.
    fn store_kv(&mut self, kv: &mut BlockKv, k: Act, v: Act, pos0: usize);
    /// Causal attention of the queries (token t at position `pos0 + t`) over `kv`.
    fn attention(&mut self, kv: &BlockKv, q: Act, dst: Act, pos0: usize, shape: &AttnShape);
    /// `gate = act(gate) ⊙ up`.
    fn gated_activation(&mut self, gate: Act, up: Act, act: Activation);
    /// `dst += src`.
    fn add(&mut self, dst: Act, src: Act);
    /// `out = W · src[t]` for the rows `first_row ..` of the batch (`out` holds
    /// `(n_tokens − first_row) × W.rows` floats).
    fn project_rows(&mut self, w: &Self::Matrix, src: Act, first_row: usize, out: &mut [f32]);
}
