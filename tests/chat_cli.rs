//! `tandem chat` end to end on the real gemma3 model, driven through stdin.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn model() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/gemma-3-270m-q4_k_m.gguf");
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not found", path.display());
        None
    }
}

fn chat(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("chat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tandem runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn one_turn_from_piped_stdin() {
    let Some(model) = model() else { return };
    let out = chat(
        &[
            "-m",
            model.to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "16",
            "-t",
            "2",
        ],
        "Hello\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    // Prompt, reply, then a second prompt that meets end of input.
    assert!(stdout.starts_with("> "), "{stdout:?}");
    assert!(stdout.ends_with("> \n"), "{stdout:?}");
    let reply = &stdout[2..stdout.len() - 3];
    assert!(!reply.trim().is_empty(), "empty reply: {stdout:?}");
    // The file has no template of its own: the fallback is announced.
    assert!(stderr.contains("built-in gemma"), "{stderr}");
}

#[test]
fn greedy_chat_is_reproducible_across_turns() {
    let Some(model) = model() else { return };
    let args = [
        "-m",
        model.to_str().unwrap(),
        "--temp",
        "0",
        "-n",
        "8",
        "-t",
        "2",
        "--system",
        "Answer briefly.",
    ];
    let a = chat(&args, "Hi\nName a colour.\n");
    let b = chat(&args, "Hi\nName a colour.\n");
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
    // Three prompts: two turns and the end of input.
    assert_eq!(String::from_utf8_lossy(&a.stdout).matches("> ").count(), 3);
}

#[test]
fn message_longer_than_the_context_is_refused_without_exiting() {
    let Some(model) = model() else { return };
    let long = "word ".repeat(100);
    let out = chat(
        &[
            "-m",
            model.to_str().unwrap(),
            "-c",
            "32",
            "--temp",
            "0",
            "-n",
            "4",
        ],
        &format!("{long}\nHi\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("raise -c"), "{stderr}");
}

#[test]
fn bad_flags_are_errors_not_panics() {
    let Some(model) = model() else { return };
    let out = chat(&["-m", model.to_str().unwrap(), "--top-p", "1.5"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--top-p"));
    let out = chat(&["-m", "/nonexistent/model.gguf"], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn full_context_starts_a_new_conversation() {
    let Some(model) = model() else { return };
    let turn = "Please tell me one short fact about the sea and the sky.\n";
    let out = chat(
        &[
            "-m",
            model.to_str().unwrap(),
            "-c",
            "48",
            "--temp",
            "0",
            "-n",
            "6",
        ],
        &turn.repeat(4),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("starting a new conversation"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("> ").count(),
        5
    );
}
