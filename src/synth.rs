//! Synthetic models: real shapes, a real tokenizer copied from a vocab GGUF, and seeded
//! random weights, written one chunk of rows at a time so that memory stays flat even
//! for a 70B model.
//!
//! Every row's values depend only on the seed, the tensor's name and the row number, so
//! the same seed gives the same underlying weights whatever the type or thread count
//! (an F32 model and a Q4_0 model of one seed differ only by quantization).

use std::path::Path;

use anyhow::{bail, Context};

use crate::gguf::{write_gguf_file, GgufFile, Metadata, TensorDesc, Value};
use crate::quant::GgmlType;
use crate::weight_types::{fit_type, WeightTypeChoice};

/// The architectures synth writes: all those the engine runs.
pub use crate::model::Arch;

/// Preset names accepted by [`SynthSpec::preset`].
pub const PRESETS: [&str; 6] = ["tiny", "1b", "7b", "13b", "33b", "70b"];

/// Everything that decides a synthetic model's file.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSpec {
    pub arch: Arch,
    /// `general.name`.
    pub name: String,
    pub n_embd: usize,
    pub n_blocks: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rope_freq_base: f32,
    pub rms_eps: f32,
    /// gemma3's `attention.sliding_window` (blocks i with i % 6 < 5 use it).
    pub sliding_window: Option<usize>,
    /// No `output.weight`: the output reuses `token_embd` (always so for gemma3).
    pub tied_output: bool,
    /// Type of the 2-D weights; norms and biases are always F32.
    pub weight_type: WeightTypeChoice,
    pub seed: u64,
    /// Build each quantized matrix from a pool of [`BLOCK_POOL_ROWS`] quantized random rows,
    /// each row's blocks picked from the pool's rows at random: valid blocks of the right
    /// distribution without quantizing every row (a 70B K-quant model otherwise takes
    /// hours to write). Weights are then no longer the reference rows of the seed.
    pub block_pool: bool,
    /// Worker threads for generating and quantizing (at least 1).
    pub threads: usize,
}

