//! `tandem devices` lists the adapter the GPU tests run on, and says clearly when there
//! is none.

use std::process::Command;

#[test]
fn devices_lists_at_least_one_adapter_with_its_limits() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("devices")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tandem devices failed (a GPU adapter, e.g. lavapipe, is required): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("[0] "), "{stdout}");
    for field in ["backend:", "max storage binding:", "subgroup:", "f16:"] {
        assert!(stdout.contains(field), "missing {field}: {stdout}");
    }
}

#[test]
fn devices_check_runs_a_product_on_every_adapter() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["devices", "--check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let adapters = stdout.lines().filter(|l| l.starts_with('[')).count();
    let passed = stdout.lines().filter(|l| l.contains("check: ok")).count();
    assert!(adapters >= 1 && passed == adapters, "{stdout}");
}

#[cfg(target_os = "linux")]
#[test]
fn devices_without_any_vulkan_driver_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("devices")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no GPU adapter found"), "{stderr}");
    assert!(stderr.contains("--gpu-layers 0"), "{stderr}");
}

fn gemma3() -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-model.sh",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

fn run_gemma3(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let model = gemma3();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.args([
        "run",
        "-m",
        &model,
        "-p",
        "The three primary colors are",
        "-n",
        "4",
    ])
    .args(["--temp", "0", "-c", "256"])
    .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Asking for GPU layers without any adapter is an error that says what to do, not a
/// silent run on the CPU.
#[cfg(target_os = "linux")]
#[test]
fn gpu_layers_without_an_adapter_is_a_clear_error() {
    let no_driver = [
        ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
        ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
    ];
    for flags in [
        &["-ngl", "1"][..],
        &["--gpu-layers", "all"],
        &["--output-on", "gpu"],
    ] {
        let out = run_gemma3(flags, &no_driver);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert!(out.stdout.is_empty(), "{flags:?}: nothing may be generated");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("needs a GPU"), "{stderr}");
        assert!(stderr.contains("no GPU adapter found"), "{stderr}");
    }
    // With no GPU asked for, the same machine runs on the CPU.
    let out = run_gemma3(&["-ngl", "0"], &no_driver);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Running out of GPU memory (here a 60 MiB budget) names how many blocks fit, and
/// that advice works under the same budget.
#[test]
fn out_of_gpu_memory_says_how_many_blocks_fit() {
    let budget = [("TANDEM_GPU_MEMORY_LIMIT", "60M")];
    let out = run_gemma3(&["-ngl", "all"], &budget);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("out of GPU memory"), "{stderr}");
    let advice = stderr
        .lines()
        .find(|l| l.contains("blocks fit"))
        .unwrap_or_else(|| panic!("no advice: {stderr}"));
    assert!(advice.contains("the output layer"), "{advice}");
    let n: usize = advice
        .split("--gpu-layers ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no block count in: {advice}"));
    assert!((1..18).contains(&n), "{advice}");
    let ngl = n.to_string();
    let fits = run_gemma3(&["-ngl", &ngl], &budget);
    assert!(
        fits.status.success(),
        "{advice}: {}",
        String::from_utf8_lossy(&fits.stderr)
    );
    let more = (n + 1).to_string();
    let too_many = run_gemma3(&["-ngl", &more], &budget);
    assert_eq!(
        too_many.status.code(),
        Some(1),
        "{n} + 1 blocks should not fit"
    );
}

/// Bad placement flags are errors naming the flag.
#[test]
fn bad_placement_flags_are_clear_errors() {
    for (flags, needle) in [
        (&["-ngl", "half"][..], "not a number of layers"),
        (&["--output-on", "tpu"], "not a device"),
        (&["-ngl", "1", "--gpu-device", "99"], "--gpu-device 99"),
    ] {
        let out = run_gemma3(flags, &[]);
        assert_ne!(out.status.code(), Some(0), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
    }
}
