//! Tiny random-weight models for the engine tests (until/besides `tandem synth`): small
//! enough that the f64 reference runs a 64-token prompt in well under a second.

#![allow(dead_code)]

use std::path::Path;

use tandem::gguf::{GgufFile, GgufWriter, Metadata, TensorDesc, Value};
use tandem::quant::GgmlType;

/// A deterministic generator (xorshift) of floats in [−1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// The vocabulary of the tokenizer the tiny models carry (LLaMA's SPM vocabulary).
pub const N_VOCAB: usize = 32000;

/// Writes a tiny `arch` model whose matrices are of type `ty`, with the tokenizer of
/// `vocab` (a vocab-only GGUF of N_VOCAB tokens).
pub fn write_tiny(path: &Path, vocab: &Path, arch: &str, ty: GgmlType) {
    write_tiny_edited(path, vocab, arch, ty, |_| {});
}

/// A tensor to be written with its values.
pub type TinyTensor = (TensorDesc, Vec<f32>);

/// As [`write_tiny`], letting `edit` change the tensor list first (to break a model).
pub fn write_tiny_edited(
    path: &Path,
    vocab: &Path,
    arch: &str,
    ty: GgmlType,
    edit: impl FnOnce(&mut Vec<TinyTensor>),
) {
    let (n_embd, n_head, head_dim, n_ff) = (256, 4, 64, 512);
    // gemma3 270M has one kv head; the others share each kv head between two q heads.
    let n_head_kv = if arch == "gemma3" { 1 } else { 2 };
    let n_layer = if arch == "gemma3" { 6 } else { 2 };
    let mut md = Metadata::new();
    let vocab_file = GgufFile::open(vocab).unwrap();
    for (key, value) in vocab_file.metadata().iter() {
        if key.starts_with("tokenizer.") {
            md.set(key, value.clone());
        }
    }
    let k = |s: &str| format!("{arch}.{s}");
    md.set("general.architecture", Value::String(arch.into()));
    md.set(k("embedding_length"), Value::U32(n_embd as u32));
    md.set(k("block_count"), Value::U32(n_layer as u32));
    md.set(k("attention.head_count"), Value::U32(n_head as u32));
    md.set(k("attention.head_count_kv"), Value::U32(n_head_kv as u32));
    md.set(k("attention.key_length"), Value::U32(head_dim as u32));
    md.set(k("attention.value_length"), Value::U32(head_dim as u32));
    md.set(k("feed_forward_length"), Value::U32(n_ff as u32));
    md.set(k("context_length"), Value::U32(256));
    md.set(k("attention.layer_norm_rms_epsilon"), Value::F32(1e-6));
    md.set(
        k("rope.freq_base"),
        Value::F32(if arch == "gemma3" { 1e6 } else { 10000.0 }),
    );
    if arch == "gemma3" {
        md.set(k("attention.sliding_window"), Value::U32(16));
    }
    let mut tensors: Vec<TinyTensor> = Vec::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ arch.len() as u64);
    let mat = |name: String, cols: usize, rows: usize, rng: &mut Rng| {
        let s = 1.0 / (cols as f32).sqrt();
        let data: Vec<f32> = (0..cols * rows).map(|_| rng.next() * s * 1.5).collect();
        (TensorDesc::new(name, ty, &[cols as u64, rows as u64]), data)
    };
    let vec = |name: String, len: usize, center: f32, spread: f32, rng: &mut Rng| {
        let data: Vec<f32> = (0..len).map(|_| center + spread * rng.next()).collect();
        (TensorDesc::new(name, GgmlType::F32, &[len as u64]), data)
    };
    let (embd, mut embd_data) = mat("token_embd.weight".into(), n_embd, N_VOCAB, &mut rng);
    if arch != "gemma3" {
        // Larger embeddings, as the norms that follow would hide the scale anyway.
        embd_data.iter_mut().for_each(|v| *v *= 4.0);
    }
    tensors.push((embd, embd_data));
    for b in 0..n_layer {
        let n = |s: &str| format!("blk.{b}.{s}");
        tensors.push(vec(n("attn_norm.weight"), n_embd, 1.0, 0.2, &mut rng));
        tensors.push(mat(n("attn_q.weight"), n_embd, n_head * head_dim, &mut rng));
        tensors.push(mat(
            n("attn_k.weight"),
            n_embd,
            n_head_kv * head_dim,
            &mut rng,
        ));
        tensors.push(mat(
            n("attn_v.weight"),
            n_embd,
            n_head_kv * head_dim,
            &mut rng,
        ));
        if arch == "qwen2" {
            tensors.push(vec(n("attn_q.bias"), n_head * head_dim, 0.0, 0.5, &mut rng));
            tensors.push(vec(
                n("attn_k.bias"),
                n_head_kv * head_dim,
                0.0,
                0.5,
                &mut rng,
            ));
            tensors.push(vec(
                n("attn_v.bias"),
                n_head_kv * head_dim,
                0.0,
                0.5,
                &mut rng,
            ));
        }
        if arch == "qwen3" || arch == "gemma3" {
            tensors.push(vec(n("attn_q_norm.weight"), head_dim, 1.0, 0.2, &mut rng));
            tensors.push(vec(n("attn_k_norm.weight"), head_dim, 1.0, 0.2, &mut rng));
        }
        tensors.push(mat(
            n("attn_output.weight"),
            n_head * head_dim,
            n_embd,
            &mut rng,
        ));
        if arch == "gemma3" {
            tensors.push(vec(
                n("post_attention_norm.weight"),
                n_embd,
                0.5,
                0.2,
                &mut rng,
            ));
        }
        tensors.push(vec(n("ffn_norm.weight"), n_embd, 1.0, 0.2, &mut rng));
        tensors.push(mat(n("ffn_gate.weight"), n_embd, n_ff, &mut rng));
        tensors.push(mat(n("ffn_up.weight"), n_embd, n_ff, &mut rng));
        tensors.push(mat(n("ffn_down.weight"), n_ff, n_embd, &mut rng));
        if arch == "gemma3" {
            tensors.push(vec(n("post_ffw_norm.weight"), n_embd, 0.5, 0.2, &mut rng));
        }
    }
    tensors.push(vec("output_norm.weight".into(), n_embd, 1.0, 0.2, &mut rng));
    if arch == "llama" || arch == "qwen2" {
        tensors.push(mat("output.weight".into(), n_embd, N_VOCAB, &mut rng));
    }
    if arch == "llama" {
        let rf: Vec<f32> = (0..head_dim / 2).map(|j| 1.0 + j as f32 * 0.1).collect();
        tensors.push((
            TensorDesc::new("rope_freqs.weight", GgmlType::F32, &[(head_dim / 2) as u64]),
            rf,
        ));
    }
    edit(&mut tensors);
    let descs: Vec<TensorDesc> = tensors.iter().map(|(d, _)| d.clone()).collect();
    let out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = GgufWriter::new(out, &md, &descs).unwrap();
    for (d, data) in &tensors {
        let mut bytes = vec![0u8; d.n_bytes() as usize];
        d.ty.quantize_row(data, &mut bytes);
        w.write_data(&bytes).unwrap();
    }
    w.finish().unwrap();
}
