//! Synthetic models: shapes, metadata, tokenizer copy, weight statistics, and that a
//! naive f64 forward pass through a tiny model gives finite, well-spread logits.

mod common;

use std::path::Path;

use tandem::gguf::GgufFile;
use tandem::quant::GgmlType;
use tandem::synth::{reference_row, write_synth_model, Arch, SynthSpec};
use tandem::weight_types::WeightTypeChoice;

fn vocab() -> GgufFile {
    GgufFile::open(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap()
}

fn synth(arch: Arch, ty: WeightTypeChoice, seed: u64, dir: &Path) -> GgufFile {
    let mut spec = SynthSpec::preset(arch, "tiny").unwrap();
    spec.weight_type = ty;
    spec.seed = seed;
    let path = dir.join(format!("{}-{ty}.gguf", arch.name()));
    let mut calls = 0;
    let mut last = (0, 0);
    write_synth_model(&spec, &vocab(), &path, |done, total| {
        calls += 1;
        assert!(done >= last.0 && done <= total);
        last = (done, total);
    })
    .unwrap();
    assert!(calls > 2);
    assert_eq!(last.0, last.1, "progress must end at the total");
    GgufFile::open(&path).unwrap()
}

fn f32_tensor(f: &GgufFile, name: &str) -> (Vec<f64>, usize) {
    let t = f.tensor(name).unwrap_or_else(|| panic!("no {name}"));
    let mut out = vec![0f32; t.n_elements() as usize];
    let data = f.tensor_data(t);
    let row_bytes = data.len() / t.n_rows();
    for (r, row) in out.chunks_mut(t.row_len()).enumerate() {
        t.ty.dequantize_row(&data[r * row_bytes..(r + 1) * row_bytes], row);
    }
    (out.into_iter().map(f64::from).collect(), t.row_len())
}

#[test]
fn tiny_models_have_every_tensor_and_key_a_loader_needs() {
    let dir = tempfile::tempdir().unwrap();
    let v = vocab();
    let n_vocab = v
        .metadata()
        .str_array("tokenizer.ggml.tokens")
        .unwrap()
        .len();
    assert_eq!(n_vocab, 32000);
    for arch in Arch::ALL {
        let f = synth(
            arch,
            WeightTypeChoice::Uniform(GgmlType::F32),
            1,
            dir.path(),
        );
        let md = f.metadata();
        let a = arch.name();
        assert_eq!(md.str("general.architecture").unwrap(), a);
        assert_eq!(md.usize("general.quantization_version").unwrap(), 2);
        assert_eq!(md.usize("general.file_type").unwrap(), 0);
        let key = |k: &str| md.usize(&format!("{a}.{k}")).unwrap();
        assert_eq!(key("embedding_length"), 256);
        assert_eq!(key("feed_forward_length"), 512);
        assert_eq!(key("attention.head_count"), 4);
        assert_eq!(key("attention.head_count_kv"), 2);
        assert_eq!(key("attention.key_length"), 64);
        assert_eq!(key("rope.dimension_count"), 64);
        assert!(
            md.f32(&format!("{a}.attention.layer_norm_rms_epsilon"))
                .unwrap()
                > 0.0
        );
        let n_blocks = key("block_count");
        // Every tokenizer key is copied unchanged.
        for (k, value) in v.metadata().iter() {
            if k.starts_with("tokenizer.") {
                assert_eq!(md.get(k), Some(value), "{k}");
            }
        }
        let per_block = match arch {
            Arch::Llama => 9,
            Arch::Qwen2 => 12,
            Arch::Qwen3 => 11,
            Arch::Gemma3 => 13,
        };
        let tied = f.tensor("output.weight").is_none();
        assert_eq!(tied, arch != Arch::Llama, "{a}");
        let global = if tied { 2 } else { 3 };
        assert_eq!(f.tensors().len(), global + per_block * n_blocks, "{a}");
        assert_eq!(
            f.tensor("token_embd.weight").unwrap().dims,
            vec![256, 32000]
        );
        assert_eq!(
            f.tensor("blk.1.attn_k.weight").unwrap().dims,
            vec![256, 128]
        );
        assert_eq!(
            f.tensor("blk.1.ffn_down.weight").unwrap().dims,
            vec![512, 256]
        );
        for t in f.tensors() {
            let want = if t.dims.len() == 1 { 1 } else { 2 };
            assert_eq!(t.dims.len(), want);
            assert_eq!(t.ty, GgmlType::F32);
        }
        match arch {
            Arch::Qwen2 => assert_eq!(f.tensor("blk.0.attn_k.bias").unwrap().dims, vec![128]),
            Arch::Qwen3 => assert_eq!(f.tensor("blk.0.attn_q_norm.weight").unwrap().dims, vec![64]),
            Arch::Gemma3 => {
                assert_eq!(n_blocks, 6);
                assert_eq!(md.usize("gemma3.attention.sliding_window").unwrap(), 32);
                assert_eq!(md.f32("gemma3.rope.freq_base").unwrap(), 1e6);
                assert!(f.tensor("blk.5.post_ffw_norm.weight").is_some());
            }
            Arch::Llama => assert_eq!(n_blocks, 2),
        }
    }
}

#[test]
fn weights_follow_their_distributions_and_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(
        Arch::Llama,
        WeightTypeChoice::Uniform(GgmlType::F32),
        5,
        dir.path(),
    );
    for name in [
        "blk.0.attn_q.weight",
        "blk.1.ffn_down.weight",
        "token_embd.weight",
    ] {
        let (w, row_len) = f32_tensor(&f, name);
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let want = 1.0 / row_len as f64;
        assert!(mean.abs() < 0.01 * want.sqrt(), "{name}: mean {mean}");
        assert!(
            (var / want - 1.0).abs() < 0.02,
            "{name}: var {var}, want {want}"
        );
        // The file holds exactly the documented reference rows.
        let mut row = vec![0f32; row_len];
        reference_row(5, name, 3, &mut row);
        let got: Vec<f32> = w[3 * row_len..4 * row_len]
            .iter()
            .map(|&x| x as f32)
            .collect();
        assert_eq!(got, row, "{name}");
    }
    let (norm, _) = f32_tensor(&f, "blk.0.attn_norm.weight");
    assert!(norm.iter().all(|x| (0.9..=1.1).contains(x)));
    let spread =
        norm.iter().cloned().fold(0f64, f64::max) - norm.iter().cloned().fold(2f64, f64::min);
    assert!(spread > 0.1, "norms should vary");

    let g = synth(
        Arch::Llama,
        WeightTypeChoice::Uniform(GgmlType::F32),
        6,
        dir.path(),
    );
    assert_ne!(
        f32_tensor(&f, "blk.0.attn_q.weight").0[..64],
        f32_tensor(&g, "blk.0.attn_q.weight").0[..64],
        "another seed gives other weights"
    );
}

