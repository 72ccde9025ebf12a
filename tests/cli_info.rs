//! `tandem info` as a user runs it: the real gemma3 file, a synthetic model, and
//! damaged files (exit code 1 and an `error:` line naming the file, no panic).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn tandem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .unwrap()
}

fn info_json(path: &Path) -> serde_json::Value {
    let out = tandem(&["info", "--json", "--tensors", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn gemma3_report_matches_llama_cpp() {
    let j = info_json(&common::gemma3_path());
    assert_eq!(j["architecture"], "gemma3");
    assert_eq!(j["file_type"], "Q4_K_M (15)");
    let hp = &j["hyperparameters"];
    assert_eq!(hp["block_count"], 18);
    assert_eq!(hp["embedding_length"], 640);
    assert_eq!(hp["feed_forward_length"], 2048);
    assert_eq!(hp["head_count"], 4);
    assert_eq!(hp["head_count_kv"], 1);
    assert_eq!(hp["head_dim"], 256);
    assert_eq!(hp["sliding_window"], 512);
    assert_eq!(hp["rms_epsilon"], 1e-6);
    assert_eq!(j["tensor_count"], 236);
    let count = |ty: &str| j["types"][ty]["tensors"].as_u64().unwrap();
    assert_eq!(
        [
            count("F32"),
            count("Q5_0"),
            count("Q4_K"),
            count("Q8_0"),
            count("Q6_K")
        ],
        [109, 81, 27, 10, 9]
    );
    assert_eq!(j["types"].as_object().unwrap().len(), 5);
    let t = &j["tokenizer"];
    assert_eq!(t["vocab_size"], 262144);
    assert_eq!(t["bos"]["id"], 2);
    assert_eq!(t["bos"]["piece"], "<bos>");
    assert_eq!(t["eos"]["piece"], "<eos>");
    assert_eq!(t["add_bos"], true);
    assert_eq!(j["file_size"], 253_113_024);
    // token_embd: 640 x 262144 Q8_0 = 163840 * 34 * 32 bytes; tied output.
    assert_eq!(j["embedding_bytes"], 640 * 262_144 / 32 * 34);
    assert!(j["output_bytes"].is_null());
    let tensors = j["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 236);
    let total: u64 = tensors.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert_eq!(j["tensor_bytes"], total);
    let bpw = j["bits_per_weight"].as_f64().unwrap();
    assert!((7.0..8.0).contains(&bpw), "{bpw}");

    let text = tandem(&["info", common::gemma3_path().to_str().unwrap()]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    for needle in [
        "gemma3",
        "Q5_0     81",
        "sliding_window        512",
        "bos 2 \"<bos>\"",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}

#[test]
fn synth_then_info_shows_the_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    let vocab = common::testdata("tokenizer/ggml-vocab-llama-spm.gguf");
    let synth = tandem(&[
        "synth",
        "--arch",
        "qwen3",
        "--preset",
        "tiny",
        "--type",
        "F16",
        "--vocab",
        vocab.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--seed",
        "4",
    ]);
    assert!(
        synth.status.success(),
        "{}",
        String::from_utf8_lossy(&synth.stderr)
    );
    let j = info_json(&out);
    assert_eq!(j["architecture"], "qwen3");
    assert_eq!(j["file_type"], "F16 (1)");
    assert_eq!(j["hyperparameters"]["block_count"], 2);
    assert_eq!(j["tokenizer"]["vocab_size"], 32000);
    let q_norm = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "blk.1.attn_q_norm.weight")
        .unwrap();
    assert_eq!(q_norm["type"], "F32");
    assert_eq!(q_norm["shape"], serde_json::json!([64]));
    assert_eq!(j["types"]["F16"]["tensors"], 2 * 7 + 1);
}

fn assert_fails_naming(path: &Path) {
    let out = tandem(&["info", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(line.contains(path.to_str().unwrap()), "{line}");
}

#[test]
fn damaged_and_missing_files_exit_1_with_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap();
    for len in [0, 3, 20, 5000, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path().join(format!("cut-{len}.gguf"));
        std::fs::write(&p, &bytes[..len]).unwrap();
        assert_fails_naming(&p);
    }
    let mut flipped = bytes.clone();
    flipped[9] ^= 0x40; // tensor count: far more than the file holds
    let p = dir.path().join("flipped.gguf");
    std::fs::write(&p, &flipped).unwrap();
    assert_fails_naming(&p);
    assert_fails_naming(&dir.path().join("missing.gguf"));
    assert_fails_naming(dir.path());
}
