//! `tandem info`: what a GGUF model is, from its header alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use serde_json::Value as Json;

use crate::gguf::{Array, GgufFile, Metadata, TensorInfo, Value};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The GGUF model file
    pub model: PathBuf,
    /// Also list every tensor: name, type, shape, bytes
    #[arg(long)]
    pub tensors: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// A special token: its id and piece.
#[derive(Debug, Serialize)]
pub struct SpecialToken {
    pub id: u64,
    pub piece: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TokenizerSummary {
    pub model: Option<String>,
    pub pre: Option<String>,
    pub vocab_size: usize,
    pub merges: usize,
    pub bos: Option<SpecialToken>,
    pub eos: Option<SpecialToken>,
    pub unk: Option<SpecialToken>,
    pub pad: Option<SpecialToken>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub has_chat_template: bool,
}

/// Tensors of one type.
#[derive(Debug, Default, Serialize)]
pub struct TypeCount {
    pub tensors: usize,
    pub elements: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct TensorEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub shape: Vec<u64>,
    pub bytes: u64,
}

/// Everything `tandem info` reports.
#[derive(Debug, Serialize)]
pub struct ModelInfo {
    pub file: String,
    pub file_size: u64,
    pub gguf_version: u32,
    pub alignment: u64,
    pub architecture: Option<String>,
    pub name: Option<String>,
    pub file_type: Option<String>,
    /// Hyperparameters by short name (values as stored; arrays shown as text).
    pub hyperparameters: BTreeMap<String, Json>,
    pub tokenizer: TokenizerSummary,
    pub tensor_count: usize,
    pub types: BTreeMap<String, TypeCount>,
    pub parameters: u64,
    pub tensor_bytes: u64,
    pub bits_per_weight: f64,
    pub embedding_bytes: Option<u64>,
    /// `None` when the output is tied to the embedding.
    pub output_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensors: Option<Vec<TensorEntry>>,
}

/// llama.cpp's name for a `general.file_type` (`llama_ftype`) value.
pub fn file_type_name(ftype: u64) -> &'static str {
    match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        1024 => "guessed",
        _ => "unknown",
    }
}

/// A metadata value as JSON: numbers stay numbers, anything else becomes its short text.
fn json_of(v: &Value) -> Json {
    if let Some(u) = v.as_u64() {
        return Json::from(u);
    }
    if let Some(i) = v.as_i64() {
        return Json::from(i);
    }
    if let Some(f) = v.as_f64() {
        // f32 values printed through f64 would show noise digits (1e-6 as 9.99e-7).
        let shown: f64 = match v {
            Value::F32(x) => x.to_string().parse().unwrap_or(f),
            _ => f,
        };
        return Json::from(shown);
    }
    if let Some(b) = v.as_bool() {
        return Json::from(b);
    }
    Json::from(v.to_string())
}

/// The hyperparameters worth showing: (short name, key under `ARCH.`).
const HYPERPARAMETERS: [(&str, &str); 15] = [
    ("context_length", "context_length"),
    ("embedding_length", "embedding_length"),
    ("block_count", "block_count"),
    ("feed_forward_length", "feed_forward_length"),
    ("head_count", "attention.head_count"),
    ("head_count_kv", "attention.head_count_kv"),
    ("key_length", "attention.key_length"),
    ("value_length", "attention.value_length"),
    ("rms_epsilon", "attention.layer_norm_rms_epsilon"),
    ("sliding_window", "attention.sliding_window"),
    ("rope_dimension_count", "rope.dimension_count"),
    ("rope_freq_base", "rope.freq_base"),
    ("rope_scaling_type", "rope.scaling.type"),
    ("rope_scaling_factor", "rope.scaling.factor"),
    ("vocab_size", "vocab_size"),
];

