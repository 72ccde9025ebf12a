//! The GPU handle: pipelines, uploads, readback, and the start of batches.
//!
//! Each kernel's pipeline is built once (on first use) for the device's feature set.
//! Kernel parameters travel in a uniform "ring" buffer at dynamic offsets, so a bind
//! group depends only on the buffers bound and is cached by their ids. Each open
//! [`Batch`] holds a ring of its own (taken from a pool), so batches may be recorded on
//! several threads at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, ensure};

use crate::gpu::batch::Batch;
use crate::gpu::bind_cache::{BufferId, SharedBindCache};
use crate::gpu::buffer::{GpuBuffer, GpuWeight};
use crate::gpu::device::{GpuDevice, GpuOptions};
use crate::gpu::profile::{BatchTimer, GpuProfile, Profiler};
use crate::gpu::readback::Readback;
use crate::gpu::shaders::{Access, Kernel};
use crate::quant::GgmlType;

/// Bytes reserved for one dispatch's parameters (no kernel's Params exceeds 16 words).
pub(crate) const PARAMS_SIZE: u64 = 64;
/// Dispatches one batch can hold before it is flushed to the queue.
pub(crate) const RING_SLOTS: u64 = 1024;

pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// A GPU with its compiled kernels: the entry point of the GPU backend. A cheap handle
/// (clones share the device), so that a [`Batch`] can own one and live in a backend
/// across many operations.
#[derive(Clone)]
pub struct Gpu {
    shared: Arc<GpuShared>,
}

impl std::ops::Deref for Gpu {
    type Target = GpuShared;
    fn deref(&self) -> &GpuShared {
        &self.shared
    }
}

/// What every handle of one [`Gpu`] shares.
pub struct GpuShared {
    pub device: GpuDevice,
    pipelines: Mutex<HashMap<Kernel, Arc<Pipeline>>>,
    pub(crate) bind_groups: SharedBindCache,
    /// Parameter rings not in use by a batch.
    pub(crate) rings: Mutex<Vec<ParamRing>>,
    pub(crate) ring_stride: u64,
    /// Bound where a kernel's binding is unused (wgpu needs a buffer there).
    pub(crate) placeholder: GpuBuffer,
    /// Bytes allocated through [`Gpu::try_buffer`] and the weight uploads.
    allocated: AtomicU64,
    memory_limit: Option<u64>,
    pub(crate) profiler: Profiler,
}

/// The GPU has no room for an allocation, or it would pass the configured limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "out of GPU memory: {what} needs {} MiB with {} MiB already allocated{}",
    mib(*bytes),
    mib(*allocated),
    limit.map(|l| format!(" (limit {} MiB)", mib(l))).unwrap_or_default()
)]
pub struct GpuOutOfMemory {
    pub what: String,
    pub bytes: u64,
    pub allocated: u64,
    pub limit: Option<u64>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 20) as f64)
}

/// A uniform buffer of RING_SLOTS parameter slots, owned by one open batch at a time.
pub(crate) struct ParamRing {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) id: BufferId,
}

impl Gpu {
    /// Opens a device as `options` say.
    pub fn new(options: &GpuOptions) -> anyhow::Result<Gpu> {
        let device = GpuDevice::new(options)?;
        let ring_stride = PARAMS_SIZE.next_multiple_of(
            u64::from(device.limits.min_uniform_buffer_offset_alignment).max(PARAMS_SIZE),
        );
        let bind_groups = SharedBindCache::default();
        let placeholder = GpuBuffer::new(&device.device, &bind_groups, 1, "placeholder");
        Ok(Gpu {
            shared: Arc::new(GpuShared {
                device,
                pipelines: Mutex::new(HashMap::new()),
                bind_groups,
                rings: Mutex::new(Vec::new()),
                ring_stride,
                placeholder,
                allocated: AtomicU64::new(0),
                memory_limit: options.memory_limit,
                profiler: Profiler::default(),
            }),
        })
    }

