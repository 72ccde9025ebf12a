//! The engine on the real gemma3 270M Q4_K_M file.
//!
//! `TANDEM_REF_F32_ACTIVATIONS=1` makes the reference skip the activation rounding, for
//! checking the model against exact f32 matmul kernels.

mod common;
mod reference;

use reference::Reference;
use tandem::engine::{CacheType, Engine, EngineOptions};
use tandem::gguf::GgufFile;

/// The first tokens of the real model agree with the f64 reference run on the same
/// dequantized weights with the same activation rounding.
#[test]
#[ignore = "needs the matmul kernels that quantize activations (helper cpu)"]
fn gemma3_logits_match_the_f64_reference_on_the_first_tokens() {
    let path = common::gemma3_path();
    // BOS, then arbitrary ordinary tokens.
    let tokens = [2u32, 818, 1806, 5279, 10868, 659, 236743, 563];
    let file = GgufFile::open(&path).unwrap();
    let mut reference = Reference::new(&file);
    reference.quantize_activations = std::env::var_os("TANDEM_REF_F32_ACTIVATIONS").is_none();
    let want = reference.logits(&tokens);
    let mut engine = Engine::load(
        &path,
        EngineOptions {
            n_ctx: Some(64),
            n_threads: Some(2),
            cache_type: CacheType::F32,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let got = engine.eval_all_logits(&tokens).unwrap().to_vec();
    let n_vocab = engine.n_vocab();
    for (t, r) in want.iter().enumerate() {
        let e = &got[t * n_vocab..(t + 1) * n_vocab];
        let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
        let diff = e
            .iter()
            .zip(r)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        assert!(
            diff / scale < 1e-2,
            "token {t}: relative error {:e}",
            diff / scale
        );
        // Same most likely next token.
        let arg = |v: &mut dyn Iterator<Item = f64>| {
            v.enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, x)| if x > b.1 { (i, x) } else { b },
                )
                .0
        };
        assert_eq!(
            arg(&mut e.iter().map(|&x| x as f64)),
            arg(&mut r.iter().copied()),
            "token {t}"
        );
    }
}