#[test]
fn f16_models_store_the_same_weights_rounded() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(
        Arch::Qwen2,
        WeightTypeChoice::Uniform(GgmlType::F16),
        9,
        dir.path(),
    );
    assert_eq!(f.metadata().usize("general.file_type").unwrap(), 1);
    let t = f.tensor("blk.1.attn_v.weight").unwrap();
    assert_eq!(t.ty, GgmlType::F16);
    assert_eq!(f.tensor("blk.1.attn_v.bias").unwrap().ty, GgmlType::F32);
    let (w, row_len) = f32_tensor(&f, "blk.1.attn_v.weight");
    let mut row = vec![0f32; row_len];
    reference_row(9, "blk.1.attn_v.weight", 100, &mut row);
    for (a, b) in w[100 * row_len..101 * row_len].iter().zip(&row) {
        assert!((a - f64::from(*b)).abs() <= f64::from(b.abs()) * 1e-3 + 1e-7);
    }
}

fn rms_norm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, w)| v * s * w).collect()
}

/// y = W·x for W of `row_len`-element rows.
fn matvec(w: &[f64], row_len: usize, x: &[f64]) -> Vec<f64> {
    w.chunks(row_len)
        .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

/// A naive forward pass over `tokens`, returning the last position's logits. Rope and the
/// sliding window are left out: rotations and masks do not change the activations' scale,
/// which is what this checks.
fn naive_logits(f: &GgufFile, tokens: &[usize]) -> Vec<f64> {
    let md = f.metadata();
    let a = md.str("general.architecture").unwrap().to_string();
    let key = |k: &str| md.usize(&format!("{a}.{k}")).unwrap();
    let (n_embd, n_head, n_kv, hd) = (
        key("embedding_length"),
        key("attention.head_count"),
        key("attention.head_count_kv"),
        key("attention.key_length"),
    );
    let eps = f64::from(
        md.f32(&format!("{a}.attention.layer_norm_rms_epsilon"))
            .unwrap(),
    );
    let gemma = a == "gemma3";
    let t = |name: &str| f32_tensor(f, name).0;
    let has = |name: &str| f.tensor(name).is_some();
    let embd = t("token_embd.weight");
    let scale = if gemma { (n_embd as f64).sqrt() } else { 1.0 };
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&tok| {
            embd[tok * n_embd..(tok + 1) * n_embd]
                .iter()
                .map(|v| v * scale)
                .collect()
        })
        .collect();
    for b in 0..key("block_count") {
        let n = |s: &str| format!("blk.{b}.{s}");
        let (wq, wk, wv, wo) = (
            t(&n("attn_q.weight")),
            t(&n("attn_k.weight")),
            t(&n("attn_v.weight")),
            t(&n("attn_output.weight")),
        );
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for x in &xs {
            let h = rms_norm(x, &t(&n("attn_norm.weight")), eps);
            let (mut q, mut k, mut v) = (
                matvec(&wq, n_embd, &h),
                matvec(&wk, n_embd, &h),
                matvec(&wv, n_embd, &h),
            );
            if has(&n("attn_q.bias")) {
                for (y, bias) in [
                    (&mut q, "attn_q.bias"),
                    (&mut k, "attn_k.bias"),
                    (&mut v, "attn_v.bias"),
                ] {
                    y.iter_mut().zip(t(&n(bias))).for_each(|(a, b)| *a += b);
                }
            }
            if has(&n("attn_q_norm.weight")) {
                let (qn, kn) = (t(&n("attn_q_norm.weight")), t(&n("attn_k_norm.weight")));
                q = q.chunks(hd).flat_map(|h| rms_norm(h, &qn, eps)).collect();
                k = k.chunks(hd).flat_map(|h| rms_norm(h, &kn, eps)).collect();
            }
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        for p in 0..xs.len() {
            let mut att = vec![0f64; n_head * hd];
            for h in 0..n_head {
                let kvh = h / (n_head / n_kv);
                let q = &qs[p][h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..=p)
                    .map(|j| {
                        q.iter()
                            .zip(&ks[j][kvh * hd..(kvh + 1) * hd])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, w) in e.iter().enumerate() {
                    for d in 0..hd {
                        att[h * hd + d] += w / z * vs[j][kvh * hd + d];
                    }
                }
            }
            let mut o = matvec(&wo, n_head * hd, &att);
            if gemma {
                o = rms_norm(&o, &t(&n("post_attention_norm.weight")), eps);
            }
            xs[p].iter_mut().zip(&o).for_each(|(x, o)| *x += o);
            let h = rms_norm(&xs[p], &t(&n("ffn_norm.weight")), eps);
            let (g, u) = (
                matvec(&t(&n("ffn_gate.weight")), n_embd, &h),
                matvec(&t(&n("ffn_up.weight")), n_embd, &h),
            );
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| {
                    let a = if gemma {
                        0.5 * g
                            * (1.0
                                + ((2.0 / std::f64::consts::PI).sqrt()
                                    * (g + 0.044715 * g * g * g))
                                    .tanh())
                    } else {
                        g / (1.0 + (-g).exp())
                    };
                    a * u
                })
                .collect();
            let mut d = matvec(&t(&n("ffn_down.weight")), g.len(), &act);
            if gemma {
                d = rms_norm(&d, &t(&n("post_ffw_norm.weight")), eps);
            }
            xs[p].iter_mut().zip(&d).for_each(|(x, d)| *x += d);
        }
    }
    let last = rms_norm(xs.last().unwrap(), &t("output_norm.weight"), eps);
    let out = if has("output.weight") {
        t("output.weight")
    } else {
        embd
    };
    matvec(&out, n_embd, &last)
}

#[test]
fn tiny_models_give_finite_well_spread_logits() {
    let dir = tempfile::tempdir().unwrap();
    for arch in Arch::ALL {
        let f = synth(
            arch,
            WeightTypeChoice::Uniform(GgmlType::F32),
            3,
            dir.path(),
        );
        let logits = naive_logits(&f, &[1, 450, 4996, 17354]);
        assert_eq!(logits.len(), 32000);
        assert!(logits.iter().all(|v| v.is_finite()), "{}", arch.name());
        let mean = logits.iter().sum::<f64>() / logits.len() as f64;
        let sd =
            (logits.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / logits.len() as f64).sqrt();
        eprintln!("{} logit sd {sd}", arch.name());
        // Unit-RMS hidden state times rows of norm ~1: logits spread about 1, never
        // collapsed to a constant nor blown up.
        assert!((0.3..5.0).contains(&sd), "{}: logit sd {sd}", arch.name());
    }
}

#[test]
fn q4_k_m_models_mix_types_and_keep_the_same_function() {
    let dir = tempfile::tempdir().unwrap();
    let exact = synth(
        Arch::Gemma3,
        WeightTypeChoice::Uniform(GgmlType::F32),
        8,
        dir.path(),
    );
    let mixed = synth(Arch::Gemma3, WeightTypeChoice::Q4KM, 8, dir.path());
    assert_eq!(mixed.metadata().usize("general.file_type").unwrap(), 15);
    let ty = |n: &str| mixed.tensor(n).unwrap().ty;
    // Tied output: token_embd is the output matrix, so it gets Q6_K.
    assert_eq!(ty("token_embd.weight"), GgmlType::Q6K);
    // 6 blocks: n/8 = 0, 7n/8 = 5; blocks 2 and 5 get more bits.
    let more: Vec<bool> = (0..6)
        .map(|i| ty(&format!("blk.{i}.attn_v.weight")) == GgmlType::Q6K)
        .collect();
    assert_eq!(more, [false, false, true, false, false, true]);
    assert_eq!(ty("blk.2.ffn_down.weight"), GgmlType::Q6K);
    assert_eq!(ty("blk.2.ffn_up.weight"), GgmlType::Q4K);
    assert_eq!(ty("blk.2.attn_q_norm.weight"), GgmlType::F32);
    // Same seed, same underlying weights: the logits barely move under 4-6 bit weights.
    let tokens = [1, 450, 4996];
    let (a, b) = (naive_logits(&exact, &tokens), naive_logits(&mixed, &tokens));
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let cosine = dot / (norm(&a) * norm(&b));
    assert!(cosine > 0.95, "cosine {cosine}");
}

#[test]
fn block_pool_models_look_like_fully_quantized_ones() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = vocab();
    let mut spec = SynthSpec::preset(Arch::Gemma3, "tiny").unwrap();
    // Q8_0: 8 blocks in a row of 256, so assembled rows can all differ (a Q4_K row of
    // 256 is a single block: only the pool's 256 rows would exist).
    spec.weight_type = WeightTypeChoice::Uniform(GgmlType::Q8_0);
    spec.block_pool = true;
    spec.seed = 2;
    let path = dir.path().join("pooled.gguf");
    write_synth_model(&spec, &vocab, &path, |_, _| {}).unwrap();
    let f = GgufFile::open(&path).unwrap();
    for name in ["token_embd.weight", "blk.0.ffn_gate.weight"] {
        let (w, row_len) = f32_tensor(&f, name);
        let n = w.len() as f64;
        let var = w.iter().map(|x| x * x).sum::<f64>() / n;
        let want = 1.0 / row_len as f64;
        assert!(
            (var / want - 1.0).abs() < 0.1,
            "{name}: var {var}, want {want}"
        );
        // Rows are mixtures of pool rows: (nearly) all distinct.
        let mut rows: Vec<&[f64]> = w.chunks(row_len).collect();
        let total = rows.len();
        rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
        rows.dedup();
        assert!(
            rows.len() * 100 >= total * 99,
            "{name}: {} distinct of {total}",
            rows.len()
        );
    }
    let logits = naive_logits(&f, &[1, 2, 3]);
    assert!(logits.iter().all(|v| v.is_finite()));
    let sd = (logits.iter().map(|v| v * v).sum::<f64>() / logits.len() as f64).sqrt();
    assert!((0.3..5.0).contains(&sd), "logit rms {sd}");
}
