//! Cost of starting one parallel operation on the persistent pool (an empty job), the
//! figure that matters for decode's ~10 small parallel operations per block per token.

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
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
