//! `tandem devices`: the GPU adapters wgpu finds, in `--gpu-device` order.

use clap::Args;

use crate::gpu::device::{list_adapters, AdapterSummary, NO_ADAPTER_MESSAGE};

#[derive(Args, Debug)]
pub struct DevicesArgs {}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn describe(a: &AdapterSummary) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    format!(
        "[{}] {}{}\n    backend: {}, type: {}\n    driver: {} ({})\n    \
         max storage binding: {}, max buffer: {}\n    \
         workgroup storage: {} bytes, invocations per workgroup: {}\n    \
         f16: {}, subgroup: {} (size {}..{})",
        a.index,
        a.name,
        if a.is_default { " (default)" } else { "" },
        a.backend,
        a.device_type,
        a.driver,
        a.driver_info,
        mib(a.max_storage_buffer_binding_size),
        mib(a.max_buffer_size),
        a.max_compute_workgroup_storage_size,
        a.max_compute_invocations_per_workgroup,
        yes_no(a.has_f16),
        yes_no(a.has_subgroup),
        a.subgroup_min_size,
        a.subgroup_max_size,
    )
}

pub fn run(_args: DevicesArgs) -> anyhow::Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        anyhow::bail!(NO_ADAPTER_MESSAGE);
    }
    for a in &adapters {
        println!("{}", describe(a));
    }
    Ok(())
}
