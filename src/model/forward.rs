//! The forward pass, written once for every architecture as a sequence of backend
//! operations. Read top to bottom; the architecture differences are the `if`s on the
//! block flags (biases, q/k norms, post-norms, activation, q scaling, window).

use crate::kv::KvCache;

use super::backend::{Act, AttnShape, Backend};
use super::hparams::Hparams;
use super::weights::{BlockWeights, ModelWeights};

/// A micro-batch: `tokens` at positions `pos0 ..`, wanting the logits of the rows
/// `first_logit_row ..`.
pub struct Batch<'a> {
    pub tokens: &'a [u32],
    pub pos0: usize,
    pub first_logit_row: usize,
}

/// Runs a batch through the model; writes the logits of the batch rows
/// `first_logit_row ..` into `logits` (`(tokens.len() − first_logit_row) × n_vocab`).
pub fn forward<B: Backend>(
    be: &mut B,
    hp: &Hparams,
    w: &ModelWeights<B>,
    kv: &mut KvCache,
    batch: Batch<'_>,
    logits: &mut [f32],
) {
    let Batch {
        tokens,
        pos0,
        first_logit_row,
    } = batch;
    be.begin_batch(tokens.len());
    be.embed(&w.token_embd, tokens, hp.flags.embed_scale, Act::X);
    for (i, block) in w.blocks.iter().enumerate() {
        // Placement: this is where the hidden state would move to block i's device.
        block_forward(be, hp, i, block, kv, pos0);
    }
    be.rms_norm(Act::X, Act::Norm, &w.output_norm, hp.norm_eps);
    let output = w.output.as_ref().unwrap_or(&w.token_embd);
    be.project_rows(output, Act::Norm, first_logit_row, logits);
}

/// One transformer block: attention then gated feed-forward, each with a residual add.
fn block_forward<B: Backend>(
    be: &mut B,
    hp: &Hparams,
    i: usize,
    w: &BlockWeights<B>,
    kv: &mut KvCache,
    pos0: usize,
) {
    let flags = &hp.flags;
    let params = hp.block_params(i);
    let eps = hp.norm_eps;

    // Attention.
    be.rms_norm(Act::X, Act::Norm, &w.attn_norm, eps);
    be.matmul(&w.wq, Act::Norm, Act::Q);
    be.matmul(&w.wk, Act::Norm, Act::K);
    be.matmul(&w.wv, Act::Norm, Act::V);
    if let Some([bq, bk, bv]) = &w.qkv_bias {
        be.add_bias(Act::Q, bq);
        be.add_bias(Act::K, bk);
        be.add_bias(Act::V, bv);
    }
    if let Some([q_norm, k_norm]) = &w.qk_norm {
        be.rms_norm(Act::Q, Act::Q, q_norm, eps);
        be.rms_norm(Act::K, Act::K, k_norm, eps);
    }
    be.rope(Act::Q, hp.head_dim, &params.rope, pos0);
    be.rope(Act::K, hp.head_dim, &params.rope, pos0);
    let scale = match flags.q_scale {
        Some(s) => {
            be.scale(Act::Q, s);
            1.0
        }
        None => 1.0 / (hp.head_dim as f32).sqrt(),
    };
    let block_kv = kv.block_mut(i);
    be.store_kv(block_kv, Act::K, Act::V, pos0);
    let shape = AttnShape {
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim: hp.head_dim,
        head_dim_v: hp.head_dim_v,
        scale,
        window: params.window,
    };
    be.attention(block_kv, Act::Q, Act::Attn, pos0, &shape);
    be.matmul(&w.wo, Act::Attn, Act::Out);
    if let Some(norm) = &w.post_attn_norm {
        be.rms_norm(Act::Out, Act::Out, norm, eps);
    }
    be.add(Act::X, Act::Out);

    // Feed-forward.
    be.rms_norm(Act::X, Act::Norm, &w.ffn_norm, eps);
    be.matmul(&w.w_gate, Act::Norm, Act::Gate);
    be.matmul(&w.w_up, Act::Norm, Act::Up);
    be.gated_activation(Act::Gate, Act::Up, flags.activation);
    be.matmul(&w.w_down, Act::Gate, Act::Out);
    if let Some(norm) = &w.post_ffn_norm {
        be.rms_norm(Act::Out, Act::Out, norm, eps);
    }
    be.add(Act::X, Act::Out);
}
