//! How fast this machine's devices are, measured once and kept in a cache file: the
//! CPU's read bandwidth and quantized-matmul rate, the GPU's copy bandwidth and f32 rate.
//! The cache lives in `$TANDEM_CACHE_DIR`, else `$XDG_CACHE_HOME/tandem`, else
//! `~/.cache/tandem` (`probes.json`, one entry per CPU, thread count and weight type, and
//! per adapter and driver).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::bench::measure_read_bandwidth;
use crate::cpu::{matmul, SimdLevel, ThreadPool, WeightRef};
use crate::gpu::device::GpuDevice;
use crate::quant::GgmlType;

/// One device's measured speed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Speed {
    /// Bytes per second the device streams (CPU: reads; GPU: reads plus writes of a copy).
    pub bytes_per_sec: f64,
    /// Arithmetic per second (CPU: a prefill-sized quantized matmul, 2 per
    /// multiply-add; GPU: f32 FMA chains).
    pub flops: f64,
    /// GPU: seconds per small dispatch (0 for the CPU).
    #[serde(default)]
    pub dispatch_seconds: f64,
    /// A software adapter (lavapipe), whose kernels run far below its f32 rate.
    #[serde(default)]
    pub software: bool,
}

fn cache_path() -> Option<PathBuf> {
    let dir = match std::env::var_os("TANDEM_CACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(d) => PathBuf::from(d).join("tandem"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/tandem"),
        },
    };
    Some(dir.join("probes.json"))
}

fn load_cache() -> BTreeMap<String, Speed> {
    cache_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Writes the cache; a read-only home only costs a new measurement next time.
fn store(key: &str, speed: Speed) {
    let Some(path) = cache_path() else { return };
    let mut cache = load_cache();
    cache.insert(key.to_string(), speed);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(text) = serde_json::to_vec_pretty(&cache) {
        let _ = std::fs::write(&path, text);
    }
}

fn cached_or(key: &str, remeasure: bool, measure: impl FnOnce() -> Speed) -> Speed {
    if !remeasure {
        if let Some(s) = load_cache().get(key) {
            return *s;
        }
    }
    let speed = measure();
    store(key, speed);
    speed
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The CPU's speed with `threads` threads for weights of type `ty`.
pub fn cpu_speed(threads: usize, ty: GgmlType, remeasure: bool) -> Speed {
    let key = format!(
        "cpu {} x{threads} {} {}",
        cpu_name(),
        SimdLevel::selected().name(),
        ty.name()
    );
    cached_or(&key, remeasure, || Speed {
        bytes_per_sec: measure_read_bandwidth(512 << 20, threads, 4).bytes_per_sec,
        flops: cpu_matmul_flops(threads, ty),
        dispatch_seconds: 0.0,
        software: false,
    })
}

/// Best of three 128-token products with a 2048×2048 matrix of `ty`.
fn cpu_matmul_flops(threads: usize, ty: GgmlType) -> f64 {
    let (rows, cols, tokens) = (2048usize, 2048usize, 128usize);
    let ty = if ty.bytes_for(cols as u64).is_some() {
        ty
    } else {
        GgmlType::Q8_0
    };
    let row_bytes = ty.bytes_for(cols as u64).expect("2048 is whole blocks") as usize;
    let mut data = vec![0u8; rows * row_bytes];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        for v in row.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *v = (state % 2001) as f32 / 1000.0 - 1.0;
        }
        ty.quantize_row(&row, &mut data[r * row_bytes..(r + 1) * row_bytes]);
    }
    let w = WeightRef {
        ty,
        data: &data,
        rows,
        cols,
    };
    let x: Vec<f32> = (0..tokens * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut y = vec![0f32; tokens * rows];
    let pool = ThreadPool::new(threads);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        matmul(&pool, w, &x, tokens, &mut y);
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (rows * cols * tokens) as f64 / best
}

/// The speed of an open GPU (the probe kernels of [`crate::gpu::probe`]).
pub fn gpu_speed(device: &GpuDevice, remeasure: bool) -> anyhow::Result<Speed> {
    let key = format!(
        "gpu3 {} {}",
        device.adapter.name, device.adapter.driver_info
    );
    if !remeasure {
        if let Some(s) = load_cache().get(&key) {
            return Ok(*s);
        }
    }
    let measured = crate::gpu::probe::measure(device)?;
    let speed = Speed {
        bytes_per_sec: measured.copy_bytes_per_sec,
        flops: measured.flops,
        dispatch_seconds: measured.dispatch_seconds,
        software: device.adapter.is_software(),
    };
    store(&key, speed);
    Ok(speed)
}
