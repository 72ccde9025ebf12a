//! Sampler tests against a naive, sequential f64 implementation of llama.cpp's chain
//! (penalties → top-k → top-p → min-p → temperature), plus empirical draw frequencies.

use tandem::sampling::{argmax, Sampler, SamplerParams};

/// Deterministic test logits from a tiny LCG (independent of the sampler's own PRNG).
fn test_logits(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn params(temp: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplerParams {
    SamplerParams {
        temp,
        top_k,
        top_p,
        min_p,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed: 42,
    }
}

/// The chain written out step by step with full sorts and f64 softmaxes.
fn reference_distribution(logits: &[f32], history: &[u32], p: &SamplerParams) -> Vec<(u32, f64)> {
    let mut l: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
    if p.repeat_penalty != 1.0 && p.repeat_last_n > 0 {
        let start = history.len().saturating_sub(p.repeat_last_n);
        let mut penalized = vec![false; l.len()];
        for &t in &history[start..] {
            let t = t as usize;
            if t < l.len() && !penalized[t] {
                penalized[t] = true;
                let r = p.repeat_penalty as f64;
                l[t] = if l[t] <= 0.0 { l[t] * r } else { l[t] / r };
            }
        }
    }
    let mut cands: Vec<(u32, f64)> = l.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
    cands.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    if p.temp <= 0.0 || p.top_k == 1 {
        return vec![(cands[0].0, 1.0)];
    }
    if p.top_k > 0 {
        cands.truncate(p.top_k);
    }
    let softmax = |c: &[(u32, f64)]| -> Vec<f64> {
        let m = c[0].1;
        let e: Vec<f64> = c.iter().map(|x| (x.1 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|x| x / s).collect()
    };
    if p.top_p < 1.0 {
        let probs = softmax(&cands);
        let mut cum = 0.0;
        let mut keep = cands.len();
        for (i, pr) in probs.iter().enumerate() {
            cum += pr;
            if cum >= p.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        cands.truncate(keep);
    }
    if p.min_p > 0.0 {
        let probs = softmax(&cands);
        let pmax = probs[0];
        let keep = probs
            .iter()
            .filter(|&&pr| pr >= p.min_p as f64 * pmax)
            .count();
        cands.truncate(keep.max(1));
    }
    let scaled: Vec<(u32, f64)> = cands
        .iter()
        .map(|&(id, x)| (id, x / p.temp as f64))
        .collect();
    let probs = softmax(&scaled);
    scaled.iter().zip(probs).map(|(c, pr)| (c.0, pr)).collect()
}

fn assert_same_distribution(got: &[(u32, f64)], want: &[(u32, f64)], what: &str) {
    let mut g: Vec<u32> = got.iter().map(|x| x.0).collect();
    let mut w: Vec<u32> = want.iter().map(|x| x.0).collect();
    g.sort_unstable();
    w.sort_unstable();
    assert_eq!(g, w, "{what}: kept sets differ");
    for &(id, pw) in want {
        let pg = got.iter().find(|x| x.0 == id).unwrap().1;
        assert!(
            (pg - pw).abs() < 1e-5,
            "{what}: token {id}: got {pg}, want {pw}"
        );
    }
}

#[test]
fn greedy_is_argmax() {
    for seed in 0..20 {
        let logits = test_logits(1000, seed, 8.0);
        let naive = logits
            .iter()
            .enumerate()
            .fold(
                (0usize, f32::MIN),
                |b, (i, &x)| if x > b.1 { (i, x) } else { b },
            )
            .0 as u32;
        assert_eq!(argmax(&logits), naive);
        let mut s = Sampler::new(params(0.0, 40, 0.95, 0.05));
        for _ in 0..5 {
            assert_eq!(s.sample(&logits, &[]), naive);
        }
    }
}

#[test]
fn top_k_one_is_argmax_at_any_temperature() {
    for seed in 0..10 {
        let logits = test_logits(500, seed, 1.0);
        let mut s = Sampler::new(params(5.0, 1, 1.0, 0.0));
        for _ in 0..20 {
            assert_eq!(s.sample(&logits, &[]), argmax(&logits));
        }
    }
}

#[test]
fn distribution_matches_sequential_reference() {
    let settings = [
        params(0.8, 40, 0.95, 0.05), // llama.cpp defaults
        params(1.0, 0, 1.0, 0.0),    // plain softmax
        params(0.7, 0, 0.9, 0.0),    // top-p alone over the whole vocabulary
        params(1.3, 0, 1.0, 0.1),    // min-p alone
        params(0.5, 0, 0.8, 0.02),   // top-p and min-p, no top-k
        params(1.0, 5, 1.0, 0.0),    // top-k alone
        params(2.0, 100, 0.5, 0.3),  // min-p cutting after top-p
        params(1.0, 3, 0.0, 0.0),    // top-p of 0 keeps the single best
    ];
    for (i, p) in settings.iter().enumerate() {
        for seed in 0..5 {
            let logits = test_logits(3000, 100 + seed, 6.0);
            let mut s = Sampler::new(p.clone());
            let got = s.distribution(&logits, &[]);
            let want = reference_distribution(&logits, &[], p);
            assert_same_distribution(&got, &want, &format!("setting {i} seed {seed}"));
        }
    }
}

#[test]
fn full_gemma_sized_vocabulary_matches_reference() {
    let logits = test_logits(262_144, 9, 10.0);
    for p in [params(0.8, 40, 0.95, 0.05), params(0.8, 0, 0.95, 0.05)] {
        let got = Sampler::new(p.clone()).distribution(&logits, &[]);
        let want = reference_distribution(&logits, &[], &p);
        assert_same_distribution(&got, &want, "262k vocabulary");
    }
}

#[test]
fn repeat_penalty_divides_positive_and_multiplies_negative() {
    let logits = [2.0f32, -1.0, 0.5, 3.0, 0.0];
    let p = SamplerParams {
        repeat_penalty: 2.0,
        ..params(1.0, 0, 1.0, 0.0)
    };
    // Token 0 twice (penalized once), token 1 negative, token 4 zero.
    let history = [0u32, 1, 0, 4];
    let expected_logits = [1.0f64, -2.0, 0.5, 3.0, 0.0];
    let z: f64 = expected_logits.iter().map(|x| x.exp()).sum();
    let got = Sampler::new(p).distribution(&logits, &history);
    for (id, want) in expected_logits.iter().map(|x| x.exp() / z).enumerate() {
        let pg = got.iter().find(|x| x.0 == id as u32).unwrap().1;
        assert!((pg - want).abs() < 1e-6, "token {id}: got {pg} want {want}");
    }
}

#[test]
fn repeat_penalty_only_looks_at_the_window() {
    let logits = [3.0f32, 2.9, 0.0];
    let p = SamplerParams {
        repeat_penalty: 1.5,
        repeat_last_n: 2,
        ..params(0.0, 40, 0.95, 0.05)
    };
    let mut s = Sampler::new(p);
    // Token 0 is outside the 2-token window: still the argmax.
    assert_eq!(s.sample(&logits, &[0, 2, 2]), 0);
    // Inside the window it drops to 2.0 and token 1 wins.
    assert_eq!(s.sample(&logits, &[2, 0]), 1);
    // Out-of-vocabulary history ids are ignored.
    assert_eq!(s.sample(&logits, &[99, 1_000_000]), 0);
}

#[test]
fn repeat_penalty_matches_reference_with_filters() {
    let logits = test_logits(2000, 77, 5.0);
    let history: Vec<u32> = (0..200).map(|i| (i * 37 % 2000) as u32).collect();
    let p = SamplerParams {
        repeat_penalty: 1.3,
        repeat_last_n: 64,
        ..params(0.9, 50, 0.9, 0.05)
    };
    let got = Sampler::new(p.clone()).distribution(&logits, &history);
    let want = reference_distribution(&logits, &history, &p);
    assert_same_distribution(&got, &want, "penalty + filters");
}

/// Draw counts within 5 standard errors of the expected probabilities.
fn check_frequencies(p: SamplerParams, logits: &[f32], draws: usize) {
    let want = reference_distribution(logits, &[], &p);
    let mut s = Sampler::new(p);
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..draws {
        counts[s.sample(logits, &[]) as usize] += 1;
    }
    for (id, &c) in counts.iter().enumerate() {
        let expected = want.iter().find(|x| x.0 == id as u32).map_or(0.0, |x| x.1);
        let freq = c as f64 / draws as f64;
        if expected == 0.0 {
            assert_eq!(c, 0, "token {id} was filtered out but drawn {c} times");
        } else {
            let sigma = (expected * (1.0 - expected) / draws as f64).sqrt();
            assert!(
                (freq - expected).abs() < 5.0 * sigma + 1e-9,
                "token {id}: frequency {freq}, expected {expected}"
            );
        }
    }
}

#[test]
fn empirical_frequencies_follow_tempered_softmax() {
    let logits = [1.0f32, 2.0, 0.5, -1.0, 1.5, 0.0, 2.2, -0.3];
    check_frequencies(params(0.7, 0, 1.0, 0.0), &logits, 200_000);
}

#[test]
fn empirical_frequencies_respect_filters() {
    let logits = [1.0f32, 2.0, 0.5, -1.0, 1.5, 0.0, 2.2, -0.3];
    check_frequencies(params(1.5, 4, 1.0, 0.0), &logits, 200_000);
    check_frequencies(params(1.0, 0, 0.8, 0.0), &logits, 200_000);
    check_frequencies(params(1.2, 0, 1.0, 0.3), &logits, 200_000);
}

#[test]
fn same_seed_same_sequence() {
    let logits = test_logits(5000, 3, 3.0);
    let run = |seed: u64| -> Vec<u32> {
        let mut s = Sampler::new(SamplerParams {
            seed,
            ..params(1.0, 0, 1.0, 0.0)
        });
        let mut history = Vec::new();
        for _ in 0..64 {
            let t = s.sample(&logits, &history);
            history.push(t);
        }
        history
    };
    assert_eq!(run(1234), run(1234));
    assert_ne!(run(1234), run(1235));
}
