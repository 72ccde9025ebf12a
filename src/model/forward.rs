//! The forward pass, written once for every architecture as a sequence of backend
//! operations. Read top to bottom; the architecture differences are the `if`s on the
//! block flags (biases, q/k norms, post-norms, activation, q scaling, window).
//!
//! The model runs on two backends: the device (a GPU) takes blocks `0 .. n` and
//! possibly the head, the host (the CPU) the embedding and the rest. The hidden state
//! crosses the boundary once per direction per micro-batch.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::kv::KvCache;

use super::backend::{Act, AttnShape, Backend, SeqRun};
use super::hparams::Hparams;
use super::weights::{BlockWeights, Head, ModelWeights};

/// A micro-batch: `tokens`, sitting in their sequences as `runs` say, wanting the output
/// of the rows `first_logit_row ..`.
pub struct Batch<'a> {
    pub tokens: &'a [u32],
    pub runs: &'a [SeqRun],
    pub first_logit_row: usize,
    pub output: Output,
}

/// What a forward pass gives for its output rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Logits (`n_vocab` per row).
    #[default]
    Logits,
    /// The hidden state after the output norm, before the vocabulary projection
    /// (`n_embd` per row): what embeddings are pooled from, as llama.cpp does.
    NormedHidden,
}

/// Where the time of a forward pass went, when asked for (each stage then waits for
/// its backend, which costs a little overlap).
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub embed: Duration,
    /// Per block, in block order.
    pub blocks: Vec<Duration>,
    /// Moving the hidden state between host and device (both directions).
    pub boundary: Duration,
    pub head: Duration,
}

impl StageTimes {
    /// Adds another pass's times (micro-batches of one evaluation).
    pub fn add(&mut self, other: &StageTimes) {
        self.embed += other.embed;
        self.boundary += other.boundary;
        self.head += other.head;
        if self.blocks.len() < other.blocks.len() {
            self.blocks.resize(other.blocks.len(), Duration::ZERO);
        }
        for (a, b) in self.blocks.iter_mut().zip(&other.blocks) {
            *a += *b;
        }
    }
}

/// The two sides the model runs on; `device` may be absent when nothing is placed there.
pub struct Sides<'a, H, D> {
    pub host: &'a mut H,
    pub device: Option<&'a mut D>,
}

