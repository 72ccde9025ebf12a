//! The GPU implementation of the model's backend operations.
//!
//! Every operation records kernel dispatches into one open [`Batch`]; nothing runs until
//! data must reach the host (the hidden state leaving the GPU, or logits), so a GPU
//! segment of the forward pass is one submission. Activation buffers, the staging
//! buffer and (through the bind-group cache) the bind groups are made once.

use std::sync::Arc;

use anyhow::{ensure, Context, Result};

use crate::cpu::attn_tiled::TILED_ATTENTION_MIN_QUERIES;
use crate::engine::cpu_backend::{cells_of, dequantize_vector, HostAttention};
use crate::gguf::{GgufFile, TensorInfo};
use crate::gpu::batch::activation_rounding_block;
use crate::gpu::shaders::MAX_MAT_VEC_TOKENS;
use crate::gpu::{
    AttentionParams, Batch, BinaryOp, Gpu, GpuBuffer, GpuWeight, PackedLayout, Readback,
    RopeParams as GpuRope,
};
use crate::kv::{BlockKv, KvStorage};
use crate::model::{
    Act, ActWidths, Activation, AttnShape, Backend, RopePairing, RopeParams, SeqRun,
};

/// Rows of logits computed and read back per submission: bounds the output buffer
/// (rows × n_vocab floats) whatever the batch size.
const HEAD_ROWS_PER_PASS: usize = 32;

/// What the backend is sized for.
#[derive(Clone, Copy, Debug)]
pub struct GpuBackendShape {
    /// Most tokens per micro-batch.
    pub n_batch: usize,
    pub widths: ActWidths,
    /// Rows of the output projection when it runs here (0 otherwise).
    pub head_rows: usize,
}

/// The GPU backend: activation buffers for `n_batch` tokens and the open batch.
pub struct GpuBackend {
    gpu: Gpu,
    shape: GpuBackendShape,
    acts: Vec<GpuBuffer>,
    n_tokens: usize,
    /// The rows of the batch, and what of them the kernels read: each row's position
    /// (i32, rope) and `(position, first cell of its sequence)` (u32 pairs, K/V store and
    /// attention), uploaded when the batch starts.
    runs: Vec<SeqRun>,
    positions: GpuBuffer,
    places: GpuBuffer,
    batch: Option<Batch>,
    token_ids: GpuBuffer,
    /// Input and output of the output projection, [`HEAD_ROWS_PER_PASS`] rows at a time.
    head_in: GpuBuffer,
    head_out: Option<GpuBuffer>,
    /// Matrix inputs rounded as the CPU quantizes them.
    rounded: GpuBuffer,
    /// Matrix x vector inputs quantized to 8-bit codes for the integer kernels.
    packed: GpuBuffer,
    readback: Readback,
    /// Uploaded rope frequency factors, by value (a model has at most a few).
    freq_factors: Vec<(Vec<f32>, GpuBuffer)>,
    /// Attention over K/V kept in host memory (`--kv-on-cpu`), with staging rows.
    host_attention: Option<HostAttention>,
    host_rows: [Vec<f32>; 3],
}

impl GpuBackend {
    /// GPU bytes [`GpuBackend::new`] allocates for `shape` (the planner's scratch term;
    /// a GPU test holds the two equal).
    pub fn scratch_bytes(shape: &GpuBackendShape) -> u64 {
        let n = shape.n_batch;
        let widths = &shape.widths;
        let widest = Act::ALL.iter().map(|&a| widths.of(a)).max().unwrap_or(1);
        let head_rows = HEAD_ROWS_PER_PASS.min(n);
        let mut lens: Vec<usize> = Act::ALL.iter().map(|&a| n * widths.of(a)).collect();
        if shape.head_rows > 0 {
            lens.push(head_rows * shape.head_rows);
        }
        lens.extend([
            n * widest,
            packed_len(n, widest),
            n,
            n,
            2 * n,
            head_rows * widths.n_embd,
        ]);
        lens.into_iter().map(Gpu::buffer_bytes).sum()
    }

