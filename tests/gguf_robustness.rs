//! The reader against damaged files: every truncation, single-bit flips in the header,
//! and crafted counts. Each case must give `Err` or a valid header, never a panic, a hang
//! or an allocation beyond the file's size.

mod common;

use std::time::Instant;

use tandem::gguf::{parse_header, Array, GgufWriter, Metadata, TensorDesc, Value, ValueType};
use tandem::quant::GgmlType;

/// A small file with every kind of metadata value and a few tensors.
fn small_file() -> Vec<u8> {
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("llama".into()));
    md.set("general.alignment", Value::U32(32));
    md.set("llama.block_count", Value::U32(1));
    md.set("llama.rope.freq_base", Value::F32(10000.0));
    md.set("x.bool", Value::Bool(true));
    md.set("x.i64", Value::I64(-5));
    md.set("x.f64", Value::F64(0.5));
    md.set(
        "tokenizer.ggml.tokens",
        Value::strings(["<unk>", "<s>", "</s>", "▁a", "b"]),
    );
    md.set(
        "tokenizer.ggml.scores",
        Value::Array(Array::F32((0..5).map(|i| -(i as f32)).collect())),
    );
    md.set("x.bytes", Value::Array(Array::U8(vec![1, 2])));
    let tensors = [
        TensorDesc::new("norm", GgmlType::F32, &[8]),
        TensorDesc::new("w", GgmlType::F16, &[8, 3]),
        TensorDesc::new("q", GgmlType::Q8_0, &[32, 2]),
    ];
    let mut w = GgufWriter::new(Vec::new(), &md, &tensors).unwrap();
    for t in &tensors {
        w.write_data(&vec![0x11; t.n_bytes() as usize]).unwrap();
    }
    w.finish().unwrap()
}

/// Where the tensor data start, i.e. the end of the header region.
fn header_len(bytes: &[u8]) -> usize {
    parse_header(bytes).unwrap().data_start as usize
}

#[test]
fn every_truncation_of_a_small_file_is_an_error() {
    let bytes = small_file();
    let h = parse_header(&bytes).unwrap();
    let last = h.tensors.last().unwrap();
    // Past the end of the last tensor's data only the alignment padding remains.
    let data_end = (h.data_start + last.offset + last.n_bytes) as usize;
    assert!(data_end <= bytes.len());
    for len in 0..data_end {
        let err = parse_header(&bytes[..len]).expect_err(&format!("length {len} parsed"));
        assert!(
            err.at <= len as u64,
            "error offset {} past length {len}",
            err.at
        );
    }
}

#[test]
fn every_single_bit_flip_in_a_small_header_is_handled() {
    let bytes = small_file();
    let end = header_len(&bytes);
    let mut errors = 0;
    for byte in 0..end {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[byte] ^= 1 << bit;
            if let Ok(h) = parse_header(&damaged) {
                // Whatever parses must still describe tensors inside the file.
                for t in &h.tensors {
                    assert!(h.data_start + t.offset + t.n_bytes <= damaged.len() as u64);
                }
            } else {
                errors += 1;
            }
        }
    }
    // Most flips (magic, version, counts, lengths, type ids) must be caught.
    assert!(
        errors > end * 2,
        "only {errors} of {} flips refused",
        end * 8
    );
}

/// A deterministic xorshift, to pick positions.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncations_and_flips_of_a_real_vocab_header_are_errors() {
    let bytes = std::fs::read(common::testdata("tokenizer/ggml-vocab-llama-spm.gguf")).unwrap();
    let end = header_len(&bytes);
    let mut state = 0x1234_5678_9abc_def1u64;
    // Lengths near the start (where the counts are) densely, then spread over the header.
    let lengths = (0..2048).chain((0..1000).map(|_| (xorshift(&mut state) % end as u64) as usize));
    for len in lengths {
        assert!(parse_header(&bytes[..len]).is_err(), "length {len} parsed");
    }
    for _ in 0..800 {
        let mut damaged = bytes.clone();
        let at = (xorshift(&mut state) % end as u64) as usize;
        damaged[at] ^= 1 << (xorshift(&mut state) % 8);
        let _ = parse_header(&damaged);
    }
}

/// Header bytes for `n` entries, each a one-byte key and a u8 value.
fn many_tiny_keys(n: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&u64::from(n).to_le_bytes());
    for i in 0..n {
        let key = format!("{i:x}");
        b.extend_from_slice(&(key.len() as u64).to_le_bytes());
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(&ValueType::U8.id().to_le_bytes());
        b.push(0);
    }
    b
}

#[test]
fn many_metadata_keys_parse_in_linear_time() {
    // 200k distinct keys: a quadratic duplicate check would make 2e10 comparisons.
    let bytes = many_tiny_keys(200_000);
    let start = Instant::now();
    let h = parse_header(&bytes).unwrap();
    assert_eq!(h.metadata.len(), 200_000);
    // Not a timing test of speed, a guard against a hang: minutes would fail it.
    assert!(start.elapsed().as_secs() < 60);
}

#[test]
fn counts_larger_than_the_file_are_refused_before_allocating() {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&ValueType::Array.id().to_le_bytes());
    b.extend_from_slice(&ValueType::U64.id().to_le_bytes());
    b.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    b.extend_from_slice(&[0; 64]);
    let err = parse_header(&b).unwrap_err();
    assert!(err.problem.contains("element count"), "{err}");

    // A string length beyond the file.
    let mut s = b[..24].to_vec();
    s.extend_from_slice(&u64::MAX.to_le_bytes());
    s.extend_from_slice(&[0; 16]);
    let problem = parse_header(&s).unwrap_err().problem;
    assert!(
        problem.contains("key of metadata entry 0") && problem.contains("string length"),
        "{problem}"
    );

    // Arrays of arrays are refused, as llama.cpp does.
    let mut nested = b[..33].to_vec();
    nested.extend_from_slice(&ValueType::Array.id().to_le_bytes());
    nested.extend_from_slice(&ValueType::Array.id().to_le_bytes());
    nested.extend_from_slice(&1u64.to_le_bytes());
    nested.extend_from_slice(&[0; 32]);
    let problem = parse_header(&nested).unwrap_err().problem;
    assert!(problem.contains("arrays of arrays"), "{problem}");
}
