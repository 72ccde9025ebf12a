//! The engine: loads a model, owns its KV cache and runs prefill and decode on the CPU.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::gguf::GgufFile;
use crate::kv::{KvCache, KvShape};
use crate::model::{forward, ActWidths, Batch, Hparams, ModelWeights};
use crate::tokenizer::Tokenizer;

pub mod cpu_backend;
mod info;

pub use crate::kv::CacheType;
pub use cpu_backend::CpuBackend;
pub use info::ModelInfo;

/// Context sizes above this are not taken from the model unless asked for.
const DEFAULT_MAX_CTX: usize = 4096;

/// How to set up an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Context length; `None`: the model's training context, capped at 4096.
    pub n_ctx: Option<usize>,
    /// Most tokens per forward pass during prefill.
    pub n_batch: usize,
    /// Worker threads; `None`: the number of physical cores.
    pub n_threads: Option<usize>,
    pub cache_type: CacheType,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            n_ctx: None,
            n_batch: 512,
            n_threads: None,
            cache_type: CacheType::F16,
        }
    }
}

/// A loaded model with its KV cache, ready to evaluate tokens.
pub struct Engine {
    hp: Hparams,
    tokenizer: Arc<Tokenizer>,
    info: ModelInfo,
    weights: ModelWeights<CpuBackend>,
    backend: CpuBackend,
    kv: KvCache,
    n_batch: usize,
    logits: Vec<f32>,
}

