//! Keeping a conversation in the KV cache across turns, and the generation loop.
//!
//! Each turn the whole conversation is rendered and tokenized again; [`ContextTokens`]
//! compares that with what the cache already holds, truncates the cache where they diverge
//! and evaluates only the new suffix.

use anyhow::{bail, ensure};

use crate::sampling::Sampler;

use super::prefix::common_prefix_len;

/// The operations a chat needs from a model with a KV cache (implemented by the engine).
pub trait ChatModel {
    /// Evaluates `tokens` after the cached ones and returns the last token's logits.
    fn eval(&mut self, tokens: &[u32]) -> anyhow::Result<&[f32]>;
    /// Keeps only the first `n` cached positions.
    fn truncate(&mut self, n: usize);
    /// Positions currently cached.
    fn n_past(&self) -> usize;
    /// Capacity of the cache.
    fn n_ctx(&self) -> usize;
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token (not evaluated, not in the reply).
    EndOfGeneration,
    /// The token limit was reached.
    MaxTokens,
    /// The KV cache is full.
    ContextFull,
}

/// Mirror of the token ids in the model's KV cache.
#[derive(Clone, Debug, Default)]
pub struct ContextTokens {
    tokens: Vec<u32>,
}

impl ContextTokens {
    pub fn new() -> ContextTokens {
        ContextTokens::default()
    }

    /// The cached tokens, oldest first.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Makes the cache hold exactly `prompt`, evaluating only what differs from what is
    /// cached, and returns the logits after its last token. Errors (leaving the cache as
    /// it was) when the prompt is empty or longer than the context.
    pub fn sync<M: ChatModel + ?Sized>(
        &mut self,
        model: &mut M,
        prompt: &[u32],
    ) -> anyhow::Result<Vec<f32>> {
        ensure!(!prompt.is_empty(), "cannot evaluate an empty prompt");
        if prompt.len() > model.n_ctx() {
            bail!(
                "the conversation needs {} tokens but the context holds {}",
                prompt.len(),
                model.n_ctx()
            );
        }
        // Trust only what the model actually holds.
        self.tokens.truncate(model.n_past());
        let mut keep = common_prefix_len(&self.tokens, prompt);
        if keep == prompt.len() {
            // Everything is cached, but the logits of the last token are needed again.
            keep -= 1;
        }
        model.truncate(keep);
        self.tokens.truncate(keep);
        match model.eval(&prompt[keep..]) {
            Ok(logits) => {
                let logits = logits.to_vec();
                self.tokens.extend_from_slice(&prompt[keep..]);
                Ok(logits)
            }
            Err(e) => {
                // The cache may hold part of the suffix: cut it back to the agreed prefix.
                model.truncate(keep);
                Err(e)
            }
        }
    }

    /// Evaluates one more token and returns its logits.
    pub fn push<'m, M: ChatModel + ?Sized>(
        &mut self,
        model: &'m mut M,
        token: u32,
    ) -> anyhow::Result<&'m [f32]> {
        let logits = model.eval(&[token])?;
        self.tokens.push(token);
        Ok(logits)
    }

    /// Forgets everything (cache included).
    pub fn clear<M: ChatModel + ?Sized>(&mut self, model: &mut M) {
        model.truncate(0);
        self.tokens.clear();
    }
}

