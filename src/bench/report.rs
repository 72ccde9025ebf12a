//! llama-bench's output: per-test results, its markdown table and a JSON array.

use serde::Serialize;

/// What the table says about the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSummary {
    /// llama.cpp-style description, e.g. "gemma3 270M Q4_K - Medium".
    pub description: String,
    /// Bytes of all tensors (llama-bench's "size").
    pub size_bytes: u64,
    pub n_params: u64,
}

/// One row: a test (`pp512`, `tg128`) at a thread count, with its timed repetitions.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub model: ModelSummary,
    pub backend: String,
    pub threads: usize,
    /// Blocks on the GPU as asked (`-ngl`); `None` when no GPU was asked for at all.
    pub gpu_layers: Option<String>,
    pub n_prompt: usize,
    pub n_gen: usize,
    /// Wall time of each counted repetition, in nanoseconds.
    pub samples_ns: Vec<u64>,
}

impl BenchResult {
    /// "pp512", "tg128", or "pp512+tg128" for a combined test.
    pub fn test_name(&self) -> String {
        match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, n) => format!("tg{n}"),
            (p, n) => format!("pp{p}+tg{n}"),
        }
    }

    /// Tokens per second of each repetition (what llama-bench averages).
    pub fn samples_ts(&self) -> Vec<f64> {
        let tokens = (self.n_prompt + self.n_gen) as f64;
        self.samples_ns
            .iter()
            .map(|&ns| tokens * 1e9 / ns.max(1) as f64)
            .collect()
    }

    pub fn mean_ts(&self) -> f64 {
        mean(&self.samples_ts())
    }

    pub fn stdev_ts(&self) -> f64 {
        sample_stdev(&self.samples_ts())
    }
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample standard deviation (n − 1 in the denominator), 0 for fewer than two values.
pub fn sample_stdev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    (ss / (values.len() - 1) as f64).sqrt()
}

/// A size label from a parameter count, two significant digits: 268.1M → "270M",
/// 1.236B → "1.2B", 13.02B → "13B". Used when the file has no `general.size_label`.
pub fn size_label(n_params: u64) -> String {
    let (value, unit) = if n_params >= 1_000_000_000 {
        (n_params as f64 / 1e9, "B")
    } else {
        (n_params as f64 / 1e6, "M")
    };
    if value <= 0.0 {
        return format!("0{unit}");
    }
    let magnitude = value.log10().floor() as i32;
    let step = 10f64.powi(magnitude - 1);
    let rounded = (value / step).round() * step;
    let decimals = (1 - magnitude).max(0) as usize;
    let text = format!("{rounded:.decimals$}");
    format!("{text}{unit}")
}

/// The shape facts llama.cpp uses to name a model's size class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShape<'a> {
    pub arch: &'a str,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_vocab: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
}

/// llama.cpp's size class for the shapes it knows (it names models by layer count and
/// width, not by parameter count); `None` for others.
pub fn known_size_class(shape: &ModelShape) -> Option<&'static str> {
    let s = shape;
    let class = match (s.arch, s.n_layer) {
        ("llama", 16 | 22) => "1B",
        ("llama", 26 | 28) => "3B",
        ("llama", 32) if s.n_vocab < 40_000 => "7B",
        ("llama", 32) => "8B",
        ("llama", 40) => "13B",
        ("llama", 48) => "34B",
        ("llama", 60) => "30B",
        ("llama", 80) if s.n_head == s.n_head_kv => "65B",
        ("llama", 80) => "70B",
        ("gemma3", 18) => "270M",
        ("gemma3", 26) => "1B",
        ("gemma3", 34) => "4B",
        ("gemma3", 48) => "12B",
        ("gemma3", 62) => "27B",
        ("qwen2", 24) if s.n_embd == 1024 => "0.5B",
        ("qwen2", 24) => "1B",
        ("qwen2", 28) if s.n_embd == 1536 => "1.5B",
        ("qwen2", 28) => "7B",
        ("qwen2", 32) => "7B",
        ("qwen2", 36) => "3B",
        ("qwen2", 48) => "14B",
        ("qwen2", 64) => "32B",
        ("qwen2", 80) => "70B",
        ("qwen3", 28) if s.n_embd == 1024 => "0.6B",
        ("qwen3", 28) => "1.7B",
        ("qwen3", 36) if s.n_embd == 2560 => "4B",
        ("qwen3", 36) => "8B",
        ("qwen3", 40) => "14B",
        ("qwen3", 64) => "32B",
        _ => return None,
    };
    Some(class)
}

