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
