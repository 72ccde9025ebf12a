//! The GPU kernels on real gemma3 weights: every weight type the file uses, and the
//! 178 MB token embedding, which exceeds lavapipe's 128 MiB storage binding and must be
//! split over several bindings (the output projection is tied to it: 262144 rows).

mod common;

use tandem::gguf::GgufFile;
use tandem::gpu::{Gpu, GpuOptions};

fn open_gpu() -> Gpu {
    Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| {
        panic!("GPU tests need a real adapter (install mesa-vulkan-drivers): {e:#}")
    })
}

/// Deterministic activations in [-1, 1).
fn activations(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// GPU mat_vec of the named tensor against f64 dot products of dequantized rows.
fn check_tensor(gpu: &Gpu, file: &GgufFile, name: &str) -> usize {
    let info = file
        .tensor(name)
        .unwrap_or_else(|| panic!("{name} missing"));
    let (rows, cols) = (info.n_rows(), info.row_len());
    let bytes = file.tensor_data(info);
    let w = gpu.upload_weight(info.ty, rows, cols, bytes).unwrap();
    let x = activations(cols, rows as u64);
    let xb = gpu.upload(&x).unwrap();
    let yb = gpu.buffer(rows);
    let mut batch = gpu.batch();
    batch.mat_vec(&w, &xb, &yb, 1).unwrap();
    batch.submit().unwrap();
    let y: Vec<f32> = gpu.read(&yb).unwrap();

    let row_bytes = bytes.len() / rows;
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        info.ty
            .dequantize_row(&bytes[r * row_bytes..(r + 1) * row_bytes], &mut row);
        let (mut sum, mut mag) = (0f64, 0f64);
        for (&a, &b) in row.iter().zip(&x) {
            sum += a as f64 * b as f64;
            mag += (a as f64 * b as f64).abs();
        }
        assert!(
            (y[r] as f64 - sum).abs() <= 1e-3 * mag + 1e-6,
            "{name} row {r}: got {}, expected {sum}",
            y[r]
        );
    }
    w.chunk_count()
}

#[test]
fn real_weights_of_every_type_in_the_file() {
    let file = GgufFile::open(common::gemma3_path()).unwrap();
    let gpu = open_gpu();
    for name in [
        "blk.0.attn_q.weight",      // Q5_0
        "blk.0.attn_v.weight",      // Q8_0
        "blk.0.attn_output.weight", // Q4_K
        "blk.0.ffn_down.weight",    // Q6_K
    ] {
        check_tensor(&gpu, &file, name);
    }
}

#[test]
fn token_embedding_is_split_to_fit_the_binding_limit() {
    let file = GgufFile::open(common::gemma3_path()).unwrap();
    let gpu = open_gpu();
    let info = file.tensor("token_embd.weight").unwrap();
    let limit = gpu.device.max_binding_bytes();
    let expected_chunks = (info.n_bytes + 8).div_ceil(limit - 8) as usize;
    let chunks = check_tensor(&gpu, &file, "token_embd.weight");
    assert!(
        chunks >= expected_chunks,
        "{chunks} chunks for limit {limit}"
    );
    if limit < info.n_bytes {
        assert!(chunks >= 2);
    }

    // Embedding lookups on both sides of every chunk boundary.
    let (rows, cols) = (info.n_rows(), info.row_len());
    let w = gpu
        .upload_weight(info.ty, rows, cols, file.tensor_data(info))
        .unwrap();
    let ids: Vec<u32> = vec![0, 2, 106, 131071, 131072, 200000, 262143];
    let idb = gpu.upload(&ids).unwrap();
    let yb = gpu.buffer(ids.len() * cols);
    let mut batch = gpu.batch();
    batch.get_rows(&w, &idb, &yb, ids.len()).unwrap();
    batch.submit().unwrap();
    let y: Vec<f32> = gpu.read(&yb).unwrap();
    let row_bytes = info.n_bytes as usize / rows;
    let mut want = vec![0f32; cols];
    for (t, &id) in ids.iter().enumerate() {
        let id = id as usize;
        info.ty.dequantize_row(
            &file.tensor_data(info)[id * row_bytes..(id + 1) * row_bytes],
            &mut want,
        );
        assert_eq!(&y[t * cols..(t + 1) * cols], &want[..], "token {id}");
    }
}
