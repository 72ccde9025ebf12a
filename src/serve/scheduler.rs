//! The engine thread: continuous batching over the model's sequence slots.
//!
//! Each turn of the loop admits waiting requests into free slots, runs one decode step
//! that takes the next token of every generating sequence in one forward pass (the
//! weights are read once for all), then evaluates at most one prompt chunk (`n_batch`
//! tokens) of the oldest request still in its prompt. A request that finishes, fails or
//! whose client went away frees its slot (and its KV cells) before the next turn.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::anyhow;
use tokio::sync::{mpsc, oneshot};

use super::metrics::Metrics;
use super::stop::StopMatcher;
use super::SequenceModel;
use crate::embedding;
use crate::model::Pooling;
use crate::sampling::{Sampler, SamplerParams};
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// A text generation: the prompt's tokens and how to continue it.
pub struct Generation {
    pub prompt: Vec<u32>,
    pub params: SamplerParams,
    /// Most tokens to generate; the caller keeps prompt + max_tokens within a sequence.
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// Generate past end-of-generation tokens (llama-server's `ignore_eos`, for benchmarks).
    pub ignore_eos: bool,
    pub events: mpsc::UnboundedSender<Event>,
}

/// What a generation reports, in order: text pieces, then `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    Text(String),
    Done(Finish),
    Failed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finish {
    pub reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// max_tokens, or the sequence's share of the context is full.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Embeddings of several inputs (token ids each), pooled and normalised.
pub struct EmbeddingJob {
    pub inputs: Vec<Vec<u32>>,
    pub pooling: Pooling,
    pub reply: oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
}

enum Job {
    Generate(Generation),
    Embed(EmbeddingJob),
}

impl Job {
    /// The client no longer waits for the answer.
    fn abandoned(&self) -> bool {
        match self {
            Job::Generate(g) => g.events.is_closed(),
            Job::Embed(e) => e.reply.is_closed(),
        }
    }
}

/// What the HTTP side needs to know of the loaded model.
#[derive(Clone)]
pub struct ModelFacts {
    pub tokenizer: Arc<Tokenizer>,
    pub n_seq: usize,
    pub seq_capacity: usize,
    pub n_embd: usize,
    pub pooling: Option<Pooling>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Every slot is busy and the queue is full.
    Busy,
    /// The engine thread has stopped.
    Stopped,
}

/// The handlers' side of the engine thread.
#[derive(Clone)]
pub struct Scheduler {
    jobs: std_mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    n_seq: usize,
    max_queue: usize,
}

impl Scheduler {
    /// Loads the model on a new engine thread (the model never leaves it) and starts the
    /// loop; returns once the model is loaded, or with the load error. At most
    /// `max_queue` requests wait for a slot; more are refused with [`SubmitError::Busy`].
    pub fn start<M, F>(
        load: F,
        max_queue: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Scheduler, ModelFacts, JoinHandle<()>)>
    where
        M: SequenceModel,
        F: FnOnce() -> anyhow::Result<M> + Send + 'static,
    {
        let (jobs, receiver) = std_mpsc::channel();
        let (ready, loaded) = std_mpsc::channel();
        let thread_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("tandem-engine".into())
            .spawn(move || {
                let mut model = match load() {
                    Ok(model) => model,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                thread_metrics
                    .kv_cells
                    .store(model.n_seq() * model.seq_capacity(), Relaxed);
                let facts = ModelFacts {
                    tokenizer: model.tokenizer(),
                    n_seq: model.n_seq(),
                    seq_capacity: model.seq_capacity(),
                    n_embd: model.n_embd(),
                    pooling: model.pooling(),
                };
                if ready.send(Ok(facts)).is_ok() {
                    run(&mut model, receiver, &thread_metrics);
                }
            })?;
        let facts = loaded
            .recv()
            .map_err(|_| anyhow!("the engine thread stopped while loading the model"))??;
        let scheduler = Scheduler {
            jobs,
            metrics,
            n_seq: facts.n_seq,
            max_queue,
        };
        Ok((scheduler, facts, thread))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn generate(&self, generation: Generation) -> Result<(), SubmitError> {
        self.submit(Job::Generate(generation))
    }

    pub fn embed(&self, job: EmbeddingJob) -> Result<(), SubmitError> {
        self.submit(Job::Embed(job))
    }

    fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let m = &self.metrics;
        let waiting = m.queued.fetch_add(1, Relaxed);
        let running = m.running.load(Relaxed);
        if waiting + running >= self.n_seq + self.max_queue {
            m.queued.fetch_sub(1, Relaxed);
            m.requests_rejected.fetch_add(1, Relaxed);
            return Err(SubmitError::Busy);
        }
        self.jobs.send(job).map_err(|_| {
            m.queued.fetch_sub(1, Relaxed);
            SubmitError::Stopped
        })
    }
}

/// A generation holding a sequence slot.
struct Active<'t> {
    seq: usize,
    /// Admission order: the oldest prompt is evaluated first.
    arrival: u64,
    job: Generation,
    sampler: Sampler,
    /// Prompt and generated tokens (the repeat penalty's window).
    history: Vec<u32>,
    /// Tokens in the sequence's cache.
    cached: usize,
    /// The sampled token the next decode step feeds.
    next: Option<u32>,
    decoder: StreamDecoder<'t>,
    stop: StopMatcher,
    generated: usize,
}

impl Active<'_> {
    fn prompt_left(&self) -> bool {
        self.cached < self.job.prompt.len()
    }

    fn send(&self, event: Event) {
        // A closed channel means the client left; the next turn frees the slot.
        let _ = self.job.events.send(event);
    }

    fn finish(&mut self, reason: FinishReason) {
        self.send(Event::Done(Finish {
            reason,
            prompt_tokens: self.job.prompt.len(),
            completion_tokens: self.generated,
        }));
    }

    /// Takes a sampled token; returns true when the generation is over.
    fn accept(&mut self, token: u32, tokenizer: &Tokenizer, capacity: usize) -> bool {
        if !self.job.ignore_eos && tokenizer.is_end_of_generation(token) {
            self.finish(FinishReason::Stop);
            return true;
        }
        self.generated += 1;
        self.history.push(token);
        let piece = self.decoder.push(token);
        if self.emit(&piece) {
            return true;
        }
        if self.generated >= self.job.max_tokens || self.cached >= capacity {
            let rest = self.decoder.finish();
            if self.emit(&rest) {
                return true;
            }
            let held = self.stop.finish();
            if !held.is_empty() {
                self.send(Event::Text(held));
            }
            self.finish(FinishReason::Length);
            return true;
        }
        self.next = Some(token);
        false
    }

    /// Sends what the stop matcher releases of `piece`; true when a stop string ended it.
    fn emit(&mut self, piece: &str) -> bool {
        let checked = self.stop.push(piece);
        if !checked.text.is_empty() {
            self.send(Event::Text(checked.text));
        }
        if checked.stopped {
            self.finish(FinishReason::Stop);
        }
        checked.stopped
    }
}

