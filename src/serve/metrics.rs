//! Server counters, shared between the HTTP handlers and the engine thread, and their
//! Prometheus text form (`GET /metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    pub requests_chat: AtomicU64,
    pub requests_completion: AtomicU64,
    pub requests_embedding: AtomicU64,
    /// Requests answered 4xx/5xx.
    pub requests_failed: AtomicU64,
    /// Requests refused because the queue was full.
    pub requests_rejected: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    prompt_micros: AtomicU64,
    decode_micros: AtomicU64,
    /// Decode steps (one forward pass each) and the tokens they produced.
    pub decode_steps: AtomicU64,
    /// Requests waiting for a sequence slot.
    pub queued: AtomicUsize,
    /// Requests holding a sequence slot.
    pub running: AtomicUsize,
    pub kv_cells_used: AtomicUsize,
    pub kv_cells: AtomicUsize,
}

impl Metrics {
    pub fn add_prompt(&self, tokens: usize, time: Duration) {
        self.prompt_tokens.fetch_add(tokens as u64, Relaxed);
        self.prompt_micros
            .fetch_add(time.as_micros() as u64, Relaxed);
    }

    /// One decode step (its tokens count in `generated_tokens`).
    pub fn add_decode_step(&self, time: Duration) {
        self.decode_steps.fetch_add(1, Relaxed);
        self.decode_micros
            .fetch_add(time.as_micros() as u64, Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP tandem_{name} {help}");
            let _ = writeln!(out, "# TYPE tandem_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "tandem_{name}{labels} {value}");
            }
        };
        let get = |c: &AtomicU64| c.load(Relaxed) as f64;
        let per_second = |tokens: f64, micros: f64| {
            if micros > 0.0 {
                tokens / (micros * 1e-6)
            } else {
                0.0
            }
        };
        metric(
            "requests_total",
            "counter",
            "Requests received, by endpoint.",
            &[
                ("{endpoint=\"chat\"}", get(&self.requests_chat)),
                ("{endpoint=\"completions\"}", get(&self.requests_completion)),
                ("{endpoint=\"embeddings\"}", get(&self.requests_embedding)),
            ],
        );
        metric(
            "requests_failed_total",
            "counter",
            "Requests answered with an error.",
            &[("", get(&self.requests_failed))],
        );
        metric(
            "requests_rejected_total",
            "counter",
            "Requests refused with 503 because the queue was full.",
            &[("", get(&self.requests_rejected))],
        );
        let prompt = get(&self.prompt_tokens);
        let generated = get(&self.generated_tokens);
        let prompt_us = get(&self.prompt_micros);
        let decode_us = get(&self.decode_micros);
        metric(
            "prompt_tokens_total",
            "counter",
            "Prompt tokens evaluated.",
            &[("", prompt)],
        );
        metric(
            "generated_tokens_total",
            "counter",
            "Tokens generated.",
            &[("", generated)],
        );
        metric(
            "prompt_seconds_total",
            "counter",
            "Time spent evaluating prompts.",
            &[("", prompt_us * 1e-6)],
        );
        metric(
            "decode_seconds_total",
            "counter",
            "Time spent in decode steps.",
            &[("", decode_us * 1e-6)],
        );
        metric(
            "decode_steps_total",
            "counter",
            "Decode steps (one forward pass for every running sequence).",
            &[("", get(&self.decode_steps))],
        );
        metric(
            "prompt_tokens_per_second",
            "gauge",
            "Average prompt throughput since start.",
            &[("", per_second(prompt, prompt_us))],
        );
        metric(
            "decode_tokens_per_second",
            "gauge",
            "Average aggregate generation throughput of the decode steps since start.",
            &[("", per_second(generated, decode_us))],
        );
        let gauge = |c: &AtomicUsize| c.load(Relaxed) as f64;
        metric(
            "queue_length",
            "gauge",
            "Requests waiting for a sequence.",
            &[("", gauge(&self.queued))],
        );
        metric(
            "requests_running",
            "gauge",
            "Requests holding a sequence.",
            &[("", gauge(&self.running))],
        );
        metric(
            "kv_cells_used",
            "gauge",
            "KV cache cells in use.",
            &[("", gauge(&self.kv_cells_used))],
        );
        metric(
            "kv_cells",
            "gauge",
            "KV cache cells in all.",
            &[("", gauge(&self.kv_cells))],
        );
        out
    }
}
