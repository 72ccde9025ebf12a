//! GPU kernels against naive f64 references on the CPU, on a real adapter (lavapipe in
//! CI). No adapter is a failure, never a skip. Each test runs on three devices: with every
//! optional feature the adapter has, without subgroups, and without f16.

use half::{bf16, f16};
use tandem::gpu::{AttentionParams, BinaryOp, Gpu, GpuOptions, KvLayout, RopeParams};
use tandem::quant::GgmlType;

/// The feature sets every test covers.
fn option_sets() -> [GpuOptions; 3] {
    [
        GpuOptions::default(),
        GpuOptions {
            disable_subgroup: true,
            ..GpuOptions::default()
        },
        GpuOptions {
            disable_f16: true,
            ..GpuOptions::default()
        },
    ]
}

fn open(options: &GpuOptions) -> Gpu {
    match Gpu::new(options) {
        Ok(gpu) => gpu,
        Err(e) => panic!(
            "GPU tests need a real adapter (install mesa-vulkan-drivers for lavapipe): {e:#}"
        ),
    }
}

/// Runs `f` on a device for each feature set, labelling failures with the set.
fn on_each_device(f: impl Fn(&Gpu)) {
    for options in option_sets() {
        let gpu = open(&options);
        if options.disable_subgroup {
            assert!(!gpu.device.features.subgroup);
        }
        if options.disable_f16 {
            assert!(!gpu.device.features.f16);
        }
        eprintln!("device features: {:?}", gpu.device.features);
        f(&gpu);
    }
}

/// xorshift64*: deterministic test data without another dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
}

/// Offsets of the f16 scale fields in one block; random bytes there could be NaN/Inf.
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        _ => &[],
    }
}

/// Random weight bytes of `rows` x `cols` elements: floats for the float types, random
/// block bytes with sane f16 scales for the quantized ones.
fn random_weight(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    match ty {
        GgmlType::F32 => rng.vec(n).iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => rng
            .vec(n)
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        GgmlType::BF16 => rng
            .vec(n)
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => {
            let block_bytes = ty.block_bytes();
            let blocks = n / ty.block_elems();
            let mut bytes: Vec<u8> = (0..blocks * block_bytes)
                .map(|_| rng.next_u64() as u8)
                .collect();
            for b in 0..blocks {
                for &off in scale_offsets(ty) {
                    let scale = f16::from_f32(rng.unit() * 0.05);
                    let at = b * block_bytes + off;
                    bytes[at..at + 2].copy_from_slice(&scale.to_le_bytes());
                }
            }
            bytes
        }
    }
}

fn dequantize(ty: GgmlType, bytes: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let row_bytes = ty.bytes_for(cols as u64).unwrap() as usize;
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        ty.dequantize_row(
            &bytes[r * row_bytes..(r + 1) * row_bytes],
            &mut out[r * cols..(r + 1) * cols],
        );
    }
    out
}

/// Asserts y[t, r] == sum_k w[r, k] x[t, k] within 1e-3 of sum_k |w[r, k] x[t, k]|.
fn check_mul_mat(what: &str, w: &[f32], x: &[f32], y: &[f32], rows: usize, cols: usize) {
    check_mul_mat_within(what, w, x, y, rows, cols, 1e-3)
}

/// Asserts y[t, r] == sum_k w[r, k] x[t, k] within `rel` of sum_k |w[r, k] x[t, k]|.
fn check_mul_mat_within(
    what: &str,
    w: &[f32],
    x: &[f32],
    y: &[f32],
    rows: usize,
    cols: usize,
    rel: f64,
) {
    let tokens = x.len() / cols;
    for t in 0..tokens {
        for r in 0..rows {
            let (mut sum, mut mag) = (0f64, 0f64);
            for k in 0..cols {
                let p = w[r * cols + k] as f64 * x[t * cols + k] as f64;
                sum += p;
                mag += p.abs();
            }
            let got = y[t * rows + r] as f64;
            assert!(
                (got - sum).abs() <= rel * mag + 1e-6,
                "{what}: token {t} row {r}: got {got}, expected {sum} (magnitude {mag})"
            );
        }
    }
}

/// Every weight type the GPU reads.
fn tested_types() -> Vec<GgmlType> {
    tandem::gpu::shaders::WEIGHT_TYPES.to_vec()
}

/// Row lengths to test: one block, and several (odd multiples, not powers of two).
fn cols_for(ty: GgmlType) -> [usize; 2] {
    if ty.block_elems() == 256 {
        [256, 768]
    } else if ty.is_quantized() {
        [32, 544]
    } else {
        [4, 516]
    }
}

/// Row lengths for the tests that take one.
fn main_cols(ty: GgmlType) -> usize {
    cols_for(ty)[1]
}

#[test]
fn mat_vec_matches_reference_for_every_type() {
    let rows = 37;
    on_each_device(|gpu| {
        for (ty, cols) in tested_types()
            .into_iter()
            .flat_map(|t| cols_for(t).map(|c| (t, c)))
        {
            let mut rng = Rng(0x1234_5678 + ty.id() as u64);
            let bytes = random_weight(&mut rng, ty, rows, cols);
            let w_ref = dequantize(ty, &bytes, rows, cols);
            let w = gpu.upload_weight(ty, rows, cols, &bytes).unwrap();
            for n_tokens in [1, 3, 4] {
                let x = rng.vec(n_tokens * cols);
                let xb = gpu.upload(&x).unwrap();
                let yb = gpu.buffer(n_tokens * rows);
                let mut batch = gpu.batch();
                batch.mat_vec(&w, &xb, &yb, n_tokens).unwrap();
                batch.submit().unwrap();
                let y: Vec<f32> = gpu.read(&yb).unwrap();
                check_mul_mat(
                    &format!("mat_vec {} {cols} cols x{n_tokens}", ty.name()),
                    &w_ref,
                    &x,
                    &y,
                    rows,
                    cols,
                );
            }
        }
    });
}

