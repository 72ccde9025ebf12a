//! The engine on the real gemma3 270M Q4_K_M file: logits against the f64 reference,
//! perplexity against llama.cpp's figure, greedy generation.
//!
//! `TANDEM_REF_F32_ACTIVATIONS=1` makes the reference skip the activation rounding, for
//! checking the model against exact f32 matmul kernels.

mod common;
mod reference;

use reference::Reference;
use tandem::cli::perplexity::perplexity;
use tandem::engine::{CacheType, Engine, EngineOptions};
use tandem::gguf::GgufFile;

fn engine(n_ctx: usize, cache_type: CacheType) -> Engine {
    Engine::load(
        &common::gemma3_path(),
        EngineOptions {
            n_ctx: Some(n_ctx),
            n_threads: Some(2),
            cache_type,
            ..EngineOptions::default()
        },
    )
    .unwrap()
}

/// The first tokens agree with the f64 reference run on the same dequantized weights with
/// the same activation rounding. With rounded activations this model is chaotic: jittering
/// the reference's own activations by ±1e-6 relative before rounding moves its logits by
/// 3–5% (measured), so the bound is loose; wrong models are off by far more, and the
/// perplexity test below is the sharp check. (Against exact f32 kernels and
/// TANDEM_REF_F32_ACTIVATIONS=1 the agreement was 2e-6.)
#[test]
fn gemma3_logits_match_the_f64_reference_on_the_first_tokens() {
    let tokens = [2u32, 818, 1806, 5905, 7913, 659, 2604, 236764];
    let file = GgufFile::open(common::gemma3_path()).unwrap();
    let mut reference = Reference::new(&file);
    reference.quantize_activations = std::env::var_os("TANDEM_REF_F32_ACTIVATIONS").is_none();
    let want = reference.logits(&tokens);
    let mut engine = engine(64, CacheType::F32);
    let got = engine.eval_all_logits(&tokens).unwrap().to_vec();
    let n_vocab = engine.n_vocab();
    let mut sum = 0.0;
    for (t, r) in want.iter().enumerate() {
        let e = &got[t * n_vocab..(t + 1) * n_vocab];
        let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
        let diff = e
            .iter()
            .zip(r)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        assert!(
            diff / scale < 0.15,
            "token {t}: relative error {:e}",
            diff / scale
        );
        sum += diff / scale;
    }
    let mean = sum / want.len() as f64;
    assert!(mean < 0.1, "mean relative error {mean:e}");
}

/// llama-perplexity reports 13.906 for this file on GPL-3 with -c 512 (14 chunks); its
/// full output is `[1]13.0142,[2]13.8935,… [14]13.9062` and `PPL = 13.9062 +/- 0.64791`
/// (x86 AVX-512 build, 2 threads). The engine computes llama.cpp's bits, so it prints the
/// same, not merely something within the 1% the issue asks for.
#[test]
fn gemma3_perplexity_on_gpl3_matches_llama_cpp() {
    let text = std::fs::read_to_string(common::testdata("tokenizer/GPL-3.txt")).unwrap();
    let mut engine = engine(512, CacheType::F16);
    let tokens = engine.tokenizer().encode(&text, true, false);
    let bos = engine.tokenizer().bos_id();
    let mut running = Vec::new();
    let result = perplexity(&mut engine, &tokens, bos, None, |_, p| running.push(p)).unwrap();
    assert_eq!(result.n_chunks, 14);
    assert_eq!(running.len(), 14);
    assert_eq!(result.n_scored, 14 * 255);
    let printed = |v: f64| format!("{v:.4}");
    assert_eq!(printed(running[0]), "13.0142", "first chunk");
    assert_eq!(printed(running[1]), "13.8935", "second chunk");
    assert_eq!(printed(result.ppl), "13.9062", "final estimate");
    assert_eq!(format!("{:.5}", result.error), "0.64791", "±");
}

/// Greedy continuation, token by token after a one-batch prompt, as `tandem run` does.
fn greedy(engine: &mut Engine, prompt: &str, n: usize) -> String {
    let tokenizer = engine.shared_tokenizer();
    let mut tokens = tokenizer.encode(prompt, true, true);
    let mut out = Vec::new();
    let mut logits = engine.eval(&tokens).unwrap().to_vec();
    for _ in 0..n {
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap() as u32;
        if tokenizer.is_end_of_generation(next) {
            break;
        }
        out.push(next);
        tokens.push(next);
        logits = engine.eval(&[next]).unwrap().to_vec();
    }
    String::from_utf8(tokenizer.decode(&out)).unwrap()
}

#[test]
fn gemma3_model_info_is_as_llama_cpp_prints_it() {
    let engine = engine(64, CacheType::F16);
    let info = engine.model_info();
    assert_eq!(info.arch, "gemma3");
    assert_eq!(info.file_type, "Q4_K - Medium");
    assert_eq!(info.n_vocab, 262144);
    assert_eq!(info.n_ctx_train, 32768);
    assert_eq!(info.n_layer, 18);
    // llama.cpp: "model params = 268.10 M".
    assert!(
        (268_095_000..268_105_000).contains(&info.n_params),
        "{}",
        info.n_params
    );
    assert_eq!(engine.n_ctx(), 64);
    assert_eq!(engine.n_vocab(), 262144);
}

/// The greedy answer names the three colours in a sentence.
#[test]
fn gemma3_greedy_names_the_primary_colors() {
    let mut engine = engine(64, CacheType::F16);
    let text = greedy(&mut engine, "The three primary colors are", 8);
    let sentence = text.split('.').next().unwrap();
    assert!(sentence.starts_with(" red, "), "{text:?}");
    assert!(
        sentence.contains("yellow") && sentence.contains("blue"),
        "{text:?}"
    );
}

/// llama.cpp's greedy continuation is " red, yellow, and blue." After "… are red," the
/// two colours are 0.02 logits apart, and this model turns a last-bit difference in any
/// product into logit changes of several tenths within a few tokens (every matmul
/// re-rounds its input to Q8 codes): llama.cpp itself says " blue" with `-fa off` or
/// `-ub 1`. The engine gives llama.cpp's answer because it computes llama.cpp's bits
/// (its x86 AVX-512 build: kernel summation orders, fused multiply-adds where its C
/// compiler fuses, its f16 attention), whatever the instruction set here.
#[test]
fn gemma3_greedy_continuation_matches_llama_cpp() {
    let mut engine = engine(64, CacheType::F16);
    let text = greedy(&mut engine, "The three primary colors are", 8);
    assert!(text.starts_with(" red, yellow, and blue."), "{text:?}");
}
