//! `tandem embed`: the embedding of a text, pooled and L2-normalised as llama-embedding's.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::placement_args::PlacementArgs;
use crate::embedding::{embed, resolve_pooling};
use crate::engine::{Engine, EngineOptions};
use crate::model::Pooling;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// The GGUF model file
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// The text to embed
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Pooling: mean, cls or last (default: the model's, else mean)
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// Context size (default: the model's, at most 4096)
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads (default: physical cores)
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Print OpenAI's embedding JSON instead of one number per line
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let mut engine = Engine::load(
        &args.model,
        EngineOptions {
            n_ctx: args.ctx_size,
            n_threads: args.threads,
            ..args.placement.apply(EngineOptions::default())
        },
    )?;
    super::placement_args::report_auto_plan(&engine);
    let pooling = resolve_pooling(args.pooling, engine.hparams().pooling);
    let tokens = engine.tokenizer().encode(&args.prompt, true, true);
    let vector = embed(&mut engine, 0, &tokens, pooling)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        let body = serde_json::json!({
            "object": "list",
            "data": [{ "object": "embedding", "index": 0, "embedding": vector }],
            "usage": { "prompt_tokens": tokens.len(), "total_tokens": tokens.len() },
        });
        writeln!(out, "{body}")?;
    } else {
        for x in &vector {
            writeln!(out, "{x}")?;
        }
    }
    eprintln!(
        "tandem embed: {} tokens, {} dimensions, {} pooling, L2-normalised",
        tokens.len(),
        vector.len(),
        pooling.name()
    );
    Ok(())
}