/// Runs a batch through the model; writes the output of the batch rows
/// `first_logit_row ..` into `logits` (`(tokens.len() − first_logit_row)` rows of
/// `n_vocab`, or of `n_embd` for [`Output::NormedHidden`]).
pub fn forward<H: Backend, D: Backend>(
    sides: Sides<'_, H, D>,
    hp: &Hparams,
    w: &ModelWeights<H, D>,
    kv: &mut KvCache,
    batch: Batch<'_>,
    logits: &mut [f32],
    mut times: Option<&mut StageTimes>,
) -> Result<()> {
    let Batch {
        tokens,
        runs,
        first_logit_row,
        output,
    } = batch;
    let Sides { host, mut device } = sides;
    let n = tokens.len();
    ensure!(
        SeqRun::rows(runs) == n,
        "the runs of a batch of {n} tokens cover {} rows",
        SeqRun::rows(runs)
    );
    let mut clock = Clock::new(times.is_some());

    host.begin_batch(runs)?;
    host.embed(&w.token_embd, tokens, hp.flags.embed_scale, Act::X)?;
    clock.lap(host, times.as_deref_mut().map(|t| &mut t.embed))?;
    if let Some(t) = times.as_deref_mut() {
        t.blocks.clear();
    }

    let mut hidden = Vec::new();
    let n_device = w.device_blocks.len();
    let last_block = n_device + w.host_blocks.len() - 1;
    // The last block carries on past its attention with only the rows whose logits are
    // wanted, as llama.cpp does: less work, and llama.cpp's numbers, since some of its
    // kernels sum differently for other row counts (see `cpu::kernels::summation`).
    let n_out = n - first_logit_row;
    let keep = (first_logit_row > 0).then_some(n_out);
    // The runs of the rows that go on after block i.
    let kept_runs = keep.map(|k| SeqRun::last_rows(runs, k));
    let runs_after = |i: usize| match &kept_runs {
        Some(kept) if i == last_block => kept.as_slice(),
        _ => runs,
    };
    let rows_after = |i: usize| SeqRun::rows(runs_after(i));
    let head_on_device = matches!(w.head, Head::Device { .. });
    if n_device > 0 {
        let dev = device
            .as_deref_mut()
            .context("parts of the model are on a GPU but none is open")?;
        dev.begin_batch(runs)?;
        cross(
            host,
            dev,
            n * hp.n_embd,
            &mut hidden,
            &mut clock,
            &mut times,
        )?;
        for (i, block) in w.device_blocks.iter().enumerate() {
            let keep = if i == last_block { keep } else { None };
            block_forward(dev, hp, i, block, kv, keep)?;
            clock.lap(dev, times.as_deref_mut().map(|t| push(&mut t.blocks)))?;
        }
        if !(head_on_device && w.host_blocks.is_empty()) && rows_after(n_device - 1) > 0 {
            host.begin_batch(runs_after(n_device - 1))?;
            cross(
                dev,
                host,
                rows_after(n_device - 1) * hp.n_embd,
                &mut hidden,
                &mut clock,
                &mut times,
            )?;
        }
    }
    for (j, block) in w.host_blocks.iter().enumerate() {
        let i = n_device + j;
        block_forward(
            host,
            hp,
            i,
            block,
            kv,
            if i == last_block { keep } else { None },
        )?;
        clock.lap(host, times.as_deref_mut().map(|t| push(&mut t.blocks)))?;
    }

    if n_out == 0 {
        // Nothing reads back, so nothing would submit the blocks' K/V stores.
        if let Some(dev) = device.as_deref_mut() {
            dev.flush()?;
        }
        return Ok(());
    }
    // Rows of the batch before the logit rows, where the last block kept them.
    let first_row = if keep.is_some() { 0 } else { first_logit_row };
    let wanted = output;
    match &w.head {
        Head::Host { norm, output } => {
            host.rms_norm(Act::X, Act::Norm, norm, hp.norm_eps)?;
            match wanted {
                Output::Logits => {
                    let output = output.as_ref().unwrap_or(&w.token_embd);
                    host.project_rows(output, Act::Norm, first_row, logits)?;
                }
                Output::NormedHidden => {
                    download_rows(host, first_row, hp.n_embd, &mut hidden, logits)?
                }
            }
            clock.lap(host, times.as_deref_mut().map(|t| &mut t.head))?;
        }
        Head::Device { norm, output } => {
            let dev = device.context("the output layer is on a GPU but none is open")?;
            // Unless the device blocks just left the hidden state there. (Their work was
            // submitted when the hidden state left, so a new batch drops nothing.)
            if n_device == 0 || !w.host_blocks.is_empty() {
                dev.begin_batch(runs_after(last_block))?;
                cross(
                    host,
                    dev,
                    rows_after(last_block) * hp.n_embd,
                    &mut hidden,
                    &mut clock,
                    &mut times,
                )?;
            }
            dev.rms_norm(Act::X, Act::Norm, norm, hp.norm_eps)?;
            match wanted {
                Output::Logits => dev.project_rows(output, Act::Norm, first_row, logits)?,
                Output::NormedHidden => {
                    download_rows(dev, first_row, hp.n_embd, &mut hidden, logits)?
                }
            }
            clock.lap(dev, times.map(|t| &mut t.head))?;
        }
    }
    Ok(())
}

/// Copies the normalized hidden state of the rows `first_row ..` into `out`.
fn download_rows<B: Backend>(
    be: &mut B,
    first_row: usize,
    width: usize,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) -> Result<()> {
    scratch.resize(first_row * width + out.len(), 0.0);
    be.download_act(Act::Norm, scratch)?;
    out.copy_from_slice(&scratch[first_row * width..]);
    Ok(())
}

