//! The multi-sequence engine: a KV cache of several sequences, prompts prefilled one
//! sequence at a time, and decode steps that take one token of every sequence in one
//! forward pass. Every sequence must get exactly the logits it gets alone (the server's
//! batched greedy requests give the text of one at a time), on synth models of the types
//! whose summation order depends on the batch and on the real gemma3 model.

mod common;

use std::path::Path;

use tandem::engine::{CacheType, Engine, EngineOptions};
use tandem::gguf::GgufFile;
use tandem::quant::GgmlType;
use tandem::synth::{write_synth_model, Arch, SynthSpec};
use tandem::weight_types::WeightTypeChoice;

fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m })
        .0 as u32
}

fn load(path: &Path, n_parallel: usize, n_ctx: usize, cache_type: CacheType) -> Engine {
    Engine::load(
        path,
        EngineOptions {
            n_ctx: Some(n_ctx),
            n_parallel,
            n_batch: 64,
            n_threads: Some(2),
            cache_type,
            ..EngineOptions::default()
        },
    )
    .unwrap()
}

/// Each prompt alone: prefill, then `steps` greedy tokens; the logits of every step.
fn alone(engine: &mut Engine, prompt: &[u32], steps: usize) -> Vec<Vec<f32>> {
    engine.clear();
    let mut rows = vec![engine.eval(prompt).unwrap().to_vec()];
    for _ in 0..steps {
        let next = argmax(rows.last().unwrap());
        rows.push(engine.eval(&[next]).unwrap().to_vec());
    }
    rows
}

/// All prompts in one engine, sequence i holding prompt i: prefills one after another,
/// then `steps` decode steps of every sequence at once.
fn together(engine: &mut Engine, prompts: &[Vec<u32>], steps: usize) -> Vec<Vec<Vec<f32>>> {
    let mut rows: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .enumerate()
        .map(|(seq, p)| {
            vec![engine
                .eval_seq(seq, p, 1, Default::default())
                .unwrap()
                .to_vec()]
        })
        .collect();
    let n_vocab = engine.n_vocab();
    for _ in 0..steps {
        let step: Vec<(usize, u32)> = rows
            .iter()
            .enumerate()
            .map(|(seq, r)| (seq, argmax(r.last().unwrap())))
            .collect();
        let logits = engine.decode(&step).unwrap().to_vec();
        for (seq, row) in logits.chunks(n_vocab).enumerate() {
            rows[seq].push(row.to_vec());
        }
    }
    rows
}

fn assert_same_bits(what: &str, together: &[Vec<Vec<f32>>], alone: &[Vec<Vec<f32>>]) {
    for (seq, (t, a)) in together.iter().zip(alone).enumerate() {
        for (step, (x, y)) in t.iter().zip(a).enumerate() {
            let same = x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{what}: sequence {seq} differs at step {step}");
        }
    }
}

fn synth(dir: &Path, arch: Arch, weights: WeightTypeChoice) -> std::path::PathBuf {
    let path = dir.join(format!("{}.gguf", arch.name()));
    let vocab = GgufFile::open(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap();
    let mut spec = SynthSpec::preset(arch, "tiny").unwrap();
    spec.weight_type = weights;
    spec.seed = 11;
    write_synth_model(&spec, &vocab, &path, |_, _| {}).unwrap();
    path
}

fn prompts(engine: &Engine, lens: &[usize]) -> Vec<Vec<u32>> {
    let text = "Once upon a time, in a land far away, there lived a clockmaker who built \
                a clock that ran backwards; every morning the village woke a little younger, \
                and nobody could say why, until a child asked the clock itself.";
    let all = engine.tokenizer().encode(text, true, false);
    lens.iter()
        .enumerate()
        .map(|(i, &n)| all.iter().cycle().skip(i).take(n).copied().collect())
        .collect()
}

/// Five sequences (more than a row kernel's four tokens) with prompts of 1 to 70 tokens
/// (the 70-token one prefills through the wide and grouped orders and llama.cpp's tiled
/// attention), eight decode steps: every sequence's logits equal its lone run's, bit for
/// bit, for the weight types whose order depends on the batch and for the others.
#[test]
fn batched_decode_gives_every_sequence_its_lone_logits() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, weights, cache) in [
        (
            Arch::Llama,
            WeightTypeChoice::Uniform(GgmlType::Q4_0),
            CacheType::F16,
        ),
        (Arch::Gemma3, WeightTypeChoice::Q4KM, CacheType::F16),
        (
            Arch::Qwen2,
            WeightTypeChoice::Uniform(GgmlType::Q8_0),
            CacheType::F32,
        ),
        (
            Arch::Qwen3,
            WeightTypeChoice::Uniform(GgmlType::Q5K),
            CacheType::F16,
        ),
    ] {
        let path = synth(dir.path(), arch, weights);
        let lens = [9, 1, 70, 23, 4];
        let steps = 8;
        let mut solo = load(&path, 1, 96, cache);
        let prompts = prompts(&solo, &lens);
        let want: Vec<_> = prompts.iter().map(|p| alone(&mut solo, p, steps)).collect();
        drop(solo);
        let mut engine = load(&path, lens.len(), 96 * lens.len(), cache);
        assert_eq!((engine.n_seq(), engine.n_ctx()), (5, 96));
        let got = together(&mut engine, &prompts, steps);
        let what = format!("{} {weights:?}", arch.name());
        assert_same_bits(&what, &got, &want);
        let used: usize = lens.iter().map(|l| l + steps).sum();
        assert_eq!(engine.kv_cells_used(), used, "{what}");
    }
}

