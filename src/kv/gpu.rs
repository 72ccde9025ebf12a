//! A block's K/V in GPU buffers, in the same `[kv_head][position][dim]` layout as the
//! host cache (f16 values packed two per 32-bit element).

use crate::gpu::{Gpu, GpuBuffer, KvLayout};

use super::{CacheType, KvShape};

pub struct GpuKv {
    pub k: GpuBuffer,
    pub v: GpuBuffer,
    pub k_layout: KvLayout,
    pub v_layout: KvLayout,
}

impl GpuKv {
    /// The K and V layouts of one block.
    fn layouts(shape: &KvShape, cache_type: CacheType) -> (KvLayout, KvLayout) {
        let layout = |dim| KvLayout {
            n_kv_heads: shape.n_head_kv,
            n_ctx: shape.n_ctx,
            dim,
            f16: cache_type == CacheType::F16,
        };
        (layout(shape.head_dim), layout(shape.head_dim_v))
    }

    /// GPU bytes [`GpuKv::new`] allocates for one block.
    pub fn block_bytes(shape: &KvShape, cache_type: CacheType) -> u64 {
        let (k, v) = Self::layouts(shape, cache_type);
        Gpu::buffer_bytes(k.buffer_len()) + Gpu::buffer_bytes(v.buffer_len())
    }

    /// Allocates one block's cache on `gpu`.
    pub fn new(
        gpu: &Gpu,
        shape: &KvShape,
        cache_type: CacheType,
        block: usize,
    ) -> anyhow::Result<GpuKv> {
        let (k_layout, v_layout) = Self::layouts(shape, cache_type);
        Ok(GpuKv {
            k: gpu.try_buffer(k_layout.buffer_len(), &format!("block {block}'s K cache"))?,
            v: gpu.try_buffer(v_layout.buffer_len(), &format!("block {block}'s V cache"))?,
            k_layout,
            v_layout,
        })
    }
}
