//! Batches of kernel dispatches recorded into one command encoder, and the operations.

use anyhow::{ensure, Context};

use crate::gpu::buffer::{GpuBuffer, GpuWeight, WeightChunk};
use crate::gpu::profile::BatchTimer;
use crate::gpu::runtime::{Gpu, ParamRing, PARAMS_SIZE, RING_SLOTS};
use crate::gpu::shaders::{
    has_int_mat_vec, int_mat_vec_step, BinaryOp, Kernel, MAX_MAT_VEC_TOKENS,
};
use crate::quant::GgmlType;

/// Workgroups per dimension wgpu guarantees.
const MAX_GROUPS_PER_DIM: u32 = 65535;
/// Output rows per workgroup of the matrix x vector kernel (ROWS_PER_WG in matvec.wgsl).
const MATVEC_ROWS_PER_WORKGROUP: u32 = 4;
/// Batches of at most this many tokens use the matrix x vector kernels.
const MATVEC_MAX_TOKENS: usize = MAX_MAT_VEC_TOKENS as usize;

/// Rotary embedding settings (llama.cpp's rope without YaRN extrapolation).
#[derive(Clone, Copy, Debug)]
pub struct RopeParams {
    pub n_tokens: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    /// Leading dims of each head that are rotated (even, <= head_dim).
    pub n_rot: usize,
    pub freq_base: f32,
    pub freq_scale: f32,
    /// Pairs (i, i + n_rot/2) instead of (2i, 2i+1).
    pub neox: bool,
    /// Position of the first token when no position buffer is given.
    pub pos0: usize,
}

/// Attention of a batch of queries over a KV cache.
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams {
    pub n_tokens: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    /// Cells the cache holds per kv head (its capacity, all sequences).
    pub n_ctx: usize,
    /// Sliding window (keys j > pos - window are visible); 0 = unlimited.
    pub window: usize,
    pub scale: f32,
    /// The k and v caches hold f16 values packed two per element instead of f32.
    pub kv_f16: bool,
    /// Round the query to f16 and accumulate the output in f16, one key at a time (the
    /// numbers of llama.cpp's CPU attention over an f16 cache for short batches).
    pub half_accumulator: bool,
}

impl AttentionParams {
    /// The widest key or value head the attention kernel takes (MAX_HEAD_DIM in
    /// shaders/attention.wgsl).
    pub const MAX_HEAD_DIM: usize = 256;
}

/// Where [`Batch::kv_store`] appends: a cache of `[n_kv_heads][n_ctx][dim]` values.
#[derive(Clone, Copy, Debug)]
pub struct KvLayout {
    pub n_kv_heads: usize,
    pub n_ctx: usize,
    /// head_dim for keys, head_dim_v for values (even).
    pub dim: usize,
    /// f16 values packed two per element instead of f32.
    pub f16: bool,
}

impl KvLayout {
    /// Elements (4-byte) a cache buffer of this layout needs.
    pub fn buffer_len(&self) -> usize {
        let values = self.n_kv_heads * self.n_ctx * self.dim;
        if self.f16 {
            values.div_ceil(2)
        } else {
            values
        }
    }
}

/// The block size of the activation rounding a weight type's products need (see
/// [`Batch::round_activations`]); `None` for float weights, which take f32 activations.
pub fn activation_rounding_block(weight: GgmlType) -> Option<usize> {
    match weight.activation_type() {
        GgmlType::Q8_0 | GgmlType::Q8_1 => Some(32),
        GgmlType::Q8K => Some(256),
        _ => None,
    }
}

/// Where [`Batch::pack_activations`] puts the codes, block scales and sums of 16 codes of
/// `n_tokens` rows of `cols` activations (shaders/common/packed_acts.wgsl), in 4-byte
/// elements of one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedLayout {
    pub n_tokens: usize,
    pub cols: usize,
    /// Activation block: 32 (Q8_0 / Q8_1 codes) or 256 (Q8_K).
    pub block: usize,
}

impl PackedLayout {
    /// The layout of the activations a product through `weight` takes, or `None` where
    /// its type has no integer kernel.
    pub fn for_weight(weight: GgmlType, n_tokens: usize, cols: usize) -> Option<PackedLayout> {
        if !has_int_mat_vec(weight) {
            return None;
        }
        let block = activation_rounding_block(weight)?;
        Some(PackedLayout {
            n_tokens,
            cols,
            block,
        })
    }

