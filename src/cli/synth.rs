//! `tandem synth`: a model with random weights, real shapes and a real tokenizer.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::gguf::GgufFile;
use crate::synth::{write_synth_model, Arch, SynthSpec};
use crate::weight_types::WeightTypeChoice;

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Architecture: llama, qwen2, qwen3 or gemma3
    #[arg(long, default_value = "llama")]
    pub arch: String,
    /// Size: tiny, 1b, 7b, 13b, 33b, 70b (all but tiny are llama-only)
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Weight type: F32, F16, BF16, Q4_0, Q8_0, Q4_K, ..., or the Q4_K_M mixture
    #[arg(long = "type", default_value = "F32")]
    pub weight_type: String,
    /// A GGUF file whose tokenizer (all `tokenizer.*` keys) the model gets
    #[arg(long)]
    pub vocab: PathBuf,
    /// Output file
    #[arg(short, long)]
    pub output: PathBuf,
    /// Seed of the random weights
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores)
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Assemble quantized matrices from a pool of 256 quantized random rows instead of
    /// quantizing every row: minutes instead of hours for big K-quant models, whose
    /// values then only look random
    #[arg(long)]
    pub block_pool: bool,
}

/// A byte-counting progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn byte_progress_bar(message: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let arch = Arch::from_name(&args.arch)?;
    let mut spec = SynthSpec::preset(arch, &args.preset)?;
    spec.weight_type = WeightTypeChoice::from_name(&args.weight_type)
        .with_context(|| format!("unknown weight type `{}`", args.weight_type))?;
    spec.seed = args.seed;
    spec.block_pool = args.block_pool;
    if let Some(t) = args.threads {
        spec.threads = t.max(1);
    }
    let vocab = GgufFile::open(&args.vocab)?;
    let bar = byte_progress_bar("synth");
    write_synth_model(&spec, &vocab, &args.output, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} {} {}, seed {})",
        args.output.display(),
        arch.name(),
        args.preset,
        spec.weight_type,
        spec.seed
    );
    Ok(())
}
