//! Reading results back to the host through a mapped staging buffer.
//!
//! A backend keeps one [`Readback`] and reuses it: the copy into it is recorded at the
//! end of a batch (so a segment stays one submission), then the buffer is mapped once
//! the batch has run.

use anyhow::{ensure, Context};

use crate::gpu::batch::Batch;
use crate::gpu::buffer::GpuBuffer;
use crate::gpu::runtime::Gpu;

/// A host-readable staging buffer, grown to the largest read asked of it.
#[derive(Default)]
pub struct Readback {
    buffer: Option<wgpu::Buffer>,
    capacity: u64,
    /// Bytes copied in by the pending readback.
    pending: u64,
}

impl Readback {
    fn ensure_capacity(&mut self, device: &wgpu::Device, bytes: u64) -> &wgpu::Buffer {
        if self.buffer.is_none() || self.capacity < bytes {
            self.capacity = bytes.next_multiple_of(1 << 16);
            self.buffer = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: self.capacity,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        self.buffer.as_ref().expect("just ensured")
    }

    /// Waits for the submitted work, then copies what was staged into `out` (4-byte
    /// values; `out` may be shorter than what was staged).
    pub fn read_into<T: bytemuck::Pod>(&mut self, gpu: &Gpu, out: &mut [T]) -> anyhow::Result<()> {
        ensure!(
            std::mem::size_of::<T>() == 4,
            "GPU buffers hold 4-byte elements"
        );
        let bytes = (out.len() * 4) as u64;
        ensure!(
            bytes <= self.pending,
            "reading {bytes} bytes back but {} were staged",
            self.pending
        );
        self.pending = 0;
        if bytes == 0 {
            return Ok(());
        }
        let staging = self.buffer.as_ref().context("nothing was staged")?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..bytes, move |result| {
            // The receiver outlives the wait below; a send error cannot happen.
            let _ = tx.send(result);
        });
        gpu.device.wait_idle()?;
        // The callback runs inside the wait above; nothing there means the device failed.
        rx.try_recv()
            .context("the GPU did not complete a readback (device lost?)")?
            .map_err(|e| anyhow::anyhow!("mapping a readback buffer: {e}"))?;
        {
            let view = staging
                .get_mapped_range(..bytes)
                .map_err(|e| anyhow::anyhow!("reading a mapped buffer: {e:?}"))?;
            bytemuck::cast_slice_mut::<T, u8>(out).copy_from_slice(&view);
        }
        staging.unmap();
        Ok(())
    }
}

impl Batch {
    /// Records a copy of elements `offset .. offset + len` of `src` into `staging`; after
    /// [`Batch::submit`], [`Readback::read_into`] returns them.
    pub fn copy_to_readback(
        &mut self,
        src: &GpuBuffer,
        offset: usize,
        len: usize,
        staging: &mut Readback,
    ) -> anyhow::Result<()> {
        ensure!(
            offset + len <= src.len(),
            "reading elements {offset}..{} of a buffer of {}",
            offset + len,
            src.len()
        );
        let bytes = (len * 4) as u64;
        staging.pending = bytes;
        if len == 0 {
            return Ok(());
        }
        let target = staging.ensure_capacity(&self.gpu.device.device, bytes);
        self.encoder()
            .copy_buffer_to_buffer(&src.buffer, (offset * 4) as u64, target, 0, bytes);
        Ok(())
    }
}
