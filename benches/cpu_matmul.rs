//! Matmul throughput per weight type: GB/s of weights streamed for matrix×vector
//! (decode) and GFLOP/s for matrix×matrix (prefill), with the pool's 2 threads.
//!
//! Environment: `TANDEM_BENCH_TYPES=q4_0,q8_0` limits the weight types,
//! `TANDEM_BENCH_TOKENS=128` sets the prefill batch, `TANDEM_BENCH_THREADS=2` the pool,
//! `TANDEM_CPU_SIMD` the level. `TANDEM_BENCH_RAW=vec|mat|lone` skips criterion and runs
//! that case (`lone`: the tokens of a batched decode step, each summed as alone) of the
//! first selected type on 2048×2048 (or `TANDEM_BENCH_SHAPE=ROWSxCOLS`) for
//! `TANDEM_BENCH_ITERS` iterations (for `perf stat -e task-clock`, which stays
//! meaningful on a busy machine).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use half::{bf16, f16};
use tandem::cpu::{matmul, matmul_ordered, RowOrder, SimdLevel, ThreadPool, WeightRef};
use tandem::quant::GgmlType;

const TYPES: [GgmlType; 13] = [
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
    GgmlType::Q5_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q5K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = rows * cols;
    match ty {
        GgmlType::F32 => (0..n)
            .flat_map(|_| ((next() % 2000) as f32 / 1000.0 - 1.0).to_le_bytes())
            .collect(),
        GgmlType::F16 | GgmlType::BF16 => (0..n)
            .flat_map(|_| {
                let v = (next() % 2000) as f32 / 1000.0 - 1.0;
                if ty == GgmlType::F16 {
                    f16::from_f32(v).to_le_bytes()
                } else {
                    bf16::from_f32(v).to_le_bytes()
                }
            })
            .collect(),
        _ => {
            // Random bytes with every f16 replaced by a small number: no NaN scales.
            let bytes = n / ty.block_elems() * ty.block_bytes();
            let mut data: Vec<u8> = (0..bytes).map(|_| next() as u8).collect();
            let small = f16::from_f32(0.01).to_le_bytes();
            for block in data.chunks_exact_mut(ty.block_bytes()) {
                let at: &[usize] = match ty {
                    GgmlType::Q2K => &[80, 82],
                    GgmlType::Q3K => &[108],
                    GgmlType::Q6K => &[208],
                    GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
                    _ => &[0],
                };
                for &a in at {
                    block[a..a + 2].copy_from_slice(&small);
                }
            }
            data
        }
    }
}

fn selected_types() -> Vec<GgmlType> {
    match std::env::var("TANDEM_BENCH_TYPES") {
        Ok(list) => list
            .split(',')
            .filter_map(GgmlType::from_name)
            .filter(|t| TYPES.contains(t))
            .collect(),
        Err(_) => TYPES.to_vec(),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `TANDEM_BENCH_RAW` mode (see the module comment).
fn raw(case: &str) {
    let pool = ThreadPool::new(env_usize("TANDEM_BENCH_THREADS", 2));
    let ty = selected_types()[0];
    let (rows, cols) = match std::env::var("TANDEM_BENCH_SHAPE") {
        Ok(shape) => {
            let (r, c) = shape.split_once('x').expect("TANDEM_BENCH_SHAPE=ROWSxCOLS");
            (r.parse().expect("rows"), c.parse().expect("cols"))
        }
        Err(_) => (2048, 2048),
    };
    let n = if case == "vec" {
        1
    } else {
        env_usize("TANDEM_BENCH_TOKENS", 128)
    };
    let data = weights(ty, rows, cols);
    let w = WeightRef {
        ty,
        data: &data,
        rows,
        cols,
    };
    let x: Vec<f32> = (0..n * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut y = vec![0f32; n * rows];
    let iters = env_usize("TANDEM_BENCH_ITERS", 100);
    let start = std::time::Instant::now();
    let order = if case == "lone" {
        RowOrder::Lone
    } else {
        RowOrder::Batch
    };
    for _ in 0..iters {
        matmul_ordered(&pool, w, black_box(&x), n, order, &mut y);
    }
    let per = start.elapsed().as_secs_f64() / iters as f64;
    println!(
        "{} {case} tokens {n}: {:.1} us/call, {:.2} GB/s, {:.1} GFLOP/s (wall clock)",
        ty.name(),
        per * 1e6,
        data.len() as f64 / per / 1e9,
        2.0 * (rows * cols * n) as f64 / per / 1e9
    );
}

fn bench(c: &mut Criterion) {
    if let Ok(case) = std::env::var("TANDEM_BENCH_RAW") {
        raw(&case);
        return;
    }
    let pool = ThreadPool::new(env_usize("TANDEM_BENCH_THREADS", 2));
    let prefill_tokens = env_usize("TANDEM_BENCH_TOKENS", 128);
    eprintln!("SIMD level: {}", SimdLevel::selected().name());
    for ty in selected_types() {
        for (rows, cols) in [(2048, 2048), (5632, 2048)] {
            let data = weights(ty, rows, cols);
            let w = WeightRef {
                ty,
                data: &data,
                rows,
                cols,
            };
            let mut group = c.benchmark_group(format!("matmul_{}_{rows}x{cols}", ty.name()));
            group.sample_size(10);

            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut y = vec![0f32; rows];
            group.throughput(Throughput::Bytes(data.len() as u64));
            group.bench_function("vec_GBps", |b| {
                b.iter(|| matmul(&pool, w, black_box(&x), 1, &mut y))
            });

            let n = prefill_tokens;
            let x: Vec<f32> = (0..n * cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut y = vec![0f32; n * rows];
            // Elements = flops / 1e0: criterion prints "elem/s", read it as FLOP/s.
            group.throughput(Throughput::Elements((2 * rows * cols * n) as u64));
            group.bench_function(format!("mat{n}_FLOPs"), |b| {
                b.iter(|| matmul(&pool, w, black_box(&x), n, &mut y))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