impl SynthSpec {
    /// A named preset (`tiny`, `1b`, `7b`, `13b`, `33b`, `70b`) for `arch`, with F32
    /// weights and seed 0. Every preset's widths are multiples of 256, so every type
    /// (K-quants included) fits without fallback. `tiny` exists for every arch (gemma3's
    /// has 6 blocks so that block 5 is a global-attention block, and a 32-token window);
    /// the big presets are llama-only.
    pub fn preset(arch: Arch, preset: &str) -> anyhow::Result<SynthSpec> {
        let (n_embd, n_blocks, n_ff, n_head, n_head_kv, ctx) = match preset {
            "tiny" => (256, 2, 512, 4, 2, 512),
            "1b" => (2048, 16, 5632, 32, 4, 2048),
            "7b" => (4096, 32, 11008, 32, 32, 4096),
            "13b" => (5120, 40, 13824, 40, 40, 4096),
            "33b" => (6656, 60, 17920, 52, 52, 2048),
            "70b" => (8192, 80, 28672, 64, 8, 4096),
            other => bail!("unknown preset `{other}` (known: {})", PRESETS.join(", ")),
        };
        if preset != "tiny" && arch != Arch::Llama {
            bail!(
                "preset `{preset}` exists for llama only; {} has only `tiny`",
                arch.name()
            );
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut spec = SynthSpec {
            arch,
            name: format!("synth-{}-{preset}", arch.name()),
            n_embd,
            n_blocks,
            n_ff,
            n_head,
            n_head_kv,
            head_dim: n_embd / n_head,
            context_length: ctx,
            rope_freq_base: 10000.0,
            rms_eps: 1e-5,
            sliding_window: None,
            tied_output: false,
            weight_type: WeightTypeChoice::Uniform(GgmlType::F32),
            seed: 0,
            block_pool: false,
            threads,
        };
        match arch {
            Arch::Llama => {}
            Arch::Qwen2 | Arch::Qwen3 => {
                spec.rope_freq_base = 1_000_000.0;
                spec.rms_eps = 1e-6;
                spec.tied_output = true;
            }
            Arch::Gemma3 => {
                spec.rope_freq_base = 1_000_000.0;
                spec.rms_eps = 1e-6;
                spec.tied_output = true;
                spec.n_blocks = 6;
                spec.sliding_window = Some(32);
            }
        }
        Ok(spec)
    }

    fn check(&self) -> anyhow::Result<()> {
        let dims = [
            self.n_embd,
            self.n_blocks,
            self.n_ff,
            self.n_head,
            self.n_head_kv,
            self.head_dim,
        ];
        if dims.contains(&0) {
            bail!("every model dimension must be positive: {self:?}");
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            bail!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.n_head,
                self.n_head_kv
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!("head_dim {} must be even for rope", self.head_dim);
        }
        if self.arch == Arch::Gemma3 && !self.tied_output {
            bail!("gemma3 models always tie the output to token_embd");
        }
        Ok(())
    }

    /// The metadata of the model (without the tokenizer keys).
    fn model_metadata(&self, n_vocab: usize) -> Metadata {
        let a = self.arch.name();
        let mut md = Metadata::new();
        let u32v = |v: usize| Value::U32(v as u32);
        md.set("general.architecture", Value::String(a.into()));
        md.set("general.name", Value::String(self.name.clone()));
        md.set(
            "general.file_type",
            Value::U32(self.weight_type.file_type()),
        );
        md.set("general.quantization_version", Value::U32(2));
        md.set(format!("{a}.vocab_size"), u32v(n_vocab));
        md.set(format!("{a}.context_length"), u32v(self.context_length));
        md.set(format!("{a}.embedding_length"), u32v(self.n_embd));
        md.set(format!("{a}.block_count"), u32v(self.n_blocks));
        md.set(format!("{a}.feed_forward_length"), u32v(self.n_ff));
        md.set(format!("{a}.attention.head_count"), u32v(self.n_head));
        md.set(format!("{a}.attention.head_count_kv"), u32v(self.n_head_kv));
        md.set(format!("{a}.attention.key_length"), u32v(self.head_dim));
        md.set(format!("{a}.attention.value_length"), u32v(self.head_dim));
        md.set(
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(self.rms_eps),
        );
        md.set(format!("{a}.rope.dimension_count"), u32v(self.head_dim));
        md.set(
            format!("{a}.rope.freq_base"),
            Value::F32(self.rope_freq_base),
        );
        if let Some(w) = self.sliding_window {
            md.set(format!("{a}.attention.sliding_window"), u32v(w));
        }
        md
    }

    /// The tensors the model file will hold (names, types, shapes), in file order.
    pub fn tensor_descs(&self, n_vocab: usize) -> Vec<TensorDesc> {
        self.tensor_plan(n_vocab)
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    }

    /// Every tensor of the model, in file order, with how to fill it.
    fn tensor_plan(&self, n_vocab: usize) -> Vec<(TensorDesc, Fill)> {
        let (e, f) = (self.n_embd as u64, self.n_ff as u64);
        let q_width = (self.n_head * self.head_dim) as u64;
        let kv_width = (self.n_head_kv * self.head_dim) as u64;
        let hd = self.head_dim as u64;
        let mut plan = Vec::new();
        let matrix = |plan: &mut Vec<(TensorDesc, Fill)>, name: String, cols: u64, rows: u64| {
            let ty = self
                .weight_type
                .matrix_type(&name, self.n_blocks, self.tied_output);
            let ty = fit_type(ty, cols as usize);
            plan.push((TensorDesc::new(name, ty, &[cols, rows]), Fill::Matrix));
        };
        let vector = |plan: &mut Vec<(TensorDesc, Fill)>, name: String, len: u64, fill: Fill| {
            plan.push((TensorDesc::new(name, GgmlType::F32, &[len]), fill));
        };
        matrix(&mut plan, "token_embd.weight".into(), e, n_vocab as u64);
        vector(&mut plan, "output_norm.weight".into(), e, Fill::Norm);
        if !self.tied_output {
            matrix(&mut plan, "output.weight".into(), e, n_vocab as u64);
        }
        let arch = self.arch;
        for i in 0..self.n_blocks {
            let n = |s: &str| format!("blk.{i}.{s}");
            vector(&mut plan, n("attn_norm.weight"), e, Fill::Norm);
            matrix(&mut plan, n("attn_q.weight"), e, q_width);
            matrix(&mut plan, n("attn_k.weight"), e, kv_width);
            matrix(&mut plan, n("attn_v.weight"), e, kv_width);
            if arch == Arch::Qwen2 {
                vector(&mut plan, n("attn_q.bias"), q_width, Fill::Bias);
                vector(&mut plan, n("attn_k.bias"), kv_width, Fill::Bias);
                vector(&mut plan, n("attn_v.bias"), kv_width, Fill::Bias);
            }
            if matches!(arch, Arch::Qwen3 | Arch::Gemma3) {
                vector(&mut plan, n("attn_q_norm.weight"), hd, Fill::Norm);
                vector(&mut plan, n("attn_k_norm.weight"), hd, Fill::Norm);
            }
            matrix(&mut plan, n("attn_output.weight"), q_width, e);
            if arch == Arch::Gemma3 {
                vector(&mut plan, n("post_attention_norm.weight"), e, Fill::Norm);
            }
            vector(&mut plan, n("ffn_norm.weight"), e, Fill::Norm);
            matrix(&mut plan, n("ffn_gate.weight"), e, f);
            matrix(&mut plan, n("ffn_up.weight"), e, f);
            matrix(&mut plan, n("ffn_down.weight"), f, e);
            if arch == Arch::Gemma3 {
                vector(&mut plan, n("post_ffw_norm.weight"), e, Fill::Norm);
            }
        }
        plan
    }
}

/// How a tensor's values are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// Uniform with standard deviation 1/sqrt(row length), so a product with a unit-RMS
    /// vector keeps unit scale.
    Matrix,
    /// 1 ± 0.1 (RMSNorm weights; gemma's +1 is folded in as in real files).
    Norm,
    /// ±0.05.
    Bias,
}

