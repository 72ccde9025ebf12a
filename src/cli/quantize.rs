//! `tandem quantize`: converts a model's weight matrices to a quantized type, streaming
//! one chunk of rows at a time.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use crate::gguf::{write_gguf_file, GgufFile, TensorDesc, TensorInfo, Value};
use crate::quant::GgmlType;
use crate::synth::encode_rows_parallel;
use crate::weight_types::{block_index, fit_type, WeightTypeChoice};

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Input GGUF model (F32, F16 or BF16 weights)
    pub input: PathBuf,
    /// Output GGUF file
    pub output: PathBuf,
    /// Target type: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K, F16, BF16, F32, or Q4_K_M
    #[arg(value_name = "TYPE")]
    pub ty: String,
    /// Worker threads (default: all cores)
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Also convert weights that are already quantized (loses quality twice)
    #[arg(long)]
    pub allow_requantize: bool,
}

/// What happens to one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    pub name: String,
    pub from: GgmlType,
    pub to: GgmlType,
    /// Why `to` is not the requested type, when it is not.
    pub note: Option<String>,
}

/// Decides every tensor's output type, refusing inputs it should not convert.
pub fn plan_quantization(
    input: &GgufFile,
    choice: WeightTypeChoice,
    allow_requantize: bool,
) -> anyhow::Result<Vec<TensorPlan>> {
    let md = input.metadata();
    let arch = md.opt_str("general.architecture")?.unwrap_or("");
    let n_blocks = match md.opt_usize(&format!("{arch}.block_count"))? {
        Some(n) => n,
        None => input
            .tensors()
            .iter()
            .filter_map(|t| block_index(&t.name))
            .max()
            .map_or(0, |m| m + 1),
    };
    let tied = input.tensor("output.weight").is_none();
    let mut plans = Vec::with_capacity(input.tensors().len());
    for t in input.tensors() {
        let is_matrix = t.dims.len() >= 2 && t.name.ends_with(".weight");
        let (to, note) = if t.dims.len() == 1 {
            // Norms and biases: tiny, and kept exact.
            (GgmlType::F32, None)
        } else if !is_matrix {
            (t.ty, Some("not a weight matrix: kept as it is".to_string()))
        } else {
            let wanted = choice.matrix_type(&t.name, n_blocks, tied);
            let fitted = fit_type(wanted, t.row_len());
            let note = (fitted != wanted).then(|| {
                format!(
                    "row length {} is not a multiple of the {wanted} block size {}: using {fitted}",
                    t.row_len(),
                    wanted.block_elems()
                )
            });
            (fitted, note)
        };
        let float_source = matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        if to != t.ty && !float_source && !allow_requantize {
            bail!(
                "{}: tensor `{}` is already {}; tandem quantize converts F32/F16/BF16 weights \
                 (pass --allow-requantize to convert it anyway, at a loss of quality)",
                input.path().display(),
                t.name,
                t.ty
            );
        }
        plans.push(TensorPlan {
            name: t.name.clone(),
            from: t.ty,
            to,
            note,
        });
    }
    Ok(plans)
}

/// Rows per chunk so that a chunk holds about this many elements.
const CHUNK_ELEMS: usize = 1 << 21;

/// Writes `input` with its tensors converted as `plans` says (through a temporary file
/// renamed at the end); `progress(done, total)` counts output tensor bytes.
pub fn write_quantized(
    input: &GgufFile,
    plans: &[TensorPlan],
    choice: WeightTypeChoice,
    out_path: &Path,
    threads: usize,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<()> {
    let mut md = input.metadata().clone();
    md.set("general.file_type", Value::U32(choice.file_type()));
    md.set("general.quantization_version", Value::U32(2));
    let pairs: Vec<(&TensorInfo, &TensorPlan)> = input.tensors().iter().zip(plans).collect();
    let descs: Vec<TensorDesc> = pairs
        .iter()
        .map(|(t, p)| TensorDesc::new(t.name.clone(), p.to, &t.dims))
        .collect();
    let total: u64 = descs.iter().map(TensorDesc::n_bytes).sum();

    write_gguf_file(out_path, &md, &descs, |writer| {
        let mut done = 0u64;
        progress(0, total);
        let mut chunk = Vec::new();
        for (t, plan) in pairs {
            let data = input.tensor_data(t);
            if plan.to == t.ty {
                for piece in data.chunks(1 << 24) {
                    writer.write_data(piece)?;
                    done += piece.len() as u64;
                    progress(done, total);
                }
                continue;
            }
            let row_len = t.row_len();
            let n_rows = t.n_rows();
            let src_row_bytes = data.len() / n_rows;
            let dst_row_bytes = plan.to.bytes_for(row_len as u64).expect("planned to fit") as usize;
            let rows_per_chunk = (CHUNK_ELEMS / row_len).max(1);
            let mut first = 0;
            while first < n_rows {
                let rows = rows_per_chunk.min(n_rows - first);
                chunk.resize(rows * dst_row_bytes, 0u8);
                let (from, to) = (t.ty, plan.to);
                encode_rows_parallel(
                    &mut chunk,
                    dst_row_bytes,
                    row_len,
                    threads,
                    &|r, bytes, scratch| {
                        let at = (first + r) * src_row_bytes;
                        from.dequantize_row(&data[at..at + src_row_bytes], scratch);
                        to.quantize_row(scratch, bytes);
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

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let choice = WeightTypeChoice::from_name(&args.ty)
        .with_context(|| format!("unknown type `{}`", args.ty))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let input = GgufFile::open(&args.input)?;
    if args.output.exists() && args.input.canonicalize()? == args.output.canonicalize()? {
        bail!(
            "{}: output would overwrite the input",
            args.output.display()
        );
    }
    let plans = plan_quantization(&input, choice, args.allow_requantize)?;
    for p in &plans {
        if let Some(note) = &p.note {
            eprintln!("{}: {note}", p.name);
        }
    }
    let bar = super::synth::byte_progress_bar("quantize");
    write_quantized(
        &input,
        &plans,
        choice,
        &args.output,
        threads,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    let in_bytes: u64 = input.tensors().iter().map(|t| t.n_bytes).sum();
    let out = GgufFile::open(&args.output)?;
    let out_bytes: u64 = out.tensors().iter().map(|t| t.n_bytes).sum();
    eprintln!(
        "wrote {} ({choice}): tensor data {:.1} MiB -> {:.1} MiB",
        args.output.display(),
        in_bytes as f64 / (1 << 20) as f64,
        out_bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
