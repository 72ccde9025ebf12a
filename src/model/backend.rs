//! The operations a forward pass is written in. A backend (the CPU now, a GPU later) owns
//! the activation buffers and the bound weights and implements each operation on them.

use std::sync::Arc;

use anyhow::Result;

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

/// Consecutive rows of a batch that belong to one sequence, at consecutive positions of
/// it. A batch is a list of runs covering its rows in order: one run for a prefill, one
/// run of one token per sequence for a batched decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRun {
    /// Rows (tokens) of the run.
    pub len: usize,
    /// Position in its sequence of the run's first token.
    pub pos0: usize,
    /// The K/V cache cell of the sequence's position 0: position p is at cell `cell0 + p`.
    pub cell0: usize,
}

impl SeqRun {
    /// Rows of all `runs`.
    pub fn rows(runs: &[SeqRun]) -> usize {
        runs.iter().map(|r| r.len).sum()
    }

    /// `(position, cell0)` of every row of `runs`, in row order.
    pub fn places(runs: &[SeqRun]) -> impl Iterator<Item = (usize, usize)> + '_ {
        runs.iter()
            .flat_map(|r| (r.pos0..r.pos0 + r.len).map(move |p| (p, r.cell0)))
    }

    /// The runs of the last `n_keep` rows of `runs`.
    pub fn last_rows(runs: &[SeqRun], n_keep: usize) -> Vec<SeqRun> {
        let mut skip = SeqRun::rows(runs).saturating_sub(n_keep);
        let mut kept = Vec::new();
        for r in runs {
            if skip >= r.len {
                skip -= r.len;
                continue;
            }
            kept.push(SeqRun {
                len: r.len - skip,
                pos0: r.pos0 + skip,
                cell0: r.cell0,
            });
            skip = 0;
        }
        kept
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
/// of its buffers, the rows of the runs given to [`Backend::begin_batch`].
///
/// A batch of several runs gives each row the bits it would get in a batch of its run
/// alone (the server's batched decode must give every sequence the text it gets alone),
/// which the kernels whose summation order depends on the batch size take care of.
///
/// A backend may record operations and run them later (the GPU records a whole segment
/// into one submission): errors of an operation may surface at a later call, at the
/// latest at the next call that returns data to the host.
pub trait Backend {
    /// A weight matrix bound to this backend.
    type Matrix;
    /// A weight vector (norm weights, biases) bound to this backend.
    type Vector;

    /// Binds a matrix tensor of `file` (already shape-checked by the caller).
    fn bind_matrix(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Result<Self::Matrix>;
    /// Binds a vector tensor of `file` (already shape-checked by the caller).
    fn bind_vector(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Result<Self::Vector>;

    /// Starts a micro-batch whose rows are those of `runs`, in order.
    fn begin_batch(&mut self, runs: &[SeqRun]) -> Result<()>;
    /// `dst[t] = table[tokens[t]] · scale` (rows of the embedding matrix).
    fn embed(
        &mut self,
        table: &Self::Matrix,
        tokens: &[u32],
        scale: Option<f32>,
        dst: Act,
    ) -> Result<()>;
    /// `dst[t] = W · src[t]`.
    fn matmul(&mut self, w: &Self::Matrix, src: Act, dst: Act) -> Result<()>;
    /// `dst[t] = W · src[t]` for every `(W, dst)`: one input through several weights,
    /// which a backend may quantize once for all of them. No `dst` may be `src`.
    fn matmuls(&mut self, src: Act, products: &[(&Self::Matrix, Act)]) -> Result<()> {
        for &(w, dst) in products {
            self.matmul(w, src, dst)?;
        }
        Ok(())
    }
    /// `dst[t] += bias`.
    fn add_bias(&mut self, dst: Act, bias: &Self::Vector) -> Result<()>;
    /// RMS-normalizes every `weight.len()`-wide group of `src` into `dst` (which may be
    /// `src`) and multiplies it by `weight`: a whole row, or each head of a row.
    fn rms_norm(&mut self, src: Act, dst: Act, weight: &Self::Vector, eps: f32) -> Result<()>;
    /// Rotates each `head_dim`-wide head of `buf` by its row's position.
    fn rope(&mut self, buf: Act, head_dim: usize, rope: &RopeParams) -> Result<()>;
    /// `buf *= s`.
    fn scale(&mut self, buf: Act, s: f32) -> Result<()>;
    /// Writes each row's key and value into `kv` at its cell.
    fn store_kv(&mut self, kv: &mut BlockKv, k: Act, v: Act) -> Result<()>;
    /// Causal attention of each row's query over the cells of its sequence in `kv`, up
    /// to its own position.
    fn attention(&mut self, kv: &BlockKv, q: Act, dst: Act, shape: &AttnShape) -> Result<()>;
    /// `gate = act(gate) ⊙ up`.
    fn gated_activation(&mut self, gate: Act, up: Act, act: Activation) -> Result<()>;
    /// `dst += src`.
    fn add(&mut self, dst: Act, src: Act) -> Result<()>;
    /// Moves the last `n_keep` rows of each of `acts` to the front and goes on with a
    /// batch of those rows (the rows of the last block that logits are wanted of; their
    /// runs are [`SeqRun::last_rows`]).
    fn keep_last_rows(&mut self, n_keep: usize, acts: &[Act]) -> Result<()>;
    /// `out = W · src[t]` for the rows `first_row ..` of the batch (`out` holds
    /// `(n_tokens − first_row) × W.rows` floats).
    fn project_rows(
        &mut self,
        w: &Self::Matrix,
        src: Act,
        first_row: usize,
        out: &mut [f32],
    ) -> Result<()>;

    /// Sets the first `n_tokens` rows of `dst` from host memory (`data` holds them all):
    /// the hidden state arriving from another device.
    fn upload_act(&mut self, dst: Act, data: &[f32]) -> Result<()>;
    /// Copies the first `n_tokens` rows of `src` to host memory, after everything
    /// recorded before: the hidden state leaving for another device.
    fn download_act(&mut self, src: Act, out: &mut [f32]) -> Result<()>;
    /// Starts everything recorded so far without waiting: a pass that reads nothing back
    /// (a prompt batch before the rows whose outputs are wanted) still fills the cache.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Waits until everything recorded so far has run (profiling only).
    fn sync(&mut self) -> Result<()>;
}
