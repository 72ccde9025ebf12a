//! `tandem serve`: an OpenAI-compatible HTTP server over a multi-sequence engine with
//! continuous batching.
//!
//! The model lives on one engine thread ([`scheduler`]); the HTTP side ([`api`], axum on
//! a small tokio runtime) tokenizes, validates and hands requests over by channel, so a
//! bad request never reaches the engine and a slow client never stalls it.

pub mod api;
pub mod metrics;
pub mod model;
pub mod scheduler;
pub mod stop;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;

pub use model::SequenceModel;

use crate::chat::ChatTemplate;
use crate::model::Pooling;
use metrics::Metrics;
use scheduler::Scheduler;

/// How the server listens and answers (the model's own options are the loader's).
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Address to bind, e.g. `127.0.0.1:8080` (port 0 picks a free one).
    pub bind: String,
    pub api_key: Option<String>,
    /// Requests that may wait for a free sequence before new ones get 503.
    pub max_queue: usize,
    /// Embedding pooling; `None`: the model's metadata, else mean.
    pub pooling: Option<Pooling>,
    /// The model name `/v1/models` lists.
    pub model_id: String,
}

/// A server running on its own threads.
pub struct RunningServer {
    pub addr: SocketAddr,
    http: JoinHandle<anyhow::Result<()>>,
    engine: JoinHandle<()>,
}

impl RunningServer {
    /// Loads the model (through `load`, on the engine thread), binds the address and
    /// serves until `shutdown` completes.
    pub fn start<M, F, S>(
        load: F,
        template: ChatTemplate,
        options: ServerOptions,
        shutdown: S,
    ) -> anyhow::Result<RunningServer>
    where
        M: SequenceModel,
        F: FnOnce() -> anyhow::Result<M> + Send + 'static,
        S: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(&options.bind).with_context(|| {
            format!(
                "cannot listen on {}: is another server using the port? pick one with --port",
                options.bind
            )
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::default());
        let (scheduler, facts, engine) = Scheduler::start(load, options.max_queue, metrics)?;
        let pooling = crate::embedding::resolve_pooling(options.pooling, facts.pooling);
        let app = Arc::new(api::App::new(
            scheduler,
            facts,
            template,
            options.model_id,
            pooling,
            options.api_key,
        ));
        let http = std::thread::Builder::new()
            .name("tandem-http".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("tandem-http")
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, api::router(app))
                        .with_graceful_shutdown(shutdown)
                        .await?;
                    Ok(())
                })
            })?;
        Ok(RunningServer { addr, http, engine })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for the shutdown signal and the open requests, then for the engine thread.
    pub fn join(self) -> anyhow::Result<()> {
        let served = self
            .http
            .join()
            .map_err(|_| anyhow::anyhow!("the HTTP thread panicked"))?;
        // The router (and with it every Scheduler handle) is gone: the engine loop ends.
        self.engine
            .join()
            .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
        served
    }
}
