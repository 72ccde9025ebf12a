//! Timing loop in llama-bench's manner: every repetition starts from an empty KV cache;
//! a prompt test evaluates `n_prompt` random tokens in one call, a generation test evaluates
//! `n_gen` random tokens one at a time. One untimed warm-up repetition comes first.

use std::time::Instant;

use crate::sampling::Rng;

/// What the bench drives; implemented by the engine (and by fakes in tests).
pub trait BenchTarget {
    /// Empties the KV cache.
    fn clear(&mut self);
    /// Evaluates `tokens` after what is already in the cache.
    fn eval(&mut self, tokens: &[u32]) -> anyhow::Result<()>;
    fn n_vocab(&self) -> usize;
}

/// One test: `n_prompt` tokens in one batch, then `n_gen` single-token steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestSpec {
    pub n_prompt: usize,
    pub n_gen: usize,
    /// Timed repetitions (after one warm-up).
    pub repetitions: usize,
}

fn random_tokens(rng: &mut Rng, n: usize, n_vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.below(n_vocab as u64) as u32).collect()
}

fn one_repetition<T: BenchTarget + ?Sized>(
    target: &mut T,
    spec: &TestSpec,
    rng: &mut Rng,
) -> anyhow::Result<u64> {
    let n_vocab = target.n_vocab().max(1);
    let prompt = random_tokens(rng, spec.n_prompt, n_vocab);
    let generated = random_tokens(rng, spec.n_gen, n_vocab);
    target.clear();
    let start = Instant::now();
    if !prompt.is_empty() {
        target.eval(&prompt)?;
    }
    for token in &generated {
        target.eval(std::slice::from_ref(token))?;
    }
    Ok(start.elapsed().as_nanos() as u64)
}

/// Runs the warm-up and the timed repetitions; returns each repetition's nanoseconds.
pub fn run_test<T: BenchTarget + ?Sized>(
    target: &mut T,
    spec: &TestSpec,
    rng: &mut Rng,
) -> anyhow::Result<Vec<u64>> {
    one_repetition(target, spec, rng)?;
    (0..spec.repetitions)
        .map(|_| one_repetition(target, spec, rng))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        clears: usize,
        past: usize,
        calls: Vec<(usize, usize)>, // (position before the call, tokens in the call)
        max_token: u32,
    }

    impl BenchTarget for Recorder {
        fn clear(&mut self) {
            self.clears += 1;
            self.past = 0;
        }
        fn eval(&mut self, tokens: &[u32]) -> anyhow::Result<()> {
            self.calls.push((self.past, tokens.len()));
            self.past += tokens.len();
            self.max_token = self.max_token.max(*tokens.iter().max().unwrap());
            Ok(())
        }
        fn n_vocab(&self) -> usize {
            100
        }
    }

    #[test]
    fn prompt_test_is_one_batch_from_empty_cache() {
        let mut r = Recorder::default();
        let spec = TestSpec {
            n_prompt: 512,
            n_gen: 0,
            repetitions: 3,
        };
        let samples = run_test(&mut r, &spec, &mut Rng::new(1)).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(r.clears, 4, "warm-up plus three repetitions");
        assert_eq!(r.calls, vec![(0, 512); 4]);
        assert!(r.max_token < 100);
    }

    #[test]
    fn generation_test_is_single_tokens_from_empty_cache() {
        let mut r = Recorder::default();
        let spec = TestSpec {
            n_prompt: 0,
            n_gen: 4,
            repetitions: 2,
        };
        run_test(&mut r, &spec, &mut Rng::new(1)).unwrap();
        let one_rep: Vec<(usize, usize)> = (0..4).map(|p| (p, 1)).collect();
        assert_eq!(r.calls, one_rep.repeat(3));
    }

    #[test]
    fn errors_propagate() {
        struct Failing;
        impl BenchTarget for Failing {
            fn clear(&mut self) {}
            fn eval(&mut self, _: &[u32]) -> anyhow::Result<()> {
                anyhow::bail!("context full")
            }
            fn n_vocab(&self) -> usize {
                10
            }
        }
        let spec = TestSpec {
            n_prompt: 8,
            n_gen: 0,
            repetitions: 1,
        };
        assert!(run_test(&mut Failing, &spec, &mut Rng::new(0)).is_err());
    }
}