impl Engine {
    /// Opens a GGUF model and binds its weights.
    pub fn load(path: &Path, opts: EngineOptions) -> anyhow::Result<Engine> {
        let file = Arc::new(GgufFile::open(path)?);
        let hp = Hparams::from_file(&file)
            .with_context(|| format!("{}: cannot read the model", path.display()))?;
        let tokenizer = Tokenizer::from_gguf(file.metadata())
            .with_context(|| format!("{}: cannot read the tokenizer", path.display()))?;
        if tokenizer.n_vocab() > hp.n_vocab {
            bail!(
                "{}: the tokenizer has {} tokens but the model only {}",
                path.display(),
                tokenizer.n_vocab(),
                hp.n_vocab
            );
        }
        let n_ctx = opts
            .n_ctx
            .unwrap_or_else(|| hp.n_ctx_train.min(DEFAULT_MAX_CTX));
        if n_ctx == 0 {
            bail!("the context size must be at least 1");
        }
        if opts.n_batch == 0 {
            bail!("the batch size must be at least 1");
        }
        let n_batch = opts.n_batch.min(n_ctx);
        let n_threads = opts.n_threads.unwrap_or_else(physical_cores).max(1);
        let widths = ActWidths {
            n_embd: hp.n_embd,
            q_dim: hp.q_dim(),
            k_dim: hp.k_dim(),
            v_dim: hp.v_dim(),
            attn_out_dim: hp.attn_out_dim(),
            n_ff: hp.n_ff,
        };
        let mut backend = CpuBackend::new(n_threads, n_batch, widths);
        let progress = load_progress(&file, hp.n_layer);
        let weights = ModelWeights::bind(&file, &hp, &mut backend, |_| progress.inc(1))
            .with_context(|| format!("{}: cannot bind the weights", path.display()))?;
        progress.finish_and_clear();
        let kv = KvCache::new_cpu(
            KvShape {
                n_layer: hp.n_layer,
                n_ctx,
                n_head_kv: hp.n_head_kv,
                head_dim: hp.head_dim,
                head_dim_v: hp.head_dim_v,
            },
            opts.cache_type,
        );
        let info = ModelInfo::of(&file, &hp)?;
        Ok(Engine {
            hp,
            tokenizer: Arc::new(tokenizer),
            info,
            weights,
            backend,
            kv,
            n_batch,
            logits: Vec::new(),
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The tokenizer as a shared handle, for holding it while the engine is borrowed
    /// mutably (streaming decoders during generation).
    pub fn shared_tokenizer(&self) -> Arc<Tokenizer> {
        Arc::clone(&self.tokenizer)
    }

    pub fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn hparams(&self) -> &Hparams {
        &self.hp
    }

    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx()
    }

    /// Positions already in the KV cache.
    pub fn n_past(&self) -> usize {
        self.kv.n_past()
    }

    pub fn n_vocab(&self) -> usize {
        self.hp.n_vocab
    }

    pub fn n_threads(&self) -> usize {
        self.backend.n_threads()
    }

    pub fn n_batch(&self) -> usize {
        self.n_batch
    }

    /// Appends `tokens` at position `n_past` (prefill in micro-batches of `n_batch`) and
    /// returns the logits of the last token (`n_vocab` floats).
    pub fn eval(&mut self, tokens: &[u32]) -> anyhow::Result<&[f32]> {
        self.eval_last_logits(tokens, 1)
    }

    /// As [`Engine::eval`], returning the logits of every token (`tokens.len() × n_vocab`).
    pub fn eval_all_logits(&mut self, tokens: &[u32]) -> anyhow::Result<&[f32]> {
        self.eval_last_logits(tokens, tokens.len())
    }

    /// As [`Engine::eval`], returning the logits of the last `n_last` tokens
    /// (`n_last × n_vocab`); the vocabulary projection is skipped for the others, which
    /// perplexity (scoring only the second half of each chunk) uses to halve that cost.
    pub fn eval_last_logits(&mut self, tokens: &[u32], n_last: usize) -> anyhow::Result<&[f32]> {
        self.check(tokens)?;
        if n_last == 0 || n_last > tokens.len() {
            bail!(
                "logits of the last {n_last} of {} tokens were asked for",
                tokens.len()
            );
        }
        let n_vocab = self.hp.n_vocab;
        let first_out = tokens.len() - n_last;
        self.logits.resize(n_last * n_vocab, 0.0);
        for (c, chunk) in tokens.chunks(self.n_batch).enumerate() {
            let start = c * self.n_batch;
            let end = start + chunk.len();
            let pos0 = self.kv.n_past();
            let (first_row, out): (usize, &mut [f32]) = if end > first_out {
                let from = start.max(first_out);
                let at = (from - first_out) * n_vocab;
                (
                    from - start,
                    &mut self.logits[at..at + (end - from) * n_vocab],
                )
            } else {
                (chunk.len(), &mut [])
            };
            forward(
                &mut self.backend,
                &self.hp,
                &self.weights,
                &mut self.kv,
                Batch {
                    tokens: chunk,
                    pos0,
                    first_logit_row: first_row,
                },
                out,
            );
            self.kv.advance(chunk.len());
        }
        Ok(&self.logits)
    }

    /// Empties the KV cache.
    pub fn clear(&mut self) {
        self.kv.clear();
    }

    /// Keeps the first `n` positions of the KV cache.
    pub fn truncate(&mut self, n: usize) {
        self.kv.truncate(n);
    }

    /// Refuses, before any work, what the context or the vocabulary cannot take.
    fn check(&self, tokens: &[u32]) -> anyhow::Result<()> {
        if tokens.is_empty() {
            bail!("no tokens to evaluate");
        }
        let (n_past, n_ctx) = (self.kv.n_past(), self.kv.n_ctx());
        if n_past + tokens.len() > n_ctx {
            if n_past == 0 {
                bail!(
                    "prompt has {} tokens but the context is {n_ctx}; raise -c",
                    tokens.len()
                );
            }
            bail!(
                "{} more tokens after {n_past} would exceed the context of {n_ctx}; raise -c",
                tokens.len()
            );
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.hp.n_vocab) {
            bail!(
                "token id {bad} is out of range (the vocabulary has {} tokens)",
                self.hp.n_vocab
            );
        }
        Ok(())
    }
}

/// A progress bar over the blocks, shown for large models only.
fn load_progress(file: &GgufFile, n_layer: usize) -> indicatif::ProgressBar {
    const SHOW_ABOVE_BYTES: u64 = 2 << 30;
    if file.file_size() < SHOW_ABOVE_BYTES {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(n_layer as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("loading {bar:40} {pos}/{len} blocks")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Physical cores (hyperthreads share a core's arithmetic units, so matmuls gain little
/// from them); falls back to the logical count where /proc/cpuinfo says nothing.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else {
        return logical;
    };
    let mut cores = std::collections::HashSet::new();
    let mut physical_id = "";
    for line in cpuinfo.lines() {
        let mut kv = line.splitn(2, ':').map(str::trim);
        match (kv.next(), kv.next()) {
            (Some("physical id"), Some(v)) => physical_id = v,
            (Some("core id"), Some(v)) => {
                cores.insert((physical_id.to_string(), v.to_string()));
            }
            _ => {}
        }
    }
    if cores.is_empty() {
        logical
    } else {
        cores.len().min(logical)
    }
}
