//! Small hand-built vocabularies whose correct tokenization can be worked out on paper,
//! plus the error cases of `Tokenizer::from_gguf`.

mod common;

use tandem::gguf::{Array, GgufFile, Metadata, Value};
use tandem::tokenizer::{StreamDecoder, Tokenizer};

fn strings(items: &[&str]) -> Value {
    Value::strings(items)
}

fn spm(tokens: &[(&str, f32, i32)]) -> Metadata {
    let mut md = Metadata::new();
    md.set("tokenizer.ggml.model", Value::String("llama".into()));
    md.set(
        "tokenizer.ggml.tokens",
        strings(&tokens.iter().map(|t| t.0).collect::<Vec<_>>()),
    );
    md.set(
        "tokenizer.ggml.scores",
        Value::Array(Array::F32(tokens.iter().map(|t| t.1).collect())),
    );
    md.set(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(tokens.iter().map(|t| t.2).collect())),
    );
    md
}

fn bpe(tokens: &[&str], merges: &[&str]) -> Metadata {
    let mut md = Metadata::new();
    md.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    md.set("tokenizer.ggml.pre", Value::String("gpt-2".into()));
    md.set("tokenizer.ggml.tokens", strings(tokens));
    md.set("tokenizer.ggml.merges", strings(merges));
    md
}

/// unk, bos, eos, then byte tokens for 'a' and 0xC3/0xA9 (é), then pieces.
fn tiny_spm() -> Tokenizer {
    let md = spm(&[
        ("<unk>", 0.0, 2),
        ("<s>", 0.0, 3),
        ("</s>", 0.0, 3),
        ("<0x61>", 0.0, 6),
        ("<0xC3>", 0.0, 6),
        ("<0xA9>", 0.0, 6),
        ("▁", -1.0, 1),
        ("a", -2.0, 1),
        ("b", -2.0, 1),
        ("aa", -3.0, 1),
        ("▁a", -4.0, 1),
        ("ab", -1.5, 1),
    ]);
    Tokenizer::from_gguf(&md).unwrap()
}

#[test]
fn spm_merges_highest_score_first_and_leftmost_on_ties() {
    let t = tiny_spm();
    // "▁aaa": bigrams ▁a (-4), aa (-3), aa (-3): the leftmost "aa" wins, then nothing
    // merges with "▁" except "▁a", which no longer exists as a pair.
    assert_eq!(t.encode("aaa", false, false), vec![6, 9, 7]);
    // "▁aab": aa (-3) vs ab (-1.5): "ab" is merged first, leaving "▁a" (-4).
    assert_eq!(t.encode("aab", false, false), vec![10, 11]);
    assert_eq!(t.decode(&[10, 11]), b"aab");
}

#[test]
fn spm_falls_back_to_byte_tokens() {
    let t = tiny_spm();
    // 'é' is not a piece: its two bytes come out as <0xC3><0xA9>.
    assert_eq!(t.encode("é", false, false), vec![6, 4, 5]);
    assert_eq!(t.decode(&[6, 4, 5]), "é".as_bytes());
    // 'z' has no byte token: the unknown token stands in for it (llama.cpp would abort).
    assert_eq!(t.encode("z", false, false), vec![6, 0]);
}

#[test]
fn spm_defaults_add_bos_and_space_prefix() {
    let t = tiny_spm();
    assert!(t.add_bos());
    assert!(t.add_space_prefix());
    assert_eq!(t.bos_id(), Some(1));
    assert_eq!(t.eos_id(), Some(2));
    assert_eq!(t.encode("a", true, false), vec![1, 10]);
    // The prefix space is added again after a special token.
    assert_eq!(t.encode("a<s>a", false, true), vec![10, 1, 10]);
    assert_eq!(t.encode("", true, false), vec![1]);
}

