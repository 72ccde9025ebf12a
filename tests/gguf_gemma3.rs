//! The reader against the real gemma3 270M file.

mod common;

use std::collections::BTreeMap;

use tandem::gguf::GgufFile;

#[test]
fn gemma3_header_reads_as_llama_cpp_reports_it() {
    let f = GgufFile::open(common::gemma3_path()).unwrap();
    let md = f.metadata();
    assert_eq!(md.str("general.architecture").unwrap(), "gemma3");
    assert_eq!(md.usize("gemma3.block_count").unwrap(), 18);
    assert_eq!(md.usize("gemma3.embedding_length").unwrap(), 640);
    assert_eq!(md.str_array("tokenizer.ggml.tokens").unwrap().len(), 262144);
    assert_eq!(f.tensors().len(), 236);
    let mut counts = BTreeMap::new();
    for t in f.tensors() {
        *counts.entry(t.ty.name()).or_insert(0) += 1;
    }
    let expected: BTreeMap<_, _> = [
        ("F32", 109),
        ("Q5_0", 81),
        ("Q4_K", 27),
        ("Q8_0", 10),
        ("Q6_K", 9),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, vec![640, 262144]);
    assert_eq!(f.tensor_data(embd).len() as u64, embd.n_bytes);
}