/// "ARCH SIZE FILETYPE", as llama.cpp describes a model.
pub fn model_description(arch: &str, size_label: &str, file_type_name: &str) -> String {
    format!("{arch} {size_label} {file_type_name}")
}

/// Bytes as llama-bench prints them: MiB below 1 GiB, else GiB, two decimals.
pub fn format_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    const GIB: f64 = MIB * 1024.0;
    if (bytes as f64) < GIB {
        format!("{:.2} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.2} GiB", bytes as f64 / GIB)
    }
}

/// Parameter counts as llama-bench prints them: "268.10 M", "1.24 B".
pub fn format_params(n: u64) -> String {
    if n < 1_000_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.2} B", n as f64 / 1e9)
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// The markdown table llama-bench prints; an `ngl` column follows `threads` when any
/// row asked for GPU layers (as llama-bench shows it for GPU builds).
pub fn markdown_table(results: &[BenchResult]) -> String {
    let with_ngl = results.iter().any(|r| r.gpu_layers.is_some());
    let mut columns: Vec<(&str, usize, Align)> = vec![
        ("model", 30, Align::Left),
        ("size", 10, Align::Right),
        ("params", 10, Align::Right),
        ("backend", 10, Align::Left),
        ("threads", 7, Align::Right),
    ];
    if with_ngl {
        columns.push(("ngl", 3, Align::Right));
    }
    columns.extend([("test", 15, Align::Right), ("t/s", 20, Align::Right)]);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                r.model.description.clone(),
                format_size(r.model.size_bytes),
                format_params(r.model.n_params),
                r.backend.clone(),
                r.threads.to_string(),
            ];
            if with_ngl {
                row.push(r.gpu_layers.clone().unwrap_or_else(|| "0".into()));
            }
            row.extend([
                r.test_name(),
                format!("{:.2} ± {:.2}", r.mean_ts(), r.stdev_ts()),
            ]);
            row
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, &(name, min, _))| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([name.len(), min])
                .max()
                .unwrap_or(min)
        })
        .collect();
    let cell = |text: &str, width: usize, align: Align| -> String {
        let pad = width.saturating_sub(text.chars().count());
        match align {
            Align::Left => format!(" {text}{} |", " ".repeat(pad)),
            Align::Right => format!(" {}{text} |", " ".repeat(pad)),
        }
    };
    let mut out = String::from("|");
    for (i, &(name, _, align)) in columns.iter().enumerate() {
        out += &cell(name, widths[i], align);
    }
    out += "\n|";
    for (i, &(_, _, align)) in columns.iter().enumerate() {
        let rule = match align {
            Align::Left => "-".repeat(widths[i]),
            Align::Right => format!("{}:", "-".repeat(widths[i] - 1)),
        };
        out += &format!(" {rule} |");
    }
    out += "\n";
    for row in &rows {
        out += "|";
        for (i, &(_, _, align)) in columns.iter().enumerate() {
            out += &cell(&row[i], widths[i], align);
        }
        out += "\n";
    }
    out
}

#[derive(Serialize)]
struct JsonRow<'a> {
    model_type: &'a str,
    model_size: u64,
    model_n_params: u64,
    backends: &'a str,
    n_threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    n_gpu_layers: Option<&'a str>,
    n_prompt: usize,
    n_gen: usize,
    test: String,
    avg_ns: u64,
    stddev_ns: u64,
    avg_ts: f64,
    stddev_ts: f64,
    samples_ns: &'a [u64],
    samples_ts: Vec<f64>,
}

