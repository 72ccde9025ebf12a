//! `POST /v1/chat/completions` and `POST /v1/completions`: a prompt goes to the
//! scheduler, the answer comes back whole or as server-sent events ending in `[DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::request::{parse_body, ChatRequest, CompletionRequest, Prompt, Sampling};
use super::{read_body, App};
use crate::chat::ChatMessage;
use crate::serve::scheduler::{Event, Finish, Generation, SubmitError};

/// Which of the two APIs a response is shaped for.
#[derive(Clone)]
struct Shape {
    chat: bool,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl Shape {
    fn new(app: &App, chat: bool, include_usage: bool) -> Shape {
        let prefix = if chat { "chatcmpl" } else { "cmpl" };
        Shape {
            chat,
            id: format!("{prefix}-{}", app.next_id()),
            created: super::unix_time(),
            model: app.model_id.clone(),
            include_usage,
        }
    }

    fn object(&self, streamed: bool) -> &'static str {
        match (self.chat, streamed) {
            (true, false) => "chat.completion",
            (true, true) => "chat.completion.chunk",
            (false, _) => "text_completion",
        }
    }

    fn envelope(&self, streamed: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(streamed),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "tandem",
            "choices": choices,
        })
    }

    /// One streamed piece of text (with `finish_reason` on the last).
    fn chunk(&self, text: Option<&str>, finish: Option<&str>) -> Value {
        let choice = if self.chat {
            let delta = match text {
                Some(t) => json!({ "content": t }),
                None => json!({}),
            };
            json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish })
        } else {
            json!({ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish })
        };
        let mut chunk = self.envelope(true, json!([choice]));
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn role_chunk(&self) -> Value {
        let mut chunk = self.chunk(None, None);
        chunk["choices"][0]["delta"] = json!({ "role": "assistant", "content": "" });
        chunk
    }

    fn usage_chunk(&self, finish: &Finish) -> Value {
        let mut chunk = self.envelope(true, json!([]));
        chunk["usage"] = usage(finish);
        chunk
    }

    fn whole(&self, text: &str, finish: &Finish) -> Value {
        let reason = finish.reason.as_str();
        let choice = if self.chat {
            json!({
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "logprobs": null,
                "finish_reason": reason,
            })
        } else {
            json!({ "index": 0, "text": text, "logprobs": null, "finish_reason": reason })
        };
        let mut body = self.envelope(false, json!([choice]));
        body["usage"] = usage(finish);
        body
    }
}

fn usage(finish: &Finish) -> Value {
    json!({
        "prompt_tokens": finish.prompt_tokens,
        "completion_tokens": finish.completion_tokens,
        "total_tokens": finish.prompt_tokens + finish.completion_tokens,
    })
}

pub async fn chat_completions(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    app.count(|m| &m.requests_chat);
    let result = async {
        let request: ChatRequest = parse_body(&read_body(body)?)?;
        if request.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::invalid_param(
                "tools",
                "tool calls are not supported",
            ));
        }
        if request.messages.is_empty() {
            return Err(ApiError::invalid_param(
                "messages",
                "messages must hold at least one message",
            ));
        }
        let mut messages = Vec::with_capacity(request.messages.len());
        for m in request.messages {
            let content = m.content.map(|c| c.into_text()).transpose()?;
            messages.push(ChatMessage::new(m.role, content.unwrap_or_default()));
        }
        let text = app
            .template
            .render(&messages, true)
            .map_err(|e| ApiError::invalid_param("messages", format!("{e:#}")))?;
        let tokenizer = &app.facts.tokenizer;
        let add_bos = app.template.should_add_bos(&text, tokenizer.add_bos());
        let prompt = tokenizer.encode(&text, add_bos, true);
        let include_usage = include_usage(request.stream_options.as_ref());
        let shape = Shape::new(&app, true, include_usage);
        respond(&app, prompt, &request.sampling, request.stream, shape, None).await
    }
    .await;
    app.finish_response(result)
}

pub async fn completions(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    app.count(|m| &m.requests_completion);
    let result = async {
        let request: CompletionRequest = parse_body(&read_body(body)?)?;
        let tokenizer = &app.facts.tokenizer;
        let (prompt, text) = match request.prompt {
            Prompt::Text(t) => (tokenizer.encode(&t, true, true), t),
            Prompt::Texts(mut v) if v.len() == 1 => {
                let t = v.remove(0);
                (tokenizer.encode(&t, true, true), t)
            }
            Prompt::Texts(_) => {
                return Err(ApiError::invalid_param(
                    "prompt",
                    "send one prompt per request",
                ))
            }
            Prompt::Tokens(ids) => {
                super::check_token_ids(&ids, tokenizer.n_vocab(), "prompt")?;
                let text = String::from_utf8_lossy(&tokenizer.decode(&ids)).into_owned();
                (ids, text)
            }
        };
        let echo = request.echo.then_some(text);
        let include_usage = include_usage(request.stream_options.as_ref());
        let shape = Shape::new(&app, false, include_usage);
        respond(&app, prompt, &request.sampling, request.stream, shape, echo).await
    }
    .await;
    app.finish_response(result)
}

