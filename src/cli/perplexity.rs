//! `tandem perplexity`: llama-perplexity's measurement, so the numbers can be compared.
//!
//! The text is tokenized whole (with BOS), cut into chunks of n_ctx tokens whose first
//! token is replaced by BOS; each chunk is evaluated from an empty cache, and the negative
//! log-likelihood is averaged over the second half of each chunk (token j+1 predicted
//! from the logits at j, for j = n_ctx/2 … n_ctx − 2).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::placement_args::PlacementArgs;
use crate::engine::{CacheType, Engine, EngineOptions};

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// The GGUF model file
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// The text file to measure
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Tokens per chunk (the context of each evaluation)
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    pub ctx_size: usize,
    /// Most tokens per forward pass
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// Measure only the first N chunks
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Threads (default: physical cores)
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// KV cache element type: f16 or f32
    #[arg(long = "cache-type", default_value = "f16")]
    pub cache_type: CacheType,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(args: PerplexityArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut engine = Engine::load(
        &args.model,
        EngineOptions {
            n_ctx: Some(args.ctx_size),
            n_batch: args.batch_size,
            n_threads: args.threads,
            cache_type: args.cache_type,
            ..args.placement.apply(EngineOptions::default())
        },
    )?;
    super::placement_args::report_auto_plan(&engine);
    if let Some(placement) = engine.placement_summary() {
        eprintln!("{placement}");
    }
    let started = Instant::now();
    let tokens = engine.tokenizer().encode(&text, true, false);
    let bos = engine
        .tokenizer()
        .add_bos()
        .then(|| engine.tokenizer().bos_id())
        .flatten();
    eprintln!(
        "tokenized {} tokens in {:.2} s; {} chunks of {}",
        tokens.len(),
        started.elapsed().as_secs_f64(),
        tokens.len() / args.ctx_size,
        args.ctx_size
    );
    let t0 = Instant::now();
    let result = perplexity(&mut engine, &tokens, bos, args.chunks, |i, ppl| {
        print!("[{}]{ppl:.4},", i + 1);
        let _ = std::io::stdout().flush();
    })?;
    println!();
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5}",
        result.ppl, result.error
    );
    eprintln!(
        "{} chunks, {} tokens scored, {:.2} s",
        result.n_chunks,
        result.n_scored,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The outcome of a perplexity run.
#[derive(Clone, Copy, Debug)]
pub struct Perplexity {
    pub ppl: f64,
    /// llama-perplexity's uncertainty: PPL · sqrt(var(NLL) / (N − 1)).
    pub error: f64,
    pub n_chunks: usize,
    /// Tokens scored.
    pub n_scored: usize,
}

/// Accumulates per-token negative log-likelihoods.
#[derive(Default, Clone, Copy, Debug)]
pub struct NllStats {
    sum: f64,
    sum_sq: f64,
    count: usize,
}

impl NllStats {
    pub fn add(&mut self, nll: f64) {
        self.sum += nll;
        self.sum_sq += nll * nll;
        self.count += 1;
    }

    pub fn ppl(&self) -> f64 {
        (self.sum / self.count as f64).exp()
    }

    /// PPL with llama-perplexity's error estimate.
    pub fn result(&self, n_chunks: usize) -> Perplexity {
        let n = self.count as f64;
        let mean = self.sum / n;
        let var = self.sum_sq / n - mean * mean;
        let ppl = mean.exp();
        let error = if var > 0.0 && self.count > 1 {
            (var / (n - 1.0)).sqrt() * ppl
        } else {
            0.0
        };
        Perplexity {
            ppl,
            error,
            n_chunks,
            n_scored: self.count,
        }
    }
}

/// −log softmax(logits)[target]: exponentials in f32, their sum in f64 (as
/// llama-perplexity does).
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum_exp = 0f64;
    for chunk in logits.chunks(64) {
        sum_exp += chunk.iter().map(|&l| (l - max).exp()).sum::<f32>() as f64;
    }
    -((logits[target as usize] - max) as f64 - sum_exp.ln())
}

/// [`nll`] of every row of `logits` (rows of `n_vocab`) against `targets`, rows split
/// between `n_threads` threads (262144 exponentials a row add up for big vocabularies).
fn nll_rows(logits: &[f32], n_vocab: usize, targets: &[u32], n_threads: usize) -> Vec<f64> {
    let n_rows = targets.len();
    let per = n_rows.div_ceil(n_threads.max(1)).max(1);
    let mut out = vec![0f64; n_rows];
    std::thread::scope(|s| {
        for (i, part) in out.chunks_mut(per).enumerate() {
            s.spawn(move || {
                for (j, o) in part.iter_mut().enumerate() {
                    let row = i * per + j;
                    *o = nll(&logits[row * n_vocab..(row + 1) * n_vocab], targets[row]);
                }
            });
        }
    });
    out
}

/// Perplexity of `tokens` (already tokenized with BOS) in chunks of the engine's context;
/// `max_chunks` limits the chunks; `on_chunk(i, running_ppl)` is called after each chunk.
pub fn perplexity(
    engine: &mut Engine,
    tokens: &[u32],
    bos: Option<u32>,
    max_chunks: Option<usize>,
    mut on_chunk: impl FnMut(usize, f64),
) -> anyhow::Result<Perplexity> {
    let n_ctx = engine.n_ctx();
    if n_ctx < 4 {
        anyhow::bail!("perplexity needs a context of at least 4 tokens");
    }
    let available = tokens.len() / n_ctx;
    if available == 0 {
        anyhow::bail!(
            "the text has {} tokens; at least {} (one chunk of -c {n_ctx}) are needed",
            tokens.len(),
            n_ctx
        );
    }
    let n_chunks = max_chunks.map_or(available, |m| m.min(available));
    let n_vocab = engine.n_vocab();
    let first = n_ctx / 2;
    let mut stats = NllStats::default();
    let mut chunk = vec![0u32; n_ctx];
    for i in 0..n_chunks {
        chunk.copy_from_slice(&tokens[i * n_ctx..(i + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        engine.clear();
        // Only positions first .. n_ctx − 2 are scored (each predicting the next token).
        let n_threads = engine.n_threads();
        let logits = engine.eval_last_logits(&chunk, n_ctx - first)?;
        let scored = &logits[..(n_ctx - 1 - first) * n_vocab];
        for v in nll_rows(scored, n_vocab, &chunk[first + 1..], n_threads) {
            stats.add(v);
        }
        on_chunk(i, stats.ppl());
    }
    engine.clear();
    Ok(stats.result(n_chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_logits_is_log_vocab() {
        let logits = vec![0.5f32; 8];
        assert!((nll(&logits, 3) - 8f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn nll_matches_a_hand_computed_log_softmax() {
        // log(e + e² + e³) − 3 = 0.4076059644...
        assert!((nll(&[1.0, 2.0, 3.0], 2) - 0.407_605_964_4).abs() < 1e-6);
        let rows = [1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5];
        let v = nll_rows(&rows, 3, &[2, 1], 2);
        assert!((v[0] - 0.407_605_964_4).abs() < 1e-6);
        assert!((v[1] - 3f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn error_follows_the_variance_of_the_nll() {
        let mut s = NllStats::default();
        for v in [1.0, 2.0, 3.0] {
            s.add(v);
        }
        let r = s.result(1);
        // mean 2, population variance 2/3, sqrt(2/3 / 2) · e².
        assert!((r.ppl - 2f64.exp()).abs() < 1e-12);
        assert!((r.error - (1.0f64 / 3.0).sqrt() * 2f64.exp()).abs() < 1e-9);
    }
}
