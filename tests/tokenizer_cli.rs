//! `tandem tokenize` on the vocabulary-only test files.

mod common;

use std::process::Command;

fn tandem(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("tokenize")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spm_vocab() -> String {
    common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")
        .display()
        .to_string()
}

#[test]
fn ids_line_with_and_without_bos() {
    let m = spm_vocab();
    let (ok, out, err) = tandem(&["-m", &m, "-p", "Hello world", "--ids"]);
    assert!(ok, "{err}");
    assert_eq!(out, "[1, 15043, 3186]\n");
    let (_, out, _) = tandem(&["-m", &m, "-p", "Hello world", "--ids", "--no-bos"]);
    assert_eq!(out, "[15043, 3186]\n");
}

#[test]
fn one_line_per_token_with_its_piece() {
    let (ok, out, err) = tandem(&["-m", &spm_vocab(), "-p", "Hello<s>"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "     1 -> '<s>'\n 15043 -> ' Hello'\n     1 -> '<s>'\n"
    );
    let (_, out, _) = tandem(&[
        "-m",
        &spm_vocab(),
        "-p",
        "<s>",
        "--no-parse-special",
        "--ids",
    ]);
    assert_ne!(out, "[1, 1]\n");
}

#[test]
fn file_bytes_are_tokenized_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "Hello world\n").unwrap();
    let p = path.display().to_string();
    let (ok, out, err) = tandem(&["-m", &spm_vocab(), "-f", &p, "--ids"]);
    assert!(ok, "{err}");
    // The final newline is kept: <0x0A> is 13.
    assert_eq!(out, "[1, 15043, 3186, 13]\n");

    std::fs::write(&path, b"ok\xff\n").unwrap();
    let (ok, _, err) = tandem(&["-m", &spm_vocab(), "-f", &p]);
    assert!(!ok);
    assert!(err.contains("not valid UTF-8"), "{err}");
}

#[test]
fn needs_exactly_one_input() {
    let (ok, _, _) = tandem(&["-m", &spm_vocab()]);
    assert!(!ok);
    let (ok, _, _) = tandem(&["-m", &spm_vocab(), "-p", "a", "-f", "x"]);
    assert!(!ok);
}
