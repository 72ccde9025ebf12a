//! The GPU's activation rounding gives exactly the values the CPU's activation
//! quantizer (Q8_0/Q8_1 and Q8_K blocks) gives (so products on both devices agree). Needs an adapter.

use tandem::cpu::act_quant::{ActFormat, QuantizedActs};
use tandem::gpu::{Gpu, GpuOptions};
use tandem::quant::GgmlType;

fn open(options: &GpuOptions) -> Gpu {
    Gpu::new(options).unwrap_or_else(|e| {
        panic!("GPU tests need a real adapter (install mesa-vulkan-drivers for lavapipe): {e:#}")
    })
}

/// Values with ties (x / d = k + 0.5), zeros, an all-zero block, tiny and huge values.
fn activations(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f32 / (1u64 << 31) as f32 * 2.0 - 1.0
    };
    let mut x: Vec<f32> = (0..n)
        .map(|i| next() * [1.0, 1e-3, 40.0, 7.0][i % 4])
        .collect();
    // A block of 32 and a block of 256 with exact ties: max 127 makes d = 1.
    for (i, v) in x[256..288].iter_mut().enumerate() {
        *v = i as f32 - 15.5;
    }
    x[256] = 127.0;
    x[512..768].iter_mut().for_each(|v| *v = 0.0);
    for (i, v) in x[768..1024].iter_mut().enumerate() {
        *v = (i % 64) as f32 * 0.5 - 16.0;
    }
    x[768] = -127.0;
    x
}

/// The values the CPU's matrix kernels multiply: its activation quantizer's codes times
/// their block scales.
fn cpu_rounded(weight: GgmlType, x: &[f32]) -> Vec<f32> {
    let format = ActFormat::for_weight(weight);
    let acts = QuantizedActs::quantize(format, x, 1, x.len());
    let block = format.block_elems();
    acts.qs
        .iter()
        .enumerate()
        .map(|(i, &q)| q as f32 * acts.d[i / block])
        .collect()
}

#[test]
fn gpu_rounding_equals_the_cpu_quantizers() {
    for options in [
        GpuOptions::default(),
        GpuOptions {
            disable_f16: true,
            ..GpuOptions::default()
        },
    ] {
        let gpu = open(&options);
        let x = activations(2048, 5);
        let src = gpu.upload(&x).unwrap();
        let dst = gpu.buffer(x.len());
        for weight in [GgmlType::Q4_0, GgmlType::Q5_1, GgmlType::Q4K] {
            let mut batch = gpu.batch();
            batch
                .round_activations(weight, &src, &dst, x.len())
                .unwrap();
            batch.submit().unwrap();
            let got: Vec<f32> = gpu.read(&dst).unwrap();
            let want = cpu_rounded(weight, &x);
            let mismatches: Vec<usize> = (0..x.len()).filter(|&i| got[i] != want[i]).collect();
            assert!(
                mismatches.is_empty(),
                "{weight:?} ({options:?}): {} mismatches, first at {}: x {} gpu {} cpu {}",
                mismatches.len(),
                mismatches[0],
                x[mismatches[0]],
                got[mismatches[0]],
                want[mismatches[0]]
            );
        }
        // Float weights take f32 activations: nothing to round.
        assert!(gpu
            .batch()
            .round_activations(GgmlType::F16, &src, &dst, 32)
            .is_err());
    }
}

/// The codes, block scales and sums of 16 codes the GPU packs for its integer kernel
/// are the CPU quantizer's, bit for bit, for several tokens in one buffer.
#[test]
fn gpu_packing_equals_the_cpu_quantizers() {
    use tandem::gpu::PackedLayout;
    let gpu = open(&GpuOptions::default());
    let (n_tokens, cols) = (3, 768);
    let x = activations(n_tokens * cols, 9);
    let src = gpu.upload(&x).unwrap();
    for weight in [GgmlType::Q4_0, GgmlType::Q5_1, GgmlType::Q4K, GgmlType::Q6K] {
        let packed = gpu.buffer(PackedLayout::max_len(n_tokens, cols));
        let mut batch = gpu.batch();
        let layout = batch
            .pack_activations(weight, &src, &packed, n_tokens, cols)
            .unwrap();
        batch.submit().unwrap();
        let got: Vec<u32> = gpu.read(&packed).unwrap();
        let format = ActFormat::for_weight(weight);
        let cpu = QuantizedActs::quantize(format, &x, n_tokens, cols);
        assert_eq!(layout.block, format.block_elems(), "{weight:?}");
        let codes: Vec<i8> = got[..layout.d_base()]
            .iter()
            .flat_map(|w| w.to_le_bytes().map(|b| b as i8))
            .collect();
        assert_eq!(codes, cpu.qs, "{weight:?}: codes");
        let scales: Vec<f32> = got[layout.d_base()..layout.d_base() + layout.n_scales()]
            .iter()
            .map(|&w| f32::from_bits(w))
            .collect();
        assert_eq!(scales, cpu.d, "{weight:?}: scales");
        let sums: Vec<i32> = got[layout.s_base()..layout.s_base() + layout.n_sums()]
            .iter()
            .map(|&w| w as i32)
            .collect();
        let want: Vec<i32> = cpu
            .qs
            .chunks(16)
            .map(|c| c.iter().map(|&q| i32::from(q)).sum())
            .collect();
        assert_eq!(sums, want, "{weight:?}: sums of 16");
        if !cpu.bsums.is_empty() {
            let bsums: Vec<i32> = cpu.bsums.iter().map(|&s| i32::from(s)).collect();
            assert_eq!(sums, bsums, "{weight:?}: Q8_K bsums");
        }
    }
    // Float weights and the K-quants without an integer kernel have no packing.
    let packed = gpu.buffer(PackedLayout::max_len(1, 256));
    for weight in [GgmlType::F16, GgmlType::Q3K] {
        assert!(gpu
            .batch()
            .pack_activations(weight, &src, &packed, 1, 256)
            .is_err());
    }
}
