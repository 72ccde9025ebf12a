//! `tandem bench` end to end on the real gemma3 model, with tiny test sizes.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The real model; missing is a failure (scripts/fetch-model.sh installs it).
fn model() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh",
        path.display()
    );
    Some(path)
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("bench")
        .args(args)
        .output()
        .expect("tandem runs")
}

#[test]
fn markdown_table_has_one_row_per_test_and_thread_count() {
    let Some(model) = model() else { return };
    let m = model.to_str().unwrap();
    let out = bench(&[
        "-m",
        m,
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "-t",
        "1,2",
        "--bandwidth-mib",
        "16",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| gemma3"))
        .collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    for (row, (threads, test)) in rows
        .iter()
        .zip([(1, "pp8"), (1, "tg2"), (2, "pp8"), (2, "tg2")])
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[1], "gemma3 270M Q4_K - Medium");
        assert!(cells[2].ends_with(" MiB"), "{row}");
        assert_eq!(cells[3], "268.10 M");
        assert_eq!(cells[4], "CPU");
        assert_eq!(cells[5], threads.to_string());
        assert_eq!(cells[6], test);
        assert!(cells[7].contains(" ± "), "{row}");
    }
    let bandwidth_lines = stdout
        .lines()
        .filter(|l| l.contains("of measured read bandwidth"));
    assert_eq!(bandwidth_lines.count(), 2, "{stdout}");
}

#[test]
fn json_output_is_an_array_of_results() {
    let Some(model) = model() else { return };
    let out = bench(&[
        "-m",
        model.to_str().unwrap(),
        "-p",
        "4",
        "-n",
        "0",
        "-r",
        "2",
        "-t",
        "1",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["test"], "pp4");
    assert_eq!(rows[0]["samples_ns"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let Some(model) = model() else { return };
    let m = model.to_str().unwrap();
    for (args, needle) in [
        (vec!["-m", m, "-p", "0", "-n", "0"], "nothing to measure"),
        (vec!["-m", m, "-p", "12x"], "-p"),
        (vec!["-m", m, "-t", "0"], "-t"),
        (vec!["-m", m, "-r", "0"], "-r"),
        (vec!["-m", m, "-ngl", "0,x"], "-ngl"),
    ] {
        let out = bench(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// `-ngl` as a list adds the ngl column and names the backends; `--per-layer` prints a
/// row per block with its device, the boundary and the output layer. Needs a GPU
/// adapter (lavapipe in CI).
#[test]
fn gpu_layer_lists_and_per_layer_times() {
    let Some(model) = model() else { return };
    let out = bench(&[
        "-m",
        model.to_str().unwrap(),
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "-t",
        "2",
        "-ngl",
        "0,9,all",
        "--per-layer",
        "--bandwidth-mib",
        "16",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = stdout.lines().next().unwrap();
    assert!(header.contains("| threads | ngl |"), "{header}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| gemma3"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let seen: Vec<(&str, &str, &str)> = rows.iter().map(|c| (c[4], c[6], c[7])).collect();
    assert_eq!(
        seen,
        [
            ("CPU", "0", "pp8"),
            ("CPU", "0", "tg2"),
            ("Vulkan+CPU", "9", "pp8"),
            ("Vulkan+CPU", "9", "tg2"),
            ("Vulkan", "all", "pp8"),
            ("Vulkan", "all", "tg2"),
        ],
        "{stdout}"
    );
    // Per-layer tables: one per configuration, 18 block rows each.
    assert_eq!(stdout.matches("per-layer times of").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("| block 17 | GPU |").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("| block 8 | GPU |").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("| boundary | both |").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("| output | GPU |").count(), 1, "{stdout}");
    assert!(stdout.contains("on the GPU"), "{stdout}");
}
