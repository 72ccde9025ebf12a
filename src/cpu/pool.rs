//! Worker threads for data-parallel operations.
//!
//! Placeholder: spawns scoped threads per call. To be replaced by a persistent pool with
//! spinning workers (decode issues ~10 operations per block per token, so starting a
//! parallel operation must cost microseconds).

/// A fixed set of worker threads.
pub struct ThreadPool {
    n_threads: usize,
}

impl ThreadPool {
    /// A pool of `n_threads` (at least 1) threads, the caller's own thread included.
    pub fn new(n_threads: usize) -> ThreadPool {
        ThreadPool {
            n_threads: n_threads.max(1),
        }
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `f(thread_index, n_threads)` once on every thread and returns when all are done.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        let n = self.n_threads;
        std::thread::scope(|s| {
            for i in 1..n {
                let f = &f;
                s.spawn(move || f(i, n));
            }
            f(0, n);
        });
    }
}