    /// The layout for `n_tokens` rows through `w` where the integer matrix x vector
    /// kernel takes that product (few enough tokens, rows of whole steps), else `None`.
    pub fn for_product(w: &GpuWeight, n_tokens: usize) -> Option<PackedLayout> {
        PackedLayout::check_product(w, n_tokens).ok()
    }

    /// As [`PackedLayout::for_product`], saying why the kernel cannot take the product.
    fn check_product(w: &GpuWeight, n_tokens: usize) -> anyhow::Result<PackedLayout> {
        ensure!(
            (1..=MATVEC_MAX_TOKENS).contains(&n_tokens),
            "the matrix x vector kernel takes 1 to {MATVEC_MAX_TOKENS} tokens, not {n_tokens}"
        );
        let layout = PackedLayout::for_weight(w.ty, n_tokens, w.cols).ok_or_else(|| {
            anyhow::anyhow!(
                "{} weights have no integer matrix x vector kernel",
                w.ty.name()
            )
        })?;
        let step = int_mat_vec_step(w.ty).max(layout.block);
        ensure!(
            w.cols.is_multiple_of(step),
            "rows of {} are not whole steps of {step} of the {} integer kernel",
            w.cols,
            w.ty.name()
        );
        Ok(layout)
    }

    fn values(&self) -> usize {
        self.n_tokens * self.cols
    }

    /// First element of the block scales.
    pub fn d_base(&self) -> usize {
        self.values() / 4
    }

    /// Block scales (f32 each).
    pub fn n_scales(&self) -> usize {
        self.values() / self.block
    }

    /// First element of the sums of 16 codes: the scales are padded to whole vec4s.
    pub fn s_base(&self) -> usize {
        self.d_base() + self.n_scales().next_multiple_of(4)
    }

    /// Sums of 16 codes (i32 each).
    pub fn n_sums(&self) -> usize {
        self.values() / 16
    }

    /// Elements the three regions take, padded to a whole vec4.
    pub fn elements(&self) -> usize {
        self.s_base() + self.n_sums().next_multiple_of(4)
    }

    /// The most elements any layout of `n_tokens` rows of `cols` takes (32-blocks).
    pub fn max_len(n_tokens: usize, cols: usize) -> usize {
        PackedLayout {
            n_tokens,
            cols,
            block: 32,
        }
        .elements()
    }
}

/// The batch's command encoder, created on first use.
fn open_encoder<'a>(
    encoder: &'a mut Option<wgpu::CommandEncoder>,
    device: &wgpu::Device,
) -> &'a mut wgpu::CommandEncoder {
    encoder.get_or_insert_with(|| {
        device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("batch"),
        })
    })
}

fn u32_of(v: usize, what: &str) -> anyhow::Result<u32> {
    u32::try_from(v).with_context(|| format!("{what} = {v} does not fit the GPU kernels"))
}

/// The `Params` of shaders/common/matmul_io.wgsl for one chunk of a weight: the chunk's
/// rows of `W`, reading whole rows of `x` and writing into rows of `y` as wide as `W`.
fn matmul_params(w: &GpuWeight, chunk: &WeightChunk, n_tokens: usize) -> anyhow::Result<[u32; 8]> {
    Ok([
        u32_of(chunk.rows, "rows")?,
        u32_of(w.cols, "cols")?,
        u32_of(chunk.first_row, "row")?,
        u32_of(w.cols, "cols")?,
        u32_of(w.rows, "rows")?,
        u32_of(n_tokens, "tokens")?,
        0,
        0,
    ])
}

/// Splits `n` workgroups over x and y so neither exceeds the per-dimension limit.
fn spread(n: u32) -> (u32, u32) {
    if n <= MAX_GROUPS_PER_DIM {
        (n.max(1), 1)
    } else {
        (MAX_GROUPS_PER_DIM, n.div_ceil(MAX_GROUPS_PER_DIM))
    }
}

/// One buffer bound to a kernel: an activation buffer or one chunk of a weight.
#[derive(Clone, Copy)]
struct Bound<'a> {
    buffer: &'a wgpu::Buffer,
    id: u64,
}

impl<'a> From<&'a GpuBuffer> for Bound<'a> {
    fn from(b: &'a GpuBuffer) -> Bound<'a> {
        Bound {
            buffer: &b.buffer,
            id: b.id.id,
        }
    }
}

