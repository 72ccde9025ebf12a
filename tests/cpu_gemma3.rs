//! The matmul kernels on real weights: the first tensor of each type in the gemma3
//! 270M Q4_K_M file (Q5_0, Q8_0, Q4_K, Q6_K, F32), against the naive oracle (`quant`'s
//! dequantizers × the activations as the kernels quantize them, in f64).

mod common;

use tandem::cpu::reference::activations_as_seen_by_kernels;
use tandem::cpu::{matmul_at_level, SimdLevel, ThreadPool, WeightRef};
use tandem::gguf::GgufFile;
use tandem::quant::GgmlType;

#[test]
fn gemma3_tensors_of_every_type_match_the_oracle() {
    let file = GgufFile::open(common::gemma3_path()).expect("open gemma3");
    let pool = ThreadPool::new(2);
    let mut seen = Vec::new();
    for info in file.tensors() {
        if info.dims.len() != 2 || seen.contains(&info.ty) {
            continue;
        }
        seen.push(info.ty);
        let cols = info.row_len();
        // A slice of rows keeps the f64 oracle quick; 37 is odd on purpose.
        let rows = info.n_rows().min(37);
        let row_bytes = info.ty.bytes_for(cols as u64).unwrap() as usize;
        let data = &file.tensor_data(info)[..rows * row_bytes];
        let w = WeightRef {
            ty: info.ty,
            data,
            rows,
            cols,
        };
        for n_tokens in [1, 7] {
            let x: Vec<f32> = (0..n_tokens * cols)
                .map(|i| ((i * 7919 % 2001) as f32 / 1000.0 - 1.0) * 3.0)
                .collect();
            let xs = activations_as_seen_by_kernels(w, &x, n_tokens);
            let mut row = vec![0f32; cols];
            let mut want = vec![0f64; rows * n_tokens];
            let mut mag = vec![0f64; rows * n_tokens];
            for r in 0..rows {
                info.ty
                    .dequantize_row(&data[r * row_bytes..(r + 1) * row_bytes], &mut row);
                for t in 0..n_tokens {
                    for (a, b) in row.iter().zip(&xs[t * cols..(t + 1) * cols]) {
                        want[t * rows + r] += *a as f64 * *b as f64;
                        mag[t * rows + r] += (*a as f64 * *b as f64).abs();
                    }
                }
            }
            for level in SimdLevel::available() {
                let mut got = vec![f32::NAN; rows * n_tokens];
                matmul_at_level(&pool, level, w, &x, n_tokens, &mut got);
                for i in 0..got.len() {
                    let err = (got[i] as f64 - want[i]).abs();
                    assert!(
                        err <= 1e-4 * mag[i] + 1e-6,
                        "{} ({}) {level:?} tokens {n_tokens} out {i}: {} vs {}",
                        info.name,
                        info.ty,
                        got[i],
                        want[i]
                    );
                }
            }
        }
    }
    for ty in [GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K] {
        assert!(
            seen.contains(&ty),
            "gemma3 has no 2-D {ty} tensor: {seen:?}"
        );
    }
}
