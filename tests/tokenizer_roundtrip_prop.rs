//! Property: decoding the ids of any text gives the text back, for both tokenizer kinds.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use tandem::gguf::GgufFile;
use tandem::tokenizer::{StreamDecoder, Tokenizer};

fn load(path: std::path::PathBuf) -> Tokenizer {
    let f = GgufFile::open(path).unwrap();
    Tokenizer::from_gguf(f.metadata()).unwrap()
}

fn spm() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")))
}

fn bpe() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load(common::testdata("tokenizer/ggml-vocab-llama-bpe.gguf")))
}

/// Text mixing ASCII, whitespace runs, accents, CJK, emoji and special-token lookalikes.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 ,.!?']{0,12}",
        "[ \t\n\r]{1,6}",
        "[àéîõüçñß\u{301}\u{308}]{1,4}",
        "[一-龥ぁ-んア-ン가-힣]{1,4}",
        "[😀-🙏🚀-🛿]{1,3}",
        Just("<s>".to_string()),
        Just("<|eot_id|>".to_string()),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn bpe_round_trips(s in text()) {
        let t = bpe();
        let ids = t.encode(&s, false, false);
        prop_assert_eq!(t.decode(&ids), s.as_bytes());
        let ids = t.encode(&s, true, true);
        prop_assert_eq!(t.decode_with(&ids[1..], true), s.as_bytes());
    }

    #[test]
    fn spm_round_trips(s in text().prop_filter("U+2581 decodes as a space", |s| !s.contains('\u{2581}'))) {
        let t = spm();
        let ids = t.encode(&s, false, false);
        prop_assert_eq!(t.decode(&ids), s.as_bytes());
    }

    #[test]
    fn streaming_matches_whole_decoding(s in text()) {
        for t in [spm(), bpe()] {
            let ids = t.encode(&s, false, true);
            let mut d = StreamDecoder::new(t, true);
            let mut out = String::new();
            for &id in &ids {
                out.push_str(&d.push(id));
            }
            out.push_str(&d.finish());
            // The stream strips no space-prefix space: it is every piece, concatenated.
            let pieces: Vec<u8> = ids.iter().flat_map(|&i| t.piece(i, true).to_vec()).collect();
            prop_assert_eq!(out.as_bytes(), pieces.as_slice());
        }
    }
}
