//! The engine's logits against the independent f64 reference on tiny models of every
//! architecture, for several batch sizes and thread counts.

mod common;
mod reference;

use reference::tiny::{write_tiny, write_tiny_edited, N_VOCAB};
use reference::Reference;
use tandem::engine::{CacheType, Engine, EngineOptions};
use tandem::gguf::GgufFile;
use tandem::quant::GgmlType;

fn vocab() -> std::path::PathBuf {
    common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")
}

fn prompt(n: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 37 + 11) % N_VOCAB) as u32).collect()
}

/// Per position: the largest |engine − reference| over the row divided by the largest
/// |reference| of the row ([`reference::row_error`]).
fn row_errors(engine: &[f32], reference: &[Vec<f64>], n_vocab: usize) -> Vec<f64> {
    reference
        .iter()
        .enumerate()
        .map(|(t, r)| reference::row_error(&engine[t * n_vocab..(t + 1) * n_vocab], r))
        .collect()
}

/// How close the engine must be to the reference.
#[derive(Clone, Copy, Debug)]
struct Tolerance {
    /// Bound on every position's error.
    max: f64,
    /// Bound on the mean error over positions.
    mean: f64,
}

/// Float weights: both sides compute the same function, up to f32 rounding.
const EXACT: Tolerance = Tolerance {
    max: 1e-4,
    mean: 1e-4,
};

/// Float weights with an f16 cache: the reference rounds K/V to f16 too (from f64, the
/// engine from f32, so a value can round to the neighbouring f16).
const F16_CACHE: Tolerance = Tolerance {
    max: 1e-3,
    mean: 1e-3,
};

/// Float weights through gemma's gelu, which rounds its input and result to f16 as
/// llama.cpp's lookup table does: an f32 and an f64 gate value either side of an f16
/// rounding step give results one f16 step apart.
const F16_GELU: Tolerance = F16_CACHE;

/// Quantized weights: the bound, on every position. Both sides round activations
/// to the same Q8 blocks; where a value lies so near a rounding midpoint that f32 cannot
/// settle it, the reference follows whichever code the engine's logits show (see
/// `Reference::logits_settling_ties`). Without that, one such flip moves the logits by
/// ~1e-3 and, multiplying through later roundings and the KV cache, makes every later
/// position differ by the whole activation-quantization noise (~1.5e-2 on these models).
const QUANTIZED: Tolerance = Tolerance {
    max: 1e-2,
    mean: 1e-2,
};

fn check(arch: &str, ty: GgmlType, cache: CacheType, tol: Tolerance) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{arch}.gguf"));
    write_tiny(&path, &vocab(), arch, ty);
    let tokens = prompt(64);
    let file = GgufFile::open(&path).unwrap();
    let mut reference = Reference::new(&file);
    reference.quantize_activations = std::env::var_os("TANDEM_REF_F32_ACTIVATIONS").is_none();
    reference.f16_cache = cache == CacheType::F16;
    // Engine runs with bit-identical logits share one reference run.
    let mut seen: Vec<(Vec<f32>, Vec<f64>)> = Vec::new();
    for n_threads in [1, 2] {
        for n_batch in [1, 7, 64] {
            let opts = EngineOptions {
                n_ctx: Some(128),
                n_batch,
                n_threads: Some(n_threads),
                cache_type: cache,
                ..EngineOptions::default()
            };
            let mut engine = Engine::load(&path, opts).unwrap();
            let got = engine.eval_all_logits(&tokens).unwrap().to_vec();
            // Batches of 64 tokens take llama.cpp's other attention path.
            reference.tiled_attention = n_batch >= 64;
            let errs = match seen.iter().find(|(g, _)| *g == got) {
                Some((_, errs)) => errs.clone(),
                None => {
                    let want = reference.logits_settling_ties(&tokens, Some(&got));
                    let errs = row_errors(&got, &want, engine.n_vocab());
                    seen.push((got.clone(), errs.clone()));
                    errs
                }
            };
            let max = errs.iter().copied().fold(0f64, f64::max);
            let mean = errs.iter().sum::<f64>() / errs.len() as f64;
            let worst = errs.iter().position(|&e| e == max).unwrap();
            // TANDEM_REF_REPORT=1 (with --nocapture) prints every case's errors.
            if std::env::var_os("TANDEM_REF_REPORT").is_some() {
                eprintln!(
                    "{arch} {ty} cache {cache:?} batch {n_batch} threads {n_threads}: \
                     max {max:.2e} at position {worst}, mean {mean:.2e}"
                );
            }
            assert!(
                max < tol.max && mean < tol.mean,
                "{arch} {ty} batch {n_batch} threads {n_threads}: relative error max {max:e} \
                 (position {worst}) mean {mean:e}"
            );
            // The last-token path agrees with the all-logits path.
            engine.clear();
            let last = engine.eval(&tokens).unwrap().to_vec();
            let tail = &got[got.len() - N_VOCAB..];
            let diff = last
                .iter()
                .zip(tail)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-4, "last-token logits differ by {diff}");
        }
    }
}

