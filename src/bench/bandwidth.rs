//! Sustained multi-threaded memory read bandwidth: every thread sums its share of a buffer
//! much larger than the caches; the best of several passes is reported.
//!
//! Summing u64 words with wrapping adds lets the compiler vectorize freely (integer addition
//! is associative), so the loop is bound by memory, not by arithmetic.

use std::hint::black_box;
use std::time::Instant;

/// One bandwidth measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth {
    /// Best pass, in bytes per second.
    pub bytes_per_sec: f64,
    pub buffer_bytes: usize,
    pub threads: usize,
    pub passes: usize,
}

impl Bandwidth {
    pub fn gb_per_sec(&self) -> f64 {
        self.bytes_per_sec / 1e9
    }
}

/// Wrapping sum of all words, with independent lanes so the adds vectorize.
pub fn sum_words(words: &[u64]) -> u64 {
    const LANES: usize = 16;
    let mut acc = [0u64; LANES];
    let chunks = words.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &w) in acc.iter_mut().zip(chunk) {
            *a = a.wrapping_add(w);
        }
    }
    let mut total = tail.iter().fold(0u64, |s, &w| s.wrapping_add(w));
    for a in acc {
        total = total.wrapping_add(a);
    }
    total
}

/// Measures read bandwidth over a buffer of `buffer_bytes` with `threads` threads, best of
/// `passes` passes. The buffer is written by the same threads first so its pages are mapped
/// (and, on multi-socket machines, local to the thread reading them).
pub fn measure_read_bandwidth(buffer_bytes: usize, threads: usize, passes: usize) -> Bandwidth {
    let threads = threads.max(1);
    let words = (buffer_bytes / 8).max(threads * 16);
    let mut buffer = vec![0u64; words];
    let per_thread = words.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, chunk) in buffer.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                for (i, w) in chunk.iter_mut().enumerate() {
                    *w = (t * per_thread + i) as u64;
                }
            });
        }
    });

    let mut best = f64::INFINITY;
    for _ in 0..passes.max(1) {
        let start = Instant::now();
        let total = std::thread::scope(|scope| {
            let handles: Vec<_> = buffer
                .chunks(per_thread)
                .map(|chunk| scope.spawn(move || sum_words(black_box(chunk))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bandwidth thread panicked"))
                .fold(0u64, u64::wrapping_add)
        });
        black_box(total);
        best = best.min(start.elapsed().as_secs_f64());
    }
    Bandwidth {
        bytes_per_sec: (words * 8) as f64 / best,
        buffer_bytes: words * 8,
        threads,
        passes: passes.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_words_matches_naive_sum_including_tail() {
        for n in [0usize, 1, 15, 16, 17, 1000, 1037] {
            let v: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            let naive = v.iter().fold(0u64, |s, &w| s.wrapping_add(w));
            assert_eq!(sum_words(&v), naive, "n = {n}");
        }
    }

    #[test]
    fn measurement_reports_its_setup() {
        let bw = measure_read_bandwidth(1 << 20, 2, 2);
        assert_eq!(bw.buffer_bytes, 1 << 20);
        assert_eq!((bw.threads, bw.passes), (2, 2));
        assert!(bw.bytes_per_sec.is_finite() && bw.bytes_per_sec > 0.0);
    }
}
