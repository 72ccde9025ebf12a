//! `tandem run`: continues a prompt, streaming the text to stdout as it is generated.
//!
//! stdout carries only the prompt and its continuation; timings go to stderr in the shape
//! of llama.cpp's summary.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::sampling_args::SamplingArgs;

use super::placement_args::PlacementArgs;
use crate::engine::{CacheType, Engine, EngineOptions};
use crate::sampling::Sampler;
use crate::tokenizer::StreamDecoder;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The GGUF model file
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// The prompt to continue
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Tokens to generate; -1: until an end-of-generation token or a full context
    #[arg(
        short = 'n',
        long = "n-predict",
        default_value_t = 128,
        allow_negative_numbers = true
    )]
    pub n_predict: i64,
    /// Context size (default: the model's, at most 4096)
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads (default: physical cores)
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Most prompt tokens per forward pass
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// KV cache element type: f16 or f32
    #[arg(long = "cache-type", default_value = "f16")]
    pub cache_type: CacheType,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let t_load = Instant::now();
    let mut engine = Engine::load(
        &args.model,
        EngineOptions {
            n_ctx: args.ctx_size,
            n_batch: args.batch_size,
            n_threads: args.threads,
            cache_type: args.cache_type,
            ..args.placement.apply(EngineOptions::default())
        },
    )?;
    super::placement_args::report_auto_plan(&engine);
    if let Some(placement) = engine.placement_summary() {
        eprintln!("{placement}");
    }
    let load_time = t_load.elapsed();
    let mut sampler = make_sampler(&args)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let report = generate(&mut engine, &args, &mut sampler, &mut out)?;
    out.flush()?;
    drop(out);
    report.print(load_time);
    Ok(())
}

/// Time spent and tokens processed, for the summary on stderr.
struct Report {
    prompt_tokens: usize,
    prompt_time: Duration,
    generated: usize,
    gen_time: Duration,
}

impl Report {
    fn print(&self, load: Duration) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let line = |what: &str, d: Duration, n: usize, unit: &str| {
            let per = if n > 0 { ms(d) / n as f64 } else { 0.0 };
            let tps = if d.as_secs_f64() > 0.0 {
                n as f64 / d.as_secs_f64()
            } else {
                0.0
            };
            eprintln!(
                "{what:>16} = {:10.2} ms / {n:5} {unit} ({per:8.2} ms per token, {tps:8.2} tokens per second)",
                ms(d)
            );
        };
        eprintln!();
        eprintln!("{:>16} = {:10.2} ms", "load time", ms(load));
        line(
            "prompt eval time",
            self.prompt_time,
            self.prompt_tokens,
            "tokens",
        );
        line("eval time", self.gen_time, self.generated, "runs  ");
        eprintln!(
            "{:>16} = {:10.2} ms / {:5} tokens",
            "total time",
            ms(load + self.prompt_time + self.gen_time),
            self.prompt_tokens + self.generated
        );
    }
}

/// Picks the next token from the logits and the token history.
type Pick = Box<dyn FnMut(&[f32], &[u32]) -> u32>;

/// The token picker of the sampling flags. Until the sampling module is merged only
/// greedy decoding is available.
fn make_sampler(args: &RunArgs) -> anyhow::Result<Pick> {
    let mut sampler = Sampler::new(args.sampling.to_params()?);
    Ok(Box::new(move |logits: &[f32], history: &[u32]| {
        sampler.sample(logits, history)
    }))
}

/// Evaluates the prompt, then picks, prints and feeds back one token at a time.
fn generate(
    engine: &mut Engine,
    args: &RunArgs,
    pick: &mut Pick,
    out: &mut impl Write,
) -> anyhow::Result<Report> {
    let tokenizer = engine.shared_tokenizer();
    let mut history = tokenizer.encode(&args.prompt, true, true);
    if history.is_empty() {
        anyhow::bail!("the prompt is empty");
    }
    let n_ctx = engine.n_ctx();
    if history.len() > n_ctx {
        anyhow::bail!(
            "prompt has {} tokens but the context is {n_ctx}; raise -c",
            history.len()
        );
    }
    write!(out, "{}", args.prompt)?;
    out.flush()?;
    let limit = if args.n_predict < 0 {
        usize::MAX
    } else {
        args.n_predict as usize
    };
    let mut decoder = StreamDecoder::new(&tokenizer, false);
    let prompt_tokens = history.len();
    let t_prompt = Instant::now();
    let mut token = pick(engine.eval(&history)?, &history);
    let prompt_time = t_prompt.elapsed();
    let t_gen = Instant::now();
    let mut generated = 0;
    while generated < limit && !tokenizer.is_end_of_generation(token) {
        out.write_all(decoder.push(token).as_bytes())?;
        out.flush()?;
        history.push(token);
        generated += 1;
        if generated == limit || engine.n_past() >= n_ctx {
            break;
        }
        token = pick(engine.eval(&[token])?, &history);
    }
    out.write_all(decoder.finish().as_bytes())?;
    writeln!(out)?;
    Ok(Report {
        prompt_tokens,
        prompt_time,
        generated,
        gen_time: t_gen.elapsed(),
    })
}