/// The integer kernel against the f64 product of the weights with the CPU's quantized
/// activations (codes times scales): it adds exact integer block sums, so only float
/// rounding of the scaled sums separates the two.
#[test]
fn int_mat_vec_matches_the_product_with_cpu_quantized_activations() {
    use tandem::cpu::act_quant::{ActFormat, QuantizedActs};
    use tandem::gpu::PackedLayout;
    let rows = 37;
    on_each_device(|gpu| {
        let int_types = tested_types()
            .into_iter()
            .filter(|&t| tandem::gpu::shaders::has_int_mat_vec(t));
        // Whole steps of every kernel, an odd number of them, and (32-blocks) a row
        // shorter than some kernels' step, which they must refuse.
        let cols_of = |t: GgmlType| match t.block_elems() {
            256 => vec![256, 768],
            _ => vec![32, 64, 576],
        };
        for (ty, cols) in int_types.flat_map(|t| cols_of(t).into_iter().map(move |c| (t, c))) {
            let mut rng = Rng(0x7777 + ty.id() as u64);
            let bytes = random_weight(&mut rng, ty, rows, cols);
            let w_ref = dequantize(ty, &bytes, rows, cols);
            let w = gpu.upload_weight(ty, rows, cols, &bytes).unwrap();
            if !cols.is_multiple_of(tandem::gpu::shaders::int_mat_vec_step(ty)) {
                let packed = gpu.buffer(PackedLayout::max_len(1, cols));
                let yb = gpu.buffer(rows);
                let mut batch = gpu.batch();
                let err = batch.mat_vec_packed(&w, &packed, &yb, 1).unwrap_err();
                assert!(err.to_string().contains("whole steps"), "{ty:?}: {err}");
                assert!(PackedLayout::for_product(&w, 1).is_none(), "{ty:?}");
                continue;
            }
            assert!(PackedLayout::for_product(&w, 4).is_some(), "{ty:?} {cols}");
            for n_tokens in [1, 2, 4] {
                let x = rng.vec(n_tokens * cols);
                let acts = QuantizedActs::quantize(ActFormat::for_weight(ty), &x, n_tokens, cols);
                let block = ActFormat::for_weight(ty).block_elems();
                let x_used: Vec<f32> = (0..x.len())
                    .map(|i| f32::from(acts.qs[i]) * acts.d[i / block])
                    .collect();
                let xb = gpu.upload(&x).unwrap();
                let packed = gpu.buffer(PackedLayout::max_len(n_tokens, cols));
                let yb = gpu.buffer(n_tokens * rows);
                let mut batch = gpu.batch();
                batch
                    .pack_activations(ty, &xb, &packed, n_tokens, cols)
                    .unwrap();
                batch.mat_vec_packed(&w, &packed, &yb, n_tokens).unwrap();
                batch.submit().unwrap();
                let y: Vec<f32> = gpu.read(&yb).unwrap();
                check_mul_mat_within(
                    &format!("int mat_vec {} {cols} cols x{n_tokens}", ty.name()),
                    &w_ref,
                    &x_used,
                    &y,
                    rows,
                    cols,
                    1e-5,
                );
            }
        }
    });
}

#[test]
fn mat_mat_matches_reference_for_every_type() {
    let rows = 37;
    on_each_device(|gpu| {
        for (ty, cols) in tested_types()
            .into_iter()
            .flat_map(|t| cols_for(t).map(|c| (t, c)))
        {
            let mut rng = Rng(0x9abc_def0 + ty.id() as u64);
            let bytes = random_weight(&mut rng, ty, rows, cols);
            let w_ref = dequantize(ty, &bytes, rows, cols);
            let w = gpu.upload_weight(ty, rows, cols, &bytes).unwrap();
            for n_tokens in [1, 5, 33] {
                let x = rng.vec(n_tokens * cols);
                let xb = gpu.upload(&x).unwrap();
                let yb = gpu.buffer(n_tokens * rows);
                let mut batch = gpu.batch();
                batch.mat_mat(&w, &xb, &yb, n_tokens).unwrap();
                batch.submit().unwrap();
                let y: Vec<f32> = gpu.read(&yb).unwrap();
                check_mul_mat(
                    &format!("mat_mat {} {cols} cols x{n_tokens}", ty.name()),
                    &w_ref,
                    &x,
                    &y,
                    rows,
                    cols,
                );
            }
        }
    });
}

#[test]
fn weights_split_over_several_bindings_give_the_same_product() {
    let gpu = open(&GpuOptions::default());
    let (ty, rows, cols) = (GgmlType::F16, 37, 256);
    let mut rng = Rng(77);
    let bytes = random_weight(&mut rng, ty, rows, cols);
    let w_ref = dequantize(ty, &bytes, rows, cols);
    // 10 rows of 512 bytes per chunk (and the 32 spare bytes a chunk keeps): 4 chunks.
    let w = gpu
        .upload_weight_chunked(ty, rows, cols, &bytes, 10 * 512 + 32)
        .unwrap();
    assert_eq!(w.chunk_count(), 4);
    for n_tokens in [1, 6] {
        let x = rng.vec(n_tokens * cols);
        let xb = gpu.upload(&x).unwrap();
        let yb = gpu.buffer(n_tokens * rows);
        let mut batch = gpu.batch();
        batch.mul_mat(&w, &xb, &yb, n_tokens).unwrap();
        batch.submit().unwrap();
        let y: Vec<f32> = gpu.read(&yb).unwrap();
        check_mul_mat("chunked", &w_ref, &x, &y, rows, cols);
    }
    // The integer kernel: 10 Q8_0 rows of 272 bytes per chunk.
    use tandem::cpu::act_quant::{ActFormat, QuantizedActs};
    let q8 = GgmlType::Q8_0;
    let q8_bytes = random_weight(&mut rng, q8, rows, cols);
    let q8_ref = dequantize(q8, &q8_bytes, rows, cols);
    let q8_w = gpu
        .upload_weight_chunked(q8, rows, cols, &q8_bytes, 10 * 272 + 32)
        .unwrap();
    assert_eq!(q8_w.chunk_count(), 4);
    let x = rng.vec(cols);
    let acts = QuantizedActs::quantize(ActFormat::for_weight(q8), &x, 1, cols);
    let x_used: Vec<f32> = (0..cols)
        .map(|i| f32::from(acts.qs[i]) * acts.d[i / 32])
        .collect();
    let xb = gpu.upload(&x).unwrap();
    let packed = gpu.buffer(tandem::gpu::PackedLayout::max_len(1, cols));
    let yb = gpu.buffer(rows);
    let mut batch = gpu.batch();
    batch.pack_activations(q8, &xb, &packed, 1, cols).unwrap();
    batch.mat_vec_packed(&q8_w, &packed, &yb, 1).unwrap();
    batch.submit().unwrap();
    let y: Vec<f32> = gpu.read(&yb).unwrap();
    check_mul_mat_within("chunked int", &q8_ref, &x_used, &y, rows, cols, 1e-5);
    // Row lookup across chunk boundaries.
    let ids: Vec<u32> = vec![0, 9, 10, 36, 20];
    let idb = gpu.upload(&ids).unwrap();
    let yb = gpu.buffer(ids.len() * cols);
    let mut batch = gpu.batch();
    batch.get_rows(&w, &idb, &yb, ids.len()).unwrap();
    batch.submit().unwrap();
    let y: Vec<f32> = gpu.read(&yb).unwrap();
    for (t, &id) in ids.iter().enumerate() {
        let id = id as usize;
        assert_eq!(
            &y[t * cols..(t + 1) * cols],
            &w_ref[id * cols..(id + 1) * cols]
        );
    }
}

