//! Worker threads for data-parallel operations.
//!
//! Decode issues ~10 parallel operations per block per token, so starting one must cost
//! microseconds: the workers live as long as the pool and wait for work by spinning
//! briefly, then yielding, then sleeping on a condition variable.
//!
//! A job is published by bumping a generation counter that shares one atomic word with
//! the next unclaimed thread index. Everyone (workers and, after its own index 0, the
//! caller) claims indices from that word until none are left, then the caller waits
//! only for indices that are actually running. So a worker that the OS has not
//! scheduled (a busy or oversubscribed machine) never holds the caller up: the caller
//! runs its share instead.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it starts yielding, and yields before it sleeps.
const SPIN_FOR: Duration = Duration::from_micros(100);
const YIELD_FOR: Duration = Duration::from_millis(3);

/// The job as workers see it: a borrowed closure whose lifetime the caller guarantees by
/// not returning from [`ThreadPool::run`] before every worker has finished with it.
type Job = *const (dyn Fn(usize, usize) + Sync);

struct Shared {
    n_threads: usize,
    /// `generation << 32 | next unclaimed index`; the generation is bumped once per job
    /// (and once at shutdown).
    state: AtomicU64,
    /// The current job; written by the caller before the generation is bumped.
    job: UnsafeCell<Option<Job>>,
    /// Indices 1.. of the current job that have finished.
    finished: AtomicUsize,
    worker_panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Workers currently asleep (or about to sleep) on `wake`.
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the single caller holding `run_lock` while no index
// of a job is running (every claimed index has finished), and read only by a thread that
// has claimed an index of the current generation (Acquire on `state`), which keeps the
// caller waiting until it is done.
unsafe impl Sync for Shared {}
// SAFETY: the raw job pointer is only dereferenced under the protocol above.
unsafe impl Send for Shared {}

thread_local! {
    /// Set while this thread runs a pool job, so a nested `run` executes serially instead
    /// of waiting on workers that are busy running the outer job.
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// A fixed set of worker threads.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes callers: one job at a time.
    run_lock: Mutex<()>,
}

impl ThreadPool {
    /// A pool of `n_threads` (at least 1) threads, the caller's own thread included.
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            n_threads,
            state: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            finished: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..n_threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("tandem-worker-{index}"))
                    .spawn(move || worker_loop(&shared))
                    .expect("failed to spawn a worker thread")
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Runs `f(index, n_threads)` once for every index in `0..n_threads`, spread over
    /// the pool's threads (index 0 on the caller; an index whose worker is slow to wake
    /// may run on the caller too), and returns when all are done.
    ///
    /// A panic in `f` on any thread is re-raised here after every index has finished.
    /// Called from inside a job (nested), it runs all indices serially on this thread.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        let n = self.shared.n_threads;
        if n == 1 || IN_JOB.with(Cell::get) {
            for i in 0..n {
                f(i, n);
            }
            return;
        }
        let _guard = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        let job: &(dyn Fn(usize, usize) + Sync) = &f;
        // SAFETY: erases the closure's lifetime; we wait below until every claimed index
        // has finished before returning (even when our own share panics), and no index
        // can be claimed after that (all are claimed by then).
        let job: Job = unsafe { std::mem::transmute::<_, Job>(job) };
        // SAFETY: no index is running now (see the Sync impl of Shared).
        unsafe { *shared.job.get() = Some(job) };
        shared.worker_panicked.store(false, Ordering::Relaxed);
        shared.finished.store(0, Ordering::Relaxed);
        let generation = (shared.state.load(Ordering::Relaxed) >> 32).wrapping_add(1) & 0xffff_ffff;
        shared.state.store(generation << 32 | 1, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _lock = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }

        let own = run_marked(|| f(0, n));
        // Take over the indices no worker has claimed yet.
        while let Some(i) = claim(shared, generation) {
            if run_marked(|| f(i, n)).is_err() {
                shared.worker_panicked.store(true, Ordering::Relaxed);
            }
            shared.finished.fetch_add(1, Ordering::Release);
        }
        wait_until(|| shared.finished.load(Ordering::Acquire) == n - 1);
        // SAFETY: every index has finished; drop our dangling copy.
        unsafe { *shared.job.get() = None };
        if let Err(payload) = own {
            panic::resume_unwind(payload);
        }
        if shared.worker_panicked.load(Ordering::Relaxed) {
            panic!("a thread pool job panicked on another index");
        }
    }
}

