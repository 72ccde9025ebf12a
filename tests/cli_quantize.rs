//! `tandem quantize` on synthetic models: values within each format's error bound, the
//! Q4_K_M mixture, fallbacks, refusals, and agreement with synth's own quantization.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tandem::gguf::{GgufFile, GgufWriter, Metadata, TensorDesc, Value};
use tandem::quant::GgmlType;
use tandem::synth::{write_synth_model, Arch, SynthSpec};
use tandem::weight_types::WeightTypeChoice;

fn tandem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .unwrap()
}

fn synth(dir: &Path, arch: Arch, ty: WeightTypeChoice, file: &str) -> PathBuf {
    let vocab = GgufFile::open(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap();
    let mut spec = SynthSpec::preset(arch, "tiny").unwrap();
    spec.weight_type = ty;
    spec.seed = 11;
    let path = dir.join(file);
    write_synth_model(&spec, &vocab, &path, |_, _| {}).unwrap();
    path
}

fn quantize(input: &Path, output: &Path, ty: &str) -> Output {
    let out = tandem(&[
        "quantize",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        ty,
        "-t",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn values(f: &GgufFile, name: &str) -> Vec<f32> {
    let t = f.tensor(name).unwrap();
    let data = f.tensor_data(t);
    let row_bytes = data.len() / t.n_rows();
    let mut out = vec![0f32; t.n_elements() as usize];
    for (r, row) in out.chunks_mut(t.row_len()).enumerate() {
        t.ty.dequantize_row(&data[r * row_bytes..(r + 1) * row_bytes], row);
    }
    out
}

/// Checks every 32-element block of every weight matrix against the bound
/// `per_amax × (largest |x| in the block)`.
fn assert_within_block_bound(
    original: &GgufFile,
    converted: &GgufFile,
    ty: GgmlType,
    per_amax: f32,
) {
    for t in converted.tensors() {
        let want_ty = if t.dims.len() == 1 { GgmlType::F32 } else { ty };
        assert_eq!(t.ty, want_ty, "{}", t.name);
        let (a, b) = (values(original, &t.name), values(converted, &t.name));
        for (x, y) in a.chunks(32).zip(b.chunks(32)) {
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (u, v) in x.iter().zip(y) {
                assert!(
                    (u - v).abs() <= per_amax * amax + 1e-7,
                    "{} ({ty}): {u} became {v}, block amax {amax}",
                    t.name
                );
            }
        }
    }
}

#[test]
fn float_conversions_round_only() {
    let dir = tempfile::tempdir().unwrap();
    let src = synth(
        dir.path(),
        Arch::Qwen2,
        WeightTypeChoice::Uniform(GgmlType::F32),
        "f32.gguf",
    );
    let original = GgufFile::open(&src).unwrap();
    for (ty, rel) in [("F16", 2f32.powi(-11)), ("BF16", 2f32.powi(-8))] {
        let out = dir.path().join(format!("{ty}.gguf"));
        quantize(&src, &out, ty);
        let f = GgufFile::open(&out).unwrap();
        let target = GgmlType::from_name(ty).unwrap();
        // Rounding to nearest: relative error at most half an ulp.
        assert_within_block_bound(&original, &f, target, rel);
        let ftype = f.metadata().usize("general.file_type").unwrap();
        assert_eq!(ftype, if ty == "F16" { 1 } else { 32 });
        assert_eq!(f.tensor("blk.0.attn_q.bias").unwrap().ty, GgmlType::F32);
        // Everything but the file type is carried over.
        for (k, v) in original.metadata().iter() {
            if k != "general.file_type" {
                assert_eq!(f.metadata().get(k), Some(v), "{k}");
            }
        }
    }
}

#[test]
fn q8_0_and_q4_0_stay_within_their_error_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let src = synth(
        dir.path(),
        Arch::Llama,
        WeightTypeChoice::Uniform(GgmlType::F32),
        "f32.gguf",
    );
    let original = GgufFile::open(&src).unwrap();
    // Q8_0: scale d = amax/127 stored as f16; error <= d/2 + 127·d·2^-11 < 0.6·d.
    let q8 = dir.path().join("q8.gguf");
    quantize(&src, &q8, "Q8_0");
    assert_within_block_bound(
        &original,
        &GgufFile::open(&q8).unwrap(),
        GgmlType::Q8_0,
        0.6 / 127.0,
    );
    // Q4_0: d = amax/8; error <= d/2, or d at the clamped extreme (+ f16 rounding).
    let q4 = dir.path().join("q4.gguf");
    quantize(&src, &q4, "q4_0");
    let f = GgufFile::open(&q4).unwrap();
    assert_eq!(f.metadata().usize("general.file_type").unwrap(), 2);
    assert_within_block_bound(&original, &f, GgmlType::Q4_0, 1.01 / 8.0);
}

#[test]
fn quantize_matches_synth_writing_the_type_directly() {
    let dir = tempfile::tempdir().unwrap();
    let f32_path = synth(
        dir.path(),
        Arch::Gemma3,
        WeightTypeChoice::Uniform(GgmlType::F32),
        "f32.gguf",
    );
    let direct = synth(
        dir.path(),
        Arch::Gemma3,
        WeightTypeChoice::Uniform(GgmlType::Q8_0),
        "q8-direct.gguf",
    );
    let converted = dir.path().join("q8-converted.gguf");
    quantize(&f32_path, &converted, "Q8_0");
    let (a, b) = (
        GgufFile::open(&direct).unwrap(),
        GgufFile::open(&converted).unwrap(),
    );
    assert_eq!(a.tensors(), b.tensors());
    for t in a.tensors() {
        assert!(a.tensor_data(t) == b.tensor_data(t), "{} differs", t.name);
    }
}

#[test]
fn q4_k_m_mixes_types_like_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let src = synth(
        dir.path(),
        Arch::Llama,
        WeightTypeChoice::Uniform(GgmlType::F16),
        "f16.gguf",
    );
    let out = dir.path().join("q4km.gguf");
    quantize(&src, &out, "Q4_K_M");
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.metadata().usize("general.file_type").unwrap(), 15);
    let ty = |n: &str| f.tensor(n).unwrap().ty;
    // Two blocks: n/8 = 0, 7n/8 = 1, so block 1 gets more bits and block 0 does not
    // ((0 - 0) % 3 != 2).
    assert_eq!(ty("output.weight"), GgmlType::Q6K);
    assert_eq!(ty("token_embd.weight"), GgmlType::Q4K);
    assert_eq!(ty("blk.0.attn_v.weight"), GgmlType::Q4K);
    assert_eq!(ty("blk.1.attn_v.weight"), GgmlType::Q6K);
    assert_eq!(ty("blk.1.ffn_down.weight"), GgmlType::Q6K);
    assert_eq!(ty("blk.1.attn_q.weight"), GgmlType::Q4K);
    assert_eq!(ty("blk.1.ffn_norm.weight"), GgmlType::F32);
    let original = GgufFile::open(&src).unwrap();
    let (a, b) = (
        values(&original, "blk.0.ffn_up.weight"),
        values(&f, "blk.0.ffn_up.weight"),
    );
    let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    let err: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    // 4.5 bits on uniform data: relative RMS error of a few percent.
    assert!(
        rms(&err) < 0.1 * rms(&a),
        "Q4_K error {} vs signal {}",
        rms(&err),
        rms(&a)
    );
}

/// A model with rows of 48 elements: no quantized block size fits them.
fn odd_rows_model(path: &Path) {
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("llama".into()));
    md.set("llama.block_count", Value::U32(1));
    let tensors = [
        TensorDesc::new("blk.0.attn_norm.weight", GgmlType::F16, &[48]),
        TensorDesc::new("blk.0.attn_q.weight", GgmlType::F32, &[48, 2]),
        TensorDesc::new("blk.0.ffn_up.weight", GgmlType::F32, &[64, 2]),
    ];
    let mut w = GgufWriter::new(Vec::new(), &md, &tensors).unwrap();
    let mut half = Vec::new();
    for i in 0..48 {
        half.extend_from_slice(&half::f16::from_f32(1.0 + i as f32 / 64.0).to_le_bytes());
    }
    w.write_data(&half).unwrap();
    for i in 0..(96 + 128) {
        w.write_data(&((i as f32 - 100.0) / 50.0).to_le_bytes())
            .unwrap();
    }
    std::fs::write(path, w.finish().unwrap()).unwrap();
}