fn hyperparameters(md: &Metadata, arch: &str) -> BTreeMap<String, Json> {
    let mut out = BTreeMap::new();
    for (short, key) in HYPERPARAMETERS {
        if let Some(v) = md.get(&format!("{arch}.{key}")) {
            out.insert(short.to_string(), json_of(v));
        }
    }
    // The head width a loader uses when key_length is absent.
    if !out.contains_key("key_length") {
        let embd = md
            .opt_u64(&format!("{arch}.embedding_length"))
            .ok()
            .flatten();
        let heads = md
            .opt_u64(&format!("{arch}.attention.head_count"))
            .ok()
            .flatten();
        if let Some(d) = embd.zip(heads).and_then(|(e, h)| e.checked_div(h)) {
            out.insert("head_dim".into(), Json::from(d));
        }
    } else {
        out.insert("head_dim".into(), out["key_length"].clone());
    }
    out
}

fn tokenizer_summary(md: &Metadata) -> TokenizerSummary {
    let tokens = md
        .opt_str_array("tokenizer.ggml.tokens")
        .ok()
        .flatten()
        .unwrap_or_default();
    let special = |what: &str| {
        let id = md
            .opt_u64(&format!("tokenizer.ggml.{what}_token_id"))
            .ok()
            .flatten()?;
        let piece = usize::try_from(id)
            .ok()
            .and_then(|i| tokens.get(i))
            .map(|s| s.to_string());
        Some(SpecialToken { id, piece })
    };
    let text = |key: &str| md.opt_str(key).ok().flatten().map(str::to_string);
    let flag = |key: &str| md.opt_bool(key).ok().flatten();
    TokenizerSummary {
        model: text("tokenizer.ggml.model"),
        pre: text("tokenizer.ggml.pre"),
        vocab_size: tokens.len(),
        merges: md
            .get("tokenizer.ggml.merges")
            .and_then(Value::as_array)
            .map_or(0, Array::len),
        bos: special("bos"),
        eos: special("eos"),
        unk: special("unknown"),
        pad: special("padding"),
        add_bos: flag("tokenizer.ggml.add_bos_token"),
        add_eos: flag("tokenizer.ggml.add_eos_token"),
        has_chat_template: md.contains("tokenizer.chat_template"),
    }
}

/// Gathers the report for an open file.
pub fn model_info(f: &GgufFile, with_tensors: bool) -> ModelInfo {
    let md = f.metadata();
    let text = |key: &str| md.opt_str(key).ok().flatten().map(str::to_string);
    let architecture = text("general.architecture");
    let mut types: BTreeMap<String, TypeCount> = BTreeMap::new();
    for t in f.tensors() {
        let c = types.entry(t.ty.name().to_string()).or_default();
        c.tensors += 1;
        c.elements += t.n_elements();
        c.bytes += t.n_bytes;
    }
    let parameters: u64 = types.values().map(|c| c.elements).sum();
    let tensor_bytes: u64 = types.values().map(|c| c.bytes).sum();
    let entry = |t: &TensorInfo| TensorEntry {
        name: t.name.clone(),
        ty: t.ty.name().to_string(),
        shape: t.dims.clone(),
        bytes: t.n_bytes,
    };
    ModelInfo {
        file: f.path().display().to_string(),
        file_size: f.file_size(),
        gguf_version: f.header().version,
        alignment: f.header().alignment,
        hyperparameters: architecture
            .as_deref()
            .map(|a| hyperparameters(md, a))
            .unwrap_or_default(),
        architecture,
        name: text("general.name"),
        file_type: md
            .opt_u64("general.file_type")
            .ok()
            .flatten()
            .map(|v| format!("{} ({v})", file_type_name(v))),
        tokenizer: tokenizer_summary(md),
        tensor_count: f.tensors().len(),
        types,
        parameters,
        tensor_bytes,
        bits_per_weight: if parameters == 0 {
            0.0
        } else {
            tensor_bytes as f64 * 8.0 / parameters as f64
        },
        embedding_bytes: f.tensor("token_embd.weight").map(|t| t.n_bytes),
        output_bytes: f.tensor("output.weight").map(|t| t.n_bytes),
        tensors: with_tensors.then(|| f.tensors().iter().map(entry).collect()),
    }
}