#[test]
fn get_rows_matches_dequantize_for_every_type() {
    let rows = 37;
    on_each_device(|gpu| {
        for ty in tested_types() {
            let cols = main_cols(ty);
            let mut rng = Rng(0x5555 + ty.id() as u64);
            let bytes = random_weight(&mut rng, ty, rows, cols);
            let w_ref = dequantize(ty, &bytes, rows, cols);
            let w = gpu.upload_weight(ty, rows, cols, &bytes).unwrap();
            let ids: Vec<u32> = vec![3, 36, 0, 3];
            let idb = gpu.upload(&ids).unwrap();
            let yb = gpu.buffer(ids.len() * cols);
            let mut batch = gpu.batch();
            batch.get_rows(&w, &idb, &yb, ids.len()).unwrap();
            batch.submit().unwrap();
            let y: Vec<f32> = gpu.read(&yb).unwrap();
            for (t, &id) in ids.iter().enumerate() {
                let id = id as usize;
                for k in 0..cols {
                    let (got, want) = (y[t * cols + k], w_ref[id * cols + k]);
                    assert!(
                        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                        "get_rows {}: row {id} elem {k}: {got} vs {want}",
                        ty.name()
                    );
                }
            }
        }
    });
}

fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= rel * w.abs().max(1.0),
            "{what}: element {i}: got {g}, expected {w}"
        );
    }
}

#[test]
fn rms_norm_matches_reference_per_row_per_head_and_in_place() {
    on_each_device(|gpu| {
        let mut rng = Rng(3);
        let eps = 1e-6f32;
        // Whole rows of 333, then 4 tokens x 3 heads of 64 normalized per head.
        for (rows, cols) in [(5, 333), (12, 64)] {
            let x = rng.vec(rows * cols);
            let w = rng.vec(cols);
            let mut want = Vec::new();
            for r in 0..rows {
                let row = &x[r * cols..(r + 1) * cols];
                let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / cols as f64;
                let inv = 1.0 / (ms + eps as f64).sqrt();
                want.extend(row.iter().zip(&w).map(|(&v, &g)| v as f64 * inv * g as f64));
            }
            let (xb, wb, yb) = (
                gpu.upload(&x).unwrap(),
                gpu.upload(&w).unwrap(),
                gpu.buffer(rows * cols),
            );
            let mut batch = gpu.batch();
            batch.rms_norm(&xb, &wb, &yb, rows, eps).unwrap();
            batch.submit().unwrap();
            assert_close("rms_norm", &gpu.read::<f32>(&yb).unwrap(), &want, 1e-5);
            assert_eq!(gpu.read::<f32>(&xb).unwrap(), x, "input untouched");

            let mut batch = gpu.batch();
            batch.rms_norm_in_place(&xb, &wb, rows, eps).unwrap();
            batch.submit().unwrap();
            assert_close(
                "rms_norm in place",
                &gpu.read::<f32>(&xb).unwrap(),
                &want,
                1e-5,
            );
        }
    });
}

fn elementwise_reference(op: BinaryOp, a: f64, b: f64, s: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Mul => a * b,
        BinaryOp::SiluMul => a / (1.0 + (-a).exp()) * b,
        // The CPU's definition (llama.cpp's): through f16, a lookup table there.
        BinaryOp::GeluMul => tandem::cpu::ops::gelu_tanh(a as f32) as f64 * b,
        BinaryOp::Scale => a * s,
    }
}

#[test]
fn elementwise_ops_match_reference_out_of_place_and_in_place() {
    on_each_device(|gpu| {
        let mut rng = Rng(4);
        let n = 1000;
        let s = 25.298_221f32;
        let mut a: Vec<f32> = rng.vec(n).iter().map(|v| v * 6.0).collect();
        // The edges of gelu's table.
        a[..6].copy_from_slice(&[-10.5, -10.0, -9.99, 9.99, 10.0, 12.0]);
        let b = rng.vec(n);
        let per_channel = rng.vec(40);
        for op in BinaryOp::ALL {
            for bvec in [&b, &per_channel] {
                let want: Vec<f64> = (0..n)
                    .map(|i| {
                        let g = bvec[i % bvec.len()] as f64;
                        elementwise_reference(op, a[i] as f64, g, s as f64)
                    })
                    .collect();
                let (ab, bb, yb) = (
                    gpu.upload(&a).unwrap(),
                    gpu.upload(bvec).unwrap(),
                    gpu.buffer(n),
                );
                if op != BinaryOp::Scale {
                    let mut batch = gpu.batch();
                    batch.binary(op, &ab, &bb, &yb, n).unwrap();
                    batch.submit().unwrap();
                    assert_close(
                        &format!("{op:?}"),
                        &gpu.read::<f32>(&yb).unwrap(),
                        &want,
                        1e-5,
                    );
                }
                let mut batch = gpu.batch();
                if op == BinaryOp::Scale {
                    batch.scale(&ab, s, n).unwrap();
                } else {
                    batch.binary_in_place(op, &ab, &bb, n).unwrap();
                }
                batch.submit().unwrap();
                let got: Vec<f32> = gpu.read(&ab).unwrap();
                assert_close(&format!("{op:?} in place"), &got, &want, 1e-5);
            }
        }
    });
}