    /// Allocates the activation buffers; `host_attention` serves blocks whose K/V stay in
    /// host memory.
    pub fn new(
        gpu: Gpu,
        shape: GpuBackendShape,
        host_attention: Option<HostAttention>,
    ) -> Result<GpuBackend> {
        let n = shape.n_batch;
        let acts = Act::ALL
            .iter()
            .map(|&a| gpu.try_buffer(n * shape.widths.of(a), "activations"))
            .collect::<Result<Vec<_>>>()?;
        let head_out = if shape.head_rows > 0 {
            let rows = HEAD_ROWS_PER_PASS.min(n);
            Some(gpu.try_buffer(rows * shape.head_rows, "logits")?)
        } else {
            None
        };
        let widest = Act::ALL
            .iter()
            .map(|&a| shape.widths.of(a))
            .max()
            .unwrap_or(1);
        Ok(GpuBackend {
            rounded: gpu.try_buffer(n * widest, "rounded activations")?,
            packed: gpu.try_buffer(packed_len(n, widest), "quantized activations")?,
            token_ids: gpu.try_buffer(n, "token ids")?,
            positions: gpu.try_buffer(n, "token positions")?,
            places: gpu.try_buffer(2 * n, "token places")?,
            runs: Vec::new(),
            head_in: gpu.try_buffer(
                HEAD_ROWS_PER_PASS.min(n) * shape.widths.n_embd,
                "output rows",
            )?,
            head_out,
            gpu,
            shape,
            acts,
            n_tokens: 0,
            batch: None,
            readback: Readback::default(),
            freq_factors: Vec::new(),
            host_attention,
            host_rows: Default::default(),
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn act(&self, a: Act) -> &GpuBuffer {
        &self.acts[a.index()]
    }

    /// Elements of the used part of an activation buffer.
    fn len(&self, a: Act) -> usize {
        self.n_tokens * self.shape.widths.of(a)
    }

    /// The open batch and the activation buffers (disjoint borrows).
    fn recorder(&mut self) -> (&mut Batch, &[GpuBuffer]) {
        let gpu = &self.gpu;
        let batch = self.batch.get_or_insert_with(|| gpu.batch());
        (batch, &self.acts)
    }

    /// Submits what is recorded.
    fn submit(&mut self) -> Result<()> {
        match self.batch.take() {
            Some(batch) => batch.submit(),
            None => Ok(()),
        }
    }

    /// Copies the first `out.len()` elements of `src` to host memory, after all recorded
    /// work (one submission).
    fn read_back(&mut self, src: Act, out: &mut [f32]) -> Result<()> {
        let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
        batch.copy_to_readback(&self.acts[src.index()], 0, out.len(), &mut self.readback)?;
        self.submit()?;
        self.readback.read_into(&self.gpu, out)
    }

    fn freq_factor_buffer(&mut self, factors: &[f32]) -> Result<usize> {
        if let Some(i) = self.freq_factors.iter().position(|(f, _)| f == factors) {
            return Ok(i);
        }
        let buf = self
            .gpu
            .try_buffer(factors.len(), "rope frequency factors")?;
        self.gpu.write(&buf, 0, factors)?;
        self.freq_factors.push((factors.to_vec(), buf));
        Ok(self.freq_factors.len() - 1)
    }

    /// Stores K and V of a GPU block whose cache is in host memory.
    fn store_kv_on_host(&mut self, kv: &mut BlockKv, k: Act, v: Act) -> Result<()> {
        let KvStorage::Cpu(cpu) = &mut kv.storage else {
            unreachable!("called for host caches only");
        };
        let [mut keys, mut values, _] = std::mem::take(&mut self.host_rows);
        keys.resize(self.len(k), 0.0);
        values.resize(self.len(v), 0.0);
        self.read_back(k, &mut keys)?;
        self.read_back(v, &mut values)?;
        cpu.write_batch(&keys, &values, &cells_of(&self.runs));
        self.host_rows = [keys, values, Vec::new()];
        Ok(())
    }

    fn attention_on_host(
        &mut self,
        kv: &BlockKv,
        q: Act,
        dst: Act,
        shape: &AttnShape,
    ) -> Result<()> {
        let KvStorage::Cpu(cpu) = &kv.storage else {
            unreachable!("called for host caches only");
        };
        let [a, b, mut queries] = std::mem::take(&mut self.host_rows);
        queries.resize(self.len(q), 0.0);
        self.read_back(q, &mut queries)?;
        let mut out = vec![0f32; self.len(dst)];
        let host = self
            .host_attention
            .as_ref()
            .context("this GPU backend has no host attention for K/V kept in host memory")?;
        host.run(cpu, &queries, &self.runs, shape, &mut out);
        self.gpu.write(self.act(dst), 0, &out)?;
        self.host_rows = [a, b, queries];
        Ok(())
    }
}

/// What the kernels read of each row of `runs`: its position (rope) and its
/// `(position, first cell of its sequence)` pair (K/V store, attention).
fn token_places(runs: &[SeqRun]) -> Result<(Vec<i32>, Vec<u32>)> {
    let mut positions = Vec::with_capacity(SeqRun::rows(runs));
    let mut places = Vec::with_capacity(2 * positions.capacity());
    for (pos, cell0) in SeqRun::places(runs) {
        positions.push(i32::try_from(pos).context("a position beyond the GPU kernels' range")?);
        places.push(u32::try_from(pos).context("a position beyond the GPU kernels' range")?);
        places.push(u32::try_from(cell0).context("a cache cell beyond the GPU kernels' range")?);
    }
    Ok((positions, places))
}

/// Refuses rows whose cells lie outside a cache of `n_ctx` cells (the kernels do not
/// check).
fn check_cells(runs: &[SeqRun], n_ctx: usize) -> Result<()> {
    for r in runs {
        ensure!(
            r.cell0 + r.pos0 + r.len <= n_ctx,
            "positions {}..{} from cell {} do not fit a cache of {n_ctx} cells",
            r.pos0,
            r.pos0 + r.len,
            r.cell0
        );
    }
    Ok(())
}

/// Elements of the quantized matrix x vector inputs for batches of `n_batch` rows of at
/// most `widest`.
fn packed_len(n_batch: usize, widest: usize) -> usize {
    PackedLayout::max_len(n_batch.min(usize::from(MAX_MAT_VEC_TOKENS)), widest)
}

/// Records `y = W · x` for `n` rows: through the integer kernel where it takes the
/// product, quantizing `x` into `packed` unless `packed_block` says it already holds `x`
/// in the blocks this weight wants; else through the float kernels, `x` rounded as the
/// CPU would.
fn record_product(
    batch: &mut Batch,
    w: &GpuWeight,
    x: &GpuBuffer,
    scratch: (&GpuBuffer, &GpuBuffer),
    y: &GpuBuffer,
    n: usize,
    packed_block: &mut Option<usize>,
) -> Result<()> {
    let (packed, rounded) = scratch;
    match PackedLayout::for_product(w, n) {
        Some(layout) => {
            if *packed_block != Some(layout.block) {
                batch.pack_activations(w.ty, x, packed, n, w.cols)?;
                *packed_block = Some(layout.block);
            }
            batch.mat_vec_packed(w, packed, y, n)
        }
        None => {
            let x = round_if_needed(batch, w, x, rounded, n * w.cols)?;
            batch.mul_mat(w, x, y, n)
        }
    }
}

/// The input of a product through `w`: `x` itself for float weights, else `x` rounded
/// into `rounded` as the CPU quantizes activations, so both devices give the same
/// numbers (the GPU alone would be slightly more exact, and differ).
fn round_if_needed<'a>(
    batch: &mut Batch,
    w: &GpuWeight,
    x: &'a GpuBuffer,
    rounded: &'a GpuBuffer,
    len: usize,
) -> Result<&'a GpuBuffer> {
    if activation_rounding_block(w.ty).is_none() {
        return Ok(x);
    }
    batch.round_activations(w.ty, x, rounded, len)?;
    Ok(rounded)
}

impl Backend for GpuBackend {
    type Matrix = GpuWeight;
    type Vector = GpuBuffer;

