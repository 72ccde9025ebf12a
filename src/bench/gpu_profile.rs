//! `tandem bench --gpu-profile`: GPU time per kernel for a prompt and for generated
//! tokens, from timestamp queries, with each kernel's achieved bandwidth against the
//! device's measured copy bandwidth, and the dispatches and submissions per token.

use std::time::Instant;

use crate::bench::BenchTarget;
use crate::gpu::{Gpu, GpuProfile};
use crate::sampling::Rng;

/// One profiled test: its name, the tokens it covered and what the GPU did.
pub struct ProfiledTest {
    pub name: String,
    pub tokens: usize,
    pub profile: GpuProfile,
    /// Wall-clock seconds of the profiled run (timing itself slows it down).
    pub wall_seconds: f64,
}

/// Runs `tokens` (one batch when `one_batch`, else one token at a time) from an empty
/// cache with the GPU's kernel timing on.
pub fn profile_run<T: BenchTarget + ?Sized>(
    target: &mut T,
    gpu: &Gpu,
    name: String,
    tokens: &[u32],
    one_batch: bool,
) -> anyhow::Result<ProfiledTest> {
    target.clear();
    gpu.set_timing(true)?;
    gpu.reset_profile();
    let start = Instant::now();
    let run = if one_batch {
        target.eval(tokens)
    } else {
        tokens
            .iter()
            .try_for_each(|t| target.eval(std::slice::from_ref(t)))
    };
    let wall_seconds = start.elapsed().as_secs_f64();
    gpu.set_timing(false)?;
    run?;
    Ok(ProfiledTest {
        name,
        tokens: tokens.len(),
        profile: gpu.profile(),
        wall_seconds,
    })
}

/// The prompt test (when `n_prompt` > 0) and `n_gen` generated tokens, profiled.
pub fn profile_tests<T: BenchTarget + ?Sized>(
    target: &mut T,
    gpu: &Gpu,
    n_prompt: usize,
    n_gen: usize,
    rng: &mut Rng,
) -> anyhow::Result<Vec<ProfiledTest>> {
    let n_vocab = target.n_vocab().max(1) as u64;
    let mut random = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.below(n_vocab) as u32).collect() };
    let mut tests = Vec::new();
    if n_prompt > 0 {
        let prompt = random(n_prompt);
        tests.push(profile_run(
            target,
            gpu,
            format!("pp{n_prompt}"),
            &prompt,
            true,
        )?);
    }
    if n_gen > 0 {
        let generated = random(n_gen);
        tests.push(profile_run(
            target,
            gpu,
            format!("tg{n_gen}"),
            &generated,
            false,
        )?);
    }
    Ok(tests)
}

/// A markdown table per test: kernel, calls per token, GPU ms per token, GB/s and the
/// share of `device_bytes_per_sec`; then the totals and the dispatches and submissions
/// per token.
pub fn format_profile(
    description: &str,
    device_name: &str,
    device_bytes_per_sec: f64,
    test: &ProfiledTest,
) -> String {
    let per_token = |v: f64| v / test.tokens.max(1) as f64;
    let mut rows: Vec<_> = test.profile.kernels.iter().collect();
    rows.sort_by(|a, b| b.1.nanos.total_cmp(&a.1.nanos));
    let total_ns: f64 = rows.iter().map(|(_, s)| s.nanos).sum();
    let mut out = format!(
        "GPU profile of {description} {} on {device_name} (device copy bandwidth {:.1} GB/s):\n\n\
         | kernel | calls/token | ms/token | share | GB/s | % of bandwidth |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
        test.name,
        device_bytes_per_sec / 1e9
    );
    for (name, stat) in rows {
        let gbs = (stat.bytes > 0 && stat.nanos > 0.0).then(|| stat.bytes as f64 / stat.nanos);
        out += &format!(
            "| {name} | {:.1} | {:.3} | {:.1}% | {} | {} |\n",
            per_token(stat.calls as f64),
            per_token(stat.nanos) / 1e6,
            100.0 * stat.nanos / total_ns.max(1.0),
            gbs.map_or("-".into(), |g| format!("{g:.1}")),
            gbs.map_or("-".into(), |g| format!(
                "{:.0}%",
                100.0 * g * 1e9 / device_bytes_per_sec
            )),
        );
    }
    out += &format!(
        "\nper token: {:.3} ms of kernels, {:.3} ms wall clock while profiling; {:.1} dispatches, {:.2} submissions\n",
        per_token(total_ns) / 1e6,
        per_token(test.wall_seconds * 1e3),
        per_token(test.profile.dispatches as f64),
        per_token(test.profile.submits as f64),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::KernelStat;

    #[test]
    fn the_table_divides_by_tokens_and_ranks_by_time() {
        let mut profile = GpuProfile {
            dispatches: 40,
            submits: 4,
            ..GpuProfile::default()
        };
        profile.kernels.insert(
            "rmsnorm".into(),
            KernelStat {
                calls: 8,
                nanos: 2e6,
                bytes: 0,
            },
        );
        profile.kernels.insert(
            "matvec_q4_0".into(),
            KernelStat {
                calls: 28,
                nanos: 6e6,
                bytes: 6_000_000,
            },
        );
        let test = ProfiledTest {
            name: "tg4".into(),
            tokens: 4,
            profile,
            wall_seconds: 0.02,
        };
        let table = format_profile("llama 1B Q4_0", "lavapipe", 2e9, &test);
        let matvec = table.find("| matvec_q4_0 | 7.0 | 1.500 | 75.0% | 1.0 | 50% |");
        let norm = table.find("| rmsnorm | 2.0 | 0.500 | 25.0% | - | - |");
        assert!(matvec.is_some() && norm.is_some(), "{table}");
        assert!(matvec < norm, "slowest first: {table}");
        assert!(
            table.contains("2.000 ms of kernels, 5.000 ms wall clock while profiling; 10.0 dispatches, 1.00 submissions"),
            "{table}"
        );
    }
}
