//! Where GPU time goes: counts of dispatches and submissions (always kept), and, while
//! timing is on, GPU timestamps around every dispatch added up per kernel
//! (`tandem bench --gpu-profile`).
//!
//! Timing puts each dispatch in a compute pass of its own with timestamp writes at its
//! start and end, and waits for each submission to read them back, so it slows the run
//! down: the bench times its tests with timing off, then profiles separately.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context;

use crate::gpu::shaders::Kernel;

/// What one kind of kernel cost over the profiled work.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelStat {
    pub calls: u64,
    /// GPU nanoseconds between the start and end timestamps, summed.
    pub nanos: f64,
    /// Bytes the dispatches read and wrote, as the kernels' callers count them (0 where
    /// not counted, e.g. attention, whose reads depend on the sequence lengths).
    pub bytes: u64,
}

/// Counters since the last [`Gpu::reset_profile`](crate::gpu::Gpu::reset_profile).
#[derive(Clone, Debug, Default)]
pub struct GpuProfile {
    /// Per kernel name ([`Kernel::name`]); empty unless timing was on.
    pub kernels: BTreeMap<String, KernelStat>,
    pub dispatches: u64,
    pub submits: u64,
}

#[derive(Default)]
pub(crate) struct Profiler {
    pub(crate) dispatches: AtomicU64,
    pub(crate) submits: AtomicU64,
    pub(crate) timing: AtomicBool,
    kernels: Mutex<BTreeMap<String, KernelStat>>,
}

impl Profiler {
    pub(crate) fn snapshot(&self) -> GpuProfile {
        GpuProfile {
            kernels: self.kernels.lock().map(|k| k.clone()).unwrap_or_default(),
            dispatches: self.dispatches.load(Ordering::Relaxed),
            submits: self.submits.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset(&self) {
        self.dispatches.store(0, Ordering::Relaxed);
        self.submits.store(0, Ordering::Relaxed);
        if let Ok(mut k) = self.kernels.lock() {
            k.clear();
        }
    }

    fn add(&self, kernel: Kernel, nanos: f64, bytes: u64) {
        if let Ok(mut k) = self.kernels.lock() {
            let stat = k.entry(kernel.name()).or_default();
            stat.calls += 1;
            stat.nanos += nanos;
            stat.bytes += bytes;
        }
    }
}

/// The timestamp queries of one open batch: two per dispatch, resolved and read back
/// when the batch is flushed.
pub(crate) struct BatchTimer {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// The kernel and byte count of each timed dispatch, in order.
    pub(crate) dispatched: Vec<(Kernel, u64)>,
}

impl BatchTimer {
    pub(crate) fn new(device: &wgpu::Device, max_dispatches: u32) -> BatchTimer {
        let count = 2 * max_dispatches;
        let bytes = u64::from(count) * 8;
        BatchTimer {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("dispatch timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolved: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("resolved timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            staging: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            dispatched: Vec::new(),
        }
    }

    /// The timestamp writes of the next dispatch.
    pub(crate) fn next_writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        let i = 2 * self.dispatched.len() as u32;
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(i),
            end_of_pass_write_index: Some(i + 1),
        }
    }

    /// Records the resolve of this batch's timestamps at the end of `encoder`.
    pub(crate) fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = 2 * self.dispatched.len() as u32;
        if n == 0 {
            return;
        }
        encoder.resolve_query_set(&self.queries, 0..n, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.staging, 0, u64::from(n) * 8);
    }

    /// After the submission that resolved them: waits, reads the timestamps and adds
    /// each dispatch's time to `profiler`.
    pub(crate) fn collect(
        &mut self,
        device: &crate::gpu::GpuDevice,
        profiler: &Profiler,
    ) -> anyhow::Result<()> {
        let n = 2 * self.dispatched.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        self.staging
            .map_async(wgpu::MapMode::Read, ..n * 8, move |result| {
                let _ = tx.send(result);
            });
        device.wait_idle()?;
        rx.try_recv()
            .context("the GPU did not complete a timestamp readback")?
            .map_err(|e| anyhow::anyhow!("mapping timestamps: {e}"))?;
        let period = f64::from(device.queue.get_timestamp_period());
        {
            let view = self
                .staging
                .get_mapped_range(..n * 8)
                .map_err(|e| anyhow::anyhow!("reading timestamps: {e:?}"))?;
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            for (i, &(kernel, bytes)) in self.dispatched.iter().enumerate() {
                let elapsed = ticks[2 * i + 1].saturating_sub(ticks[2 * i]);
                profiler.add(kernel, elapsed as f64 * period, bytes);
            }
        }
        self.staging.unmap();
        self.dispatched.clear();
        Ok(())
    }
}
