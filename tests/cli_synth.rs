//! `tandem synth` arguments: good ones write a loadable model, bad ones fail cleanly.

mod common;

use std::process::{Command, Output};

use tandem::gguf::GgufFile;

fn tandem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn synth_writes_the_requested_model_and_refuses_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    let out_s = out.to_str().unwrap();
    let vocab = common::testdata("tokenizer/ggml-vocab-llama-spm.gguf");
    let vocab_s = vocab.to_str().unwrap();

    let ok = tandem(&[
        "synth", "--arch", "gemma3", "--type", "bf16", "--vocab", vocab_s, "-o", out_s, "--seed",
        "3", "-t", "1",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.metadata().str("general.architecture").unwrap(), "gemma3");
    assert_eq!(f.tensor("blk.0.ffn_up.weight").unwrap().ty.name(), "BF16");
    assert!(f.tensor("output.weight").is_none());

    let failures: [(&[&str], &str); 4] = [
        (&["--arch", "mamba"], "unknown architecture `mamba`"),
        (
            &["--arch", "qwen2", "--preset", "7b"],
            "exists for llama only",
        ),
        (&["--type", "IQ4_XS"], "unknown weight type `IQ4_XS`"),
        (&["--preset", "2b"], "unknown preset `2b`"),
    ];
    let other = dir.path().join("other.gguf");
    for (extra, message) in failures {
        let mut args = vec!["synth", "--vocab", vocab_s, "-o", other.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = tandem(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
    }
    let missing = dir.path().join("no-vocab.gguf");
    let run = tandem(&[
        "synth",
        "--vocab",
        missing.to_str().unwrap(),
        "-o",
        other.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no-vocab.gguf"));
    assert!(!other.exists());
    // Only the one good model: no partial files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