/// Samples tokens until an end-of-generation token, `max_tokens`, or a full context.
/// `first_logits` are the logits after the prompt; each kept token is passed to `on_token`
/// as soon as it is chosen. Returns the generated tokens (without the end token).
pub fn generate<M: ChatModel + ?Sized>(
    model: &mut M,
    context: &mut ContextTokens,
    sampler: &mut Sampler,
    first_logits: Vec<f32>,
    max_tokens: Option<usize>,
    is_end_of_generation: impl Fn(u32) -> bool,
    mut on_token: impl FnMut(u32),
) -> anyhow::Result<(Vec<u32>, StopReason)> {
    let mut logits = first_logits;
    let mut generated = Vec::new();
    loop {
        if max_tokens.is_some_and(|max| generated.len() >= max) {
            return Ok((generated, StopReason::MaxTokens));
        }
        let token = sampler.sample(&logits, context.tokens());
        if is_end_of_generation(token) {
            return Ok((generated, StopReason::EndOfGeneration));
        }
        generated.push(token);
        on_token(token);
        if model.n_past() >= model.n_ctx() {
            return Ok((generated, StopReason::ContextFull));
        }
        logits.clear();
        logits.extend_from_slice(context.push(model, token)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::SamplerParams;

    /// A model whose next token is always (last token + 1) mod vocab, with a small cache.
    struct Counter {
        cache: Vec<u32>,
        n_ctx: usize,
        evaluated: usize,
        logits: Vec<f32>,
    }

    impl Counter {
        fn new(n_ctx: usize) -> Counter {
            Counter {
                cache: Vec::new(),
                n_ctx,
                evaluated: 0,
                logits: vec![0.0; 16],
            }
        }
    }

    impl ChatModel for Counter {
        fn eval(&mut self, tokens: &[u32]) -> anyhow::Result<&[f32]> {
            ensure!(
                self.cache.len() + tokens.len() <= self.n_ctx,
                "context full"
            );
            self.cache.extend_from_slice(tokens);
            self.evaluated += tokens.len();
            let next = (*tokens.last().unwrap() as usize + 1) % 16;
            self.logits.iter_mut().for_each(|l| *l = 0.0);
            self.logits[next] = 10.0;
            Ok(&self.logits)
        }
        fn truncate(&mut self, n: usize) {
            self.cache.truncate(n);
        }
        fn n_past(&self) -> usize {
            self.cache.len()
        }
        fn n_ctx(&self) -> usize {
            self.n_ctx
        }
    }

    fn greedy() -> Sampler {
        Sampler::new(SamplerParams {
            temp: 0.0,
            ..SamplerParams::default()
        })
    }

    #[test]
    fn only_the_new_suffix_is_evaluated() {
        let mut model = Counter::new(64);
        let mut ctx = ContextTokens::new();
        ctx.sync(&mut model, &[1, 2, 3]).unwrap();
        assert_eq!(model.evaluated, 3);
        ctx.sync(&mut model, &[1, 2, 3, 7, 8]).unwrap();
        assert_eq!(model.evaluated, 5);
        // Divergence at position 2: truncate to 2 and evaluate 3 tokens.
        ctx.sync(&mut model, &[1, 2, 9, 9, 9]).unwrap();
        assert_eq!(model.evaluated, 8);
        assert_eq!(model.cache, vec![1, 2, 9, 9, 9]);
        assert_eq!(ctx.tokens(), &[1, 2, 9, 9, 9]);
        // Identical prompt: re-evaluate the last token for its logits.
        ctx.sync(&mut model, &[1, 2, 9, 9, 9]).unwrap();
        assert_eq!(model.evaluated, 9);
        assert_eq!(model.cache.len(), 5);
    }

    #[test]
    fn too_long_prompt_is_an_error_and_keeps_the_cache() {
        let mut model = Counter::new(4);
        let mut ctx = ContextTokens::new();
        ctx.sync(&mut model, &[1, 2]).unwrap();
        assert!(ctx.sync(&mut model, &[1, 2, 3, 4, 5]).is_err());
        assert_eq!(model.cache, vec![1, 2]);
        assert!(ctx.sync(&mut model, &[]).is_err());
    }

    #[test]
    fn generation_stops_at_end_token_and_streams() {
        let mut model = Counter::new(64);
        let mut ctx = ContextTokens::new();
        let logits = ctx.sync(&mut model, &[3]).unwrap();
        let mut streamed = Vec::new();
        let (out, reason) = generate(
            &mut model,
            &mut ctx,
            &mut greedy(),
            logits,
            None,
            |t| t == 7,
            |t| streamed.push(t),
        )
        .unwrap();
        assert_eq!(out, vec![4, 5, 6]);
        assert_eq!(streamed, out);
        assert_eq!(reason, StopReason::EndOfGeneration);
        // The end token is not evaluated: the cache ends with the reply.
        assert_eq!(ctx.tokens(), &[3, 4, 5, 6]);
        assert_eq!(model.cache, ctx.tokens());
    }

    #[test]
    fn generation_respects_limits() {
        let mut model = Counter::new(64);
        let mut ctx = ContextTokens::new();
        let logits = ctx.sync(&mut model, &[0]).unwrap();
        let (out, reason) = generate(
            &mut model,
            &mut ctx,
            &mut greedy(),
            logits,
            Some(2),
            |_| false,
            |_| {},
        )
        .unwrap();
        assert_eq!((out, reason), (vec![1, 2], StopReason::MaxTokens));

        let mut small = Counter::new(3);
        let mut ctx = ContextTokens::new();
        let logits = ctx.sync(&mut small, &[0]).unwrap();
        let (out, reason) = generate(
            &mut small,
            &mut ctx,
            &mut greedy(),
            logits,
            None,
            |_| false,
            |_| {},
        )
        .unwrap();
        assert_eq!(reason, StopReason::ContextFull);
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(small.cache.len(), 3);
    }
}
