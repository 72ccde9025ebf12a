//! Bind groups cached by the buffers they bind, dropped together with those buffers.
//!
//! A bind group keeps its buffers alive, so a cache that outlived them would hold their
//! memory forever (a server creating buffers per request would leak VRAM). Each buffer
//! carries a [`BufferId`] whose drop evicts the bind groups that use it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::gpu::shaders::Kernel;

static NEXT_BUFFER_ID: AtomicU64 = AtomicU64::new(1);

/// A kernel and the ids of the buffers bound to it, in binding order.
pub(crate) type BindKey = (Kernel, Vec<u64>);

pub(crate) type SharedBindCache = Arc<Mutex<HashMap<BindKey, wgpu::BindGroup>>>;

/// A buffer's identity in bind-group keys; dropping it evicts its bind groups.
pub(crate) struct BufferId {
    pub(crate) id: u64,
    cache: Weak<Mutex<HashMap<BindKey, wgpu::BindGroup>>>,
}

impl BufferId {
    pub(crate) fn new(cache: &SharedBindCache) -> BufferId {
        BufferId {
            id: NEXT_BUFFER_ID.fetch_add(1, Ordering::Relaxed),
            cache: Arc::downgrade(cache),
        }
    }
}

impl Drop for BufferId {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.upgrade() {
            if let Ok(mut groups) = cache.lock() {
                groups.retain(|(_, ids), _| !ids.contains(&self.id));
            }
        }
    }
}
