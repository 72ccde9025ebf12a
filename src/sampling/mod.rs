//! Token sampling from logits, following llama.cpp's default sampler chain.
//!
//! The chain, in order: repetition penalty → top-k → top-p → min-p → temperature → draw.
//! That is llama.cpp's default order (its DRY, typical-p, XTC and top-n-sigma stages are off by
//! default and are not implemented here). Notes on each stage:
//!
//! - **Repetition penalty**: each distinct token among the last `repeat_last_n` of the history
//!   has its logit divided by `repeat_penalty` when positive and multiplied by it when
//!   zero or negative (so it always moves down for a penalty above 1).
//! - **Top-k** keeps the `top_k` largest logits (0 = off).
//! - **Top-p** keeps the shortest prefix, in descending order, whose probability (softmax of
//!   the surviving logits at temperature 1) reaches `top_p` (1 = off).
//! - **Min-p** keeps tokens whose logit is at least `max + ln(min_p)`, that is whose
//!   probability is at least `min_p` times the most likely one's (0 = off).
//! - **Temperature** divides the surviving logits by `temp`; `temp <= 0` means greedy (argmax of
//!   the penalized logits), and so does `top_k == 1`.
//! - **Draw**: one uniform number from a seeded xoshiro256** generator, walked along the
//!   cumulative probabilities.
//!
//! Speed on a 262k vocabulary: no stage sorts the whole vocabulary unless both top-k and
//! min-p are off. Top-k rescans only the blocks that can hold the k best (see `select`); top-p and min-p both keep a prefix of the
//! descending order, so the min-p survivors (found in one linear pass) are the only tokens that
//! need sorting, while top-p's normalizer is summed over all surviving candidates. The result
//! is exactly what the sequential chain gives.

mod rng;
mod select;

pub use rng::Rng;
pub use select::argmax;

/// Sampling settings; `Default` gives llama.cpp's defaults (except the seed, which llama.cpp
/// draws at random: the CLI does that when no `--seed` is given).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// Temperature; 0 (or below) means greedy decoding.
    pub temp: f32,
    /// Keep only the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Nucleus sampling threshold; 1 = off.
    pub top_p: f32,
    /// Minimum probability relative to the most likely token; 0 = off.
    pub min_p: f32,
    /// Repetition penalty; 1 = off.
    pub repeat_penalty: f32,
    /// How many of the most recent tokens the penalty looks at; 0 = off.
    pub repeat_last_n: usize,
    /// Seed of the random generator: the same seed gives the same draws.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> SamplerParams {
        SamplerParams {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x7A4D_E45E_ED00_0001,
        }
    }
}

impl SamplerParams {
    /// True when the chain always picks the (penalized) argmax.
    pub fn is_greedy(&self) -> bool {
        self.temp <= 0.0 || self.top_k == 1
    }
}

/// Picks the next token from a logit vector. Holds its random generator and scratch buffers,
/// so one `Sampler` should live as long as one generation (or conversation).
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    /// Penalized copy of the logits (only used when the penalty is active).
    penalized: Vec<f32>,
    /// Candidate (token, logit) pairs; after `prepare`, the kept set with scaled logits.
    candidates: Vec<(u32, f32)>,
    /// Scratch for the per-token occurrence marks of the penalty window.
    seen: Vec<u32>,
    /// Scratch for the block maxima of the top-k shortcut.
    block_maxima: Vec<f32>,
}

/// Orders candidates by descending logit; ties by ascending id so results never depend on
/// the selection algorithm's internal order.
fn by_logit_desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// NaN logits are treated as impossible tokens.
fn sanitize(logit: f32) -> f32 {
    if logit.is_nan() {
        f32::NEG_INFINITY
    } else {
        logit
    }
}

