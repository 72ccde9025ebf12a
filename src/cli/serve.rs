//! `tandem serve`: the OpenAI-compatible HTTP server.

use std::path::PathBuf;

use clap::Args;

use super::placement_args::PlacementArgs;
use crate::chat::ChatTemplate;
use crate::engine::{CacheType, Engine, EngineOptions};
use crate::gguf::GgufFile;
use crate::model::Pooling;
use crate::serve::{RunningServer, ServerOptions};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The GGUF model file
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// KV cache cells in all, shared by the sequences (default: the model's context, at
    /// most 4096, times --parallel)
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Sequences decoded together (requests served at once)
    #[arg(long = "parallel", visible_alias = "np", default_value_t = 4)]
    pub parallel: usize,
    /// Requests that may wait for a free sequence; more get 503
    #[arg(long = "queue", default_value_t = 64)]
    pub queue: usize,
    /// Threads (default: physical cores)
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Most prompt tokens per forward pass
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// KV cache element type: f16 or f32
    #[arg(long = "cache-type", default_value = "f16")]
    pub cache_type: CacheType,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health
    #[arg(long = "api-key")]
    pub api_key: Option<String>,
    /// Embedding pooling: mean, cls or last (default: the model's, else mean)
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// The model name clients see (default: the file's name without .gguf)
    #[arg(long)]
    pub alias: Option<String>,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let template = ChatTemplate::from_gguf(&GgufFile::open(&args.model)?)?;
    if let crate::chat::TemplateOrigin::Builtin(name) = template.origin() {
        eprintln!(
            "note: the model file has no chat template; chat uses the built-in {name} format"
        );
    }
    let model_id = args.alias.clone().unwrap_or_else(|| {
        args.model
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    });
    let options = EngineOptions {
        n_ctx: args.ctx_size,
        n_parallel: args.parallel,
        n_batch: args.batch_size,
        n_threads: args.threads,
        cache_type: args.cache_type,
        ..args.placement.apply(EngineOptions::default())
    };
    let path = args.model.clone();
    let load = move || {
        let engine = Engine::load(&path, options)?;
        super::placement_args::report_auto_plan(&engine);
        if let Some(placement) = engine.placement_summary() {
            eprintln!("{placement}");
        }
        eprintln!(
            "tandem serve: {} sequences of {} tokens ({} KV cells), {} threads",
            engine.n_seq(),
            engine.n_ctx(),
            engine.kv_cells(),
            engine.n_threads()
        );
        Ok(engine)
    };
    let server = RunningServer::start(
        load,
        template,
        ServerOptions {
            bind: format!("{}:{}", args.host, args.port),
            api_key: args.api_key,
            max_queue: args.queue,
            pooling: args.pooling,
            model_id,
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("tandem serve: stopping (finishing open requests)");
        },
    )?;
    eprintln!("tandem serve: listening on {}", server.url());
    server.join()
}