/// Dispatches recorded into one command encoder, in one compute pass until a copy needs
/// the encoder; [`Batch::submit`] sends them.
/// Outputs must be buffers distinct from the inputs of the same dispatch.
pub struct Batch {
    pub(crate) gpu: Gpu,
    pub(crate) encoder: Option<wgpu::CommandEncoder>,
    /// The open compute pass over `encoder` (wgpu orders the dispatches inside it).
    pub(crate) pass: Option<wgpu::ComputePass<'static>>,
    pub(crate) params: Vec<u8>,
    /// Always present until the batch is dropped (then it returns to the pool).
    pub(crate) ring: Option<ParamRing>,
    /// Timestamp queries, while the GPU's kernel timing is on.
    pub(crate) timer: Option<BatchTimer>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        // The pass borrows the encoder: it ends first.
        self.pass = None;
        if let Some(ring) = self.ring.take() {
            if let Ok(mut pool) = self.gpu.rings.lock() {
                pool.push(ring);
            }
        }
    }
}

impl Batch {
    fn ring(&self) -> &ParamRing {
        self.ring.as_ref().expect("a live batch has a ring")
    }

    /// The command encoder, with the compute pass ended (for copies).
    pub(crate) fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        open_encoder(&mut self.encoder, &self.gpu.device.device)
    }

    /// Records one dispatch; `bytes` is what it reads and writes (for the profile; 0
    /// where not counted).
    fn dispatch(
        &mut self,
        kernel: Kernel,
        bound: &[Bound<'_>],
        params: &[u32],
        groups: (u32, u32, u32),
        bytes: u64,
    ) -> anyhow::Result<()> {
        debug_assert_eq!(bound.len(), kernel.storage_bindings().len());
        let stride = self.gpu.ring_stride;
        if self.params.len() as u64 >= stride * RING_SLOTS {
            self.flush()?;
        }
        let pipeline = self.gpu.pipeline(kernel)?;
        let offset = self.params.len() as u64;
        debug_assert!(params.len() * 4 <= PARAMS_SIZE as usize);
        self.params.extend_from_slice(bytemuck::cast_slice(params));
        self.params.resize((offset + stride) as usize, 0);
        self.gpu
            .profiler
            .dispatches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let bind_group = self.bind_group(kernel, &pipeline, bound);
        if let Some(timer) = &mut self.timer {
            // Timed: a pass of its own with timestamps at its start and end.
            self.pass = None;
            let encoder = open_encoder(&mut self.encoder, &self.gpu.device.device);
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: Some(timer.next_writes()),
                });
                pass.set_pipeline(&pipeline.pipeline);
                pass.set_bind_group(0, &bind_group, &[offset as u32]);
                pass.dispatch_workgroups(groups.0, groups.1, groups.2);
            }
            timer.dispatched.push((kernel, bytes));
            return Ok(());
        }
        let (encoder, pass) = (&mut self.encoder, &mut self.pass);
        let pass = pass.get_or_insert_with(|| {
            open_encoder(encoder, &self.gpu.device.device)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset as u32]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        Ok(())
    }

    /// The cached bind group of `kernel` over `bound` and this batch's parameter ring.
    fn bind_group(
        &self,
        kernel: Kernel,
        pipeline: &crate::gpu::runtime::Pipeline,
        bound: &[Bound<'_>],
    ) -> wgpu::BindGroup {
        let mut key_ids: Vec<u64> = bound.iter().map(|b| b.id).collect();
        key_ids.push(self.ring().id.id);
        let mut groups_cache = self
            .gpu
            .bind_groups
            .lock()
            .expect("bind group cache poisoned");
        groups_cache
            .entry((kernel, key_ids))
            .or_insert_with(|| {
                let mut entries: Vec<wgpu::BindGroupEntry> = bound
                    .iter()
                    .enumerate()
                    .map(|(i, b)| wgpu::BindGroupEntry {
                        binding: i as u32,
                        resource: b.buffer.as_entire_binding(),
                    })
                    .collect();
                entries.push(wgpu::BindGroupEntry {
                    binding: bound.len() as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &self.ring().buffer,
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAMS_SIZE),
                    }),
                });
                self.gpu
                    .device
                    .device
                    .create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(&kernel.name()),
                        layout: &pipeline.layout,
                        entries: &entries,
                    })
            })
            .clone()
    }

    /// Sends what is recorded so far and starts over (the parameter ring is reused).
    fn flush(&mut self) -> anyhow::Result<()> {
        self.gpu.device.check_alive()?;
        self.pass = None;
        if let Some(mut encoder) = self.encoder.take() {
            if let Some(timer) = &self.timer {
                timer.resolve(&mut encoder);
            }
            let queue = &self.gpu.device.queue;
            queue.write_buffer(&self.ring().buffer, 0, &self.params);
            queue.submit([encoder.finish()]);
            self.gpu
                .profiler
                .submits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // A non-blocking poll runs pending callbacks, the device-lost one included.
            let _ = self.gpu.device.device.poll(wgpu::PollType::Poll);
            if let Some(timer) = &mut self.timer {
                timer.collect(&self.gpu.device, &self.gpu.profiler)?;
            }
        }
        self.params.clear();
        self.gpu.device.check_alive()
    }

    /// Submits the batch (without waiting for it; reads wait).
    pub fn submit(mut self) -> anyhow::Result<()> {
        self.flush()
    }

    /// `y[t, r] = sum_k W[r, k] x[t, k]` for `n_tokens` tokens; x rows have `w.cols`
    /// elements, y rows `w.rows`. Picks the matrix x vector kernel for small batches and
    /// the tiled kernel otherwise.
    pub fn mul_mat(
        &mut self,
        w: &GpuWeight,
        x: &GpuBuffer,
        y: &GpuBuffer,
        n_tokens: usize,
    ) -> anyhow::Result<()> {
        if n_tokens <= MATVEC_MAX_TOKENS {
            self.mat_vec(w, x, y, n_tokens)
        } else {
            self.mat_mat(w, x, y, n_tokens)
        }
    }

    fn check_mul_mat(
        w: &GpuWeight,
        x: &GpuBuffer,
        y: &GpuBuffer,
        n_tokens: usize,
    ) -> anyhow::Result<()> {
        ensure!(n_tokens > 0, "matrix multiply of zero tokens");
        ensure!(
            x.len() >= n_tokens * w.cols && y.len() >= n_tokens * w.rows,
            "matrix multiply of {n_tokens} tokens through a {}x{} weight: buffers of {} \
             and {} elements are too small",
            w.rows,
            w.cols,
            x.len(),
            y.len()
        );
        Ok(())
    }

    /// The matrix x vector kernel for up to 4 tokens: one workgroup per 4 output rows,
    /// reading each weight once for all tokens.
    pub fn mat_vec(
        &mut self,
        w: &GpuWeight,
        x: &GpuBuffer,
        y: &GpuBuffer,
        n_tokens: usize,
    ) -> anyhow::Result<()> {
        Self::check_mul_mat(w, x, y, n_tokens)?;
        ensure!(
            n_tokens <= MATVEC_MAX_TOKENS,
            "the matrix x vector kernel takes at most {MATVEC_MAX_TOKENS} tokens, not {n_tokens}"
        );
        let kernel = Kernel::MatVec {
            ty: w.ty,
            n_tokens: n_tokens as u8,
        };
        let x_len = n_tokens * w.cols;
        self.mat_vec_chunks(kernel, w, [x, y], n_tokens, x_len, |chunk| {
            matmul_params(w, chunk, n_tokens)
        })
    }

    /// Dispatches a matrix x vector `kernel` (4 rows per workgroup) over every chunk of
    /// `w`, reading `x_len` elements of `x` and writing `n_tokens` rows of `y`.
    fn mat_vec_chunks(
        &mut self,
        kernel: Kernel,
        w: &GpuWeight,
        [x, y]: [&GpuBuffer; 2],
        n_tokens: usize,
        x_len: usize,
        params_of: impl Fn(&WeightChunk) -> anyhow::Result<[u32; 8]>,
    ) -> anyhow::Result<()> {
        for chunk in &w.chunks {
            let params = params_of(chunk)?;
            let (gx, gy) = spread(params[0].div_ceil(MATVEC_ROWS_PER_WORKGROUP));
            let chunk_bound = Bound {
                buffer: &chunk.buffer,
                id: chunk.id.id,
            };
            let bytes = chunk.bytes + 4 * (x_len + n_tokens * chunk.rows) as u64;
            self.dispatch(
                kernel,
                &[chunk_bound, x.into(), y.into()],
                &params,
                (gx, gy, 1),
                bytes,
            )?;
        }
        Ok(())
    }

    /// The integer matrix x vector kernel for up to 4 tokens over activations that
    /// [`Batch::pack_activations`] packed for `w` (`x` holds `n_tokens` rows of `w.cols`).
    pub fn mat_vec_packed(
        &mut self,
        w: &GpuWeight,
        x: &GpuBuffer,
        y: &GpuBuffer,
        n_tokens: usize,
    ) -> anyhow::Result<()> {
        let layout = PackedLayout::check_product(w, n_tokens)?;
        ensure!(
            x.len() >= layout.elements() && y.len() >= n_tokens * w.rows,
            "matrix x vector of {n_tokens} tokens through a {}x{} weight: buffers of {} and \
             {} elements are too small",
            w.rows,
            w.cols,
            x.len(),
            y.len()
        );
        let kernel = Kernel::MatVecInt {
            ty: w.ty,
            n_tokens: n_tokens as u8,
        };
        let x_len = layout.elements();
        self.mat_vec_chunks(kernel, w, [x, y], n_tokens, x_len, |chunk| {
            Ok([
                u32_of(chunk.rows, "rows")?,
                u32_of(w.cols, "cols")?,
                u32_of(chunk.first_row, "row")?,
                u32_of(w.rows, "rows")?,
                u32_of(layout.d_base(), "activations")?,
                u32_of(layout.s_base(), "activations")?,
                0,
                0,
            ])
        })
    }

    /// Quantizes `n_tokens` rows of `cols` activations of `x` into `packed` as the CPU
    /// quantizes the input of a product through `weight` (see [`PackedLayout`]).
    pub fn pack_activations(
        &mut self,
        weight: GgmlType,
        x: &GpuBuffer,
        packed: &GpuBuffer,
        n_tokens: usize,
        cols: usize,
    ) -> anyhow::Result<PackedLayout> {
        let layout = PackedLayout::for_weight(weight, n_tokens, cols).ok_or_else(|| {
            anyhow::anyhow!(
                "{} weights have no integer matrix x vector kernel",
                weight.name()
            )
        })?;
        ensure!(
            cols.is_multiple_of(layout.block) && x.len() >= n_tokens * cols,
            "packing {n_tokens} rows of {cols} activations in blocks of {}",
            layout.block
        );
        ensure!(
            packed.len() >= layout.elements(),
            "packed activations need {} elements, the buffer has {}",
            layout.elements(),
            packed.len()
        );
        let blocks = u32_of(n_tokens * cols / layout.block, "blocks")?;
        let (gx, gy) = spread(blocks.div_ceil(64));
        self.dispatch(
            Kernel::ActPack {
                block256: layout.block == 256,
            },
            &[x.into(), packed.into()],
            &[
                blocks,
                u32_of(layout.d_base(), "activations")?,
                u32_of(layout.s_base(), "activations")?,
                0,
            ],
            (gx, gy, 1),
            4 * (n_tokens * cols + layout.elements()) as u64,
        )?;
        Ok(layout)
    }

    /// The tiled matrix x matrix kernel (32 x 32 output tiles).
    pub fn mat_mat(
        &mut self,
        w: &GpuWeight,
        x: &GpuBuffer,
        y: &GpuBuffer,
        n_tokens: usize,
    ) -> anyhow::Result<()> {
        Self::check_mul_mat(w, x, y, n_tokens)?;
        let tokens = u32_of(n_tokens, "tokens")?;
        for chunk in &w.chunks {
            let params = matmul_params(w, chunk, n_tokens)?;
            let rows = params[0];
            let (gx, gy) = (rows.div_ceil(32), tokens.div_ceil(32));
            ensure!(
                gx <= MAX_GROUPS_PER_DIM && gy <= MAX_GROUPS_PER_DIM,
                "matrix too large for one dispatch"
            );
            let chunk_bound = Bound {
                buffer: &chunk.buffer,
                id: chunk.id.id,
            };
            let bytes = chunk.bytes + 4 * (n_tokens * (w.cols + chunk.rows)) as u64;
            self.dispatch(
                Kernel::MatMul(w.ty),
                &[chunk_bound, x.into(), y.into()],
                &params,
                (gx, gy, 1),
                bytes,
            )?;
        }
        Ok(())
    }

    /// `y[t, :] = W[ids[t], :]`, dequantized (embedding lookup); `ids` holds u32 ids.
    pub fn get_rows(
        &mut self,
        w: &GpuWeight,
        ids: &GpuBuffer,
        y: &GpuBuffer,
        n_tokens: usize,
    ) -> anyhow::Result<()> {
        ensure!(
            ids.len() >= n_tokens && y.len() >= n_tokens * w.cols,
            "row lookup buffers are too small"
        );
        let tokens = u32_of(n_tokens, "tokens")?;
        ensure!(
            tokens <= MAX_GROUPS_PER_DIM,
            "too many tokens for one dispatch"
        );
        let (gx, gy) = spread(u32_of(w.cols / 4, "cols")?.div_ceil(64));
        for chunk in &w.chunks {
            let params = [
                u32_of(chunk.rows, "rows")?,
                u32_of(w.cols, "cols")?,
                u32_of(chunk.first_row, "row")?,
                u32_of(w.cols, "cols")?,
                tokens,
                0,
                0,
                0,
            ];
            let chunk_bound = Bound {
                buffer: &chunk.buffer,
                id: chunk.id.id,
            };
            self.dispatch(
                Kernel::GetRows(w.ty),
                &[chunk_bound, ids.into(), y.into()],
                &params,
                (gx, gy, tokens),
                0,
            )?;
        }
        Ok(())
    }

    /// `y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w` for `rows` rows of `w.len()`
    /// elements (whole token rows, or single heads with rows = tokens x heads).
    pub fn rms_norm(
        &mut self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        y: &GpuBuffer,
        rows: usize,
        eps: f32,
    ) -> anyhow::Result<()> {
        ensure!(y.len() >= rows * w.len(), "rms_norm output is too small");
        self.rms_norm_any(x, w, Some(y), rows, eps)
    }

    /// [`Batch::rms_norm`] with the result replacing x.
    pub fn rms_norm_in_place(
        &mut self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        rows: usize,
        eps: f32,
    ) -> anyhow::Result<()> {
        self.rms_norm_any(x, w, None, rows, eps)
    }

    fn rms_norm_any(
        &mut self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        y: Option<&GpuBuffer>,
        rows: usize,
        eps: f32,
    ) -> anyhow::Result<()> {
        let cols = w.len();
        ensure!(
            cols > 0 && x.len() >= rows * cols,
            "rms_norm input is too small"
        );
        let r = u32_of(rows, "rows")?;
        let params = [u32_of(cols, "cols")?, r, eps.to_bits(), 0];
        let (gx, gy) = spread(r);
        let bytes = 8 * (rows * cols) as u64;
        match y {
            Some(y) => self.dispatch(
                Kernel::RmsNorm { in_place: false },
                &[x.into(), w.into(), y.into()],
                &params,
                (gx, gy, 1),
                bytes,
            ),
            None => self.dispatch(
                Kernel::RmsNorm { in_place: true },
                &[x.into(), w.into()],
                &params,
                (gx, gy, 1),
                bytes,
            ),
        }
    }

    /// `y[i] = op(a[i], b[i % b.len()])` for i < n (b repeats: a per-channel vector
    /// applies to every token). For [`BinaryOp::Scale`] use [`Batch::scale`].
    pub fn binary(
        &mut self,
        op: BinaryOp,
        a: &GpuBuffer,
        b: &GpuBuffer,
        y: &GpuBuffer,
        n: usize,
    ) -> anyhow::Result<()> {
        ensure!(y.len() >= n, "element-wise output is too small");
        self.elementwise(op, a, b, Some(y), n, 1.0)
    }

    /// `a[i] = op(a[i], b[i % b.len()])` for i < n: residual adds, biases, gates.
    pub fn binary_in_place(
        &mut self,
        op: BinaryOp,
        a: &GpuBuffer,
        b: &GpuBuffer,
        n: usize,
    ) -> anyhow::Result<()> {
        self.elementwise(op, a, b, None, n, 1.0)
    }

    /// `a[i] *= s` for i < n.
    pub fn scale(&mut self, a: &GpuBuffer, s: f32, n: usize) -> anyhow::Result<()> {
        // A handle of our own: the placeholder is borrowed while self records.
        let gpu = self.gpu.clone();
        self.elementwise(BinaryOp::Scale, a, &gpu.placeholder, None, n, s)
    }

    fn elementwise(
        &mut self,
        op: BinaryOp,
        a: &GpuBuffer,
        b: &GpuBuffer,
        y: Option<&GpuBuffer>,
        n: usize,
        s: f32,
    ) -> anyhow::Result<()> {
        ensure!(
            a.len() >= n && !b.is_empty(),
            "element-wise inputs are too small"
        );
        let params = [
            u32_of(n, "elements")?,
            u32_of(b.len(), "elements")?,
            s.to_bits(),
            0,
        ];
        let (gx, gy) = spread(params[0].div_ceil(256));
        let bytes = 4 * n as u64 * if op == BinaryOp::Scale { 2 } else { 3 };
        match y {
            Some(y) => self.dispatch(
                Kernel::Binary {
                    op,
                    in_place: false,
                },
                &[a.into(), b.into(), y.into()],
                &params,
                (gx, gy, 1),
                bytes,
            ),
            None => self.dispatch(
                Kernel::Binary { op, in_place: true },
                &[a.into(), b.into()],
                &params,
                (gx, gy, 1),
                bytes,
            ),
        }
    }

    /// Rotates x (`[n_tokens][n_heads][head_dim]`) in place. Token t is at position
    /// `pos[t]` (i32) when a position buffer is given, else at `p.pos0 + t`;
    /// `freq_factors` (n_rot / 2 divisors of the frequencies) is optional.
    pub fn rope(
        &mut self,
        x: &GpuBuffer,
        pos: Option<&GpuBuffer>,
        freq_factors: Option<&GpuBuffer>,
        p: &RopeParams,
    ) -> anyhow::Result<()> {
        ensure!(
            p.n_rot.is_multiple_of(2) && p.n_rot <= p.head_dim && p.n_rot > 0,
            "rope over {} of {} dims",
            p.n_rot,
            p.head_dim
        );
        ensure!(
            x.len() >= p.n_tokens * p.n_heads * p.head_dim,
            "rope buffer is too small"
        );
        if let Some(pos) = pos {
            ensure!(pos.len() >= p.n_tokens, "rope needs one position per token");
        }
        if let Some(ff) = freq_factors {
            ensure!(
                ff.len() >= p.n_rot / 2,
                "rope needs n_rot / 2 frequency factors"
            );
        }
        // Unused bindings still need buffers (a handle of our own to borrow them from).
        let gpu = self.gpu.clone();
        let placeholder = &gpu.placeholder;
        let params = [
            u32_of(p.n_tokens, "tokens")?,
            u32_of(p.n_heads, "heads")?,
            u32_of(p.head_dim, "head_dim")?,
            u32_of(p.n_rot, "n_rot")?,
            p.freq_base.to_bits(),
            p.freq_scale.to_bits(),
            u32::from(p.neox),
            u32::from(freq_factors.is_some()),
            u32::from(pos.is_some()),
            u32_of(p.pos0, "position")?,
            0,
            0,
        ];
        let pairs = u32_of(p.n_tokens * p.n_heads * p.n_rot / 2, "rope pairs")?;
        let (gx, gy) = spread(pairs.div_ceil(256));
        self.dispatch(
            Kernel::Rope,
            &[
                x.into(),
                pos.unwrap_or(placeholder).into(),
                freq_factors.unwrap_or(placeholder).into(),
            ],
            &params,
            (gx, gy, 1),
            8 * u64::from(pairs) * 2,
        )
    }

    /// Attention of q (`[n_tokens][n_heads][head_dim]`) over the k cache
    /// (`[n_kv_heads][n_ctx][head_dim]`) and v cache (`[n_kv_heads][n_ctx][head_dim_v]`);
    /// out is `[n_tokens][n_heads][head_dim_v]`. `places` holds `(position, first cell of
    /// its sequence)` per query (u32 pairs): query t sees the cells
    /// of its sequence up to its position, which must be filled and inside the cache
    /// (the caller checks). The kernel streams keys in tiles with an online softmax, so
    /// it needs no scratch and no score matrix however long the context.
    pub fn attention(
        &mut self,
        q: &GpuBuffer,
        k: &GpuBuffer,
        v: &GpuBuffer,
        out: &GpuBuffer,
        places: &GpuBuffer,
        p: &AttentionParams,
    ) -> anyhow::Result<()> {
        ensure!(
            p.n_kv_heads > 0 && p.n_heads.is_multiple_of(p.n_kv_heads),
            "{} query heads cannot share {} kv heads",
            p.n_heads,
            p.n_kv_heads
        );
        ensure!(p.n_tokens > 0, "attention of zero queries");
        let max_dim = AttentionParams::MAX_HEAD_DIM;
        ensure!(
            (1..=max_dim).contains(&p.head_dim) && (1..=max_dim).contains(&p.head_dim_v),
            "attention heads of {} key and {} value dims: the GPU kernel takes 1 to {max_dim}",
            p.head_dim,
            p.head_dim_v
        );
        ensure!(
            places.len() >= 2 * p.n_tokens,
            "attention needs a place for each of {} queries",
            p.n_tokens
        );
        let cache = |dim: usize| KvLayout {
            n_kv_heads: p.n_kv_heads,
            n_ctx: p.n_ctx,
            dim,
            f16: p.kv_f16,
        };
        ensure!(
            q.len() >= p.n_tokens * p.n_heads * p.head_dim
                && out.len() >= p.n_tokens * p.n_heads * p.head_dim_v
                && k.len() >= cache(p.head_dim).buffer_len()
                && v.len() >= cache(p.head_dim_v).buffer_len(),
            "attention buffers are too small"
        );
        let params = [
            u32_of(p.n_tokens, "tokens")?,
            u32_of(p.n_heads, "heads")?,
            u32_of(p.n_kv_heads, "kv heads")?,
            u32_of(p.head_dim, "head_dim")?,
            u32_of(p.head_dim_v, "head_dim_v")?,
            u32_of(p.n_ctx, "n_ctx")?,
            0,
            u32_of(p.window, "window")?,
            p.scale.to_bits(),
            u32::from(p.half_accumulator),
            0,
            0,
        ];
        ensure!(
            params[0] <= MAX_GROUPS_PER_DIM && params[1] <= MAX_GROUPS_PER_DIM,
            "too many heads or tokens for one dispatch"
        );
        self.dispatch(
            Kernel::Attention { f16_kv: p.kv_f16 },
            &[q.into(), k.into(), v.into(), out.into(), places.into()],
            &params,
            (params[1], params[0], 1),
            0,
        )
    }

    /// Appends a batch's keys or values, src = `[n_tokens][n_kv_heads][dim]` f32, to the
    /// cache, row t at cell `places[2t + 1] + places[2t]` (the
    /// caller checks the cells lie in the cache). f16 caches round to nearest even.
    pub fn kv_store(
        &mut self,
        src: &GpuBuffer,
        cache: &GpuBuffer,
        layout: &KvLayout,
        places: &GpuBuffer,
        n_tokens: usize,
    ) -> anyhow::Result<()> {
        ensure!(
            layout.dim.is_multiple_of(2),
            "KV rows of odd width {}",
            layout.dim
        );
        ensure!(
            src.len() >= n_tokens * layout.n_kv_heads * layout.dim
                && cache.len() >= layout.buffer_len()
                && places.len() >= 2 * n_tokens,
            "KV store buffers are too small"
        );
        let params = [
            u32_of(n_tokens, "tokens")?,
            u32_of(layout.n_kv_heads, "kv heads")?,
            u32_of(layout.dim, "dim")?,
            u32_of(layout.n_ctx, "n_ctx")?,
            0,
            0,
            0,
            0,
        ];
        let pairs = u32_of(n_tokens * layout.n_kv_heads * layout.dim / 2, "pairs")?;
        let (gx, gy) = spread(pairs.div_ceil(256));
        self.dispatch(
            Kernel::KvStore { f16_kv: layout.f16 },
            &[src.into(), cache.into(), places.into()],
            &params,
            (gx, gy, 1),
            u64::from(pairs) * if layout.f16 { 12 } else { 16 },
        )
    }

    /// Copies `len` elements (e.g. new keys into the KV cache).
    pub fn copy(
        &mut self,
        src: &GpuBuffer,
        src_offset: usize,
        dst: &GpuBuffer,
        dst_offset: usize,
        len: usize,
    ) -> anyhow::Result<()> {
        ensure!(
            src_offset + len <= src.len() && dst_offset + len <= dst.len(),
            "copy of {len} elements overruns a buffer"
        );
        self.encoder().copy_buffer_to_buffer(
            &src.buffer,
            (src_offset * 4) as u64,
            &dst.buffer,
            (dst_offset * 4) as u64,
            (len * 4) as u64,
        );
        Ok(())
    }

    /// `y = x` rounded as the CPU quantizes activations for a weight of type `weight`
    /// (Q8_0 blocks for the legacy formats, Q8_K for the K-quants), over `n` values
    /// (whole rows). Products through `y` then match
    /// the CPU's integer dot products up to summation order.
    pub fn round_activations(
        &mut self,
        weight: GgmlType,
        x: &GpuBuffer,
        y: &GpuBuffer,
        n: usize,
    ) -> anyhow::Result<()> {
        let Some(block) = activation_rounding_block(weight) else {
            anyhow::bail!("{} weights take f32 activations", weight.name());
        };
        ensure!(
            n.is_multiple_of(block) && x.len() >= n && y.len() >= n,
            "rounding {n} activations in blocks of {block}"
        );
        let blocks = u32_of(n / block, "blocks")?;
        let (gx, gy) = spread(blocks.div_ceil(64));
        self.dispatch(
            Kernel::ActQuant {
                block256: block == 256,
            },
            &[x.into(), y.into()],
            &[blocks, 0, 0, 0],
            (gx, gy, 1),
            8 * n as u64,
        )
    }
}