/// splitmix64: a tiny, well-mixed 64-bit generator; enough for random weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_signed_unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32) * (2.0 / (1u64 << 24) as f32) - 1.0
    }
}

/// FNV-1a, to turn a tensor name into part of its seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fills `row` (row number `row_index` of the tensor whose seed is `tensor_seed`).
fn fill_row(fill: Fill, tensor_seed: u64, row_index: u64, row: &mut [f32]) {
    let mut rng = SplitMix64(tensor_seed ^ row_index.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    rng.next_u64();
    let (center, half_width) = match fill {
        // Uniform on [-a, a] has standard deviation a / sqrt(3).
        Fill::Matrix => (0.0, (3.0 / row.len() as f32).sqrt()),
        Fill::Norm => (1.0, 0.1),
        Fill::Bias => (0.0, 0.05),
    };
    for x in row.iter_mut() {
        *x = center + half_width * rng.next_signed_unit();
    }
}

/// The values of row `row_index` of tensor `name` in a model of seed `seed` (what synth
/// writes before quantization); `fill` by the tensor's rank: 2-D weights get the
/// matrix distribution, 1-D norms ~1 and biases ~0.
pub fn reference_row(seed: u64, name: &str, row_index: u64, row: &mut [f32]) {
    let fill = if name.ends_with(".bias") {
        Fill::Bias
    } else if name.contains("norm") {
        Fill::Norm
    } else {
        Fill::Matrix
    };
    fill_row(fill, seed ^ name_hash(name), row_index, row);
}

/// Distinct quantized rows per matrix when [`SynthSpec::block_pool`] is set.
pub const BLOCK_POOL_ROWS: u64 = 256;

/// Row `row_index` assembled block by block from `pool` (whole quantized rows of
/// `out.len()` bytes): every block of every format is self-contained, so block j may
/// come from any pool row's block j.
fn pooled_row(pool: &[u8], block_bytes: usize, tensor_seed: u64, row_index: u64, out: &mut [u8]) {
    let row_bytes = out.len();
    let mut rng = SplitMix64(tensor_seed ^ row_index.wrapping_mul(0x9FB2_1C65_1E98_DF25));
    for (j, block) in out.chunks_exact_mut(block_bytes).enumerate() {
        let source_row = (rng.next_u64() % BLOCK_POOL_ROWS) as usize;
        let at = source_row * row_bytes + j * block_bytes;
        block.copy_from_slice(&pool[at..at + block_bytes]);
    }
}

/// Splits `out` (whole rows of `row_bytes`) among `threads` workers; `encode(row, bytes,
/// scratch)` writes row number `row` (counted within `out`) into `bytes`, with an f32
/// scratch buffer of its own.
pub(crate) fn encode_rows_parallel<F>(
    out: &mut [u8],
    row_bytes: usize,
    row_len: usize,
    threads: usize,
    encode: &F,
) where
    F: Fn(usize, &mut [u8], &mut [f32]) + Sync,
{
    let n_rows = out.len() / row_bytes;
    let per_thread = n_rows.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (part_index, part) in out.chunks_mut(per_thread * row_bytes).enumerate() {
            s.spawn(move || {
                let mut scratch = vec![0f32; row_len];
                for (i, bytes) in part.chunks_mut(row_bytes).enumerate() {
                    encode(part_index * per_thread + i, bytes, &mut scratch);
                }
            });
        }
    });
}

/// Rows per write so that a chunk holds about this many elements.
const CHUNK_ELEMS: usize = 1 << 21;