#[test]
fn llama_f32_matches_reference() {
    check("llama", GgmlType::F32, CacheType::F32, EXACT);
}

#[test]
fn qwen2_f32_matches_reference() {
    check("qwen2", GgmlType::F32, CacheType::F32, EXACT);
}

#[test]
fn qwen3_f32_matches_reference() {
    check("qwen3", GgmlType::F32, CacheType::F32, EXACT);
}

#[test]
fn gemma3_f32_matches_reference() {
    check("gemma3", GgmlType::F32, CacheType::F32, F16_GELU);
}

#[test]
fn f16_cache_stays_close_to_reference() {
    check("qwen3", GgmlType::F32, CacheType::F16, F16_CACHE);
}

#[test]
fn too_long_prompts_and_bad_tokens_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llama.gguf");
    write_tiny(&path, &vocab(), "llama", GgmlType::F32);
    let opts = EngineOptions {
        n_ctx: Some(16),
        n_threads: Some(1),
        ..EngineOptions::default()
    };
    let mut engine = Engine::load(&path, opts).unwrap();
    let err = engine.eval(&prompt(17)).unwrap_err().to_string();
    assert!(
        err.contains("prompt has 17 tokens but the context is 16"),
        "{err}"
    );
    let err = engine.eval(&[1, N_VOCAB as u32]).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    assert_eq!(engine.n_past(), 0);
    engine.eval(&prompt(10)).unwrap();
    assert_eq!(engine.n_past(), 10);
    assert!(engine.eval(&prompt(7)).is_err());
    engine.truncate(4);
    assert_eq!(engine.n_past(), 4);
    engine.eval(&prompt(12)).unwrap();
    assert_eq!(engine.n_past(), 16);
}

#[test]
fn missing_or_misshapen_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let load = |path: &std::path::Path| {
        Engine::load(path, EngineOptions::default())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    };
    let missing = dir.path().join("missing.gguf");
    write_tiny_edited(&missing, &vocab(), "qwen3", GgmlType::F32, |t| {
        t.retain(|(d, _)| d.name != "blk.1.ffn_up.weight")
    });
    let err = load(&missing);
    assert!(
        err.contains("blk.1.ffn_up.weight")
            && err.contains("[256, 512]")
            && err.contains("missing"),
        "{err}"
    );
    let misshapen = dir.path().join("misshapen.gguf");
    write_tiny_edited(&misshapen, &vocab(), "qwen3", GgmlType::F32, |t| {
        let k = t
            .iter_mut()
            .find(|(d, _)| d.name == "blk.0.attn_k_norm.weight")
            .unwrap();
        k.0.dims = vec![32];
        k.1.truncate(32);
    });
    let err = load(&misshapen);
    assert!(
        err.contains("blk.0.attn_k_norm.weight") && err.contains("[32]") && err.contains("[64]"),
        "{err}"
    );
}

#[test]
fn truncate_then_continue_matches_a_fresh_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qwen2.gguf");
    write_tiny(&path, &vocab(), "qwen2", GgmlType::F32);
    let opts = || EngineOptions {
        n_ctx: Some(64),
        n_threads: Some(2),
        cache_type: CacheType::F32,
        ..EngineOptions::default()
    };
    let tokens = prompt(20);
    let mut fresh = Engine::load(&path, opts()).unwrap();
    let want = fresh.eval(&tokens).unwrap().to_vec();
    let mut engine = Engine::load(&path, opts()).unwrap();
    engine.eval(&tokens[..12]).unwrap();
    engine.eval(&[5, 6, 7]).unwrap();
    engine.truncate(12);
    let got = engine.eval(&tokens[12..]).unwrap().to_vec();
    // Batch shapes differ between the two runs, so kernels may round differently.
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff / scale < 1e-5, "relative difference {}", diff / scale);
}