    pub(crate) fn pipeline(&self, kernel: Kernel) -> anyhow::Result<Arc<Pipeline>> {
        let mut cache = self.pipelines.lock().expect("pipeline cache poisoned");
        if let Some(p) = cache.get(&kernel) {
            return Ok(p.clone());
        }
        let source = kernel.source(self.device.features)?;
        let device = &self.device.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&kernel.name()),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let storage = kernel.storage_bindings();
        let mut entries: Vec<wgpu::BindGroupLayoutEntry> = storage
            .iter()
            .enumerate()
            .map(|(i, access)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: storage.len() as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: wgpu::BufferSize::new(PARAMS_SIZE),
            },
            count: None,
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(&kernel.name()),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&kernel.name()),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&kernel.name()),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        if let Some(error) = pollster::block_on(scope.pop()) {
            bail!("building GPU kernel {}: {error}", kernel.name());
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        cache.insert(kernel, p.clone());
        Ok(p)
    }

    /// Builds every kernel's pipeline now (otherwise each is built on first use).
    pub fn warm_up(&self) -> anyhow::Result<()> {
        for kernel in Kernel::all() {
            self.pipeline(kernel)?;
        }
        Ok(())
    }

    /// A zero-filled buffer of `len` 4-byte elements.
    pub fn buffer(&self, len: usize) -> GpuBuffer {
        GpuBuffer::new(&self.device.device, &self.bind_groups, len, "activations")
    }

    /// A zero-filled buffer of `len` 4-byte elements, counted against the memory limit;
    /// running out of memory is a [`GpuOutOfMemory`] error.
    pub fn try_buffer(&self, len: usize, what: &str) -> anyhow::Result<GpuBuffer> {
        let bytes = Gpu::buffer_bytes(len);
        self.allocate(what, bytes, || {
            Ok(GpuBuffer::new(
                &self.device.device,
                &self.bind_groups,
                len,
                what,
            ))
        })
    }

    /// Bytes [`Gpu::try_buffer`] counts for a buffer of `len` 4-byte elements (the
    /// planner adds these up before any GPU is opened).
    pub fn buffer_bytes(len: usize) -> u64 {
        (len.max(1).next_multiple_of(4) * 4) as u64
    }

    /// Bytes allocated through [`Gpu::try_buffer`] and weight uploads so far.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Runs `create` (which allocates `bytes` of device memory) unless that would pass
    /// the memory limit, turning the driver's out-of-memory error into [`GpuOutOfMemory`].
    fn allocate<T>(
        &self,
        what: &str,
        bytes: u64,
        create: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let allocated = self.allocated_bytes();
        let out_of_memory = || GpuOutOfMemory {
            what: what.to_string(),
            bytes,
            allocated,
            limit: self.memory_limit,
        };
        if self.memory_limit.is_some_and(|l| allocated + bytes > l) {
            return Err(out_of_memory().into());
        }
        let scope = self
            .device
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let created = create();
        if pollster::block_on(scope.pop()).is_some() {
            return Err(out_of_memory().into());
        }
        let value = created?;
        self.allocated.fetch_add(bytes, Ordering::Relaxed);
        Ok(value)
    }

    /// A buffer holding `data` (f32, u32 or i32 values).
    pub fn upload<T: bytemuck::Pod>(&self, data: &[T]) -> anyhow::Result<GpuBuffer> {
        ensure!(
            std::mem::size_of::<T>() == 4,
            "GPU buffers hold 4-byte elements"
        );
        let buf = self.buffer(data.len());
        self.write(&buf, 0, data)?;
        Ok(buf)
    }

    /// A buffer holding raw little-endian 4-byte values, e.g. an F32 norm weight straight
    /// from a GGUF file (no alignment needed, unlike casting the bytes to `&[f32]`).
    pub fn upload_bytes(&self, bytes: &[u8]) -> anyhow::Result<GpuBuffer> {
        ensure!(
            bytes.len().is_multiple_of(4),
            "{} bytes are not whole 4-byte values",
            bytes.len()
        );
        let buf = self.buffer(bytes.len() / 4);
        if !bytes.is_empty() {
            self.device.queue.write_buffer(&buf.buffer, 0, bytes);
        }
        Ok(buf)
    }

    /// Writes `data` into `buf` from element `offset` on (ordered before later batches).
    pub fn write<T: bytemuck::Pod>(
        &self,
        buf: &GpuBuffer,
        offset: usize,
        data: &[T],
    ) -> anyhow::Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        ensure!(
            bytes.len().is_multiple_of(4) && offset * 4 + bytes.len() <= buf.len() * 4,
            "write of {} bytes at element {offset} overruns a buffer of {} elements",
            bytes.len(),
            buf.len()
        );
        if !bytes.is_empty() {
            self.device
                .queue
                .write_buffer(&buf.buffer, (offset * 4) as u64, bytes);
        }
        Ok(())
    }

    /// Uploads a weight matrix in its GGUF encoding (split to fit the binding limit).
    pub fn upload_weight(
        &self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> anyhow::Result<GpuWeight> {
        self.upload_weight_chunked(ty, rows, cols, bytes, self.device.max_binding_bytes())
    }

    /// As [`Gpu::upload_weight`] with an explicit chunk limit (tests force splits with it).
    pub fn upload_weight_chunked(
        &self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
        max_chunk_bytes: u64,
    ) -> anyhow::Result<GpuWeight> {
        let limit = max_chunk_bytes.min(self.device.max_binding_bytes());
        let what = format!("a {rows}x{cols} {} weight", ty.name());
        self.allocate(&what, bytes.len() as u64, || {
            GpuWeight::upload(
                &self.device.device,
                &self.bind_groups,
                ty,
                rows,
                cols,
                bytes,
                limit,
            )
        })
    }

    /// Reads a buffer back (waits for all submitted work).
    pub fn read<T: bytemuck::Pod>(&self, buf: &GpuBuffer) -> anyhow::Result<Vec<T>> {
        self.read_range(buf, 0, buf.len())
    }

    /// Reads elements `offset .. offset + len` back (waits for all submitted work), e.g.
    /// the last token's logits.
    pub fn read_range<T: bytemuck::Pod>(
        &self,
        buf: &GpuBuffer,
        offset: usize,
        len: usize,
    ) -> anyhow::Result<Vec<T>> {
        let mut staging = Readback::default();
        let mut batch = self.batch();
        batch.copy_to_readback(buf, offset, len, &mut staging)?;
        batch.submit()?;
        let mut out = vec![T::zeroed(); len];
        staging.read_into(self, &mut out)?;
        Ok(out)
    }

    /// How many bind groups are cached (each lives as long as all its buffers do).
    pub fn cached_bind_groups(&self) -> usize {
        self.bind_groups
            .lock()
            .expect("bind group cache poisoned")
            .len()
    }

    /// Starts a batch of dispatches that are submitted together (dropping a batch
    /// without [`Batch::submit`] discards what it recorded).
    pub fn batch(&self) -> Batch {
        let pooled = self.rings.lock().expect("ring pool poisoned").pop();
        let ring = pooled.unwrap_or_else(|| ParamRing {
            buffer: self.device.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel parameters"),
                size: self.ring_stride * RING_SLOTS,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            id: BufferId::new(&self.bind_groups),
        });
        let timing = self.profiler.timing.load(Ordering::Relaxed);
        Batch {
            gpu: self.clone(),
            encoder: None,
            pass: None,
            params: Vec::new(),
            ring: Some(ring),
            timer: timing.then(|| BatchTimer::new(&self.device.device, RING_SLOTS as u32)),
        }
    }

    /// Turns per-dispatch GPU timing on or off for batches started from now on (see
    /// [`crate::gpu::profile`]); an error where the adapter cannot write timestamps.
    pub fn set_timing(&self, on: bool) -> anyhow::Result<()> {
        ensure!(
            !on || self.device.timestamps,
            "{} cannot write GPU timestamps, so kernels cannot be timed on it",
            self.device.adapter.name
        );
        self.profiler.timing.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Dispatches, submissions and (while timing) kernel times since the last reset.
    pub fn profile(&self) -> GpuProfile {
        self.profiler.snapshot()
    }

    pub fn reset_profile(&self) {
        self.profiler.reset()
    }
}
