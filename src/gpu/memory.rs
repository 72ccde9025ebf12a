//! How much memory an adapter has, where its API says: Vulkan's device-local heaps, and
//! with `VK_EXT_memory_budget` what of them this process may still use. wgpu itself
//! reports no memory sizes, so this asks the Vulkan driver under it.

/// An adapter's memory as its driver reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterMemory {
    /// Size of the device-local heaps.
    pub total: Option<u64>,
    /// What this process may still allocate in them (budget minus usage).
    pub free: Option<u64>,
}

/// The memory of `adapter`; all `None` on backends other than Vulkan.
pub fn adapter_memory(adapter: &wgpu::Adapter) -> AdapterMemory {
    #[cfg(any(target_os = "linux", target_os = "windows", target_os = "android"))]
    if adapter.get_info().backend == wgpu::Backend::Vulkan {
        return vulkan_memory(adapter);
    }
    let _ = adapter;
    AdapterMemory::default()
}

#[cfg(any(target_os = "linux", target_os = "windows", target_os = "android"))]
fn vulkan_memory(adapter: &wgpu::Adapter) -> AdapterMemory {
    use ash::vk;
    use wgpu::hal::api::Vulkan;

    // SAFETY: the guard only borrows the live adapter for two read-only queries; nothing
    // it hands out is destroyed or kept.
    let Some(hal) = (unsafe { adapter.as_hal::<Vulkan>() }) else {
        return AdapterMemory::default();
    };
    let instance = hal.shared_instance().raw_instance();
    let physical = hal.raw_physical_device();
    let has_budget = hal
        .physical_device_capabilities()
        .supports_extension(ash::ext::memory_budget::NAME);
    let mut budget = vk::PhysicalDeviceMemoryBudgetPropertiesEXT::default();
    let mut props = vk::PhysicalDeviceMemoryProperties2::default();
    if has_budget {
        props = props.push_next(&mut budget);
    }
    // SAFETY: `physical` belongs to `instance`, which outlives the call; `props` (and the
    // budget struct it points to, when chained) live across it.
    unsafe { instance.get_physical_device_memory_properties2(physical, &mut props) };
    let memory = props.memory_properties;
    let heaps = &memory.memory_heaps[..memory.memory_heap_count as usize];
    let local: Vec<usize> = (0..heaps.len())
        .filter(|&i| heaps[i].flags.contains(vk::MemoryHeapFlags::DEVICE_LOCAL))
        .collect();
    if local.is_empty() {
        return AdapterMemory::default();
    }
    let total = local.iter().map(|&i| heaps[i].size).sum();
    let free = has_budget.then(|| {
        local
            .iter()
            .map(|&i| budget.heap_budget[i].saturating_sub(budget.heap_usage[i]))
            .sum()
    });
    AdapterMemory {
        total: Some(total),
        free,
    }
}
