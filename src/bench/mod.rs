//! `tandem bench`'s machinery: timing prompt processing and generation the way llama-bench
//! does, formatting its table, and measuring the machine's memory read bandwidth to judge
//! how close generation gets to the memory limit.

pub mod bandwidth;
pub mod gpu_profile;
pub mod report;
pub mod runner;

pub use bandwidth::{measure_read_bandwidth, Bandwidth};
pub use report::{BenchResult, ModelSummary};
pub use runner::{run_test, BenchTarget, TestSpec};
