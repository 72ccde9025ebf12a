//! The tokenizer of the real gemma3 file (SentencePiece-style, 262,144 pieces).

mod common;

use std::sync::OnceLock;

use tandem::gguf::GgufFile;
use tandem::tokenizer::{Fragment, StreamDecoder, Tokenizer};

fn gemma3() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let f = GgufFile::open(common::gemma3_path()).unwrap();
        Tokenizer::from_gguf(f.metadata()).unwrap()
    })
}

fn gpl3() -> String {
    std::fs::read_to_string(common::testdata("tokenizer/GPL-3.txt")).unwrap()
}

#[test]
fn special_ids_come_from_the_vocabulary() {
    let t = gemma3();
    assert_eq!(t.n_vocab(), 262_144);
    assert_eq!(t.bos_id(), Some(2));
    assert_eq!(t.eos_id(), Some(1));
    assert_eq!(t.token_text(2), Some("<bos>"));
    assert_eq!(t.token_id("<start_of_turn>"), Some(105));
    assert_eq!(t.token_id("<end_of_turn>"), Some(106));
    assert_eq!(t.token_id("\n"), Some(107));
    assert!(t.add_bos());
    assert!(!t.add_space_prefix());
    assert!(t.is_end_of_generation(1));
    assert!(t.is_end_of_generation(106));
    assert!(!t.is_end_of_generation(105));
    assert!(!t.is_end_of_generation(2));
    assert_eq!(t.encode("Hi", true, true)[0], 2);
    assert_ne!(t.encode("Hi", false, true)[0], 2);
}

#[test]
fn gpl3_round_trips() {
    let t = gemma3();
    let text = gpl3();
    for add_bos in [false, true] {
        let ids = t.encode(&text, add_bos, true);
        assert!(ids.len() > 5000 && ids.len() < 12000, "{} ids", ids.len());
        assert_eq!(String::from_utf8(t.decode(&ids)).unwrap(), text);
    }
}

#[test]
fn hard_strings_round_trip() {
    let t = gemma3();
    let cases = [
        "👩‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs",
        "中文字符测试，日本語のテキスト、한국어 문장",
        "مرحبا بالعالم، هذا نص عربي",
        "e\u{301} a\u{308} o\u{302}\u{323} Z\u{335}\u{31b}",
        "a  b   c    d          e",
        "\ttab\t\tand\n\nnewlines\r\n\r\n   \n\t \n",
        " leading space",
        "trailing spaces   ",
        "<0x41> looks like a byte token",
        "",
        " ",
        "\n",
        "\u{10FFFF}\u{E000}\u{FFFD}",
    ];
    for s in cases {
        let ids = t.encode(s, false, false);
        assert_eq!(String::from_utf8_lossy(&t.decode(&ids)), s, "{ids:?}");
        let ids = t.encode(s, true, true);
        assert_eq!(String::from_utf8_lossy(&t.decode(&ids)), s, "{ids:?}");
    }
}

#[test]
fn literal_sentencepiece_space_marks_decode_as_spaces() {
    // As in llama.cpp: U+2581 in the input is indistinguishable from an escaped space.
    let t = gemma3();
    let ids = t.encode("\u{2581}a\u{2581}", false, false);
    assert_eq!(t.decode(&ids), b" a ");
}

#[test]
fn turn_markers_are_single_tokens_only_when_parsing_special() {
    let t = gemma3();
    let s = "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n";
    let ids = t.encode(s, false, true);
    assert_eq!(ids[0], 105);
    assert_eq!(ids.iter().filter(|&&i| i == 105).count(), 2);
    assert_eq!(ids.iter().filter(|&&i| i == 106).count(), 1);
    assert_eq!(*ids.last().unwrap(), 107);
    // Control tokens are hidden unless asked for.
    assert_eq!(
        String::from_utf8(t.decode_with(&ids, true)).unwrap(),
        s.to_string()
    );
    assert_eq!(
        String::from_utf8(t.decode(&ids)).unwrap(),
        "user\nWhat is 2+2?\nmodel\n"
    );

    let plain = t.encode(s, false, false);
    assert!(!plain.contains(&105) && !plain.contains(&106));
    assert_eq!(String::from_utf8(t.decode(&plain)).unwrap(), s);
}

#[test]
fn user_defined_whitespace_runs_split_before_merging() {
    let t = gemma3();
    // Gemma's vocabulary has user-defined tokens for newline and space runs; llama.cpp
    // splits them out even with special parsing off.
    let two_spaces = t.token_id("  ").unwrap();
    let ids = t.encode("a  b", false, false);
    assert!(ids.contains(&two_spaces), "{ids:?}");
    assert_eq!(
        t.encode("\n\n", false, false),
        vec![t.token_id("\n\n").unwrap()]
    );
    assert_eq!(
        t.split_special("x\n\ny", false),
        vec![
            Fragment::Text("x"),
            Fragment::Token(108),
            Fragment::Text("y")
        ]
    );
}

#[test]
fn characters_outside_the_vocabulary_fall_back_to_bytes() {
    let t = gemma3();
    let s = "\u{10FFFF}";
    let ids = t.encode(s, false, false);
    let bytes: Vec<String> = s.bytes().map(|b| format!("<0x{b:02X}>")).collect();
    let texts: Vec<&str> = ids.iter().map(|&i| t.token_text(i).unwrap()).collect();
    assert_eq!(texts, bytes);
}

#[test]
fn stream_decoding_equals_whole_decoding() {
    let t = gemma3();
    let s = "Grüße 🦙🚀 中文 e\u{301}!\n";
    let ids = t.encode(s, false, false);
    let mut d = StreamDecoder::new(t, false);
    let mut out = String::new();
    for &id in &ids {
        out.push_str(&d.push(id));
    }
    out.push_str(&d.finish());
    assert_eq!(out, s);
}

#[test]
fn long_whitespace_runs_stay_cheap_and_exact() {
    // Every position of a space run starts several user-defined matches; the split must
    // neither blow up nor lose a byte.
    let t = gemma3();
    let s = format!(
        "{}x{}y{}",
        " ".repeat(100_000),
        "\n".repeat(50_000),
        "\t ".repeat(30_000)
    );
    let ids = t.encode(&s, false, false);
    // Runs of up to 31 spaces or newlines are single tokens; "\t " pairs are at most two.
    assert!(ids.len() < 3_300 + 1_700 + 60_000 + 2, "{} ids", ids.len());
    assert_eq!(t.decode(&ids), s.as_bytes());
}