    fn bind_matrix(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Result<GpuWeight> {
        self.gpu.upload_weight(
            info.ty,
            info.n_rows(),
            info.row_len(),
            file.tensor_data(info),
        )
    }

    fn bind_vector(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Result<GpuBuffer> {
        let values = dequantize_vector(file, info);
        let buf = self.gpu.try_buffer(values.len(), "a norm or bias vector")?;
        self.gpu.write(&buf, 0, &values)?;
        Ok(buf)
    }

    fn begin_batch(&mut self, runs: &[SeqRun]) -> Result<()> {
        let n_tokens = SeqRun::rows(runs);
        ensure!(
            n_tokens > 0 && n_tokens <= self.shape.n_batch,
            "a batch of {n_tokens} tokens does not fit the GPU buffers ({})",
            self.shape.n_batch
        );
        // Work left from a pass that failed half-way is stale (a pass that ends without
        // a readback is flushed by the model).
        self.batch = None;
        self.n_tokens = n_tokens;
        if self.runs != runs {
            // Nothing is recorded, and queue writes land before the next submission.
            let (positions, places) = token_places(runs)?;
            self.gpu.write(&self.positions, 0, &positions)?;
            self.gpu.write(&self.places, 0, &places)?;
            self.runs = runs.to_vec();
        }
        Ok(())
    }

    fn embed(
        &mut self,
        table: &GpuWeight,
        tokens: &[u32],
        scale: Option<f32>,
        dst: Act,
    ) -> Result<()> {
        ensure!(tokens.len() == self.n_tokens, "one token per batch row");
        // The kernel does not check ids: an id past the table would read other memory.
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= table.rows) {
            anyhow::bail!("token id {bad} is past the {} embedding rows", table.rows);
        }
        self.submit()?; // the id upload below must not overtake recorded reads of the ids
        self.gpu.write(&self.token_ids, 0, tokens)?;
        let n = self.n_tokens;
        let len = self.len(dst);
        let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
        batch.get_rows(table, &self.token_ids, &self.acts[dst.index()], n)?;
        if let Some(s) = scale {
            batch.scale(&self.acts[dst.index()], s, len)?;
        }
        Ok(())
    }

    fn matmul(&mut self, w: &GpuWeight, src: Act, dst: Act) -> Result<()> {
        self.matmuls(src, &[(w, dst)])
    }

    fn matmuls(&mut self, src: Act, products: &[(&GpuWeight, Act)]) -> Result<()> {
        let n = self.n_tokens;
        let width = self.shape.widths.of(src);
        let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
        let x = &self.acts[src.index()];
        let mut packed_block = None;
        for &(w, dst) in products {
            ensure!(
                dst != src && w.cols == width,
                "a product of {width}-wide rows through a weight of {} columns",
                w.cols
            );
            let y = &self.acts[dst.index()];
            let scratch = (&self.packed, &self.rounded);
            record_product(batch, w, x, scratch, y, n, &mut packed_block)?;
        }
        Ok(())
    }

    fn add_bias(&mut self, dst: Act, bias: &GpuBuffer) -> Result<()> {
        let len = self.len(dst);
        let (batch, acts) = self.recorder();
        batch.binary_in_place(BinaryOp::Add, &acts[dst.index()], bias, len)
    }

    fn rms_norm(&mut self, src: Act, dst: Act, weight: &GpuBuffer, eps: f32) -> Result<()> {
        let rows = self.len(src) / weight.len();
        let (batch, acts) = self.recorder();
        if src == dst {
            batch.rms_norm_in_place(&acts[src.index()], weight, rows, eps)
        } else {
            batch.rms_norm(&acts[src.index()], weight, &acts[dst.index()], rows, eps)
        }
    }

    fn rope(&mut self, buf: Act, head_dim: usize, rope: &RopeParams) -> Result<()> {
        let factors = match &rope.freq_factors {
            Some(f) => Some(self.freq_factor_buffer(f)?),
            None => None,
        };
        let params = GpuRope {
            n_tokens: self.n_tokens,
            n_heads: self.shape.widths.of(buf) / head_dim,
            head_dim,
            n_rot: rope.n_dims,
            freq_base: rope.freq_base,
            freq_scale: rope.freq_scale,
            neox: rope.pairing == RopePairing::Neox,
            pos0: 0,
        };
        let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
        let factors = factors.map(|i| &self.freq_factors[i].1);
        batch.rope(
            &self.acts[buf.index()],
            Some(&self.positions),
            factors,
            &params,
        )
    }

    fn scale(&mut self, buf: Act, s: f32) -> Result<()> {
        let len = self.len(buf);
        let (batch, acts) = self.recorder();
        batch.scale(&acts[buf.index()], s, len)
    }

    fn store_kv(&mut self, kv: &mut BlockKv, k: Act, v: Act) -> Result<()> {
        let n = self.n_tokens;
        let KvStorage::Gpu(cache) = &kv.storage else {
            return self.store_kv_on_host(kv, k, v);
        };
        check_cells(&self.runs, cache.k_layout.n_ctx)?;
        let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
        let (acts, places) = (&self.acts, &self.places);
        batch.kv_store(&acts[k.index()], &cache.k, &cache.k_layout, places, n)?;
        batch.kv_store(&acts[v.index()], &cache.v, &cache.v_layout, places, n)
    }

    fn attention(&mut self, kv: &BlockKv, q: Act, dst: Act, shape: &AttnShape) -> Result<()> {
        let KvStorage::Gpu(cache) = &kv.storage else {
            return self.attention_on_host(kv, q, dst, shape);
        };
        check_cells(&self.runs, cache.k_layout.n_ctx)?;
        let n = self.n_tokens;
        // llama.cpp's path is chosen by the queries of a sequence's batch (a run).
        let longest_run = self.runs.iter().map(|r| r.len).max().unwrap_or(0);
        let params = AttentionParams {
            n_tokens: n,
            n_heads: shape.n_head,
            n_kv_heads: shape.n_head_kv,
            head_dim: shape.head_dim,
            head_dim_v: shape.head_dim_v,
            n_ctx: cache.k_layout.n_ctx,
            window: shape.window.unwrap_or(0),
            scale: shape.scale,
            kv_f16: cache.k_layout.f16,
            half_accumulator: cache.k_layout.f16 && longest_run < TILED_ATTENTION_MIN_QUERIES,
        };
        let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
        batch.attention(
            &self.acts[q.index()],
            &cache.k,
            &cache.v,
            &self.acts[dst.index()],
            &self.places,
            &params,
        )
    }

    fn gated_activation(&mut self, gate: Act, up: Act, act: Activation) -> Result<()> {
        let len = self.len(gate);
        let op = match act {
            Activation::Silu => BinaryOp::SiluMul,
            Activation::GeluTanh => BinaryOp::GeluMul,
        };
        let (batch, acts) = self.recorder();
        batch.binary_in_place(op, &acts[gate.index()], &acts[up.index()], len)
    }

    fn add(&mut self, dst: Act, src: Act) -> Result<()> {
        let len = self.len(dst);
        let (batch, acts) = self.recorder();
        batch.binary_in_place(BinaryOp::Add, &acts[dst.index()], &acts[src.index()], len)
    }

    fn keep_last_rows(&mut self, n_keep: usize, acts: &[Act]) -> Result<()> {
        let n = self.n_tokens;
        ensure!(n_keep > 0 && n_keep <= n, "{n_keep} rows kept of {n}");
        if n_keep < n {
            let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
            for &a in acts {
                // Through the scratch buffer: a buffer cannot be copied onto itself.
                let w = self.shape.widths.of(a);
                let buf = &self.acts[a.index()];
                batch.copy(buf, (n - n_keep) * w, &self.rounded, 0, n_keep * w)?;
                batch.copy(&self.rounded, 0, buf, 0, n_keep * w)?;
            }
        }
        self.n_tokens = n_keep;
        // The kernels' place buffers still describe the first rows, which is harmless:
        // nothing after the last block's attention reads them.
        self.runs = SeqRun::last_rows(&self.runs, n_keep);
        Ok(())
    }

    fn project_rows(
        &mut self,
        w: &GpuWeight,
        src: Act,
        first_row: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let width = self.shape.widths.of(src);
        ensure!(
            width == w.cols,
            "output rows of {width} for a {}-wide head",
            w.cols
        );
        let n_rows = self.n_tokens.saturating_sub(first_row);
        ensure!(
            out.len() == n_rows * w.rows,
            "{} logits asked of {n_rows} rows of {}",
            out.len(),
            w.rows
        );
        let head_out = self
            .head_out
            .as_ref()
            .context("the output layer was not placed on the GPU")?;
        ensure!(
            head_out.len() >= w.rows,
            "the GPU logits buffer is too small"
        );
        let per_pass = (head_out.len() / w.rows)
            .min(self.head_in.len() / width)
            .max(1);
        for (i, chunk) in out.chunks_mut(per_pass * w.rows).enumerate() {
            let rows = chunk.len() / w.rows;
            let from = (first_row + i * per_pass) * width;
            let batch = self.batch.get_or_insert_with(|| self.gpu.batch());
            batch.copy(
                &self.acts[src.index()],
                from,
                &self.head_in,
                0,
                rows * width,
            )?;
            let scratch = (&self.packed, &self.rounded);
            record_product(batch, w, &self.head_in, scratch, head_out, rows, &mut None)?;
            batch.copy_to_readback(head_out, 0, chunk.len(), &mut self.readback)?;
            if let Some(b) = self.batch.take() {
                b.submit()?;
            }
            self.readback.read_into(&self.gpu, chunk)?;
        }
        Ok(())
    }

    fn upload_act(&mut self, dst: Act, data: &[f32]) -> Result<()> {
        ensure!(
            data.len() == self.len(dst),
            "hidden state of the wrong size"
        );
        // Recorded work comes first (a queue write would overtake it).
        self.submit()?;
        self.gpu.write(self.act(dst), 0, data)
    }

    fn download_act(&mut self, src: Act, out: &mut [f32]) -> Result<()> {
        ensure!(out.len() == self.len(src), "hidden state of the wrong size");
        self.read_back(src, out)
    }

    fn flush(&mut self) -> Result<()> {
        self.submit()
    }

    fn sync(&mut self) -> Result<()> {
        self.submit()?;
        self.gpu.device.wait_idle()
    }
}