/// A sequence emptied and refilled while others run gives again its lone logits (its
/// cells are reused; the others' are untouched), and a decode step of some of the
/// sequences leaves the rest as they are.
#[test]
fn sequences_are_freed_and_reused_independently() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth(dir.path(), Arch::Llama, WeightTypeChoice::Q4KM);
    let mut solo = load(&path, 1, 64, CacheType::F16);
    let p = prompts(&solo, &[12, 7, 5]);
    let want: Vec<_> = p.iter().map(|p| alone(&mut solo, p, 4)).collect();
    drop(solo);
    let mut engine = load(&path, 3, 3 * 64, CacheType::F16);
    let got = together(&mut engine, &p[..2], 4);
    assert_same_bits("two sequences", &got, &want[..2]);
    // Sequence 0 is freed and takes the third prompt while sequence 1 goes on.
    engine.seq_truncate(0, 0);
    assert_eq!(engine.seq_len(0), 0);
    let first = engine
        .eval_seq(0, &p[2], 1, Default::default())
        .unwrap()
        .to_vec();
    assert!(first
        .iter()
        .zip(&want[2][0])
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let cont = argmax(&want[1][4]);
    let step = engine
        .decode(&[(0, argmax(&first)), (1, cont)])
        .unwrap()
        .to_vec();
    let n_vocab = engine.n_vocab();
    assert!(step[..n_vocab]
        .iter()
        .zip(&want[2][1])
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(engine.seq_len(1), 7 + 4 + 1);
    assert_eq!(engine.seq_len(2), 0);
}

#[test]
fn bad_decode_steps_and_full_sequences_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth(
        dir.path(),
        Arch::Llama,
        WeightTypeChoice::Uniform(GgmlType::Q8_0),
    );
    let mut engine = load(&path, 2, 2 * 16, CacheType::F16);
    let msg = |r: anyhow::Result<&[f32]>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg(engine.decode(&[])).contains("at least one"));
    assert!(msg(engine.decode(&[(1, 5), (1, 6)])).contains("twice"));
    assert!(msg(engine.decode(&[(2, 5)])).contains("does not exist"));
    assert!(msg(engine.decode(&[(0, u32::MAX)])).contains("out of range"));
    // Nothing of a refused step was kept.
    assert_eq!((engine.seq_len(0), engine.seq_len(1)), (0, 0));
    let long = vec![1u32; 17];
    assert!(msg(engine.eval_seq(1, &long, 1, Default::default()))
        .contains("prompt has 17 tokens but the context is 16"));
    engine
        .eval_seq(1, &long[..16], 1, Default::default())
        .unwrap();
    assert!(msg(engine.decode(&[(0, 3), (1, 3)])).contains("exceed the context of 16"));
    assert_eq!((engine.seq_len(0), engine.seq_len(1)), (0, 16));
    // Contexts that cannot hold the sequences asked for.
    let err = Engine::load(
        &path,
        EngineOptions {
            n_ctx: Some(3),
            n_parallel: 4,
            ..EngineOptions::default()
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("cannot hold 4 sequences"), "{err}");
}

/// The real model: four greedy sequences decoded together give, bit for bit, the logits
/// (and so the text) each gets alone, on its knife-edge prompt among them.
#[test]
fn gemma3_sequences_decoded_together_match_each_alone() {
    let path = common::gemma3_path();
    let texts = [
        "The three primary colors are",
        "The quick brown fox",
        "def fibonacci(n):",
        "Paris is the capital of",
    ];
    let steps = 8;
    let mut solo = load(&path, 1, 128, CacheType::F16);
    let prompts: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| solo.tokenizer().encode(t, true, false))
        .collect();
    let want: Vec<_> = prompts.iter().map(|p| alone(&mut solo, p, steps)).collect();
    drop(solo);
    let mut engine = load(&path, texts.len(), 128 * texts.len(), CacheType::F16);
    let got = together(&mut engine, &prompts, steps);
    assert_same_bits("gemma3", &got, &want);
}