impl Sampler {
    pub fn new(params: SamplerParams) -> Sampler {
        Sampler {
            rng: Rng::new(params.seed),
            params,
            penalized: Vec::new(),
            candidates: Vec::new(),
            seen: Vec::new(),
            block_maxima: Vec::new(),
        }
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Picks a token id from `logits` (one per vocabulary entry). `history` is the token
    /// sequence so far, used by the repetition penalty (ids outside the vocabulary are ignored).
    ///
    /// # Panics
    /// If `logits` is empty.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        assert!(
            !logits.is_empty(),
            "cannot sample from an empty logit vector"
        );
        self.prepare(logits, history);
        if self.candidates.len() == 1 {
            return self.candidates[0].0;
        }
        // `prepare` left probabilities (unnormalized) in the logit slot.
        let total: f64 = self.candidates.iter().map(|c| c.1 as f64).sum();
        let target = self.rng.next_f64() * total;
        let mut cumulative = 0.0f64;
        for &(id, weight) in &self.candidates {
            cumulative += weight as f64;
            if cumulative > target {
                return id;
            }
        }
        // Rounding can leave `target` a hair above the final sum: take the last positive one.
        self.candidates
            .iter()
            .rev()
            .find(|c| c.1 > 0.0)
            .unwrap_or(&self.candidates[0])
            .0
    }

    /// The distribution the next draw comes from: kept tokens and their probabilities
    /// (summing to 1), most likely first. Does not advance the random generator.
    ///
    /// # Panics
    /// If `logits` is empty.
    pub fn distribution(&mut self, logits: &[f32], history: &[u32]) -> Vec<(u32, f64)> {
        assert!(
            !logits.is_empty(),
            "cannot sample from an empty logit vector"
        );
        self.prepare(logits, history);
        let total: f64 = self.candidates.iter().map(|c| c.1 as f64).sum();
        let mut out: Vec<(u32, f64)> = self
            .candidates
            .iter()
            .map(|&(id, w)| (id, w as f64 / total))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Runs the chain up to (not including) the draw; leaves in `self.candidates` the kept
    /// tokens with unnormalized probabilities.
    fn prepare(&mut self, logits: &[f32], history: &[u32]) {
        let params = self.params.clone();
        let logits = apply_penalty(
            logits,
            history,
            &params,
            &mut self.penalized,
            &mut self.seen,
        );

        if params.is_greedy() {
            let best = argmax(logits);
            self.candidates.clear();
            self.candidates.push((best, 1.0));
            return;
        }

        let candidates = &mut self.candidates;
        candidates.clear();
        let top_p_active = params.top_p < 1.0;
        // Min-p keeps logits ≥ max + ln(min_p). It and top-p both keep a prefix of the
        // descending order, so their intersection is the shorter prefix: applying min-p
        // first means only its survivors need sorting. Top-p's normalizer, though, covers
        // every candidate that survived top-k.
        let min_p_margin = if params.min_p > 0.0 {
            params.min_p.ln()
        } else {
            f32::NEG_INFINITY
        };
        let (max, normalizer) = if params.top_k > 0 && params.top_k < logits.len() {
            let selected = select::top_k_by_blocks(
                logits,
                params.top_k,
                by_logit_desc,
                sanitize,
                &mut self.block_maxima,
                candidates,
            );
            if !selected {
                candidates.extend(
                    logits
                        .iter()
                        .enumerate()
                        .map(|(i, &l)| (i as u32, sanitize(l))),
                );
                candidates.select_nth_unstable_by(params.top_k - 1, by_logit_desc);
                candidates.truncate(params.top_k);
            }
            let max = candidates
                .iter()
                .map(|c| c.1)
                .fold(f32::NEG_INFINITY, f32::max);
            let normalizer = if top_p_active {
                candidates.iter().map(|c| exp_f64(c.1 - max)).sum()
            } else {
                1.0
            };
            let threshold = max + min_p_margin;
            candidates.retain(|c| c.1 >= threshold);
            (max, normalizer)
        } else {
            // No top-k: never materialize the whole vocabulary, only min-p's survivors.
            let max = sanitize(logits[argmax(logits) as usize]);
            let normalizer = if top_p_active {
                logits.iter().map(|&l| exp_f64(sanitize(l) - max)).sum()
            } else {
                1.0
            };
            let threshold = max + min_p_margin;
            candidates.extend(
                logits
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (i as u32, sanitize(l)))
                    .filter(|c| c.1 >= threshold),
            );
            (max, normalizer)
        };
        if max == f32::NEG_INFINITY {
            // Every token is impossible: fall back to the lowest id rather than dividing by 0.
            candidates.clear();
            candidates.push((0, 1.0));
            return;
        }

        if top_p_active {
            candidates.sort_unstable_by(by_logit_desc);
            let target = params.top_p.max(0.0) as f64;
            let mut cumulative = 0.0f64;
            let mut keep = candidates.len();
            for (i, c) in candidates.iter().enumerate() {
                cumulative += exp_f64(c.1 - max) / normalizer;
                if cumulative >= target {
                    keep = i + 1;
                    break;
                }
            }
            candidates.truncate(keep.max(1));
        }

        // Temperature, then unnormalized probabilities relative to the maximum.
        let inv_temp = 1.0 / params.temp;
        for c in candidates.iter_mut() {
            c.1 = ((c.1 - max) * inv_temp).exp();
        }
    }
}

/// `e^x` for x ≤ 0 in single precision (ample for probabilities), widened for summing.
fn exp_f64(x: f32) -> f64 {
    x.exp() as f64
}

/// Returns the logits with the repetition penalty applied (a copy into `penalized` only
/// when the penalty is active).
fn apply_penalty<'a>(
    logits: &'a [f32],
    history: &[u32],
    params: &SamplerParams,
    penalized: &'a mut Vec<f32>,
    seen: &mut Vec<u32>,
) -> &'a [f32] {
    if params.repeat_penalty == 1.0 || params.repeat_last_n == 0 || history.is_empty() {
        return logits;
    }
    let window = &history[history.len().saturating_sub(params.repeat_last_n)..];
    penalized.clear();
    penalized.extend_from_slice(logits);
    // Penalize each distinct token once, however often it occurs in the window.
    seen.clear();
    seen.extend(
        window
            .iter()
            .copied()
            .filter(|&id| (id as usize) < logits.len()),
    );
    seen.sort_unstable();
    seen.dedup();
    for &id in seen.iter() {
        let l = &mut penalized[id as usize];
        if *l <= 0.0 {
            *l *= params.repeat_penalty;
        } else {
            *l /= params.repeat_penalty;
        }
    }
    penalized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_llama_cpp() {
        let p = SamplerParams::default();
        assert_eq!((p.temp, p.top_k, p.top_p, p.min_p), (0.8, 40, 0.95, 0.05));
        assert_eq!((p.repeat_penalty, p.repeat_last_n), (1.0, 64));
    }

    #[test]
    fn nan_logits_never_win() {
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1);
        let mut s = Sampler::new(SamplerParams::default());
        for _ in 0..50 {
            assert_ne!(s.sample(&[f32::NAN, 5.0, 4.9], &[]), 0);
        }
    }

    #[test]
    fn all_impossible_picks_first() {
        let mut s = Sampler::new(SamplerParams::default());
        let l = [f32::NEG_INFINITY; 4];
        assert_eq!(s.sample(&l, &[]), 0);
    }
}
