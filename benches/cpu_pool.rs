//! Cost of starting one parallel operation on the persistent pool, the figure that
//! matters for decode's ~10 small parallel operations per block per token:
//! - `empty_job`: nothing to do (the caller may run an idle worker's index itself);
//! - `work_2us`: each index spins ~2 µs, so with 2 threads the time above 2 µs is the
//!   cost of getting the worker to take its share.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use tandem::cpu::ThreadPool;

fn dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_dispatch");
    for n in [1, 2] {
        let pool = ThreadPool::new(n);
        let counter = AtomicUsize::new(0);
        group.bench_function(format!("empty_job_{n}_threads"), |b| {
            b.iter(|| {
                pool.run(|i, _| {
                    counter.fetch_add(black_box(i), Ordering::Relaxed);
                })
            })
        });
    }
    for n in [1, 2] {
        let pool = ThreadPool::new(n);
        // Calibrated spin: about 2 µs of work per index.
        let spins = calibrate_spins(std::time::Duration::from_micros(2));
        group.bench_function(format!("work_2us_per_index_{n}_threads"), |b| {
            b.iter(|| {
                pool.run(|_, _| {
                    let mut v = 0u64;
                    for k in 0..spins {
                        v = black_box(v.wrapping_add(k));
                    }
                })
            })
        });
    }
    group.finish();
}

fn calibrate_spins(target: std::time::Duration) -> u64 {
    let n = 1_000_000u64;
    let start = std::time::Instant::now();
    let mut v = 0u64;
    for k in 0..n {
        v = black_box(v.wrapping_add(k));
    }
    let per = start.elapsed().as_secs_f64() / n as f64;
    (target.as_secs_f64() / per) as u64
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
