//! The engine: loads a model, places its blocks on the GPU and the CPU, owns the KV
//! cache that spans both, and runs prefill and decode.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::gguf::GgufFile;
use crate::gpu::{Gpu, GpuOptions, GpuOutOfMemory};
use crate::kv::{KvCache, KvShape};
use crate::model::{forward, Batch, Hparams, ModelWeights, SeqRun, Sides, Split, StageTimes};
pub use crate::model::{Output, Pooling};
use crate::tokenizer::Tokenizer;

pub mod cpu_backend;
pub mod gpu_backend;
mod info;
pub mod placement;

pub use crate::kv::CacheType;
pub use cpu_backend::CpuBackend;
pub use gpu_backend::{GpuBackend, GpuBackendShape};
pub use info::ModelInfo;
pub use placement::{GpuLayers, OutputOn};

/// Context sizes above this are not taken from the model unless asked for.
const DEFAULT_MAX_CTX: usize = 4096;

/// How to set up an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Cells of the KV cache, shared by the `n_parallel` sequences (each gets an equal
    /// share); `None`: the model's training context capped at 4096, per sequence.
    pub n_ctx: Option<usize>,
    /// Sequences the KV cache holds at once (the server's `--parallel`); 1 elsewhere.
    pub n_parallel: usize,
    /// Most tokens per forward pass during prefill.
    pub n_batch: usize,
    /// Worker threads; `None`: the number of physical cores.
    pub n_threads: Option<usize>,
    pub cache_type: CacheType,
    /// Blocks `0 .. N` run on the GPU.
    pub gpu_layers: GpuLayers,
    /// Where the output layer runs; `None`: on the GPU when every block is.
    pub output_on: Option<OutputOn>,
    /// Keep the K/V of GPU blocks in host memory (saves VRAM, costs transfers).
    pub kv_on_cpu: bool,
    /// Which adapter (`tandem devices`); `None`: the best one (and, for `Auto`, never a
    /// software one, which is slower than the CPU path).
    pub gpu_device: Option<usize>,
    /// GPU memory this engine may use (`--vram-budget`); below the
    /// `TANDEM_GPU_MEMORY_LIMIT` it also caps allocations.
    pub vram_budget: Option<u64>,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            n_ctx: None,
            n_parallel: 1,
            n_batch: 512,
            n_threads: None,
            cache_type: CacheType::F16,
            gpu_layers: GpuLayers::None,
            output_on: None,
            kv_on_cpu: false,
            gpu_device: None,
            vram_budget: None,
        }
    }
}

impl EngineOptions {
    /// Cells of the KV cache these options ask for, for a model of `hp`; refuses a size
    /// that leaves a sequence no room.
    pub fn context_cells(&self, hp: &Hparams) -> anyhow::Result<usize> {
        if self.n_parallel == 0 {
            bail!("--parallel must be at least 1");
        }
        let n_ctx = self
            .n_ctx
            .unwrap_or_else(|| hp.n_ctx_train.min(DEFAULT_MAX_CTX) * self.n_parallel);
        if n_ctx == 0 {
            bail!("the context size must be at least 1");
        }
        if n_ctx < self.n_parallel {
            bail!(
                "a context of {n_ctx} cells cannot hold {} sequences; raise -c",
                self.n_parallel
            );
        }
        Ok(n_ctx)
    }
}