/// Moves the residual stream from one side to the other through host memory.
fn cross<A: Backend, B: Backend>(
    from: &mut A,
    to: &mut B,
    len: usize,
    hidden: &mut Vec<f32>,
    clock: &mut Clock,
    times: &mut Option<&mut StageTimes>,
) -> Result<()> {
    hidden.resize(len, 0.0);
    // Work recorded before the crossing is the previous stage's, not the boundary's.
    clock.lap(from, None)?;
    from.download_act(Act::X, hidden)?;
    to.upload_act(Act::X, hidden)?;
    clock.lap(to, times.as_deref_mut().map(|t| &mut t.boundary))
}

fn push(v: &mut Vec<Duration>) -> &mut Duration {
    v.push(Duration::ZERO);
    v.last_mut().expect("just pushed")
}

/// Times stages when profiling: waits for the stage's backend, then adds the time
/// since the previous lap to `into`.
struct Clock {
    last: Option<Instant>,
}

impl Clock {
    fn new(enabled: bool) -> Clock {
        Clock {
            last: enabled.then(Instant::now),
        }
    }

    fn lap<B: Backend>(&mut self, be: &mut B, into: Option<&mut Duration>) -> Result<()> {
        let Some(last) = self.last else {
            return Ok(());
        };
        be.sync()?;
        let now = Instant::now();
        if let Some(d) = into {
            *d += now - last;
        }
        self.last = Some(now);
        Ok(())
    }
}

/// One transformer block: attention then gated feed-forward, each with a residual add.
/// `keep`: after the attention's output projection only the last `keep` rows go on
/// (none: the block only adds its keys and values to the cache).
fn block_forward<B: Backend>(
    be: &mut B,
    hp: &Hparams,
    i: usize,
    w: &BlockWeights<B>,
    kv: &mut KvCache,
    keep: Option<usize>,
) -> Result<()> {
    let flags = &hp.flags;
    let params = hp.block_params(i);
    let eps = hp.norm_eps;

    // Attention.
    be.rms_norm(Act::X, Act::Norm, &w.attn_norm, eps)?;
    be.matmuls(
        Act::Norm,
        &[(&w.wq, Act::Q), (&w.wk, Act::K), (&w.wv, Act::V)],
    )?;
    if let Some([bq, bk, bv]) = &w.qkv_bias {
        be.add_bias(Act::Q, bq)?;
        be.add_bias(Act::K, bk)?;
        be.add_bias(Act::V, bv)?;
    }
    if let Some([q_norm, k_norm]) = &w.qk_norm {
        be.rms_norm(Act::Q, Act::Q, q_norm, eps)?;
        be.rms_norm(Act::K, Act::K, k_norm, eps)?;
    }
    be.rope(Act::Q, hp.head_dim, &params.rope)?;
    be.rope(Act::K, hp.head_dim, &params.rope)?;
    let scale = match flags.q_scale {
        Some(s) => {
            be.scale(Act::Q, s)?;
            1.0
        }
        None => 1.0 / (hp.head_dim as f32).sqrt(),
    };
    let block_kv = kv.block_mut(i);
    be.store_kv(block_kv, Act::K, Act::V)?;
    if keep == Some(0) {
        return Ok(());
    }
    let shape = AttnShape {
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim: hp.head_dim,
        head_dim_v: hp.head_dim_v,
        scale,
        window: params.window,
    };
    be.attention(block_kv, Act::Q, Act::Attn, &shape)?;
    be.matmul(&w.wo, Act::Attn, Act::Out)?;
    if let Some(rows) = keep {
        be.keep_last_rows(rows, &[Act::Out, Act::X])?;
    }
    if let Some(norm) = &w.post_attn_norm {
        be.rms_norm(Act::Out, Act::Out, norm, eps)?;
    }
    be.add(Act::X, Act::Out)?;

    // Feed-forward.
    be.rms_norm(Act::X, Act::Norm, &w.ffn_norm, eps)?;
    be.matmuls(Act::Norm, &[(&w.w_gate, Act::Gate), (&w.w_up, Act::Up)])?;
    be.gated_activation(Act::Gate, Act::Up, flags.activation)?;
    be.matmul(&w.w_down, Act::Gate, Act::Out)?;
    if let Some(norm) = &w.post_ffn_norm {
        be.rms_norm(Act::Out, Act::Out, norm, eps)?;
    }
    be.add(Act::X, Act::Out)?;
    Ok(())
}