fn include_usage(options: Option<&super::request::StreamOptions>) -> bool {
    options.and_then(|o| o.include_usage).unwrap_or(false)
}

/// Checks the prompt against the sequence's room, submits it, and answers.
async fn respond(
    app: &App,
    prompt: Vec<u32>,
    sampling: &Sampling,
    stream: bool,
    shape: Shape,
    echo: Option<String>,
) -> Result<Response, ApiError> {
    let capacity = app.facts.seq_capacity;
    if prompt.is_empty() {
        return Err(ApiError::invalid_param("prompt", "the prompt is empty"));
    }
    if prompt.len() > capacity {
        return Err(ApiError::invalid_param(
            if shape.chat { "messages" } else { "prompt" },
            format!(
                "the prompt has {} tokens but a sequence holds at most {capacity} (the context, -c, \
                 shared by --parallel sequences); shorten the prompt or restart the server with a larger -c",
                prompt.len()
            ),
        ));
    }
    // The last sampled token need not be fed back, so one more than the free cells.
    let room = capacity - prompt.len() + 1;
    let max_tokens = match sampling.max_tokens() {
        Some(0) => {
            return Err(ApiError::invalid_param(
                "max_tokens",
                "max_tokens must be at least 1",
            ))
        }
        Some(n) if n > room => {
            return Err(ApiError::invalid_param(
                "max_tokens",
                format!(
                    "max_tokens is {n} but the prompt's {} tokens leave room for {room} in a \
                     sequence of {capacity}; lower max_tokens or raise -c",
                    prompt.len()
                ),
            ))
        }
        Some(n) => n,
        None => room,
    };
    let params = sampling.params(app.fresh_seed())?;
    let (events, mut receiver) = mpsc::unbounded_channel();
    let generation = Generation {
        prompt,
        params,
        max_tokens,
        stop: sampling.stops(),
        ignore_eos: sampling.ignore_eos,
        events,
    };
    app.scheduler.generate(generation).map_err(submit_error)?;
    if stream {
        return Ok(sse(receiver, shape, echo).into_response());
    }
    let mut text = echo.unwrap_or_default();
    loop {
        match receiver.recv().await {
            Some(Event::Text(t)) => text.push_str(&t),
            Some(Event::Done(finish)) => {
                return Ok(Json(shape.whole(&text, &finish)).into_response())
            }
            Some(Event::Failed(message)) => return Err(engine_error(message)),
            None => return Err(engine_error("the engine stopped".into())),
        }
    }
}

pub fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Busy => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy: every sequence is in use and the queue is full; retry later",
        ),
        SubmitError::Stopped => engine_error("the engine has stopped".into()),
    }
}

pub fn engine_error(message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        format!("generation failed: {message}"),
    )
}

/// The event stream of one generation. Dropped when the client disconnects, which drops
/// the receiver and so cancels the request.
fn sse(
    receiver: mpsc::UnboundedReceiver<Event>,
    shape: Shape,
    echo: Option<String>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    struct State {
        receiver: mpsc::UnboundedReceiver<Event>,
        shape: Shape,
        queue: VecDeque<SseEvent>,
        finished: bool,
    }
    let data = |v: Value| SseEvent::default().data(v.to_string());
    let mut queue = VecDeque::new();
    if shape.chat {
        queue.push_back(data(shape.role_chunk()));
    }
    if let Some(text) = echo {
        queue.push_back(data(shape.chunk(Some(&text), None)));
    }
    let state = State {
        receiver,
        shape,
        queue,
        finished: false,
    };
    let events = stream::unfold(state, move |mut st| async move {
        loop {
            if let Some(event) = st.queue.pop_front() {
                return Some((Ok(event), st));
            }
            if st.finished {
                return None;
            }
            match st.receiver.recv().await {
                Some(Event::Text(t)) => st.queue.push_back(data(st.shape.chunk(Some(&t), None))),
                Some(Event::Done(finish)) => {
                    let reason = finish.reason.as_str();
                    st.queue.push_back(data(st.shape.chunk(None, Some(reason))));
                    if st.shape.include_usage {
                        st.queue.push_back(data(st.shape.usage_chunk(&finish)));
                    }
                    st.queue.push_back(SseEvent::default().data("[DONE]"));
                    st.finished = true;
                }
                Some(Event::Failed(message)) => {
                    st.queue.push_back(data(engine_error(message).body()));
                    st.finished = true;
                }
                None => {
                    st.queue
                        .push_back(data(engine_error("the engine stopped".into()).body()));
                    st.finished = true;
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
