//! Finding the largest logits of a big vocabulary without touching most of it twice.
//!
//! One vectorizable pass computes the maximum of every block of `BLOCK` logits. The k-th
//! largest block maximum `T` bounds the k-th largest logit from below (k blocks each hold
//! a distinct logit ≥ `T`), so every one of the k best logits, ties included, lies in a
//! block whose maximum is ≥ `T`: only those blocks are scanned.

use std::cmp::Ordering;

/// Logits per block: small enough that the blocks to rescan stay few, large enough that the
/// block maxima are a small array.
const BLOCK: usize = 64;
/// Independent max lanes, so the compiler can keep them in vector registers.
const LANES: usize = 16;

/// Maximum of one block (NaN ignored; a block of NaN gives -inf).
fn block_max(block: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = block.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = m.max(x);
        }
    }
    let head = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    tail.iter().copied().fold(head, f32::max)
}

fn block_maxima(logits: &[f32], out: &mut Vec<f32>) {
    out.clear();
    out.extend(logits.chunks(BLOCK).map(block_max));
}

/// Index of the largest logit; the first one on ties; NaN never wins (all NaN or -inf: 0).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best_index = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (b, block) in logits.chunks(BLOCK).enumerate() {
        let m = block_max(block);
        if m > best_value {
            best_value = m;
            best_index = b * BLOCK + block.iter().position(|&x| x == m).unwrap_or(0);
        }
    }
    best_index as u32
}

/// Appends to `out` the `k` best (id, logit) pairs under `order` (best first), in no
/// particular order. `sanitize` maps each logit before comparison (NaN to -inf). Returns
/// false, leaving `out` untouched, when the shortcut does not apply (then the caller falls
/// back to a full selection).
pub fn top_k_by_blocks(
    logits: &[f32],
    k: usize,
    order: fn(&(u32, f32), &(u32, f32)) -> Ordering,
    sanitize: fn(f32) -> f32,
    scratch: &mut Vec<f32>,
    out: &mut Vec<(u32, f32)>,
) -> bool {
    let n_blocks = logits.len().div_ceil(BLOCK);
    if k == 0 || k > n_blocks / 4 {
        return false;
    }
    block_maxima(logits, scratch);
    // k-th largest block maximum.
    let (_, &mut threshold, _) = scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    if !threshold.is_finite() {
        return false;
    }
    let start = out.len();
    for (b, block) in logits.chunks(BLOCK).enumerate() {
        if block_max(block) < threshold {
            continue;
        }
        for (j, &l) in block.iter().enumerate() {
            if l >= threshold {
                out.push(((b * BLOCK + j) as u32, sanitize(l)));
            }
        }
    }
    let found = &mut out[start..];
    if found.len() > k {
        found.select_nth_unstable_by(k - 1, order);
        out.truncate(start + k);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
        b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
    }

    fn naive_top_k(logits: &[f32], k: usize) -> Vec<u32> {
        let mut all: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        all.sort_by(desc);
        let mut ids: Vec<u32> = all[..k].iter().map(|c| c.0).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn argmax_first_of_ties_and_across_blocks() {
        let mut v = vec![0.0f32; 1000];
        v[700] = 3.0;
        v[900] = 3.0;
        assert_eq!(argmax(&v), 700);
        v[5] = f32::NAN;
        assert_eq!(argmax(&v), 700);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
        assert_eq!(argmax(&[1.0, 2.0, 2.0]), 1);
    }

    #[test]
    fn block_top_k_equals_full_sort_including_ties() {
        let mut x = 12345u64;
        for round in 0..20 {
            // Coarse values force many ties at the boundary.
            let logits: Vec<f32> = (0..20_000)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 58) as f32) - if round % 2 == 0 { 0.0 } else { 30.0 }
                })
                .collect();
            for k in [1usize, 5, 40] {
                let mut out = Vec::new();
                let mut scratch = Vec::new();
                assert!(top_k_by_blocks(
                    &logits,
                    k,
                    desc,
                    |l| l,
                    &mut scratch,
                    &mut out
                ));
                let mut ids: Vec<u32> = out.iter().map(|c| c.0).collect();
                ids.sort_unstable();
                assert_eq!(ids, naive_top_k(&logits, k), "round {round} k {k}");
            }
        }
    }

    #[test]
    fn shortcut_declines_when_it_cannot_help() {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let small = vec![1.0f32; 100];
        assert!(!top_k_by_blocks(
            &small,
            40,
            desc,
            |l| l,
            &mut scratch,
            &mut out
        ));
        let impossible = vec![f32::NEG_INFINITY; 10_000];
        assert!(!top_k_by_blocks(
            &impossible,
            3,
            desc,
            |l| l,
            &mut scratch,
            &mut out
        ));
        assert!(out.is_empty());
    }
}
