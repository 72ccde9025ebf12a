//! `tandem serve` driven through real HTTP on the real gemma3 model: batched greedy
//! requests give the text each gets alone, streams end in `[DONE]`, embeddings match
//! llama-embedding's vectors, bad input gets OpenAI-style 4xx and the server lives on, a
//! full queue answers 503 and a client that disconnects frees its sequence.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};
use tandem::chat::ChatTemplate;
use tandem::engine::{Engine, EngineOptions};
use tandem::gguf::GgufFile;
use tandem::serve::{RunningServer, ServerOptions};

struct Server {
    running: Option<RunningServer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    client: Client,
    url: String,
}

impl Server {
    /// gemma3 with `parallel` sequences of 512 tokens each.
    fn start(parallel: usize, max_queue: usize, api_key: Option<&str>) -> Server {
        let path = common::gemma3_path();
        let template = ChatTemplate::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = RunningServer::start(
            move || {
                Engine::load(
                    &path,
                    EngineOptions {
                        n_ctx: Some(512 * parallel),
                        n_parallel: parallel,
                        n_batch: 128,
                        n_threads: Some(2),
                        ..EngineOptions::default()
                    },
                )
            },
            template,
            ServerOptions {
                bind: "127.0.0.1:0".into(),
                api_key: api_key.map(str::to_string),
                max_queue,
                pooling: None,
                model_id: "gemma3".into(),
            },
            async {
                let _ = stopped.await;
            },
        )
        .unwrap();
        Server {
            url: running.url(),
            running: Some(running),
            stop: Some(stop),
            client: Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap(),
        }
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap())
    }

    fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap())
    }

    fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    /// The value of an unlabelled Prometheus sample.
    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get_text("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("tandem_{name} ")))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
            .parse()
            .unwrap()
    }

    /// Polls until `name` reads `value` (the engine thread updates it between steps).
    fn wait_metric(&self, name: &str, value: f64) {
        self.wait_metric_until(name, |v| v == value);
    }

    fn wait_metric_until(&self, name: &str, done: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self.metric(name)) {
            assert!(
                Instant::now() < deadline,
                "{name} stayed at {}",
                self.metric(name)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.join().unwrap();
        }
    }
}

fn greedy_completion(prompt: &str, max_tokens: usize) -> Value {
    json!({ "prompt": prompt, "max_tokens": max_tokens, "temperature": 0 })
}

fn text_of(body: &Value) -> String {
    body["choices"][0]["text"].as_str().unwrap().to_string()
}

const PROMPTS: [&str; 8] = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "def fibonacci(n):",
    "Water boils at a temperature of",
    "The quick brown fox",
    "In 1969, the first humans",
    "A recipe for pancakes: first,",
];

