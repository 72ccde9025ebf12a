//! `POST /v1/embeddings`: pooled, L2-normalised vectors, as floats or as base64 of
//! little-endian f32 (what the official Python client asks for by default).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::error::ApiError;
use super::generate::{engine_error, submit_error};
use super::request::{parse_body, EmbeddingInput, EmbeddingRequest};
use super::{check_token_ids, read_body, App};
use crate::serve::scheduler::EmbeddingJob;

pub async fn embeddings(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    app.count(|m| &m.requests_embedding);
    let result = async {
        let request: EmbeddingRequest = parse_body(&read_body(body)?)?;
        let base64 = match request.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::invalid_param(
                    "encoding_format",
                    format!("encoding_format must be float or base64, not `{other}`"),
                ))
            }
        };
        let n_embd = app.facts.n_embd;
        if request.dimensions.is_some_and(|d| d != n_embd) {
            return Err(ApiError::invalid_param(
                "dimensions",
                format!("this model's embeddings have {n_embd} dimensions and cannot be shortened"),
            ));
        }
        let inputs = tokenize_inputs(&app, request.input)?;
        let prompt_tokens: usize = inputs.iter().map(Vec::len).sum();
        let (reply, answer) = oneshot::channel();
        let job = EmbeddingJob {
            inputs,
            pooling: app.pooling,
            reply,
        };
        app.scheduler.embed(job).map_err(submit_error)?;
        let vectors = answer
            .await
            .map_err(|_| engine_error("the engine stopped".into()))?
            .map_err(engine_error)?;
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                json!({ "object": "embedding", "index": index, "embedding": embedding })
            })
            .collect();
        Ok(Json(json!({
            "object": "list",
            "data": data,
            "model": app.model_id,
            "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
        }))
        .into_response())
    }
    .await;
    app.finish_response(result)
}

/// Token ids of every input, each checked against the sequence's capacity.
fn tokenize_inputs(app: &App, input: EmbeddingInput) -> Result<Vec<Vec<u32>>, ApiError> {
    let tokenizer = &app.facts.tokenizer;
    let encode = |t: &str| tokenizer.encode(t, true, true);
    let inputs = match input {
        EmbeddingInput::Text(t) => vec![encode(&t)],
        EmbeddingInput::Texts(v) => v.iter().map(|t| encode(t)).collect(),
        EmbeddingInput::Tokens(ids) => vec![ids],
        EmbeddingInput::TokenLists(lists) => lists,
    };
    if inputs.is_empty() {
        return Err(ApiError::invalid_param("input", "input is empty"));
    }
    let capacity = app.facts.seq_capacity;
    for (i, ids) in inputs.iter().enumerate() {
        if ids.is_empty() {
            return Err(ApiError::invalid_param(
                "input",
                format!("input {i} is empty"),
            ));
        }
        if ids.len() > capacity {
            return Err(ApiError::invalid_param(
                "input",
                format!(
                    "input {i} has {} tokens but a sequence holds at most {capacity}; \
                     shorten it or restart the server with a larger -c",
                    ids.len()
                ),
            ));
        }
        check_token_ids(ids, tokenizer.n_vocab(), "input")?;
    }
    Ok(inputs)
}