/// Claims the next unclaimed index of job `generation`, if any is left.
fn claim(shared: &Shared, generation: u64) -> Option<usize> {
    let mut state = shared.state.load(Ordering::Acquire);
    loop {
        let index = (state & 0xffff_ffff) as usize;
        if state >> 32 != generation || index >= shared.n_threads {
            return None;
        }
        match shared.state.compare_exchange_weak(
            state,
            state + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Some(index),
            Err(current) => state = current,
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // A new generation with no index to claim: wakes everyone, runs nothing.
        let generation =
            (self.shared.state.load(Ordering::SeqCst) >> 32).wrapping_add(1) & 0xffff_ffff;
        self.shared
            .state
            .store(generation << 32 | 0xffff_ffff, Ordering::SeqCst);
        {
            let _lock = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Runs `f` with the nested-job marker set, catching a panic.
fn run_marked(f: impl FnOnce()) -> Result<(), Box<dyn Any + Send>> {
    IN_JOB.with(|m| m.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_JOB.with(|m| m.set(false));
    result
}

/// Spins, then yields, until `done()` holds.
fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > SPIN_FOR {
            std::thread::yield_now();
        }
    }
}

fn worker_loop(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        seen = wait_for_generation(shared, seen);
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        while let Some(i) = claim(shared, seen) {
            // SAFETY: the claim (Acquire) happened after the caller wrote the job, and
            // the caller keeps the closure alive until this index is counted finished.
            let job = unsafe { (*shared.job.get()).expect("job published with the generation") };
            // SAFETY: as above.
            let result = run_marked(|| unsafe { (*job)(i, shared.n_threads) });
            if result.is_err() {
                shared.worker_panicked.store(true, Ordering::Relaxed);
            }
            shared.finished.fetch_add(1, Ordering::Release);
        }
    }
}

/// Waits until the generation differs from `seen` and returns the new one.
fn wait_for_generation(shared: &Shared, seen: u64) -> u64 {
    let generation = || shared.state.load(Ordering::Acquire) >> 32;
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            let g = generation();
            if g != seen {
                return g;
            }
            std::hint::spin_loop();
        }
        let waited = start.elapsed();
        if waited < SPIN_FOR {
            continue;
        }
        if waited < YIELD_FOR {
            std::thread::yield_now();
            continue;
        }
        let mut lock = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        shared.sleepers.fetch_add(1, Ordering::SeqCst);
        while shared.state.load(Ordering::SeqCst) >> 32 == seen {
            lock = shared.wake.wait(lock).unwrap_or_else(|e| e.into_inner());
        }
        shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        drop(lock);
        return generation();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_index_runs_once_per_job() {
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n);
            for round in 0..200u64 {
                let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                pool.run(|i, nt| {
                    assert_eq!(nt, n);
                    hits[i].fetch_add(round + 1, Ordering::Relaxed);
                });
                for h in &hits {
                    assert_eq!(h.load(Ordering::Relaxed), round + 1);
                }
            }
        }
    }

    #[test]
    fn many_more_threads_than_cores_still_finish() {
        let pool = ThreadPool::new(16);
        for _ in 0..200 {
            let hits: Vec<AtomicU64> = (0..16).map(|_| AtomicU64::new(0)).collect();
            pool.run(|i, _| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let pool = ThreadPool::new(3);
        std::thread::sleep(YIELD_FOR * 3);
        let count = AtomicUsize::new(0);
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.run(|i, _| {
                if i == 1 {
                    panic!("boom in worker");
                }
            })
        }));
        assert!(result.is_err());
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.run(|i, _| {
                if i == 0 {
                    panic!("boom in caller");
                }
            })
        }));
        assert!(result.is_err());
        let count = AtomicUsize::new(0);
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn nested_runs_execute_serially() {
        let pool = ThreadPool::new(2);
        let count = AtomicUsize::new(0);
        pool.run(|_, _| {
            pool.run(|_, _| {
                count.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn concurrent_callers_are_serialized() {
        let pool = ThreadPool::new(2);
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..100 {
                        pool.run(|_, _| {
                            count.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 600);
    }
}
