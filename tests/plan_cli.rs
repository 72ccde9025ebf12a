//! `tandem plan` as a user runs it: a preset with no file and no GPU, the real gemma3
//! file, and bad input (exit code 1 with advice, no panic).

mod common;

use std::process::{Command, Output};

fn tandem(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join(format!("tandem-plan-cli-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("TANDEM_CACHE_DIR", cache)
        .env_remove("TANDEM_GPU_MEMORY_LIMIT")
        .output()
        .unwrap()
}

fn plan_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--json", "-t", "2"];
    all.extend_from_slice(args);
    let out = tandem(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_70b_plan_for_an_8_gib_gpu_needs_no_file() {
    let j = plan_json(&[
        "--preset",
        "70b",
        "--type",
        "Q4_K_M",
        "--vram-budget",
        "8GiB",
        "--gpu-bandwidth",
        "300",
    ]);
    assert_eq!(j["n_layers"], 80);
    assert_eq!(j["gpu_layers"], 15);
    assert_eq!(j["fits"], true);
    assert!(j["gpu_bytes"].as_u64().unwrap() <= 8 << 30);
    let tg = j["predicted_tg"].as_f64().unwrap();
    // 65 blocks (about 31 GiB) read on a 2-core CPU per token: well under 2 t/s.
    assert!(tg > 0.05 && tg < 2.0, "{tg}");
}

#[test]
fn a_file_plan_without_a_gpu_keeps_every_block_on_the_cpu() {
    let path = common::gemma3_path();
    let j = plan_json(&["-m", path.to_str().unwrap(), "-c", "2048"]);
    assert_eq!(j["n_layers"], 18);
    assert_eq!(j["n_ctx"], 2048);
    // 18 blocks × 2048 cells × 1 K/V head × (256 + 256) × 2 bytes.
    assert_eq!(j["kv_bytes"], 18 * 2048 * 512 * 2);
    assert!(j["predicted_tg"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_plans_are_errors_with_advice() {
    for (args, expected) in [
        (vec!["plan", "--preset", "65b"], "unknown preset"),
        (
            vec!["plan", "--preset", "7b", "--type", "Q9_9"],
            "not a weight type",
        ),
        (
            vec!["plan", "--preset", "7b", "--vram-budget", "lots"],
            "not a size",
        ),
        (
            vec!["plan", "--preset", "7b", "--parallel", "0"],
            "--parallel",
        ),
        (vec!["plan"], "--model"),
    ] {
        let out = tandem(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
