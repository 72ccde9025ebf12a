//! The OpenAI-compatible HTTP API on axum: routes, the API key check, and the small
//! endpoints (`/health`, `/v1/models`, `/metrics`).

pub mod embeddings;
pub mod error;
pub mod generate;
pub mod request;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use self::error::ApiError;
use super::metrics::Metrics;
use super::scheduler::{ModelFacts, Scheduler};
use crate::chat::ChatTemplate;
use crate::model::Pooling;

/// What every handler shares.
pub struct App {
    pub scheduler: Scheduler,
    pub facts: ModelFacts,
    pub template: ChatTemplate,
    /// The name `/v1/models` lists (requests may name any model: there is one).
    pub model_id: String,
    pub pooling: Pooling,
    pub api_key: Option<String>,
    pub started: u64,
    ids: AtomicU64,
}

impl App {
    pub fn new(
        scheduler: Scheduler,
        facts: ModelFacts,
        template: ChatTemplate,
        model_id: String,
        pooling: Pooling,
        api_key: Option<String>,
    ) -> App {
        App {
            scheduler,
            facts,
            template,
            model_id,
            pooling,
            api_key,
            started: unix_time(),
            ids: AtomicU64::new(0),
        }
    }

    fn metrics(&self) -> &Metrics {
        self.scheduler.metrics()
    }

    fn count(&self, counter: impl Fn(&Metrics) -> &AtomicU64) {
        counter(self.metrics()).fetch_add(1, Relaxed);
    }

    fn finish_response(&self, result: Result<Response, ApiError>) -> Response {
        result.unwrap_or_else(|e| {
            self.metrics().requests_failed.fetch_add(1, Relaxed);
            e.into_response()
        })
    }

    /// A response id unique within this server's run.
    fn next_id(&self) -> String {
        format!("{:x}{:06x}", self.started, self.ids.fetch_add(1, Relaxed))
    }

    /// A seed for a request that names none: differs between requests.
    fn fresh_seed(&self) -> u64 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos
            ^ self
                .ids
                .fetch_add(1, Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The body, or a 4xx in OpenAI's shape (too large, unreadable).
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::new(e.status(), e.body_text()))
}

fn check_token_ids(ids: &[u32], n_vocab: usize, param: &'static str) -> Result<(), ApiError> {
    match ids.iter().find(|&&id| id as usize >= n_vocab) {
        Some(id) => Err(ApiError::invalid_param(
            param,
            format!("token id {id} is outside the vocabulary of {n_vocab}"),
        )),
        None => Ok(()),
    }
}

/// Every route; `/v1/...` also answers without the prefix, as llama-server's do.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(generate::chat_completions))
        .route("/chat/completions", post(generate::chat_completions))
        .route("/v1/completions", post(generate::completions))
        .route("/completions", post(generate::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/models/{model}", get(model))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_key));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// With `--api-key`, every route but `/health` wants `Authorization: Bearer KEY`.
async fn require_key(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(key) = &app.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid or missing API key: send `Authorization: Bearer KEY`",
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

fn model_object(app: &App) -> serde_json::Value {
    json!({
        "id": app.model_id,
        "object": "model",
        "created": app.started,
        "owned_by": "tandem",
        "meta": {
            "n_seq": app.facts.n_seq,
            "n_ctx_per_seq": app.facts.seq_capacity,
            "n_embd": app.facts.n_embd,
        },
    })
}

async fn models(State(app): State<Arc<App>>) -> Response {
    Json(json!({ "object": "list", "data": [model_object(&app)] })).into_response()
}

async fn model(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if id == app.model_id {
        Json(model_object(&app)).into_response()
    } else {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no model `{id}`; this server serves `{}`", app.model_id),
        )
        .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics().render(),
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}