fn rope_reference(x: &[f32], pos: &[i32], ff: Option<&[f32]>, p: &RopeParams) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let half = p.n_rot / 2;
    for (t, &position) in pos.iter().enumerate().take(p.n_tokens) {
        for h in 0..p.n_heads {
            let base = (t * p.n_heads + h) * p.head_dim;
            for i in 0..half {
                let mut theta = position as f64
                    * p.freq_scale as f64
                    * (p.freq_base as f64).powf(-2.0 * i as f64 / p.n_rot as f64);
                if let Some(ff) = ff {
                    theta /= ff[i] as f64;
                }
                let (i0, i1) = if p.neox {
                    (base + i, base + i + half)
                } else {
                    (base + 2 * i, base + 2 * i + 1)
                };
                let (x0, x1) = (x[i0] as f64, x[i1] as f64);
                out[i0] = x0 * theta.cos() - x1 * theta.sin();
                out[i1] = x0 * theta.sin() + x1 * theta.cos();
            }
        }
    }
    out
}

#[test]
fn rope_matches_reference_in_both_pairings() {
    on_each_device(|gpu| {
        let mut rng = Rng(5);
        for (neox, with_ff, n_rot, pos_buffer) in [
            (false, false, 64, true),
            (true, false, 64, true),
            (true, true, 48, true),
            (false, false, 64, false),
            (true, false, 64, false),
        ] {
            let p = RopeParams {
                n_tokens: 3,
                n_heads: 4,
                head_dim: 64,
                n_rot,
                freq_base: 10000.0,
                freq_scale: 0.5,
                neox,
                pos0: 298,
            };
            let x = rng.vec(p.n_tokens * p.n_heads * p.head_dim);
            let pos: Vec<i32> = if pos_buffer {
                vec![0, 7, 300]
            } else {
                vec![298, 299, 300]
            };
            let ff: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.25).collect();
            let xb = gpu.upload(&x).unwrap();
            let pb = gpu.upload(&pos).unwrap();
            let fb = gpu.upload(&ff).unwrap();
            let mut batch = gpu.batch();
            batch
                .rope(&xb, pos_buffer.then_some(&pb), with_ff.then_some(&fb), &p)
                .unwrap();
            batch.submit().unwrap();
            let y: Vec<f32> = gpu.read(&xb).unwrap();
            let want = rope_reference(&x, &pos, with_ff.then_some(&ff[..]), &p);
            // Angles up to 300 rad: f32 argument reduction limits the accuracy.
            assert_close(
                &format!("rope neox={neox} ff={with_ff} pos_buffer={pos_buffer}"),
                &y,
                &want,
                2e-4,
            );
        }
    });
}

/// Reads an f32 or packed-f16 cache back as f32 values.
fn read_cache(gpu: &Gpu, cache: &tandem::gpu::GpuBuffer, f16_cache: bool) -> Vec<f32> {
    if f16_cache {
        gpu.read::<u32>(cache)
            .unwrap()
            .iter()
            .flat_map(|w| [f16::from_bits(*w as u16), f16::from_bits((*w >> 16) as u16)])
            .map(f16::to_f32)
            .collect()
    } else {
        gpu.read(cache).unwrap()
    }
}

#[test]
fn kv_store_scatters_tokens_into_head_major_cache_and_rounds_f16_like_half() {
    on_each_device(|gpu| {
        let mut rng = Rng(8);
        for f16_cache in [false, true] {
            let layout = KvLayout {
                n_kv_heads: 3,
                n_ctx: 10,
                dim: 34,
                f16: f16_cache,
            };
            let (pos0, n_tokens) = (4, 5);
            let mut src: Vec<f32> = rng.vec(n_tokens * 3 * 34);
            // Rounding edge cases in the first token's values.
            let special = [
                0.0,
                -0.0,
                65504.0,
                65520.0, // rounds up to infinity
                1e9,
                f32::INFINITY,
                f32::NEG_INFINITY,
                6.1e-5,  // just below the smallest normal
                5.96e-8, // near the smallest subnormal
                2.98e-8, // half the smallest subnormal: a tie that rounds to zero
                1e-10,
                1.0 + 1.0 / 2048.0, // tie: rounds to even (1.0)
                1.0 + 3.0 / 2048.0, // tie: rounds up
                -1e-5,
                3.3e-6,
            ];
            src[..special.len()].copy_from_slice(&special);
            let sb = gpu.upload(&src).unwrap();
            let cache = gpu.buffer(layout.buffer_len());
            // Positions 3 .. of a sequence whose position 0 is cell 1: cells pos0 ...
            let places = places_buffer(gpu, &consecutive(pos0 - 1, n_tokens, 1));
            let mut batch = gpu.batch();
            batch
                .kv_store(&sb, &cache, &layout, &places, n_tokens)
                .unwrap();
            batch.submit().unwrap();
            let got = read_cache(gpu, &cache, f16_cache);
            for h in 0..3 {
                for pos in 0..10 {
                    for d in 0..34 {
                        let at = (h * 10 + pos) * 34 + d;
                        let want = if (pos0..pos0 + n_tokens).contains(&pos) {
                            let v = src[((pos - pos0) * 3 + h) * 34 + d];
                            if f16_cache {
                                f16::from_f32(v).to_f32()
                            } else {
                                v
                            }
                        } else {
                            0.0
                        };
                        assert_eq!(
                            got[at].to_bits(),
                            want.to_bits(),
                            "f16={f16_cache} head {h} pos {pos} dim {d}"
                        );
                    }
                }
            }
        }
    });
}

/// `(position, first cell of its sequence)` of each query or stored row.
type Places = Vec<(usize, usize)>;

/// `n` tokens of one sequence at positions `pos0 ..`, whose position 0 is cell `cell0`.
fn consecutive(pos0: usize, n: usize, cell0: usize) -> Places {
    (pos0..pos0 + n).map(|p| (p, cell0)).collect()
}

