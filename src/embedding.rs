//! Embeddings: one vector per text, pooled from the hidden states after the output norm
//! and L2-normalised, as llama.cpp's `llama-embedding` (default `--embd-normalize 2`) and
//! llama-server's `/v1/embeddings` give them.

use anyhow::ensure;

use crate::model::Pooling;
use crate::serve::SequenceModel;

/// The pooling to use: the one asked for, else the model's metadata, else mean (a
/// generative model's metadata names none; llama-server would refuse, we pick mean so
/// `/v1/embeddings` works on every model, as ollama does).
pub fn resolve_pooling(asked: Option<Pooling>, metadata: Option<Pooling>) -> Pooling {
    asked.or(metadata).unwrap_or(Pooling::Mean)
}

/// Pools `hidden` (`n_tokens × n_embd`, row-major) into one vector and scales it to unit
/// length (a zero vector stays zero). Sums run in f64 so the mean does not depend on the
/// order the rows arrive in.
pub fn pool(hidden: &[f32], n_embd: usize, pooling: Pooling) -> Vec<f32> {
    let n_tokens = hidden.len() / n_embd.max(1);
    if n_tokens == 0 {
        return vec![0.0; n_embd];
    }
    let row = |i: usize| &hidden[i * n_embd..(i + 1) * n_embd];
    let pooled: Vec<f64> = match pooling {
        Pooling::Mean => {
            let mut sum = vec![0f64; n_embd];
            for i in 0..n_tokens {
                for (s, &x) in sum.iter_mut().zip(row(i)) {
                    *s += f64::from(x);
                }
            }
            sum.iter().map(|s| s / n_tokens as f64).collect()
        }
        Pooling::Cls => row(0).iter().map(|&x| f64::from(x)).collect(),
        Pooling::Last => row(n_tokens - 1).iter().map(|&x| f64::from(x)).collect(),
    };
    let norm = pooled.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    pooled.iter().map(|x| (x * scale) as f32).collect()
}

/// Evaluates `tokens` in sequence `seq` (which must be empty), pools them, and empties
/// the sequence again whatever happens.
pub fn embed<M: SequenceModel + ?Sized>(
    model: &mut M,
    seq: usize,
    tokens: &[u32],
    pooling: Pooling,
) -> anyhow::Result<Vec<f32>> {
    ensure!(!tokens.is_empty(), "cannot embed an empty input");
    ensure!(
        tokens.len() <= model.seq_capacity(),
        "the input has {} tokens but a sequence holds at most {}; shorten it or raise -c",
        tokens.len(),
        model.seq_capacity()
    );
    let n_embd = model.n_embd();
    let result = model
        .hidden_states(seq, tokens)
        .map(|hidden| pool(hidden, n_embd, pooling));
    model.seq_truncate(seq, 0);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_picks_rows_and_normalises() {
        let hidden = [3.0, 0.0, 0.0, 4.0, 1.0, 1.0];
        let last = pool(&hidden, 2, Pooling::Last);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(last, vec![s, s]);
        assert_eq!(pool(&hidden, 2, Pooling::Cls), vec![1.0, 0.0]);
        // mean (4/3, 5/3), length sqrt(41)/3
        let mean = pool(&hidden, 2, Pooling::Mean);
        let n = 41f32.sqrt();
        assert!((mean[0] - 4.0 / n).abs() < 1e-6 && (mean[1] - 5.0 / n).abs() < 1e-6);
        assert_eq!(pool(&[0.0, 0.0], 2, Pooling::Mean), vec![0.0, 0.0]);
    }
}