#[test]
fn stream_decoder_holds_split_characters_back() {
    let t = tiny_spm();
    let mut d = StreamDecoder::new(&t, false);
    assert_eq!(d.push(7), "a");
    assert_eq!(d.push(4), "");
    assert_eq!(d.pending(), &[0xC3]);
    assert_eq!(d.push(5), "é");
    assert_eq!(d.push(11), "ab");
    assert_eq!(d.finish(), "");
    // A continuation byte with no lead can never complete: replaced at once.
    assert_eq!(d.push(5), "\u{FFFD}");
    // A lead byte left at the end comes out replaced by finish.
    assert_eq!(d.push(4), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    // Control tokens are hidden unless asked for.
    assert_eq!(d.push(1), "");
    assert_eq!(StreamDecoder::new(&t, true).push(1), "<s>");
}

#[test]
fn stream_decoder_on_real_byte_tokens() {
    // 🦙 is four byte tokens in the llama SPM vocabulary: emitted once, complete, at the end.
    let f = GgufFile::open(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap();
    let t = Tokenizer::from_gguf(f.metadata()).unwrap();
    let ids = t.encode("🦙.cpp", false, false);
    assert_eq!(ids, vec![29871, 243, 162, 169, 156, 29889, 8223]);
    let mut d = StreamDecoder::new(&t, false);
    let outs: Vec<String> = ids.iter().map(|&i| d.push(i)).collect();
    assert_eq!(outs, [" ", "", "", "", "🦙", ".", "cpp"]);
    assert_eq!(d.finish(), "");
}

#[test]
fn bpe_merges_lowest_rank_first() {
    let tokens = ["a", "b", "c", "ab", "bc", "abc"];
    let t = Tokenizer::from_gguf(&bpe(&tokens, &["b c", "a b"])).unwrap();
    assert_eq!(t.encode("abc", false, false), vec![0, 4]);
    let t = Tokenizer::from_gguf(&bpe(&tokens, &["a b", "b c"])).unwrap();
    assert_eq!(t.encode("abc", false, false), vec![3, 2]);
    let t = Tokenizer::from_gguf(&bpe(&tokens, &["b c", "a b", "a bc"])).unwrap();
    assert_eq!(t.encode("abc", false, false), vec![5]);
    assert_eq!(t.decode(&[5]), b"abc");
}

#[test]
fn bpe_maps_bytes_to_printable_characters() {
    // ' ' is 'Ġ' and '\n' is 'Ċ' in byte-level BPE.
    let tokens = ["Ġ", "a", "Ċ", "Ġa"];
    let t = Tokenizer::from_gguf(&bpe(&tokens, &["Ġ a"])).unwrap();
    assert_eq!(t.encode(" a\n", false, false), vec![3, 2]);
    assert_eq!(t.decode(&[3, 2]), b" a\n");
    // gpt-2 adds no BOS by default.
    assert!(!t.add_bos());
    assert_eq!(t.encode(" a", true, false), vec![3]);
}

#[test]
fn unknown_names_are_errors_that_name_them() {
    let mut md = bpe(&["a"], &[]);
    md.set("tokenizer.ggml.pre", Value::String("mystery-pre".into()));
    let err = Tokenizer::from_gguf(&md).unwrap_err().to_string();
    assert!(err.contains("mystery-pre"), "{err}");

    let mut md = bpe(&["a"], &[]);
    md.set("tokenizer.ggml.model", Value::String("t5".into()));
    let err = Tokenizer::from_gguf(&md).unwrap_err().to_string();
    assert!(err.contains("t5"), "{err}");

    let mut md = bpe(&["a"], &[]);
    md.remove("tokenizer.ggml.merges");
    let err = Tokenizer::from_gguf(&md).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.merges"), "{err}");

    let mut md = spm(&[("a", 0.0, 1), ("b", 0.0, 1)]);
    md.set("tokenizer.ggml.scores", Value::Array(Array::F32(vec![0.0])));
    let err = Tokenizer::from_gguf(&md).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.scores"), "{err}");

    let md = Metadata::new();
    let err = Tokenizer::from_gguf(&md).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.model"), "{err}");
}

#[test]
fn eog_includes_eos_and_chat_end_tokens() {
    let tokens = ["a", "<|endoftext|>", "<|im_end|>", "<|im_start|>"];
    let mut md = bpe(&tokens, &[]);
    md.set("tokenizer.ggml.eos_token_id", Value::U32(1));
    md.set(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(vec![1, 3, 1, 3])),
    );
    let t = Tokenizer::from_gguf(&md).unwrap();
    assert!(t.is_end_of_generation(1));
    assert!(t.is_end_of_generation(2));
    assert!(!t.is_end_of_generation(3));
    assert!(!t.is_end_of_generation(0));
    // "<|im_end|>" was typed normal but is forced to control, as llama.cpp does.
    assert_eq!(t.encode("a<|im_end|>", false, true), vec![0, 2]);
    assert_eq!(t.decode(&[0, 2]), b"a");
    assert_eq!(t.decode_with(&[0, 2], true), b"a<|im_end|>");
}
