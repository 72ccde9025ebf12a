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
    /// Allocates one block's cache on `gpu`.
    pub fn new(
        gpu: &Gpu,
        shape: &KvShape,
        cache_type: CacheType,
        block: usize,
    ) -> anyhow::Result<GpuKv> {
        let layout = |dim| KvLayout {
            n_kv_heads: shape.n_head_kv,
            n_ctx: shape.n_ctx,
            dim,
            f16: cache_type == CacheType::F16,
        };
        let (k_layout, v_layout) = (layout(shape.head_dim), layout(shape.head_dim_v));
        Ok(GpuKv {
            k: gpu.try_buffer(k_layout.buffer_len(), &format!("block {block}'s K cache"))?,
            v: gpu.try_buffer(v_layout.buffer_len(), &format!("block {block}'s V cache"))?,
            k_layout,
            v_layout,
        })
    }
}