/// Bytes as a short human figure (MiB/GiB).
fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let x = n as f64;
    if x >= 1024.0 * MIB {
        format!("{:.2} GiB", x / (1024.0 * MIB))
    } else {
        format!("{:.2} MiB", x / MIB)
    }
}

fn shown(j: &Json) -> String {
    match j {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn special_text(name: &str, t: &Option<SpecialToken>) -> Option<String> {
    let t = t.as_ref()?;
    Some(match &t.piece {
        Some(p) => format!("{name} {} {p:?}", t.id),
        None => format!("{name} {} (out of the vocabulary)", t.id),
    })
}

/// The human-readable report.
pub fn render_text(info: &ModelInfo) -> String {
    let mut s = String::new();
    let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(
        s,
        "file:          {} ({} bytes, {}, GGUF v{})",
        info.file,
        info.file_size,
        human_bytes(info.file_size),
        info.gguf_version
    );
    let _ = writeln!(s, "architecture:  {}", or_dash(&info.architecture));
    let _ = writeln!(s, "name:          {}", or_dash(&info.name));
    let _ = writeln!(s, "file type:     {}", or_dash(&info.file_type));
    let _ = writeln!(s, "hyperparameters:");
    for (k, v) in &info.hyperparameters {
        let _ = writeln!(s, "  {k:<22}{}", shown(v));
    }
    let t = &info.tokenizer;
    let _ = writeln!(
        s,
        "tokenizer:     {} (pre {}), {} tokens, {} merges{}",
        or_dash(&t.model),
        or_dash(&t.pre),
        t.vocab_size,
        t.merges,
        if t.has_chat_template {
            ", chat template"
        } else {
            ""
        }
    );
    let specials: Vec<String> = [
        special_text("bos", &t.bos),
        special_text("eos", &t.eos),
        special_text("unk", &t.unk),
        special_text("pad", &t.pad),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !specials.is_empty() {
        let _ = writeln!(s, "  {}", specials.join(", "));
    }
    let flag = |b: Option<bool>| b.map_or("unset".to_string(), |b| b.to_string());
    let _ = writeln!(
        s,
        "  add_bos {}, add_eos {}",
        flag(t.add_bos),
        flag(t.add_eos)
    );
    let _ = writeln!(s, "tensors:       {}", info.tensor_count);
    for (ty, c) in &info.types {
        let _ = writeln!(
            s,
            "  {ty:<6}{:>5} tensors {:>14} weights {:>12}",
            c.tensors,
            c.elements,
            human_bytes(c.bytes)
        );
    }
    let _ = writeln!(
        s,
        "total:         {} weights, {} of tensor data ({} bytes), {:.2} bits per weight",
        info.parameters,
        human_bytes(info.tensor_bytes),
        info.tensor_bytes,
        info.bits_per_weight
    );
    let _ = writeln!(
        s,
        "embedding:     {}",
        info.embedding_bytes.map_or("-".into(), human_bytes)
    );
    let _ = writeln!(
        s,
        "output:        {}",
        match (info.output_bytes, info.embedding_bytes) {
            (Some(b), _) => human_bytes(b),
            (None, Some(_)) => "tied to the embedding".into(),
            (None, None) => "-".into(),
        }
    );
    if let Some(list) = &info.tensors {
        let width = list.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in list {
            let dims: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "  {:<width$}  {:<5} [{}] {} bytes",
                t.name,
                t.ty,
                dims.join(", "),
                t.bytes
            );
        }
    }
    s
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let f = GgufFile::open(&args.model)?;
    let info = model_info(&f, args.tensors);
    let report = if args.json {
        serde_json::to_string_pretty(&info)? + "\n"
    } else {
        render_text(&info)
    };
    write_stdout(&report)
}

/// Writes to stdout; a closed pipe (`tandem info ... | head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
