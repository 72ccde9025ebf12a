//! What the server needs of a model: a KV cache holding several sequences, prefill of
//! one sequence, and decode steps that take one token of many sequences in one pass.
//! The scheduler is written against this trait so it can be tested with a fake model.

use std::sync::Arc;

use anyhow::Result;

use crate::engine::{Engine, Output, Pooling};
use crate::tokenizer::Tokenizer;

pub trait SequenceModel {
    /// Sequences the KV cache holds at once.
    fn n_seq(&self) -> usize;
    /// Most tokens (prompt and generated) one sequence holds.
    fn seq_capacity(&self) -> usize;
    /// Most tokens one prefill call evaluates at once (longer prompts take several calls).
    fn n_batch(&self) -> usize;
    fn n_vocab(&self) -> usize;
    fn n_embd(&self) -> usize;
    fn tokenizer(&self) -> Arc<Tokenizer>;
    /// The pooling the model's metadata names, if any.
    fn pooling(&self) -> Option<Pooling>;
    /// Tokens in sequence `seq`'s cache.
    fn seq_len(&self, seq: usize) -> usize;
    /// Keeps the first `n` tokens of sequence `seq` (0 frees its cells).
    fn seq_truncate(&mut self, seq: usize, n: usize);
    /// Appends `tokens` (at most `n_batch`) to sequence `seq`; returns the last
    /// token's logits (`n_vocab`).
    fn prefill(&mut self, seq: usize, tokens: &[u32]) -> Result<&[f32]>;
    /// Appends one token to each listed sequence (distinct) in one forward pass;
    /// returns one row of `n_vocab` logits per step, in order. A row has the bits its
    /// sequence gets when decoded alone.
    fn decode(&mut self, steps: &[(usize, u32)]) -> Result<&[f32]>;
    /// Appends `tokens` to sequence `seq` and returns every token's hidden state after
    /// the output norm (`tokens.len() × n_embd`), for pooling into an embedding.
    fn hidden_states(&mut self, seq: usize, tokens: &[u32]) -> Result<&[f32]>;
}

impl SequenceModel for Engine {
    fn n_seq(&self) -> usize {
        Engine::n_seq(self)
    }

    fn seq_capacity(&self) -> usize {
        Engine::n_ctx(self)
    }

    fn n_batch(&self) -> usize {
        Engine::n_batch(self)
    }

    fn n_vocab(&self) -> usize {
        Engine::n_vocab(self)
    }

    fn n_embd(&self) -> usize {
        self.hparams().n_embd
    }

    fn tokenizer(&self) -> Arc<Tokenizer> {
        self.shared_tokenizer()
    }

    fn pooling(&self) -> Option<Pooling> {
        self.hparams().pooling
    }

    fn seq_len(&self, seq: usize) -> usize {
        Engine::seq_len(self, seq)
    }

    fn seq_truncate(&mut self, seq: usize, n: usize) {
        Engine::seq_truncate(self, seq, n)
    }

    fn prefill(&mut self, seq: usize, tokens: &[u32]) -> Result<&[f32]> {
        self.eval_seq(seq, tokens, 1, Output::Logits)
    }

    fn decode(&mut self, steps: &[(usize, u32)]) -> Result<&[f32]> {
        Engine::decode(self, steps)
    }

    fn hidden_states(&mut self, seq: usize, tokens: &[u32]) -> Result<&[f32]> {
        self.eval_seq(seq, tokens, tokens.len(), Output::NormedHidden)
    }
}