/// The loop of the engine thread; returns when every [`Scheduler`] is dropped.
fn run<M: SequenceModel>(model: &mut M, jobs: std_mpsc::Receiver<Job>, metrics: &Metrics) {
    let tokenizer = model.tokenizer();
    let mut slots = Slots {
        slots: (0..model.n_seq()).map(|_| None).collect(),
        metrics,
    };
    let mut waiting = VecDeque::new();
    let mut arrivals = 0u64;
    loop {
        if waiting.is_empty() && slots.is_empty() {
            match jobs.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => return,
            }
        }
        waiting.extend(jobs.try_iter());
        waiting.retain(|job: &Job| {
            let abandoned = job.abandoned();
            if abandoned {
                metrics.queued.fetch_sub(1, Relaxed);
            }
            !abandoned
        });
        for seq in 0..slots.slots.len() {
            if slots.slots[seq]
                .as_ref()
                .is_some_and(|a| a.job.events.is_closed())
            {
                slots.free(model, seq);
            }
        }
        while let Some(seq) = slots.free_slot() {
            let Some(job) = waiting.pop_front() else {
                break;
            };
            metrics.queued.fetch_sub(1, Relaxed);
            match job {
                Job::Generate(job) => {
                    arrivals += 1;
                    slots.admit(seq, arrivals, job, &tokenizer);
                }
                Job::Embed(job) => embed(model, seq, job, metrics),
            }
        }
        decode_step(model, &mut slots, &tokenizer);
        prefill_step(model, &mut slots, &tokenizer);
        let used = (0..slots.slots.len()).map(|s| model.seq_len(s)).sum();
        metrics.kv_cells_used.store(used, Relaxed);
    }
}

struct Slots<'t, 'm> {
    slots: Vec<Option<Active<'t>>>,
    metrics: &'m Metrics,
}