#[test]
fn concurrent_greedy_requests_give_the_text_each_gets_alone() {
    let server = Server::start(4, 16, None);
    let alone: Vec<String> = PROMPTS
        .iter()
        .map(|p| {
            let (status, body) = server.post("/v1/completions", &greedy_completion(p, 24));
            assert_eq!(status, 200, "{body}");
            text_of(&body)
        })
        .collect();
    let steps_before = server.metric("decode_steps_total");
    let tokens_before = server.metric("generated_tokens_total");
    let together: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = PROMPTS
            .iter()
            .map(|p| {
                let server = &server;
                s.spawn(move || {
                    let (status, body) = server.post("/v1/completions", &greedy_completion(p, 24));
                    assert_eq!(status, 200, "{body}");
                    assert_eq!(body["usage"]["completion_tokens"], 24, "{body}");
                    text_of(&body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
    // Batching happened: fewer forward passes than tokens decoded.
    let steps = server.metric("decode_steps_total") - steps_before;
    let tokens = server.metric("generated_tokens_total") - tokens_before;
    assert_eq!(tokens, 8.0 * 24.0);
    assert!(
        steps < tokens / 2.0,
        "{steps} decode steps for {tokens} tokens: requests were not batched"
    );
    // Finished requests free their cells (the engine updates the gauges between steps).
    server.wait_metric("kv_cells_used", 0.0);
    server.wait_metric("requests_running", 0.0);
}

/// The `data:` payloads of a server-sent event stream.
fn sse_payloads(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn streamed_chat_ends_in_done_and_says_what_the_whole_answer_says() {
    let server = Server::start(2, 4, None);
    let request = json!({
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": [{ "type": "text", "text": "Name a fruit." }] },
        ],
        "max_tokens": 16,
        "temperature": 0,
    });
    let (status, whole) = server.post("/v1/chat/completions", &request);
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
    let content = whole["choices"][0]["message"]["content"].as_str().unwrap();
    let usage = &whole["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let response = server
        .client
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&streamed)
        .send()
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let payloads = sse_payloads(&response.text().unwrap());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, content);
    let finish = &chunks[chunks.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, &whole["choices"][0]["finish_reason"]);
    assert_eq!(&chunks.last().unwrap()["usage"], usage);
}

#[test]
fn a_stop_string_ends_the_text_before_it() {
    let server = Server::start(1, 4, None);
    let (_, free) = server.post("/v1/completions", &greedy_completion(PROMPTS[1], 24));
    let free = text_of(&free);
    // Stop at the third word of the free-running text.
    let word = free.split_whitespace().nth(2).unwrap().to_string();
    let at = free.find(&word).unwrap();
    let mut request = greedy_completion(PROMPTS[1], 24);
    request["stop"] = json!(["\u{1F600}never", word]);
    let (status, body) = server.post("/v1/completions", &request);
    assert_eq!(status, 200, "{body}");
    assert_eq!(text_of(&body), free[..at]);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[test]
fn bad_input_gets_openai_errors_and_the_server_lives_on() {
    let server = Server::start(2, 4, None);
    let long_prompt = "word ".repeat(600);
    let cases: Vec<(&str, Result<&'static str, Value>, u16)> = vec![
        ("/v1/chat/completions", Ok("{\"messages\": [ {"), 400),
        ("/v1/chat/completions", Ok(""), 400),
        ("/v1/chat/completions", Ok("[1, 2]"), 400),
        (
            "/v1/chat/completions",
            Err(json!({ "messages": [{ "role": "user", "content": "hi" }], "temperature": "hot" })),
            400,
        ),
        (
            "/v1/chat/completions",
            Err(json!({ "messages": [{ "role": "user", "content": "hi" }], "max_tokens": -3 })),
            400,
        ),
        ("/v1/chat/completions", Err(json!({ "messages": [] })), 400),
        (
            "/v1/chat/completions",
            Err(json!({ "messages": [{ "role": "user", "content": "hi" }], "n": 3 })),
            400,
        ),
        (
            "/v1/chat/completions",
            Err(
                json!({ "messages": [{ "role": "user", "content": "hi" }], "tools": [{ "type": "function" }] }),
            ),
            400,
        ),
        (
            "/v1/completions",
            Err(json!({ "prompt": long_prompt, "max_tokens": 4 })),
            400,
        ),
        (
            "/v1/completions",
            Err(json!({ "prompt": "hi", "max_tokens": 100000 })),
            400,
        ),
        (
            "/v1/completions",
            Err(json!({ "prompt": [7, 999999999] })),
            400,
        ),
        (
            "/v1/completions",
            Err(json!({ "prompt": "hi", "top_p": 3 })),
            400,
        ),
        ("/v1/embeddings", Err(json!({ "input": [] })), 400),
        (
            "/v1/embeddings",
            Err(json!({ "input": "hi", "encoding_format": "hex" })),
            400,
        ),
        ("/v1/nothing", Err(json!({})), 404),
    ];
    for (path, body, want) in cases {
        let (status, answer) = match &body {
            Ok(raw) => server.post_raw(path, raw),
            Err(v) => server.post(path, v),
        };
        assert_eq!(status, want, "{path} {body:?}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{path}: no error message in {answer}");
        assert!(answer["error"]["type"].is_string(), "{answer}");
    }
    let (status, body) = server.post("/v1/completions", &greedy_completion("Hello", 4));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get_text("/health").0, 200);
    assert!(server.metric("requests_failed_total") >= 14.0);
}

/// Opens a streamed completion on a raw socket and reads until the first token arrives.
fn open_stream(server: &Server, max_tokens: usize) -> BufReader<TcpStream> {
    let addr = server.url.strip_prefix("http://").unwrap();
    let mut socket = TcpStream::connect(addr).unwrap();
    let body = json!({ "prompt": "Count to a thousand: 1, 2, 3,", "max_tokens": max_tokens,
                        "temperature": 0, "stream": true })
    .to_string();
    write!(
        socket,
        "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream closed early"
        );
    }
    reader
}

#[test]
fn a_full_queue_answers_503_and_a_client_that_leaves_frees_its_sequence() {
    let server = Server::start(1, 0, None);
    let stream = open_stream(&server, 400);
    assert_eq!(server.metric("requests_running"), 1.0);
    server.wait_metric_until("kv_cells_used", |cells| cells > 0.0);
    let (status, body) = server.post("/v1/completions", &greedy_completion("Hi", 4));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "unavailable_error");
    drop(stream);
    server.wait_metric("requests_running", 0.0);
    server.wait_metric("kv_cells_used", 0.0);
    let (status, body) = server.post("/v1/completions", &greedy_completion("Hi", 4));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_api_key_guards_everything_but_health() {
    let server = Server::start(1, 4, Some("sesame"));
    assert_eq!(server.get_text("/health").0, 200);
    let (status, body) = server.get_text("/v1/models");
    assert_eq!(status, 401, "{body}");
    let (status, body) = server.post("/v1/completions", &greedy_completion("Hi", 2));
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    let response = server
        .client
        .get(format!("{}/v1/models", server.url))
        .bearer_auth("sesame")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let models: Value = response.json().unwrap();
    assert_eq!(models["data"][0]["id"], "gemma3");
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Reference vectors from llama.cpp's llama-embedding (the command is in the file).
fn llama_embedding(pooling: &str) -> (String, Vec<f64>) {
    let path = common::testdata("gemma3-270m-embeddings.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (
        reference["prompt"].as_str().unwrap().to_string(),
        floats(&reference[pooling]),
    )
}

#[test]
fn embeddings_match_llama_embedding_as_floats_and_as_base64() {
    let server = Server::start(2, 4, None);
    let (prompt, reference) = llama_embedding("mean");
    let (status, body) = server.post(
        "/v1/embeddings",
        &json!({ "input": [prompt, "Another text."], "model": "gemma3" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let vector = floats(&body["data"][0]["embedding"]);
    assert_eq!(vector.len(), 640);
    let c = cosine(&vector, &reference);
    assert!(c >= 0.999, "cosine {c} with llama-embedding's vector");
    let length = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((length - 1.0).abs() < 1e-5, "not unit length: {length}");
    assert_ne!(body["data"][0]["embedding"], body["data"][1]["embedding"]);

    let (status, encoded) = server.post(
        "/v1/embeddings",
        &json!({ "input": prompt, "encoding_format": "base64" }),
    );
    assert_eq!(status, 200, "{encoded}");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let as_f32: Vec<f32> = vector.iter().map(|&x| x as f32).collect();
    assert_eq!(decoded, as_f32);
}
