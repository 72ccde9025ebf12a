//! Tokenizer speed: loading gemma3's 262,144-piece vocabulary from an open file, and
//! tokenizing the GPL-3 text (35 KB) with it; the llama 3 BPE vocabulary for comparison.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tandem::gguf::GgufFile;
use tandem::tokenizer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gpl3() -> String {
    std::fs::read_to_string(root().join("tests/data/tokenizer/GPL-3.txt"))
        .expect("tests/data/tokenizer/GPL-3.txt")
}

fn bench(c: &mut Criterion) {
    let text = gpl3();
    let gemma = GgufFile::open(root().join("models/gemma-3-270m-q4_k_m.gguf"))
        .expect("models/gemma-3-270m-q4_k_m.gguf (run scripts/fetch-model.sh)");
    let mut g = c.benchmark_group("tokenizer");
    g.sample_size(20);
    g.bench_function("gemma3_load_vocab", |b| {
        b.iter(|| Tokenizer::from_gguf(gemma.metadata()).unwrap())
    });
    let tok = Tokenizer::from_gguf(gemma.metadata()).unwrap();
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("gemma3_encode_gpl3", |b| {
        b.iter(|| tok.encode(&text, true, true))
    });
    let ids = tok.encode(&text, true, true);
    g.bench_function("gemma3_decode_gpl3", |b| b.iter(|| tok.decode(&ids)));

    let llama3 = GgufFile::open(root().join("tests/data/tokenizer/ggml-vocab-llama-bpe.gguf"))
        .expect("llama-bpe vocabulary");
    let bpe = Tokenizer::from_gguf(llama3.metadata()).unwrap();
    g.bench_function("llama3_bpe_encode_gpl3", |b| {
        b.iter(|| bpe.encode(&text, true, true))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