/// Writes the model `spec` with the tokenizer of `vocab` to `out_path` (through a temporary
/// file renamed at the end). `progress(done, total)` is called with tensor-data bytes.
pub fn write_synth_model(
    spec: &SynthSpec,
    vocab: &GgufFile,
    out_path: &Path,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<()> {
    spec.check()?;
    let vocab_md = vocab.metadata();
    let n_vocab = vocab_md
        .str_array("tokenizer.ggml.tokens")
        .with_context(|| format!("{}: no vocabulary", vocab.path().display()))?
        .len();
    if n_vocab == 0 {
        bail!("{}: the vocabulary is empty", vocab.path().display());
    }
    let mut md = spec.model_metadata(n_vocab);
    for (key, value) in vocab_md.iter() {
        if key.starts_with("tokenizer.") {
            md.set(key, value.clone());
        }
    }
    let plan = spec.tensor_plan(n_vocab);
    let descs: Vec<TensorDesc> = plan.iter().map(|(d, _)| d.clone()).collect();
    let total: u64 = descs.iter().map(TensorDesc::n_bytes).sum();

    write_gguf_file(out_path, &md, &descs, |writer| {
        let mut done = 0u64;
        progress(0, total);
        let mut chunk = Vec::new();
        for (desc, fill) in &plan {
            let row_len = desc.dims[0] as usize;
            let n_rows: u64 = desc.dims[1..].iter().product();
            let row_bytes = desc.ty.bytes_for(row_len as u64).expect("rows fit") as usize;
            let rows_per_chunk = (CHUNK_ELEMS / row_len).max(1) as u64;
            let tensor_seed = spec.seed ^ name_hash(&desc.name);
            let pool = (spec.block_pool && desc.ty.is_quantized() && n_rows > BLOCK_POOL_ROWS)
                .then(|| {
                    let mut pool = vec![0u8; BLOCK_POOL_ROWS as usize * row_bytes];
                    let (ty, fill) = (desc.ty, *fill);
                    encode_rows_parallel(
                        &mut pool,
                        row_bytes,
                        row_len,
                        spec.threads,
                        &|r, bytes, scratch| {
                            fill_row(fill, tensor_seed, r as u64, scratch);
                            ty.quantize_row(scratch, bytes);
                        },
                    );
                    pool
                });
            let mut first = 0u64;
            while first < n_rows {
                let rows = rows_per_chunk.min(n_rows - first);
                chunk.resize(rows as usize * row_bytes, 0u8);
                let ty = desc.ty;
                let fill = *fill;
                encode_rows_parallel(
                    &mut chunk,
                    row_bytes,
                    row_len,
                    spec.threads,
                    &|r, bytes, scratch| match &pool {
                        Some(pool) => {
                            pooled_row(pool, ty.block_bytes(), tensor_seed, first + r as u64, bytes)
                        }
                        None => {
                            fill_row(fill, tensor_seed, first + r as u64, scratch);
                            ty.quantize_row(scratch, bytes);
                        }
                    },
                );
                writer.write_data(&chunk)?;
                done += chunk.len() as u64;
                progress(done, total);
                first += rows;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_the_intended_statistics() {
        let mut row = vec![0f32; 4096];
        fill_row(Fill::Matrix, 7, 3, &mut row);
        let mean = row.iter().sum::<f32>() / row.len() as f32;
        let var = row.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / row.len() as f32;
        let want = 1.0 / row.len() as f32;
        assert!(
            mean.abs() < 3.0 * (want / row.len() as f32).sqrt(),
            "mean {mean}"
        );
        assert!((var / want - 1.0).abs() < 0.1, "var {var} vs {want}");
        fill_row(Fill::Norm, 7, 0, &mut row);
        assert!(row.iter().all(|x| (0.9..=1.1).contains(x)));
        let mut other = vec![0f32; 4096];
        fill_row(Fill::Norm, 7, 1, &mut other);
        assert_ne!(row, other, "rows must differ");
    }

    #[test]
    fn presets_have_the_published_parameter_counts() {
        // LLaMA-1/2 parameter counts with the 32000-token vocabulary; `1b` is TinyLlama's
        // shape with 16 instead of 22 blocks (1,100,048,384 - 6 * 44,044,288).
        let published = [
            ("1b", 835_782_656u64),
            ("7b", 6_738_415_616),
            ("13b", 13_015_864_320),
            ("33b", 32_528_943_616),
            ("70b", 68_976_648_192),
        ];
        for (preset, params) in published {
            let spec = SynthSpec::preset(Arch::Llama, preset).unwrap();
            let plan = spec.tensor_plan(32000);
            let n: u64 = plan
                .iter()
                .map(|(d, _)| d.dims.iter().product::<u64>())
                .sum();
            assert_eq!(n, params, "{preset}");
            assert_eq!(plan.len(), 3 + 9 * spec.n_blocks);
        }
    }

    #[test]
    fn presets_are_whole_k_blocks() {
        for p in PRESETS {
            let s = SynthSpec::preset(Arch::Llama, p).unwrap();
            s.check().unwrap();
            // Row lengths (dims[0]) of every matrix.
            for d in [s.n_embd, s.n_ff, s.n_head * s.head_dim] {
                assert_eq!(d % 256, 0, "{p}: {d}");
            }
        }
        assert!(SynthSpec::preset(Arch::Qwen2, "7b").is_err());
        assert!(SynthSpec::preset(Arch::Llama, "3b").is_err());
    }
}