/// The places as the kernels read them: u32 pairs.
fn places_buffer(gpu: &Gpu, places: &Places) -> tandem::gpu::GpuBuffer {
    let words: Vec<u32> = places
        .iter()
        .flat_map(|&(p, c)| [p as u32, c as u32])
        .collect();
    gpu.upload(&words).unwrap()
}

fn attention_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &AttentionParams,
    places: &Places,
) -> Vec<f64> {
    let (hd, hdv) = (p.head_dim, p.head_dim_v);
    let group = p.n_heads / p.n_kv_heads;
    let mut out = vec![0f64; p.n_tokens * p.n_heads * hdv];
    for t in 0..p.n_tokens {
        let (pos, cell0) = places[t];
        for h in 0..p.n_heads {
            let kvh = h / group;
            let qv = &q[(t * p.n_heads + h) * hd..][..hd];
            let visible: Vec<usize> = (0..=pos)
                .filter(|&j| p.window == 0 || j + p.window > pos)
                .collect();
            let scores: Vec<f64> = visible
                .iter()
                .map(|&j| {
                    let kv = &k[(kvh * p.n_ctx + cell0 + j) * hd..][..hd];
                    qv.iter()
                        .zip(kv)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * p.scale as f64
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::MIN, f64::max);
            let total: f64 = scores.iter().map(|s| (s - m).exp()).sum();
            for d in 0..hdv {
                out[(t * p.n_heads + h) * hdv + d] = visible
                    .iter()
                    .zip(&scores)
                    .map(|(&j, s)| {
                        (s - m).exp() / total * v[(kvh * p.n_ctx + cell0 + j) * hdv + d] as f64
                    })
                    .sum();
            }
        }
    }
    out
}

#[test]
fn attention_matches_reference_with_gqa_causality_and_window() {
    on_each_device(|gpu| {
        let mut rng = Rng(7);
        for (n_tokens, pos0, window, kv_f16) in [
            (1, 40, 0, false),
            (5, 36, 0, false),
            (4, 70, 16, false),
            (1, 40, 0, true),
            (3, 70, 16, true),
            // Prefill from an empty cache, with and without a window.
            (33, 0, 0, true),
            (20, 0, 8, false),
        ] {
            let p = AttentionParams {
                n_tokens,
                n_heads: 4,
                n_kv_heads: 2,
                head_dim: 32,
                head_dim_v: 24,
                n_ctx: 80,
                window,
                scale: 1.0 / (32f32).sqrt(),
                kv_f16,
                half_accumulator: false,
            };
            let k_layout = KvLayout {
                n_kv_heads: 2,
                n_ctx: 80,
                dim: 32,
                f16: kv_f16,
            };
            let v_layout = KvLayout {
                dim: 24,
                ..k_layout
            };
            // The whole history is stored through kv_store, as a model would.
            let kv_len = pos0 + n_tokens;
            let k_new = rng.vec(kv_len * 2 * 32);
            let v_new = rng.vec(kv_len * 2 * 24);
            let q = rng.vec(n_tokens * p.n_heads * p.head_dim);
            let (kb, vb) = (
                gpu.buffer(k_layout.buffer_len()),
                gpu.buffer(v_layout.buffer_len()),
            );
            let (knb, vnb, qb) = (
                gpu.upload(&k_new).unwrap(),
                gpu.upload(&v_new).unwrap(),
                gpu.upload(&q).unwrap(),
            );
            let out = gpu.buffer(n_tokens * p.n_heads * p.head_dim_v);
            let history = places_buffer(gpu, &consecutive(0, kv_len, 0));
            let places = consecutive(pos0, n_tokens, 0);
            let query_places = places_buffer(gpu, &places);
            let mut batch = gpu.batch();
            batch
                .kv_store(&knb, &kb, &k_layout, &history, kv_len)
                .unwrap();
            batch
                .kv_store(&vnb, &vb, &v_layout, &history, kv_len)
                .unwrap();
            batch
                .attention(&qb, &kb, &vb, &out, &query_places, &p)
                .unwrap();
            batch.submit().unwrap();
            let y: Vec<f32> = gpu.read(&out).unwrap();
            // The reference reads the cache contents (f16-rounded where stored so).
            let k = read_cache(gpu, &kb, kv_f16);
            let v = read_cache(gpu, &vb, kv_f16);
            let want = attention_reference(&q, &k, &v, &p, &places);
            assert_close(
                &format!("attention t={n_tokens} pos0={pos0} window={window} f16={kv_f16}"),
                &y,
                &want,
                1e-5,
            );
        }
    });
}

#[test]
fn attention_of_several_sequences_reads_only_their_own_cells() {
    on_each_device(|gpu| {
        let mut rng = Rng(11);
        for (kv_f16, window) in [(false, 0), (true, 0), (true, 6)] {
            // Slots of 40 cells: a decode token of the sequence in cells 0.., three
            // prompt tokens of the one in cells 40.., and a decode token at the last cell
            // of the slot from 80; the cells between belong to other sequences and hold
            // random values that must not leak in.
            let mut places = consecutive(17, 1, 0);
            places.extend(consecutive(5, 3, 40));
            places.extend(consecutive(39, 1, 80));
            let p = AttentionParams {
                n_tokens: places.len(),
                n_heads: 4,
                n_kv_heads: 2,
                head_dim: 32,
                head_dim_v: 16,
                n_ctx: 120,
                window,
                scale: 1.0 / (32f32).sqrt(),
                kv_f16,
                half_accumulator: false,
            };
            let (k, k_words) = host_cache(&mut rng, &p, p.head_dim, |_| 1.0);
            let (v, v_words) = host_cache(&mut rng, &p, p.head_dim_v, |_| 1.0);
            let q = rng.vec(p.n_tokens * p.n_heads * p.head_dim);
            let (kb, vb, qb) = (
                gpu.upload(&k_words).unwrap(),
                gpu.upload(&v_words).unwrap(),
                gpu.upload(&q).unwrap(),
            );
            let out = gpu.buffer(p.n_tokens * p.n_heads * p.head_dim_v);
            let pb = places_buffer(gpu, &places);
            let mut batch = gpu.batch();
            batch.attention(&qb, &kb, &vb, &out, &pb, &p).unwrap();
            batch.submit().unwrap();
            let y: Vec<f32> = gpu.read(&out).unwrap();
            let want = attention_reference(&q, &k, &v, &p, &places);
            assert_close(
                &format!("attention of 3 sequences (f16 {kv_f16}, window {window})"),
                &y,
                &want,
                1e-5,
            );
        }
    });
}

/// A `[n_kv_heads][n_ctx][dim]` cache of random values, built on the host (so any dim
/// works, odd ones included): the values as f32 (f16-rounded for an f16 cache) and the
/// buffer contents. Keys at position j are scaled by `growth(j)`.
fn host_cache(
    rng: &mut Rng,
    p: &AttentionParams,
    dim: usize,
    growth: impl Fn(usize) -> f32,
) -> (Vec<f32>, Vec<u32>) {
    let mut values = Vec::with_capacity(p.n_kv_heads * p.n_ctx * dim);
    for _ in 0..p.n_kv_heads {
        for j in 0..p.n_ctx {
            values.extend(rng.vec(dim).iter().map(|v| v * growth(j)));
        }
    }
    if !p.kv_f16 {
        let words = values.iter().map(|v| v.to_bits()).collect();
        return (values, words);
    }
    let halves: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
    let words = halves
        .chunks(2)
        .map(|pair| {
            let hi = pair.get(1).map_or(0, |h| h.to_bits() as u32);
            pair[0].to_bits() as u32 | (hi << 16)
        })
        .collect();
    (halves.iter().map(|h| h.to_f32()).collect(), words)
}

/// One attention case: the shape, and how sharply the scores rise along the context.
struct AttentionCase {
    what: &'static str,
    p: AttentionParams,
    /// Position of the first query (the cache holds its sequence from cell 0).
    pos0: usize,
    /// Keys at position j are scaled by 1 + key_growth * j / n_ctx, so later tiles keep
    /// raising the running max and the earlier sums must be rescaled.
    key_growth: f32,
}

fn attention_case(
    what: &'static str,
    (n_heads, n_kv_heads, head_dim, head_dim_v): (usize, usize, usize, usize),
    (n_tokens, pos0, window): (usize, usize, usize),
    kv_f16: bool,
) -> AttentionCase {
    AttentionCase {
        what,
        p: AttentionParams {
            n_tokens,
            n_heads,
            n_kv_heads,
            head_dim,
            head_dim_v,
            // Spare positions past the queries must not be read.
            n_ctx: pos0 + n_tokens + 3,
            window,
            scale: 1.0 / (head_dim as f32).sqrt(),
            kv_f16,
            half_accumulator: false,
        },
        pos0,
        key_growth: 0.0,
    }
}

#[test]
fn streaming_attention_matches_reference_across_shapes_and_long_contexts() {
    let mut cases = Vec::new();
    for kv_f16 in [false, true] {
        cases.extend([
            attention_case("kv_len 1", (2, 1, 16, 16), (1, 0, 0), kv_f16),
            attention_case("odd head dims", (3, 1, 37, 53), (3, 100, 0), kv_f16),
            // The window starts inside a tile and spans several.
            attention_case("window", (2, 2, 40, 40), (4, 150, 70), kv_f16),
            attention_case("window of 1", (2, 1, 8, 8), (3, 20, 1), kv_f16),
            attention_case("GQA 8:2", (8, 2, 64, 64), (2, 200, 0), kv_f16),
            // gemma3 270M's shape: 4 heads over 1 kv head of 256 dims.
            attention_case("long context", (4, 1, 256, 256), (5, 2995, 0), kv_f16),
            attention_case("prefill", (4, 1, 256, 256), (64, 0, 0), kv_f16),
        ]);
    }
    let mut sliding = attention_case(
        "long sliding window",
        (4, 1, 256, 256),
        (5, 2995, 512),
        true,
    );
    sliding.p.n_ctx = 4096;
    cases.push(sliding);
    let mut prefill_window = attention_case("prefill window", (4, 1, 256, 192), (64, 0, 9), false);
    prefill_window.p.n_ctx = 64;
    cases.push(prefill_window);
    // Scores of tens: exp would overflow without the running max, and rising keys make
    // every tile raise it.
    for kv_f16 in [false, true] {
        let mut sharp =
            attention_case("sharp rising scores", (2, 1, 128, 100), (2, 700, 0), kv_f16);
        sharp.p.scale = 1.0;
        sharp.key_growth = 3.0;
        cases.push(sharp);
    }
    on_each_device(|gpu| {
        let mut rng = Rng(9);
        for case in &cases {
            let p = &case.p;
            let growth = |j: usize| 1.0 + case.key_growth * j as f32 / p.n_ctx as f32;
            let (k, k_words) = host_cache(&mut rng, p, p.head_dim, growth);
            let (v, v_words) = host_cache(&mut rng, p, p.head_dim_v, |_| 1.0);
            let q = rng.vec(p.n_tokens * p.n_heads * p.head_dim);
            let kb = gpu.upload(&k_words).unwrap();
            let vb = gpu.upload(&v_words).unwrap();
            let qb = gpu.upload(&q).unwrap();
            let out = gpu.buffer(p.n_tokens * p.n_heads * p.head_dim_v);
            let places = consecutive(case.pos0, p.n_tokens, 0);
            let pb = places_buffer(gpu, &places);
            let mut batch = gpu.batch();
            batch.attention(&qb, &kb, &vb, &out, &pb, p).unwrap();
            batch.submit().unwrap();
            let y: Vec<f32> = gpu.read(&out).unwrap();
            let want = attention_reference(&q, &k, &v, p, &places);
            assert_close(
                &format!("attention {} (f16 cache: {})", case.what, p.kv_f16),
                &y,
                &want,
                1e-5,
            );
            if !p.kv_f16 {
                continue;
            }
            // The same case with llama.cpp's f16 accumulator, against its emulation.
            let half = AttentionParams {
                half_accumulator: true,
                ..*p
            };
            let mut batch = gpu.batch();
            batch.attention(&qb, &kb, &vb, &out, &pb, &half).unwrap();
            batch.submit().unwrap();
            let y: Vec<f32> = gpu.read(&out).unwrap();
            let emulated = attention_half_reference(&q, &k, &v, &half, &places);
            let gap = |a: &[f64], b: &[f64]| {
                a.iter()
                    .zip(b)
                    .fold(0f64, |m, (x, y)| m.max((x - y).abs() / y.abs().max(1.0)))
            };
            let got: Vec<f64> = y.iter().map(|&x| x as f64).collect();
            // The GPU sums each score in its own order, so an accumulator rounds to the
            // neighbouring half now and then; still it must sit far closer to the
            // emulation than the f16 roundings move the emulation from the exact result.
            let (off, drift) = (gap(&got, &emulated), gap(&emulated, &want));
            assert!(
                off <= 5e-4 && (drift == 0.0 || off * 3.0 < drift),
                "f16-accumulated attention {}: {off} from the emulation, which is {drift} \
                 from the exact result",
                case.what
            );
        }
    });
}

/// llama.cpp's one-query-at-a-time attention over an f16 cache, written plainly: the
/// query rounded to f16, keys in order with a running max, the output accumulator
/// rounded to f16 after every rescale and every `value·weight` add, divided by the sum
/// at the end. Scores are exact sums (the GPU's differ in the last bits).
fn attention_half_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &AttentionParams,
    places: &Places,
) -> Vec<f64> {
    let (hd, hdv) = (p.head_dim, p.head_dim_v);
    let group = p.n_heads / p.n_kv_heads;
    let half = |x: f32| f16::from_f32(x).to_f32();
    let mut out = Vec::with_capacity(p.n_tokens * p.n_heads * hdv);
    for t in 0..p.n_tokens {
        let (pos, cell0) = places[t];
        let first = if p.window > 0 {
            (pos + 1).saturating_sub(p.window)
        } else {
            0
        };
        for h in 0..p.n_heads {
            let kvh = h / group;
            let qv: Vec<f32> = q[(t * p.n_heads + h) * hd..][..hd]
                .iter()
                .map(|&x| half(x))
                .collect();
            let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
            let mut acc = vec![0f32; hdv];
            for j in first..=pos {
                let key = &k[(kvh * p.n_ctx + cell0 + j) * hd..][..hd];
                let dot: f64 = qv.iter().zip(key).map(|(&a, &b)| a as f64 * b as f64).sum();
                let s = dot as f32 * p.scale;
                let mut weight = 1f32;
                if s > max {
                    let rescale = (max - s).exp();
                    max = s;
                    sum = sum * rescale + 1.0;
                    acc.iter_mut().for_each(|a| *a = half(*a * rescale));
                } else {
                    weight = (s - max).exp();
                    sum += weight;
                }
                let value = &v[(kvh * p.n_ctx + cell0 + j) * hdv..][..hdv];
                for (a, &x) in acc.iter_mut().zip(value) {
                    *a = half(x.mul_add(weight, *a));
                }
            }
            out.extend(acc.iter().map(|&a| (a * (1.0 / sum)) as f64));
        }
    }
    out
}