#[test]
fn rows_that_fit_no_block_fall_back_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("odd.gguf");
    odd_rows_model(&src);
    let out = dir.path().join("out.gguf");
    let run = quantize(&src, &out, "Q8_0");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("blk.0.attn_q.weight: row length 48 is not a multiple of the Q8_0 block size 32: using F16"),
        "{stderr}"
    );
    let f = GgufFile::open(&out).unwrap();
    let ty = |n: &str| f.tensor(n).unwrap().ty;
    assert_eq!(ty("blk.0.attn_norm.weight"), GgmlType::F32);
    assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::F16);
    assert_eq!(ty("blk.0.ffn_up.weight"), GgmlType::Q8_0);
    let norm = values(&f, "blk.0.attn_norm.weight");
    assert_eq!(norm[47], 1.0 + 47.0 / 64.0);
}

#[test]
fn quantized_inputs_and_bad_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    let gemma = common::gemma3_path();
    let run = tandem(&[
        "quantize",
        gemma.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("is already Q5_0") && stderr.contains("--allow-requantize"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing may be written");

    let src = dir.path().join("odd.gguf");
    odd_rows_model(&src);
    let run = tandem(&[
        "quantize",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q9_9",
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown type `Q9_9`"));
    let run = tandem(&[
        "quantize",
        src.to_str().unwrap(),
        src.to_str().unwrap(),
        "F16",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no partial files left behind");
}
