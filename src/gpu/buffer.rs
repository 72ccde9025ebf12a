//! Device buffers: activations (f32 / u32 / i32 arrays) and weights (GGUF bytes, split
//! by whole rows into chunks that each fit one storage binding).

use anyhow::{bail, ensure};

use crate::gpu::bind_cache::{BufferId, SharedBindCache};
use crate::gpu::shaders::supports_weight_type;
use crate::quant::GgmlType;

/// A storage buffer of 4-byte elements (f32 activations, u32 ids, i32 positions).
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) id: BufferId,
    len: usize,
}

impl GpuBuffer {
    /// Creates a zero-filled buffer of `len` elements. The allocation is rounded up to
    /// whole vec4s (kernels may view it as `array<vec4<f32>>`) and is never empty (wgpu
    /// refuses zero-sized bindings).
    pub(crate) fn new(
        device: &wgpu::Device,
        cache: &SharedBindCache,
        len: usize,
        label: &str,
    ) -> GpuBuffer {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1).next_multiple_of(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        GpuBuffer {
            buffer,
            id: BufferId::new(cache),
            len,
        }
    }

    /// Number of 4-byte elements.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The rows `first_row .. first_row + rows` of a weight matrix in one buffer.
pub(crate) struct WeightChunk {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) id: BufferId,
    pub(crate) first_row: usize,
    pub(crate) rows: usize,
    /// Bytes of the rows (without the padding).
    pub(crate) bytes: u64,
}

/// A weight matrix of `rows` x `cols` elements in its GGUF encoding, never dequantized.
pub struct GpuWeight {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub(crate) chunks: Vec<WeightChunk>,
}

impl GpuWeight {
    /// How many storage bindings (buffers) the matrix was split into.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Uploads `bytes` (rows of `cols` elements of type `ty`), splitting by whole rows so
    /// that no chunk exceeds `max_chunk_bytes`.
    pub(crate) fn upload(
        device: &wgpu::Device,
        cache: &SharedBindCache,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
        max_chunk_bytes: u64,
    ) -> anyhow::Result<GpuWeight> {
        ensure!(
            supports_weight_type(ty),
            "the GPU kernels cannot read {} weights",
            ty.name()
        );
        ensure!(
            rows > 0 && cols > 0,
            "empty weight matrix ({rows} x {cols})"
        );
        // The kernels read whole groups of 4 elements (the float types use 4-element blocks).
        let unit = ty.block_elems().max(4);
        ensure!(
            cols.is_multiple_of(unit),
            "a {} row of {cols} elements is not a whole number of {unit}-element groups",
            ty.name()
        );
        let Some(row_bytes) = ty.bytes_for(cols as u64) else {
            bail!("{cols} is not a whole number of {} blocks", ty.name());
        };
        ensure!(
            row_bytes.checked_mul(rows as u64) == Some(bytes.len() as u64),
            "weight data has {} bytes, expected {rows} rows of {row_bytes}",
            bytes.len()
        );
        // 4 spare bytes: the byte readers may touch the word after the last one; and
        // whole vec4s, which some kernels read.
        let rows_per_chunk = (max_chunk_bytes.saturating_sub(32) / row_bytes) as usize;
        ensure!(
            rows_per_chunk > 0,
            "one row ({row_bytes} bytes) exceeds the device's storage binding limit"
        );
        let mut chunks = Vec::new();
        let mut first_row = 0;
        while first_row < rows {
            let n = rows_per_chunk.min(rows - first_row);
            let start = first_row * row_bytes as usize;
            let data = &bytes[start..start + n * row_bytes as usize];
            let size = (data.len() as u64 + 4).next_multiple_of(16);
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("weight chunk"),
                size,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: true,
            });
            {
                let mut view = buffer
                    .get_mapped_range_mut(..)
                    .map_err(|e| anyhow::anyhow!("mapping a new weight buffer: {e:?}"))?;
                view.slice(..data.len()).copy_from_slice(data);
            }
            buffer.unmap();
            chunks.push(WeightChunk {
                buffer,
                id: BufferId::new(cache),
                first_row,
                rows: n,
                bytes: data.len() as u64,
            });
            first_row += n;
        }
        Ok(GpuWeight {
            ty,
            rows,
            cols,
            chunks,
        })
    }
}
