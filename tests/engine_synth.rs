//! The engine against the f64 reference on `tandem synth` tiny models (real shapes, real
//! tokenizer) of every architecture: F32 weights and llama.cpp's Q4_K_M mixture.

mod common;
mod reference;

use reference::Reference;
use tandem::engine::{CacheType, Engine, EngineOptions};
use tandem::gguf::GgufFile;
use tandem::synth::{write_synth_model, Arch, SynthSpec};
use tandem::weight_types::WeightTypeChoice;

/// (largest, mean) over positions of max|engine − reference| / max|reference|.
fn errors(arch: Arch, weights: WeightTypeChoice, n_batch: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.gguf");
    let vocab = GgufFile::open(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap();
    let mut spec = SynthSpec::preset(arch, "tiny").unwrap();
    spec.weight_type = weights;
    spec.seed = 7;
    write_synth_model(&spec, &vocab, &path, |_, _| {}).unwrap();

    let mut engine = Engine::load(
        &path,
        EngineOptions {
            n_ctx: Some(64),
            n_batch,
            n_threads: Some(2),
            cache_type: CacheType::F32,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let tokens = engine
        .tokenizer()
        .encode("The quick brown fox jumps over the lazy dog, twice; then it rests under the old oak tree by the river.", true, false);
    let file = GgufFile::open(&path).unwrap();
    let got = engine.eval_all_logits(&tokens).unwrap().to_vec();
    // Quantized activations: roundings that f32 cannot settle go the engine's way (see
    // reference/mod.rs).
    let quantized = !matches!(
        weights,
        WeightTypeChoice::Uniform(tandem::quant::GgmlType::F32)
    );
    let want = Reference::new(&file).logits_settling_ties(&tokens, quantized.then_some(&got[..]));
    let n_vocab = want[0].len();
    let errs: Vec<f64> = want
        .iter()
        .enumerate()
        .map(|(t, r)| {
            let e = &got[t * n_vocab..(t + 1) * n_vocab];
            let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
            let d = e
                .iter()
                .zip(r)
                .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
            d / scale
        })
        .collect();
    let max = errs.iter().copied().fold(0f64, f64::max);
    (max, errs.iter().sum::<f64>() / errs.len() as f64)
}

#[test]
fn synth_f32_models_match_reference() {
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Gemma3] {
        for n_batch in [1, 7, 64] {
            let (max, _) = errors(
                arch,
                WeightTypeChoice::Uniform(tandem::quant::GgmlType::F32),
                n_batch,
            );
            // gemma3's gelu rounds through f16 as llama.cpp's table does, so an f32 and an
            // f64 gate value either side of a rounding step differ by one f16 step there
            // (see engine_reference.rs).
            let bound = if arch == Arch::Gemma3 { 1e-3 } else { 1e-4 };
            assert!(max < bound, "{} batch {n_batch}: {max:e}", arch.name());
        }
    }
}

/// Tolerances as for the hand-built quantized models (see engine_reference.rs).
#[test]
fn synth_q4_k_m_models_match_reference() {
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Gemma3] {
        let (max, mean) = errors(arch, WeightTypeChoice::Q4KM, 7);
        assert!(
            max < 3e-2 && mean < 1e-2,
            "{}: max {max:e} mean {mean:e}",
            arch.name()
        );
    }
}
