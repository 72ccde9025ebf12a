//! `tandem run` and `tandem perplexity` as commands on the real gemma3 file.

mod common;

use std::process::Command;

fn tandem(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn run_prints_the_prompt_and_its_greedy_continuation_only() {
    let model = common::gemma3_path();
    let out = tandem(&[
        "run",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "The three primary colors are",
        "-n",
        "4",
        "--temp",
        "0",
        "-t",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("The three primary colors are red,"),
        "{stdout:?}"
    );
    // Four tokens and the final newline, nothing else.
    assert!(
        stdout.len() < "The three primary colors are".len() + 40,
        "{stdout:?}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("prompt eval time") && stderr.contains("eval time"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_a_prompt_longer_than_the_context() {
    let model = common::gemma3_path();
    let out = tandem(&[
        "run",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "one two three four five six seven eight",
        "-c",
        "4",
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("but the context is 4; raise -c"),
        "{stderr}"
    );
}

#[test]
fn perplexity_prints_running_estimates_and_the_final_line() {
    let model = common::gemma3_path();
    let text = common::testdata("tokenizer/GPL-3.txt");
    let out = tandem(&[
        "perplexity",
        "-m",
        model.to_str().unwrap(),
        "-f",
        text.to_str().unwrap(),
        "-c",
        "128",
        "--chunks",
        "2",
        "-t",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("[1]") && lines[0].contains(",[2]"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("Final estimate: PPL = "), "{stdout}");
    assert!(lines[1].contains(" +/- "), "{stdout}");
}