/// The results as a JSON array, with llama-bench's field names.
pub fn json(results: &[BenchResult]) -> String {
    let rows: Vec<JsonRow> = results
        .iter()
        .map(|r| {
            let ns: Vec<f64> = r.samples_ns.iter().map(|&x| x as f64).collect();
            JsonRow {
                model_type: &r.model.description,
                model_size: r.model.size_bytes,
                model_n_params: r.model.n_params,
                backends: &r.backend,
                n_threads: r.threads,
                n_gpu_layers: r.gpu_layers.as_deref(),
                n_prompt: r.n_prompt,
                n_gen: r.n_gen,
                test: r.test_name(),
                avg_ns: mean(&ns).round() as u64,
                stddev_ns: sample_stdev(&ns).round() as u64,
                avg_ts: r.mean_ts(),
                stddev_ts: r.stdev_ts(),
                samples_ns: &r.samples_ns,
                samples_ts: r.samples_ts(),
            }
        })
        .collect();
    serde_json::to_string_pretty(&rows).expect("bench rows serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(n_prompt: usize, n_gen: usize, samples_ns: Vec<u64>) -> BenchResult {
        BenchResult {
            model: ModelSummary {
                description: "gemma3 270M Q4_K - Medium".into(),
                size_bytes: 252_759_040,
                n_params: 268_098_176,
            },
            backend: "CPU".into(),
            threads: 2,
            gpu_layers: None,
            n_prompt,
            n_gen,
            samples_ns,
        }
    }

    #[test]
    fn labels_and_units() {
        assert_eq!(size_label(268_098_176), "270M");
        assert_eq!(size_label(1_235_814_400), "1.2B");
        assert_eq!(size_label(13_015_864_320), "13B");
        assert_eq!(size_label(6_738_415_616), "6.7B");
        assert_eq!(size_label(99_600_000), "100M");
        assert_eq!(format_size(252_759_040), "241.05 MiB");
        assert_eq!(format_size(3 * 1024 * 1024 * 1024 / 2), "1.50 GiB");
        assert_eq!(format_params(268_098_176), "268.10 M");
        assert_eq!(format_params(1_235_814_400), "1.24 B");
        let shape = ModelShape {
            arch: "llama",
            n_layer: 16,
            n_embd: 2048,
            n_vocab: 32_000,
            n_head: 32,
            n_head_kv: 8,
        };
        assert_eq!(known_size_class(&shape), Some("1B"));
        let gemma = ModelShape {
            arch: "gemma3",
            n_layer: 18,
            ..shape
        };
        assert_eq!(known_size_class(&gemma), Some("270M"));
        assert_eq!(
            known_size_class(&ModelShape {
                n_layer: 3,
                ..shape
            }),
            None
        );
        assert_eq!(
            model_description("gemma3", "270M", "Q4_K - Medium"),
            "gemma3 270M Q4_K - Medium"
        );
    }

    #[test]
    fn throughput_statistics() {
        // 512 tokens in 1 s and 0.5 s: 512 and 1024 t/s; mean 768, sample stdev 362.04.
        let r = result(512, 0, vec![1_000_000_000, 500_000_000]);
        assert_eq!(r.test_name(), "pp512");
        assert!((r.mean_ts() - 768.0).abs() < 1e-9);
        assert!((r.stdev_ts() - 256.0 * 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(result(0, 128, vec![1]).test_name(), "tg128");
        assert_eq!(result(0, 128, vec![1]).stdev_ts(), 0.0);
    }

    #[test]
    fn markdown_layout() {
        let table = markdown_table(&[result(512, 0, vec![1_000_000_000, 500_000_000])]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "| model                          |       size |     params | backend    | threads |            test |                  t/s |"
        );
        assert_eq!(
            lines[1],
            "| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: | -------------------: |"
        );
        assert_eq!(
            lines[2],
            "| gemma3 270M Q4_K - Medium      | 241.05 MiB |   268.10 M | CPU        |       2 |           pp512 |      768.00 ± 362.04 |"
        );
    }

    #[test]
    fn ngl_column_appears_with_gpu_rows() {
        let mut gpu = result(0, 128, vec![1_000_000_000]);
        gpu.backend = "Vulkan+CPU".into();
        gpu.gpu_layers = Some("9".into());
        let table = markdown_table(&[result(0, 128, vec![1_000_000_000]), gpu]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("| threads | ngl |"), "{}", lines[0]);
        assert!(
            lines[2].contains("| CPU        |       2 |   0 |"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains("| Vulkan+CPU |       2 |   9 |"),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn json_has_llama_bench_fields() {
        let text = json(&[result(0, 128, vec![2_000_000_000, 2_000_000_000])]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let row = &v[0];
        assert_eq!(row["test"], "tg128");
        assert_eq!(row["n_gen"], 128);
        assert_eq!(row["avg_ns"], 2_000_000_000u64);
        assert_eq!(row["avg_ts"], 64.0);
        assert_eq!(row["samples_ts"].as_array().unwrap().len(), 2);
    }
}