/// A loaded model with its KV cache, ready to evaluate tokens.
pub struct Engine {
    hp: Hparams,
    tokenizer: Arc<Tokenizer>,
    info: ModelInfo,
    weights: ModelWeights<CpuBackend, GpuBackend>,
    backend: CpuBackend,
    gpu: Option<GpuBackend>,
    split: Split,
    kv_on_cpu: bool,
    kv: KvCache,
    n_batch: usize,
    logits: Vec<f32>,
    /// The planner's placement, when `--gpu-layers auto` asked for one.
    auto_plan: Option<crate::plan::Plan>,
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
        let n_ctx = opts.context_cells(&hp)?;
        if opts.n_batch == 0 {
            bail!("the batch size must be at least 1");
        }
        let n_batch = opts.n_batch.min(n_ctx / opts.n_parallel);
        // Rows of the activation buffers: a prefill micro-batch, or one token of every
        // sequence in a decode step.
        let n_rows = n_batch.max(opts.n_parallel);
        let n_threads = opts.n_threads.unwrap_or_else(physical_cores).max(1);
        let widths = hp.act_widths();
        let mut backend = CpuBackend::new(n_threads, n_rows, widths);
        let env_options = GpuOptions::from_env(opts.gpu_device)?;
        let explicit =
            crate::plan::budget::explicit_limit(opts.vram_budget, env_options.memory_limit);
        let gpu_options = GpuOptions {
            memory_limit: explicit.map(|(bytes, _)| bytes),
            ..env_options
        };
        let auto_plan = (opts.gpu_layers == GpuLayers::Auto)
            .then(|| auto_placement(&file, &hp, &opts, explicit, n_ctx, n_rows))
            .transpose()?;
        let split = match &auto_plan {
            Some(plan) => Split {
                device_blocks: plan.gpu_layers,
                head_on_device: plan.output_on_gpu,
            },
            None => placement::split(hp.n_layer, opts.gpu_layers, opts.output_on),
        };
        let kv_shape = KvShape {
            n_layer: hp.n_layer,
            n_ctx,
            n_seq: opts.n_parallel,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
            head_dim_v: hp.head_dim_v,
        };
        let mut gpu =
            if split.uses_device() {
                let device = Gpu::new(&gpu_options).with_context(|| {
                    format!(
                        "--gpu-layers {} (or --output-on gpu) needs a GPU",
                        opts.gpu_layers
                    )
                })?;
                let shape = GpuBackendShape {
                    n_batch: n_rows,
                    widths,
                    head_rows: if split.head_on_device { hp.n_vocab } else { 0 },
                };
                let host_attention = opts
                    .kv_on_cpu
                    .then(|| cpu_backend::HostAttention::new(Arc::clone(backend.pool())));
                Some(GpuBackend::new(device, shape, host_attention).map_err(|e| {
                    out_of_memory_advice(e, &file, &hp, split, &kv_shape, &opts, None)
                })?)
            } else {
                None
            };
        let progress = load_progress(&file, hp.n_layer);
        let mut blocks_done = 0;
        let weights = ModelWeights::bind(&file, &hp, &mut backend, gpu.as_mut(), split, |_| {
            blocks_done += 1;
            progress.inc(1);
        });
        progress.finish_and_clear();
        let weights = weights.map_err(|e| {
            let e = e.context(format!("{}: cannot bind the weights", path.display()));
            out_of_memory_advice(e, &file, &hp, split, &kv_shape, &opts, Some(blocks_done))
        })?;
        let kv_on_gpu = match &gpu {
            Some(g) if !opts.kv_on_cpu => Some((g.gpu(), split.device_blocks)),
            _ => None,
        };
        let kv = KvCache::new(kv_shape, opts.cache_type, kv_on_gpu)
            .map_err(|e| out_of_memory_advice(e, &file, &hp, split, &kv_shape, &opts, None))?;
        if let Some(g) = gpu.as_mut() {
            // Build every kernel now rather than during the first token.
            g.gpu().warm_up()?;
        }
        let info = ModelInfo::of(&file, &hp)?;
        Ok(Engine {
            hp,
            tokenizer: Arc::new(tokenizer),
            info,
            weights,
            backend,
            gpu,
            split,
            kv_on_cpu: opts.kv_on_cpu,
            kv,
            n_batch,
            logits: Vec::new(),
            auto_plan,
        })
    }

    /// GPU bytes allocated so far (as the memory limit counts them), when a GPU is open.
    pub fn gpu_allocated_bytes(&self) -> Option<u64> {
        self.gpu.as_ref().map(|g| g.gpu().allocated_bytes())
    }

    /// The open GPU device, when parts of the model run on one.
    pub fn gpu_device(&self) -> Option<&crate::gpu::GpuDevice> {
        self.gpu.as_ref().map(|g| &g.gpu().device)
    }

    /// The planner's placement, when the options asked for `--gpu-layers auto`.
    pub fn auto_plan(&self) -> Option<&crate::plan::Plan> {
        self.auto_plan.as_ref()
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

    /// The context of a sequence: the most tokens it holds (all of the cache's cells
    /// when it holds one sequence, an equal share of them otherwise).
    pub fn n_ctx(&self) -> usize {
        self.kv.seq_capacity()
    }

    /// Positions already in the KV cache (of the first sequence, the only one outside
    /// the server).
    pub fn n_past(&self) -> usize {
        self.kv.seq_len(0)
    }

    /// Cells of the KV cache in use, over all sequences.
    pub fn kv_cells_used(&self) -> usize {
        self.kv.cells_used()
    }

    /// Cells of the KV cache, all sequences together.
    pub fn kv_cells(&self) -> usize {
        self.kv.n_ctx()
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

    /// Which parts run on the GPU.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Whether the K/V of GPU blocks are kept in host memory.
    pub fn kv_on_cpu(&self) -> bool {
        self.kv_on_cpu && self.split.device_blocks > 0
    }

    /// The GPU in use, if any part runs on one.
    pub fn gpu(&self) -> Option<&Gpu> {
        self.gpu.as_ref().map(|g| g.gpu())
    }

    /// Where the model runs, for a line on stderr, like llama.cpp's "offloaded 9/18 layers
    /// to GPU"; `None` when everything is on the CPU.
    pub fn placement_summary(&self) -> Option<String> {
        let gpu = self.gpu()?;
        let adapter = &gpu.device.adapter;
        Some(format!(
            "{} of {} blocks on GPU {} ({}, {}); output layer on the {}; K/V of GPU blocks in {}",
            self.split.device_blocks,
            self.hp.n_layer,
            adapter.index,
            adapter.name,
            adapter.backend,
            if self.split.head_on_device {
                "GPU"
            } else {
                "CPU"
            },
            if self.kv_on_cpu {
                "host memory"
            } else {
                "GPU memory"
            },
        ))
    }

    /// llama-bench's backend column: `CPU`, the GPU API alone when everything but the
    /// embedding lookup runs on the GPU, else both (e.g. `Vulkan+CPU`).
    pub fn backend_name(&self) -> String {
        match self.gpu() {
            None => "CPU".to_string(),
            Some(gpu) => {
                let api = &gpu.device.adapter.backend;
                let all_on_gpu =
                    self.split.device_blocks == self.hp.n_layer && self.split.head_on_device;
                if all_on_gpu {
                    api.clone()
                } else {
                    format!("{api}+CPU")
                }
            }
        }
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
        self.eval_seq(0, tokens, n_last, Output::Logits)
    }

    /// As [`Engine::eval`], timing each stage (each then waits for its device); the
    /// times add up over the micro-batches.
    pub fn eval_timed(&mut self, tokens: &[u32]) -> anyhow::Result<StageTimes> {
        let mut times = StageTimes::default();
        self.prefill(0, tokens, 1, Output::Logits, Some(&mut times))?;
        Ok(times)
    }

    /// Sequences the KV cache holds at once (`EngineOptions::n_parallel`).
    pub fn n_seq(&self) -> usize {
        self.kv.n_seq()
    }

    /// Tokens in sequence `seq`'s cache.
    pub fn seq_len(&self, seq: usize) -> usize {
        self.kv.seq_len(seq)
    }

    /// Keeps the first `n` tokens of sequence `seq` (0 empties it).
    pub fn seq_truncate(&mut self, seq: usize, n: usize) {
        self.kv.truncate(seq, n);
    }

    /// Appends `tokens` to sequence `seq` (prefill in micro-batches of `n_batch`) and
    /// returns the output of the last `n_last` tokens (rows of `n_vocab` logits, or of
    /// `n_embd` for [`Output::NormedHidden`]).
    pub fn eval_seq(
        &mut self,
        seq: usize,
        tokens: &[u32],
        n_last: usize,
        output: Output,
    ) -> anyhow::Result<&[f32]> {
        self.prefill(seq, tokens, n_last, output, None)?;
        Ok(&self.logits)
    }

    /// Appends one token to each of the listed sequences (distinct) in one forward pass,
    /// so the weights are read once for all, and returns their logits, one row of
    /// `n_vocab` per step, in order. Each row has the bits its sequence gets decoded
    /// alone: the kernels whose summation order depends on the batch sum every row as a
    /// batch of one.
    pub fn decode(&mut self, steps: &[(usize, u32)]) -> anyhow::Result<&[f32]> {
        if steps.is_empty() {
            bail!("a decode step needs at least one sequence");
        }
        let mut runs = Vec::with_capacity(steps.len());
        for (i, &(seq, token)) in steps.iter().enumerate() {
            self.check(seq, &[token])?;
            if steps[..i].iter().any(|&(s, _)| s == seq) {
                bail!("sequence {seq} appears twice in one decode step");
            }
            runs.push(SeqRun {
                len: 1,
                pos0: self.kv.seq_len(seq),
                cell0: self.kv.seq_cell0(seq),
            });
        }
        let tokens: Vec<u32> = steps.iter().map(|&(_, t)| t).collect();
        self.logits.resize(steps.len() * self.hp.n_vocab, 0.0);
        self.forward(&tokens, &runs, 0, Output::Logits, None)?;
        for &(seq, _) in steps {
            self.kv.advance(seq, 1);
        }
        Ok(&self.logits)
    }

    /// Evaluates `tokens` at the end of sequence `seq` in micro-batches, writing the
    /// output of the last `n_last` into `self.logits`.
    fn prefill(
        &mut self,
        seq: usize,
        tokens: &[u32],
        n_last: usize,
        output: Output,
        mut times: Option<&mut StageTimes>,
    ) -> anyhow::Result<()> {
        self.check(seq, tokens)?;
        if n_last == 0 || n_last > tokens.len() {
            bail!(
                "outputs of the last {n_last} of {} tokens were asked for",
                tokens.len()
            );
        }
        let width = match output {
            Output::Logits => self.hp.n_vocab,
            Output::NormedHidden => self.hp.n_embd,
        };
        let first_out = tokens.len() - n_last;
        let mut out = std::mem::take(&mut self.logits);
        out.resize(n_last * width, 0.0);
        let n_batch = self.n_batch;
        let result = (|| {
            for (c, chunk) in tokens.chunks(n_batch).enumerate() {
                let start = c * n_batch;
                let end = start + chunk.len();
                let (first_row, rows): (usize, &mut [f32]) = if end > first_out {
                    let from = start.max(first_out);
                    let at = (from - first_out) * width;
                    (from - start, &mut out[at..at + (end - from) * width])
                } else {
                    (chunk.len(), &mut [])
                };
                let runs = [SeqRun {
                    len: chunk.len(),
                    pos0: self.kv.seq_len(seq),
                    cell0: self.kv.seq_cell0(seq),
                }];
                let mut chunk_times = times.as_ref().map(|_| StageTimes::default());
                self.forward_into(chunk, &runs, first_row, output, rows, chunk_times.as_mut())?;
                if let (Some(total), Some(t)) = (times.as_deref_mut(), chunk_times) {
                    total.add(&t);
                }
                self.kv.advance(seq, chunk.len());
            }
            Ok(())
        })();
        self.logits = out;
        result
    }

    /// One forward pass writing its output rows into `self.logits`.
    fn forward(
        &mut self,
        tokens: &[u32],
        runs: &[SeqRun],
        first_row: usize,
        output: Output,
        times: Option<&mut StageTimes>,
    ) -> anyhow::Result<()> {
        let mut out = std::mem::take(&mut self.logits);
        let result = self.forward_into(tokens, runs, first_row, output, &mut out, times);
        self.logits = out;
        result
    }

    fn forward_into(
        &mut self,
        tokens: &[u32],
        runs: &[SeqRun],
        first_row: usize,
        output: Output,
        out: &mut [f32],
        times: Option<&mut StageTimes>,
    ) -> anyhow::Result<()> {
        forward(
            Sides {
                host: &mut self.backend,
                device: self.gpu.as_mut(),
            },
            &self.hp,
            &self.weights,
            &mut self.kv,
            Batch {
                tokens,
                runs,
                first_logit_row: first_row,
                output,
            },
            out,
            times,
        )
    }

    /// Empties the KV cache (every sequence).
    pub fn clear(&mut self) {
        self.kv.clear();
    }

    /// Keeps the first `n` positions of the first sequence.
    pub fn truncate(&mut self, n: usize) {
        self.kv.truncate(0, n);
    }

    /// Refuses, before any work, what sequence `seq`'s context or the vocabulary cannot
    /// take.
    fn check(&self, seq: usize, tokens: &[u32]) -> anyhow::Result<()> {
        if seq >= self.kv.n_seq() {
            bail!(
                "sequence {seq} does not exist (the cache holds {})",
                self.kv.n_seq()
            );
        }
        if tokens.is_empty() {
            bail!("no tokens to evaluate");
        }
        let (n_past, n_ctx) = (self.kv.seq_len(seq), self.kv.seq_capacity());
        if n_past + tokens.len() > n_ctx {
            let advice = if self.kv.n_seq() > 1 {
                format!(
                    " (each of the {} sequences has {n_ctx} of the {} cells); raise -c or \
                     lower --parallel",
                    self.kv.n_seq(),
                    self.kv.n_ctx()
                )
            } else {
                "; raise -c".to_string()
            };
            if n_past == 0 {
                bail!(
                    "prompt has {} tokens but the context is {n_ctx}{advice}",
                    tokens.len()
                );
            }
            bail!(
                "{} more tokens after {n_past} would exceed the context of {n_ctx}{advice}",
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

/// `--gpu-layers auto`: the planner's split for the adapter `opts` pick (a software
/// adapter only when named) and its memory, under the explicit budget if any.
fn auto_placement(
    file: &GgufFile,
    hp: &Hparams,
    opts: &EngineOptions,
    explicit: Option<(u64, &str)>,
    n_ctx: usize,
    n_rows: usize,
) -> anyhow::Result<crate::plan::Plan> {
    use crate::plan::{memory::Sizing, GpuBudget, PlanRequest};
    let adapter = crate::gpu::planning_adapter(&crate::gpu::list_adapters(), opts.gpu_device)?;
    let budget = adapter
        .as_ref()
        .and_then(|a| GpuBudget::new(explicit, Some((&a.name, a.memory))));
    let shape = crate::plan::ModelShape::of_model(file, hp);
    let request = PlanRequest {
        sizing: Sizing {
            n_ctx,
            n_parallel: opts.n_parallel,
            n_rows,
            cache_type: opts.cache_type,
            kv_on_cpu: opts.kv_on_cpu,
        },
        gpu_layers: GpuLayers::Auto,
        output_on: opts.output_on,
        budget,
    };
    let mut plan = crate::plan::plan(&shape, &request);
    if adapter.is_some() && plan.budget_bytes.is_none() {
        plan.notes.push(
            "the adapter reports no memory size: no block placed; give --vram-budget".to_string(),
        );
    }
    Ok(plan)
}

/// Turns running out of GPU memory into advice: how many blocks would fit.
/// `blocks_done`: blocks bound before the failure, when it happened binding weights.
fn out_of_memory_advice(
    error: anyhow::Error,
    file: &GgufFile,
    hp: &Hparams,
    split: Split,
    kv_shape: &KvShape,
    opts: &EngineOptions,
    blocks_done: Option<usize>,
) -> anyhow::Error {
    let Some(oom) = error
        .chain()
        .find_map(|e| e.downcast_ref::<GpuOutOfMemory>())
    else {
        return error;
    };
    let plan = placement::memory_plan(file, hp, kv_shape, opts, split.head_on_device);
    // The GPU's memory: its limit when one is set, else what was allocated when it ran out.
    let budget = oom.limit.unwrap_or(oom.allocated);
    // Without a limit the budget is a guess, and blocks bound before the failure bound it.
    let cap = |fit: usize| match blocks_done {
        Some(done) if oom.limit.is_none() => fit.min(done).min(split.device_blocks),
        _ => fit.min(split.device_blocks),
    };
    let with_head = cap(plan.blocks_that_fit(budget, true));
    let without_head = cap(plan.blocks_that_fit(budget, false));
    let kv_hint = if opts.kv_on_cpu {
        ""
    } else {
        " (--kv-on-cpu or a smaller -c fits more)"
    };
    let advice = if split.head_on_device && with_head > 0 {
        format!(
            "{with_head} of {} blocks fit with the output layer: use --gpu-layers {with_head} \
             --output-on gpu{kv_hint}",
            hp.n_layer
        )
    } else if without_head > 0 {
        let head_note = if split.head_on_device {
            format!(
                "the output layer ({:.0} MiB) does not fit beside them; ",
                plan.head as f64 / (1u64 << 20) as f64
            )
        } else {
            String::new()
        };
        format!(
            "{head_note}{without_head} of {} blocks fit: use --gpu-layers {without_head}{kv_hint}",
            hp.n_layer
        )
    } else {
        format!("no block fits: use --gpu-layers 0{kv_hint}")
    };
    anyhow::anyhow!("{error:#}\n{advice}")
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
