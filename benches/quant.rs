//! Row conversion throughput per block format: `cargo bench --bench quant`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tandem::quant::GgmlType;

const ROW: usize = 4096;

fn sample_row() -> Vec<f32> {
    (0..ROW)
        .map(|i| ((i * 7919 % 1021) as f32 / 1021.0 - 0.5) * 0.1)
        .collect()
}

fn quantized_types() -> impl Iterator<Item = GgmlType> {
    GgmlType::ALL.into_iter().filter(|t| t.is_quantized())
}

fn dequantize(c: &mut Criterion) {
    let x = sample_row();
    let mut group = c.benchmark_group("dequantize_row");
    group.throughput(Throughput::Elements(ROW as u64));
    for ty in quantized_types() {
        let mut bytes = vec![0u8; ty.bytes_for(ROW as u64).unwrap() as usize];
        ty.quantize_row(&x, &mut bytes);
        let mut out = vec![0f32; ROW];
        group.bench_function(BenchmarkId::from_parameter(ty), |b| {
            b.iter(|| ty.dequantize_row(std::hint::black_box(&bytes), &mut out))
        });
    }
    group.finish();
}

fn quantize(c: &mut Criterion) {
    let x = sample_row();
    let mut group = c.benchmark_group("quantize_row");
    group.throughput(Throughput::Elements(ROW as u64));
    group.sample_size(20);
    for ty in quantized_types() {
        let mut bytes = vec![0u8; ty.bytes_for(ROW as u64).unwrap() as usize];
        group.bench_function(BenchmarkId::from_parameter(ty), |b| {
            b.iter(|| ty.quantize_row(std::hint::black_box(&x), &mut bytes))
        });
    }
    group.finish();
}

criterion_group!(benches, dequantize, quantize);
criterion_main!(benches);