#[test]
fn attention_refuses_bad_shapes() {
    let gpu = open(&GpuOptions::default());
    let p = AttentionParams {
        n_tokens: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 8,
        head_dim_v: 8,
        n_ctx: 10,
        window: 0,
        scale: 1.0,
        kv_f16: false,
        half_accumulator: false,
    };
    let big = gpu.buffer(4096);
    let places = gpu.buffer(4);
    let mut batch = gpu.batch();
    assert!(batch
        .attention(&big, &big, &big, &gpu.buffer(64), &places, &p)
        .is_ok());
    // A place short for the second query.
    assert!(batch
        .attention(&big, &big, &big, &gpu.buffer(64), &gpu.buffer(3), &p)
        .is_err());
    let refused = [
        AttentionParams { n_kv_heads: 3, ..p },
        AttentionParams { n_tokens: 0, ..p },
        AttentionParams { head_dim: 0, ..p },
        AttentionParams {
            head_dim_v: AttentionParams::MAX_HEAD_DIM + 1,
            ..p
        },
    ];
    for bad in refused {
        let err = batch.attention(&big, &big, &big, &gpu.buffer(4096), &big, &bad);
        assert!(err.is_err(), "{bad:?} was accepted");
    }
    // An output one element short.
    assert!(batch
        .attention(&big, &big, &big, &gpu.buffer(63), &places, &p)
        .is_err());
}

