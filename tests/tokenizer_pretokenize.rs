//! Pre-tokenizer splits, checked against pieces worked out by hand from each family's
//! published regex (Hugging Face tokenizer.json `pre_tokenizer`, as llama.cpp lists them).

use tandem::tokenizer::{PreKind, PreTokenizer};

fn split(pre: &str, text: &str) -> Vec<String> {
    let p = PreTokenizer::from_name(pre).unwrap();
    let pieces: Vec<String> = p.split(text).into_iter().map(String::from).collect();
    assert_eq!(pieces.concat(), text, "pieces must cover the text");
    pieces
}

fn check(pre: &str, text: &str, expected: &[&str]) {
    assert_eq!(split(pre, text), expected, "{pre}: {text:?}");
}

#[test]
fn names_map_to_families() {
    let cases = [
        ("default", PreKind::Default),
        ("llama-bpe", PreKind::Llama3),
        ("llama3", PreKind::Llama3),
        ("qwen2", PreKind::Qwen2),
        ("gpt-2", PreKind::Gpt2),
        ("phi-2", PreKind::Gpt2),
        ("deepseek-llm", PreKind::DeepseekLlm),
        ("deepseek-coder", PreKind::DeepseekCoder),
        ("starcoder", PreKind::Starcoder),
        ("command-r", PreKind::Starcoder),
        ("falcon", PreKind::Falcon),
    ];
    for (name, kind) in cases {
        assert_eq!(PreKind::from_name(name), Some(kind), "{name}");
        assert_eq!(PreTokenizer::from_name(name).unwrap().kind(), kind);
    }
    let err = PreTokenizer::from_name("no-such-pre").unwrap_err();
    assert!(err.to_string().contains("no-such-pre"), "{err}");
}

#[test]
fn every_family_compiles_and_covers_its_input() {
    let text = "Hello, y'all! 1234567 我想在apple工作 нещо 🦙 \n\n  \t x's 'RE";
    for name in [
        "default",
        "llama-bpe",
        "dbrx",
        "deepseek-llm",
        "deepseek-coder",
        "deepseek-v3",
        "falcon",
        "starcoder",
        "gpt-2",
        "qwen2",
        "poro-chat",
        "viking",
        "chatglm-bpe",
        "tekken",
        "gpt-4o",
    ] {
        assert!(!split(name, text).is_empty(), "{name}");
    }
}

#[test]
fn gpt2_contractions_are_lowercase_only() {
    check(
        "gpt-2",
        "Hello world's 123 4567!!  x\n",
        &[
            "Hello", " world", "'s", " 123", " 4567", "!!", " ", " x", "\n",
        ],
    );
    check("gpt-2", "I'M", &["I", "'", "M"]);
    check(
        "phi-2",
        "we're we've I'm we'll I'd it't",
        &[
            "we", "'re", " we", "'ve", " I", "'m", " we", "'ll", " I", "'d", " it", "'t",
        ],
    );
}

#[test]
fn llama3_groups_digits_by_three_and_keeps_newline_runs() {
    check(
        "llama-bpe",
        "I'M 12345 abc",
        &["I", "'M", " ", "123", "45", " abc"],
    );
    check("llama-bpe", "1234567", &["123", "456", "7"]);
    check(
        "llama-bpe",
        "hello\n\n  world",
        &["hello", "\n\n", " ", " world"],
    );
    check("llama-bpe", "ok!!\n\nnext", &["ok", "!!\n\n", "next"]);
    // Whitespace before a newline goes with the newline.
    check("llama-bpe", "a  \n b", &["a", "  \n", " b"]);
    // A non-letter, non-digit character may lead a word.
    check("llama-bpe", "(hello) $x", &["(hello", ")", " $", "x"]);
}

#[test]
fn qwen2_splits_every_digit() {
    check("qwen2", "2024", &["2", "0", "2", "4"]);
    check("qwen2", "I'M 12", &["I", "'M", " ", "1", "2"]);
    check("qwen2", "x  \ny", &["x", "  \n", "y"]);
}

#[test]
fn starcoder_family_isolates_digits_first() {
    for pre in ["starcoder", "command-r"] {
        check(pre, "abc 123 x", &["abc", " ", "1", "2", "3", " x"]);
        check(pre, "it's v2.0", &["it", "'s", " v", "2", ".", "0"]);
    }
}

#[test]
fn falcon_splits_punctuation_then_three_digit_groups() {
    check(
        "falcon",
        "a+b=1234567, ok",
        &["a", "+", "b", "=", "123", "456", "7", ",", " ok"],
    );
    check("falcon", "x`y", &["x", "`", "y"]);
}

#[test]
fn default_splits_punctuation_and_digits() {
    check(
        "default",
        "a+b=1234567, ok",
        &["a", "+", "b", "=", "123", "456", "7", ",", " ok"],
    );
}

#[test]
fn deepseek_coder_keeps_cjk_runs_and_single_digits() {
    check(
        "deepseek-coder",
        "def f(x):\n  return 42 我们",
        &[
            "def", " f", "(", "x", "):", "\n", " ", " return", " ", "4", "2", " ", "我们",
        ],
    );
}

#[test]
fn deepseek_llm_uses_its_letter_and_punctuation_classes() {
    check(
        "deepseek-llm",
        "Hello, world 123\n你好",
        &["Hello", ",", " world", " ", "123", "\n", "你好"],
    );
    check("deepseek-llm", "привет мир", &["привет", " мир"]);
    // Trailing whitespace is its own piece.
    check("deepseek-llm", "ok  ", &["ok", "  "]);
}
