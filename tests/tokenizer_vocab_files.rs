//! llama.cpp's tokenizer test vectors (test-tokenizer-0): 46 strings per vocabulary file,
//! encoded without BOS and without special parsing, compared id for id.

mod common;

use tandem::gguf::GgufFile;
use tandem::tokenizer::Tokenizer;

fn load(name: &str) -> Tokenizer {
    let path = common::testdata(&format!("tokenizer/{name}"));
    let f = GgufFile::open(&path).unwrap();
    Tokenizer::from_gguf(f.metadata()).unwrap()
}

/// (input, expected ids) pairs from `NAME.inp` / `NAME.out`.
fn cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(common::testdata(&format!("tokenizer/{name}.inp"))).unwrap();
    let out = std::fs::read_to_string(common::testdata(&format!("tokenizer/{name}.out"))).unwrap();
    let mut inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    assert_eq!(
        inputs.pop(),
        Some(""),
        "input file should end with a separator"
    );
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(inputs.len(), 46);
    assert_eq!(outputs.len(), inputs.len());
    inputs.into_iter().map(String::from).zip(outputs).collect()
}

fn check(name: &str) {
    let tok = load(name);
    let mut failures = Vec::new();
    for (i, (text, expected)) in cases(name).iter().enumerate() {
        let got = tok.encode(text, false, false);
        if &got != expected {
            failures.push(format!(
                "case {i} {text:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 46 cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn llama_spm_matches_llama_cpp() {
    check("ggml-vocab-llama-spm.gguf");
}

#[test]
fn llama_bpe_matches_llama_cpp() {
    check("ggml-vocab-llama-bpe.gguf");
}

#[test]
fn vocab_files_round_trip_their_test_strings() {
    for name in ["ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf"] {
        let tok = load(name);
        for (text, _) in cases(name) {
            let ids = tok.encode(&text, false, false);
            assert_eq!(
                String::from_utf8_lossy(&tok.decode(&ids)),
                text,
                "{name}: {ids:?}"
            );
        }
    }
}

#[test]
fn vocab_file_special_ids() {
    let spm = load("ggml-vocab-llama-spm.gguf");
    assert_eq!(spm.n_vocab(), 32000);
    assert_eq!(spm.bos_id(), Some(1));
    assert_eq!(spm.eos_id(), Some(2));
    assert!(spm.add_bos());
    assert_eq!(spm.encode("Hello", true, false), vec![1, 15043]);
    assert_eq!(spm.encode("", true, false), vec![1]);
    // Control tokens are single tokens only with special parsing.
    assert_eq!(spm.encode("<s>", false, true), vec![1]);
    assert_ne!(spm.encode("<s>", false, false), vec![1]);

    // Like llama.cpp's detokenizer: the space-prefix space goes from the first token only,
    // and a leading BOS (which renders empty) is that first token.
    assert_eq!(spm.decode(&[15043, 3186]), b"Hello world");
    assert_eq!(spm.decode(&[1, 15043, 3186]), b" Hello world");
    assert_eq!(spm.decode_with(&[1, 15043], true), b"<s> Hello");

    let bpe = load("ggml-vocab-llama-bpe.gguf");
    assert_eq!(bpe.n_vocab(), 128256);
    let eot = bpe.token_id("<|eot_id|>").unwrap();
    assert_eq!(eot, 128009);
    assert!(bpe.is_end_of_generation(eot));
    assert!(bpe.is_end_of_generation(bpe.eos_id().unwrap()));
    assert!(!bpe.is_end_of_generation(bpe.token_id("Hello").unwrap()));
    assert_eq!(bpe.encode("<|eot_id|>", false, true), vec![eot]);
    assert!(bpe.encode("<|eot_id|>", false, false).len() > 1);
}