#[test]
fn kv_append_copies_into_the_cache_in_one_batch_with_other_ops() {
    let gpu = open(&GpuOptions::default());
    let new_k: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let src = gpu.upload(&new_k).unwrap();
    let cache = gpu.buffer(32);
    let ones = gpu.upload(&[1f32; 8]).unwrap();
    let sum = gpu.buffer(8);
    let mut batch = gpu.batch();
    batch.copy(&src, 0, &cache, 16, 8).unwrap();
    batch.binary(BinaryOp::Add, &src, &ones, &sum, 8).unwrap();
    batch.submit().unwrap();
    let c: Vec<f32> = gpu.read(&cache).unwrap();
    assert_eq!(&c[16..24], &new_k[..]);
    assert_eq!(
        gpu.read_range::<f32>(&cache, 17, 3).unwrap(),
        vec![1.0, 2.0, 3.0]
    );
    assert!(gpu.read_range::<f32>(&cache, 30, 3).is_err());
    assert!(c[..16].iter().chain(&c[24..]).all(|&v| v == 0.0));
    // Raw bytes at an odd address (as inside a mapped GGUF file) upload unchanged.
    let raw: Vec<u8> = [0u8].iter().chain(&2.5f32.to_le_bytes()).copied().collect();
    let from_bytes = gpu.upload_bytes(&raw[1..]).unwrap();
    assert_eq!(gpu.read::<f32>(&from_bytes).unwrap(), vec![2.5]);
    assert!(gpu.upload_bytes(&raw[..3]).is_err());
    let s: Vec<f32> = gpu.read(&sum).unwrap();
    assert_eq!(s, (1..=8).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn many_dispatches_in_one_batch_overflow_the_parameter_ring_safely() {
    // 3000 chained adds (more than one ring of parameters): x_{i+1} = x_i + 1.
    let gpu = open(&GpuOptions::default());
    let one = gpu.upload(&[1f32]).unwrap();
    let bufs = [gpu.upload(&[0f32; 4]).unwrap(), gpu.buffer(4)];
    let mut batch = gpu.batch();
    for i in 0..3000 {
        batch
            .binary(BinaryOp::Add, &bufs[i % 2], &one, &bufs[(i + 1) % 2], 4)
            .unwrap();
    }
    batch.submit().unwrap();
    let y: Vec<f32> = gpu.read(&bufs[0]).unwrap();
    assert_eq!(y, vec![3000.0; 4]);
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let gpu = open(&GpuOptions::default());
    let err = Gpu::new(&GpuOptions {
        device_index: Some(99),
        ..GpuOptions::default()
    })
    .err()
    .expect("device 99 does not exist");
    assert!(err.to_string().contains("--gpu-device 99"), "{err}");
    // Wrong byte count, unsupported type, row length not a whole number of blocks.
    assert!(gpu
        .upload_weight(GgmlType::Q4_0, 2, 32, &[0u8; 35])
        .is_err());
    assert!(gpu
        .upload_weight(GgmlType::Q8K, 1, 256, &[0u8; 292])
        .is_err());
    assert!(gpu
        .upload_weight(GgmlType::Q4K, 1, 128, &[0u8; 72])
        .is_err());
    let w = gpu.upload_weight(GgmlType::F32, 2, 4, &[0u8; 32]).unwrap();
    let small = gpu.buffer(3);
    let mut batch = gpu.batch();
    assert!(batch.mat_vec(&w, &small, &small, 1).is_err());
    let (x, y) = (gpu.buffer(5 * 4), gpu.buffer(5 * 2));
    assert!(
        batch.mat_vec(&w, &x, &y, 5).is_err(),
        "5 tokens need the tiled kernel"
    );
    assert!(batch.mul_mat(&w, &x, &y, 5).is_ok());
}

#[test]
fn a_lost_device_gives_errors_not_hangs() {
    let gpu = open(&GpuOptions::default());
    let a = gpu.upload(&[1f32; 16]).unwrap();
    let y = gpu.buffer(16);
    gpu.device.device.destroy();
    let mut batch = gpu.batch();
    let recorded = batch.binary(BinaryOp::Add, &a, &a, &y, 16);
    let submitted = recorded.and_then(|()| batch.submit());
    assert!(submitted.is_err(), "submitting to a destroyed device");
    assert!(
        gpu.read::<f32>(&y).is_err(),
        "reading from a destroyed device"
    );
}

#[test]
fn bind_groups_are_reused_and_freed_with_their_buffers() {
    let gpu = open(&GpuOptions::default());
    let base = gpu.cached_bind_groups();
    let w = gpu.upload_weight(GgmlType::F32, 4, 8, &[0u8; 128]).unwrap();
    {
        let x = gpu.upload(&[1f32; 8]).unwrap();
        let y = gpu.buffer(4);
        for _ in 0..3 {
            let mut batch = gpu.batch();
            batch.mat_vec(&w, &x, &y, 1).unwrap();
            batch.submit().unwrap();
        }
        assert_eq!(gpu.cached_bind_groups(), base + 1, "one bind group, reused");
    }
    assert_eq!(gpu.cached_bind_groups(), base, "dropping x and y evicts it");
    // Gpu and its buffers can move to and be shared between threads.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Gpu>();
    send_sync::<tandem::gpu::GpuBuffer>();
    send_sync::<tandem::gpu::GpuWeight>();
}

#[test]
fn batches_can_be_open_together_and_on_several_threads() {
    let gpu = open(&GpuOptions::default());
    let one = gpu.upload(&[1f32; 4]).unwrap();
    let (a, b) = (gpu.buffer(4), gpu.buffer(4));
    // Two open batches in one thread (a single shared parameter ring would deadlock).
    let mut first = gpu.batch();
    let mut second = gpu.batch();
    first.scale(&one, 1.0, 4).unwrap();
    second.binary(BinaryOp::Add, &one, &one, &b, 4).unwrap();
    first.binary(BinaryOp::Mul, &one, &one, &a, 4).unwrap();
    second.submit().unwrap();
    first.submit().unwrap();
    assert_eq!(gpu.read::<f32>(&a).unwrap(), vec![1.0; 4]);
    assert_eq!(gpu.read::<f32>(&b).unwrap(), vec![2.0; 4]);

    let outputs: Vec<_> = (0..4).map(|_| gpu.buffer(4)).collect();
    std::thread::scope(|scope| {
        for (i, out) in outputs.iter().enumerate() {
            let (gpu, one) = (&gpu, &one);
            scope.spawn(move || {
                let mut batch = gpu.batch();
                batch.binary(BinaryOp::Add, one, one, out, 4).unwrap();
                batch.scale(out, i as f32, 4).unwrap();
                batch.submit().unwrap();
            });
        }
    });
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(gpu.read::<f32>(out).unwrap(), vec![2.0 * i as f32; 4]);
    }
}

#[test]
fn wgpu_validation_errors_surface_as_errors() {
    let gpu = open(&GpuOptions::default());
    // An invalid buffer (map-read storage) raises a validation error outside any call
    // that returns a Result; the next submit must report it rather than go on silently.
    let _bad = gpu.device.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let (a, y) = (gpu.upload(&[1f32; 4]).unwrap(), gpu.buffer(4));
    let mut batch = gpu.batch();
    batch.binary(BinaryOp::Add, &a, &a, &y, 4).unwrap();
    let err = batch
        .submit()
        .expect_err("the validation error is reported");
    assert!(err.to_string().contains("GPU error"), "{err}");
    // Reported once: the device goes on working.
    let mut batch = gpu.batch();
    batch.binary(BinaryOp::Add, &a, &a, &y, 4).unwrap();
    batch.submit().unwrap();
    assert_eq!(gpu.read::<f32>(&y).unwrap(), vec![2.0; 4]);
}
