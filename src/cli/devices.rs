//! `tandem devices`: the GPU adapters wgpu finds, in `--gpu-device` order.

use clap::Args;

use crate::gpu::device::{list_adapters, AdapterSummary, GpuOptions, NO_ADAPTER_MESSAGE};
use crate::gpu::Gpu;
use crate::quant::GgmlType;

#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Also run a small matrix product on each adapter and compare it with the CPU
    #[arg(long)]
    pub check: bool,
}

/// Runs an F32 and a Q8_0 matrix x vector product on adapter `index` and compares them
/// with exact small-integer results.
fn self_test(index: usize) -> anyhow::Result<String> {
    let gpu = Gpu::new(&GpuOptions::from_env(Some(index))?)?;
    // Row r of W is r + 1 everywhere; x is 1, 2, ..., 32: y[r] = (r + 1) * 528.
    let (rows, cols) = (3usize, 32usize);
    let f32_bytes: Vec<u8> = (0..rows * cols)
        .flat_map(|i| ((i / cols + 1) as f32).to_le_bytes())
        .collect();
    // Q8_0 block: d = 1.0 (f16 0x3c00), then 32 quants of r + 1.
    let q8_bytes: Vec<u8> = (0..rows)
        .flat_map(|r| {
            let mut block = vec![0x00, 0x3c];
            block.resize(2 + cols, (r + 1) as u8);
            block
        })
        .collect();
    let x: Vec<f32> = (1..=cols).map(|v| v as f32).collect();
    let xb = gpu.upload(&x)?;
    for (ty, bytes) in [(GgmlType::F32, &f32_bytes), (GgmlType::Q8_0, &q8_bytes)] {
        let w = gpu.upload_weight(ty, rows, cols, bytes)?;
        let y = gpu.buffer(rows);
        let mut batch = gpu.batch();
        batch.mul_mat(&w, &xb, &y, 1)?;
        batch.submit()?;
        let got: Vec<f32> = gpu.read(&y)?;
        let want: Vec<f32> = (1..=rows).map(|r| (r * 528) as f32).collect();
        anyhow::ensure!(
            got == want,
            "{} product: got {got:?}, expected {want:?}",
            ty.name()
        );
    }
    Ok(format!("ok (kernels built for {:?})", gpu.device.features))
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn describe(a: &AdapterSummary) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    format!(
        "[{}] {}{}\n    backend: {}, type: {}\n    driver: {} ({})\n    \
         max storage binding: {}, max buffer: {}\n    \
         workgroup storage: {} bytes, invocations per workgroup: {}\n    \
         f16: {}, subgroup: {} (size {}..{})\n    memory: {}",
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
        memory(a),
    )
}

fn memory(a: &AdapterSummary) -> String {
    let gib = |b: u64| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64);
    match (a.memory.total, a.memory.free) {
        (Some(total), Some(free)) => format!("{} device-local, {} free", gib(total), gib(free)),
        (Some(total), None) => format!("{} device-local (free memory not reported)", gib(total)),
        _ => "not reported by the driver".to_string(),
    }
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        anyhow::bail!(NO_ADAPTER_MESSAGE);
    }
    let mut failed = 0;
    for a in &adapters {
        println!("{}", describe(a));
        if args.check {
            match self_test(a.index) {
                Ok(status) => println!("    check: {status}"),
                Err(e) => {
                    failed += 1;
                    println!("    check: FAILED: {e:#}");
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} adapter(s) failed the check");
    }
    Ok(())
}
