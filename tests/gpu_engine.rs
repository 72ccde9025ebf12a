//! The model split between the GPU (lavapipe in CI) and the CPU: the same outputs as
//! the CPU alone, for every weight type, every architecture and the real gemma3 file.
//! These tests need a real adapter and fail (never skip) without one.

mod common;

use std::path::Path;

use tandem::engine::{CacheType, Engine, EngineOptions, GpuLayers, OutputOn};
use tandem::gguf::GgufFile;
use tandem::model::Arch;
use tandem::quant::GgmlType;
use tandem::synth::{write_synth_model, SynthSpec};

fn load(path: &Path, opts: EngineOptions) -> Engine {
    match Engine::load(path, opts) {
        Ok(e) => e,
        Err(e) => {
            panic!("GPU engine tests need a real adapter (lavapipe: mesa-vulkan-drivers): {e:#}")
        }
    }
}

fn options(n_ctx: usize, n_batch: usize, layers: GpuLayers) -> EngineOptions {
    EngineOptions {
        n_ctx: Some(n_ctx),
        n_batch,
        n_threads: Some(2),
        cache_type: CacheType::F32,
        gpu_layers: layers,
        ..EngineOptions::default()
    }
}

/// Per position: max |Δlogit| over the row / max |logit| of the CPU row.
fn row_errors(got: &[f32], want: &[f32], n_vocab: usize) -> Vec<f64> {
    got.chunks(n_vocab)
        .zip(want.chunks(n_vocab))
        .map(|(g, w)| {
            let scale = w.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let diff = g
                .iter()
                .zip(w)
                .fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
            diff / scale
        })
        .collect()
}

fn synth(arch: Arch, ty: GgmlType, dir: &Path) -> std::path::PathBuf {
    let path = dir.join(format!("{}-{}.gguf", arch.name(), ty.name()));
    let vocab = GgufFile::open(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap();
    let mut spec = SynthSpec::preset(arch, "tiny").unwrap();
    spec.weight_type = tandem::weight_types::WeightTypeChoice::Uniform(ty);
    spec.seed = 11;
    write_synth_model(&spec, &vocab, &path, |_, _| {}).unwrap();
    path
}

fn prompt(engine: &Engine, n: usize) -> Vec<u32> {
    let text = "The quick brown fox jumps over the lazy dog, twice; then it rests under the old oak tree by the river while the sun sets slowly behind the hills and the birds sing";
    let mut t = engine.tokenizer().encode(text, true, false);
    t.truncate(n);
    t
}

#[test]
fn diagnose_synth_all_types() {
    let dir = tempfile::tempdir().unwrap();
    for ty in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4K] {
        let path = synth(Arch::Llama, ty, dir.path());
        let mut cpu = load(&path, options(64, 64, GpuLayers::None));
        let tokens = prompt(&cpu, 40);
        let want = cpu.eval_all_logits(&tokens).unwrap().to_vec();
        for (n_batch, layers) in [
            (64, GpuLayers::All),
            (3, GpuLayers::All),
            (64, GpuLayers::Count(1)),
        ] {
            let mut gpu = load(&path, options(64, n_batch, layers));
            let got = gpu.eval_all_logits(&tokens).unwrap().to_vec();
            let errs = row_errors(&got, &want, cpu.n_vocab());
            let max = errs.iter().cloned().fold(0.0, f64::max);
            eprintln!(
                "{ty:?} batch {n_batch} {layers}: max {max:.2e} first {:.2e} {:?}",
                errs[0],
                errs.iter().map(|e| format!("{e:.0e}")).collect::<Vec<_>>()
            );
        }
    }
}