impl<'t> Slots<'t, '_> {
    fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    fn admit(&mut self, seq: usize, arrival: u64, job: Generation, tokenizer: &'t Tokenizer) {
        self.metrics.running.fetch_add(1, Relaxed);
        self.slots[seq] = Some(Active {
            seq,
            arrival,
            sampler: Sampler::new(job.params.clone()),
            history: job.prompt.clone(),
            cached: 0,
            next: None,
            decoder: StreamDecoder::new(tokenizer, false),
            stop: StopMatcher::new(job.stop.clone()),
            generated: 0,
            job,
        });
    }

    /// Ends the slot's request (it has had its last event) and empties its cells.
    fn free<M: SequenceModel>(&mut self, model: &mut M, seq: usize) {
        if self.slots[seq].take().is_some() {
            self.metrics.running.fetch_sub(1, Relaxed);
        }
        model.seq_truncate(seq, 0);
    }

    fn fail<M: SequenceModel>(&mut self, model: &mut M, seq: usize, error: &anyhow::Error) {
        if let Some(active) = &self.slots[seq] {
            active.send(Event::Failed(format!("{error:#}")));
        }
        self.free(model, seq);
    }
}

/// One forward pass for the next token of every sequence past its prompt.
fn decode_step<M: SequenceModel>(model: &mut M, slots: &mut Slots, tokenizer: &Tokenizer) {
    let steps: Vec<(usize, u32)> = slots
        .slots
        .iter()
        .flatten()
        .filter_map(|a| a.next.map(|token| (a.seq, token)))
        .collect();
    if steps.is_empty() {
        return;
    }
    let n_vocab = model.n_vocab();
    let capacity = model.seq_capacity();
    let started = Instant::now();
    let mut finished = Vec::new();
    match model.decode(&steps) {
        Ok(rows) => {
            slots.metrics.add_decode_step(started.elapsed());
            slots
                .metrics
                .generated_tokens
                .fetch_add(steps.len() as u64, Relaxed);
            for (i, &(seq, _)) in steps.iter().enumerate() {
                let Some(active) = slots.slots[seq].as_mut() else {
                    continue;
                };
                active.cached += 1;
                active.next = None;
                let logits = &rows[i * n_vocab..(i + 1) * n_vocab];
                let token = active.sampler.sample(logits, &active.history);
                if active.accept(token, tokenizer, capacity) {
                    finished.push(seq);
                }
            }
        }
        Err(e) => {
            for &(seq, _) in &steps {
                slots.fail(model, seq, &e);
            }
            return;
        }
    }
    for seq in finished {
        slots.free(model, seq);
    }
}

/// Evaluates the next prompt chunk of the oldest request still in its prompt; after
/// the last chunk it samples the first token.
fn prefill_step<M: SequenceModel>(model: &mut M, slots: &mut Slots, tokenizer: &Tokenizer) {
    let Some(active) = slots
        .slots
        .iter_mut()
        .flatten()
        .filter(|a| a.prompt_left())
        .min_by_key(|a| a.arrival)
    else {
        return;
    };
    let seq = active.seq;
    let capacity = model.seq_capacity();
    let prompt_len = active.job.prompt.len();
    let end = (active.cached + model.n_batch()).min(prompt_len);
    let started = Instant::now();
    let result = model
        .prefill(seq, &active.job.prompt[active.cached..end])
        .map(|logits| {
            slots
                .metrics
                .add_prompt(end - active.cached, started.elapsed());
            active.cached = end;
            if end < prompt_len {
                return false;
            }
            let token = active.sampler.sample(logits, &active.history);
            slots.metrics.generated_tokens.fetch_add(1, Relaxed);
            active.accept(token, tokenizer, capacity)
        });
    match result {
        Ok(false) => {}
        Ok(true) => slots.free(model, seq),
        Err(e) => slots.fail(model, seq, &e),
    }
}

/// Runs an embedding job in slot `seq` (empty again afterwards).
fn embed<M: SequenceModel>(model: &mut M, seq: usize, job: EmbeddingJob, metrics: &Metrics) {
    let mut vectors = Vec::with_capacity(job.inputs.len());
    for tokens in &job.inputs {
        let started = Instant::now();
        match embedding::embed(model, seq, tokens, job.pooling) {
            Ok(v) => vectors.push(v),
            Err(e) => {
                let _ = job.reply.send(Err(format!("{e:#}")));
                return;
            }
        }
        metrics.add_prompt(tokens.len(), started.elapsed());
    }
    let _ = job.reply.send(Ok(vectors));
}