#[test]
fn last_logits_are_the_tail_of_all_logits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qwen3.gguf");
    write_tiny(&path, &vocab(), "qwen3", GgmlType::F32);
    let tokens = prompt(40);
    for n_batch in [7, 64] {
        let opts = EngineOptions {
            n_ctx: Some(64),
            n_batch,
            n_threads: Some(2),
            cache_type: CacheType::F32,
            ..EngineOptions::default()
        };
        let mut engine = Engine::load(&path, opts).unwrap();
        let all = engine.eval_all_logits(&tokens).unwrap().to_vec();
        for n_last in [1, 5, 33, 40] {
            engine.clear();
            let tail = engine.eval_last_logits(&tokens, n_last).unwrap();
            assert_eq!(tail.len(), n_last * N_VOCAB);
            let want = &all[(40 - n_last) * N_VOCAB..];
            let diff = tail
                .iter()
                .zip(want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-4, "batch {n_batch} n_last {n_last}: {diff}");
        }
        engine.clear();
        assert!(engine.eval_last_logits(&tokens, 41).is_err());
    }
}

// Quantized weights: the reference rounds activations as the quantized kernels do.
#[test]
fn llama_q4_0_matches_reference() {
    check("llama", GgmlType::Q4_0, CacheType::F32, QUANTIZED);
}

#[test]
fn qwen2_q8_0_matches_reference() {
    check("qwen2", GgmlType::Q8_0, CacheType::F32, QUANTIZED);
}

#[test]
fn qwen3_q4_k_matches_reference() {
    check("qwen3", GgmlType::Q4K, CacheType::F32, QUANTIZED);
}

#[test]
fn gemma3_q6_k_matches_reference() {
    check("gemma3", GgmlType::Q6K, CacheType::F32, QUANTIZED);
}

#[test]
fn llama_q5_1_matches_reference() {
    check("llama", GgmlType::Q5_1, CacheType::F32, QUANTIZED);
}

#[test]
fn gemma3_q5_0_matches_reference() {
    check("gemma3", GgmlType::Q5_0, CacheType::F32, QUANTIZED);
}

/// Quantized weights with an f16 cache (beyond the cases). The engine's f16
/// attention rounds its running output at every key, ~10⁵ f16 roundings a token whose
/// f32 inputs differ from the reference's in the last bits: too many to settle as ties,
/// and each flip, through the Q8 roundings after it, spreads like an activation flip. So
/// this bounds the mean and the worst position at about the activation-quantization noise.
const QUANTIZED_F16_CACHE: Tolerance = Tolerance {
    max: 3e-2,
    mean: 1e-2,
};

#[test]
fn gemma3_q5_0_with_f16_cache_stays_close_to_reference() {
    check(
        "gemma3",
        GgmlType::Q5_0,
        CacheType::F16,
        QUANTIZED_F16_CACHE,
    );
}

// The remaining weight types, and more architectures per activation format: every
// architecture meets each of Q8_0 (Q4_0, Q5_0, Q8_0 weights), Q8_1 (Q4_1, Q5_1) and
// Q8_K (the K-quants).
#[test]
fn qwen2_q4_1_matches_reference() {
    check("qwen2", GgmlType::Q4_1, CacheType::F32, QUANTIZED);
}

#[test]
fn llama_q5_k_matches_reference() {
    check("llama", GgmlType::Q5K, CacheType::F32, QUANTIZED);
}

#[test]
fn qwen3_q3_k_matches_reference() {
    check("qwen3", GgmlType::Q3K, CacheType::F32, QUANTIZED);
}

#[test]
fn gemma3_q2_k_matches_reference() {
    check("gemma3", GgmlType::Q2K, CacheType::F32, QUANTIZED);
}

#[test]
fn qwen3_q8_0_matches_reference() {
    check("qwen3", GgmlType::Q8_0, CacheType::F32, QUANTIZED);
}

#[test]
fn gemma3_q5_1_matches_reference() {
    check("gemma3", GgmlType::Q5_1, CacheType::F32, QUANTIZED);
}

#[test]
fn qwen3_q4_1_matches_reference() {
    check("qwen3", GgmlType::Q4_1, CacheType::F32, QUANTIZED);
}

#[test]
fn qwen2_q6_k_matches_reference() {
    check("qwen2", GgmlType::Q6K, CacheType::F32, QUANTIZED);
}
