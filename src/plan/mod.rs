//! The planner: where each block of a model goes for a GPU memory budget, what every
//! device then holds, and how fast that should run, decided before any weight is loaded
//! (`tandem plan`, and `--gpu-layers auto` in every command that loads a model).
//!
//! - [`shape`]: a model's dimensions and tensor bytes, from a file's header or a preset;
//! - [`memory`]: the bytes of a placement on each device, counted as the GPU backend
//!   counts its allocations, so a plan that fits loads;
//! - [`budget`]: the memory a plan may fill (an explicit budget, the adapter's free
//!   memory, or its size, less a margin);
//! - [`speed`]: the devices' measured speeds (cached), behind the predicted t/s.

pub mod budget;
pub mod memory;
pub mod shape;
pub mod speed;

use serde::Serialize;

use crate::engine::{GpuLayers, OutputOn};
pub use budget::GpuBudget;
use memory::{host_bytes, GpuCosts, Sizing};
pub use shape::ModelShape;
use speed::Speed;

/// What to plan.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub sizing: Sizing,
    /// `Auto`: the most blocks the budget holds; otherwise checked against it.
    pub gpu_layers: GpuLayers,
    pub output_on: Option<OutputOn>,
    /// `None`: no GPU (every block on the CPU).
    pub budget: Option<GpuBudget>,
}

/// A placement and what it costs (the JSON of `tandem plan --json`).
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub model: String,
    pub n_layers: usize,
    pub gpu_layers: usize,
    pub output_on_gpu: bool,
    pub n_ctx: usize,
    pub n_parallel: usize,
    /// Everything on the GPU: weights, K/V, activation buffers.
    pub gpu_bytes: u64,
    pub gpu_weight_bytes: u64,
    pub gpu_kv_bytes: u64,
    pub gpu_scratch_bytes: u64,
    /// Host memory: the weights read there (mapped from the file) and their K/V.
    pub cpu_bytes: u64,
    pub cpu_weight_bytes: u64,
    pub cpu_kv_bytes: u64,
    /// K/V of every block, wherever it lives.
    pub kv_bytes: u64,
    pub budget_bytes: Option<u64>,
    pub margin_bytes: Option<u64>,
    pub budget_source: Option<String>,
    /// Whether the GPU part fits the budget (true when nothing is on the GPU).
    pub fits: bool,
    /// Predicted decode tokens/s (short context).
    pub predicted_tg: Option<f64>,
    /// Predicted prompt tokens/s (batches of 512).
    pub predicted_pp: Option<f64>,
    pub notes: Vec<String>,
}

/// The plan for `shape`.
pub fn plan(shape: &ModelShape, req: &PlanRequest) -> Plan {
    let costs = GpuCosts::of(shape, &req.sizing);
    let n_layer = shape.n_layer;
    let mut notes = Vec::new();
    let usable = req.budget.as_ref().map(|b| b.usable);
    let fits = |n: usize, head: bool| usable.is_none_or(|u| costs.total(n, head) <= u);
    let (n_gpu, head) = match (req.gpu_layers, usable) {
        // An output layer asked for on the GPU stays asked for (loading then says that
        // it needs a GPU).
        (GpuLayers::Auto, None) if req.output_on == Some(OutputOn::Gpu) => (0, true),
        (GpuLayers::Auto, None) => {
            notes.push("no GPU: every block runs on the CPU".to_string());
            (0, false)
        }
        (GpuLayers::Auto, Some(_)) => auto_split(n_layer, req.output_on, &fits),
        (layers, _) => {
            let split = crate::engine::placement::split(n_layer, layers, req.output_on);
            (split.device_blocks, split.head_on_device)
        }
    };
    let fit = fits(n_gpu, head);
    if let (Some(u), GpuLayers::Auto, Some(OutputOn::Gpu), false) =
        (usable, req.gpu_layers, req.output_on, head)
    {
        notes.push(format!(
            "the output layer alone needs {} on the GPU but the budget is {}: it stays on the CPU",
            gib(costs.total(0, true)),
            gib(u)
        ));
    }
    if let Some(u) = usable {
        if !fit {
            let (best, _) = auto_split(n_layer, None, &fits);
            notes.push(format!(
                "{} on the GPU need {} but the budget is {}: at most {best} blocks fit",
                describe(n_gpu, head),
                gib(costs.total(n_gpu, head)),
                gib(u)
            ));
        } else if req.gpu_layers == GpuLayers::Auto && n_gpu < n_layer {
            if let Some(note) = kv_advice(shape, req, &costs, n_gpu, u) {
                notes.push(note);
            }
        }
    }
    let host = host_bytes(shape, &req.sizing, n_gpu, head);
    let gpu_bytes = costs.total(n_gpu, head);
    let gpu_kv = costs.kv(n_gpu);
    let gpu_scratch = if gpu_bytes == 0 {
        0
    } else {
        costs.scratch + if head { costs.head_scratch } else { 0 } + costs.rope_factors
    };
    Plan {
        model: shape.name.clone(),
        n_layers: n_layer,
        gpu_layers: n_gpu,
        output_on_gpu: head,
        n_ctx: req.sizing.n_ctx,
        n_parallel: req.sizing.n_parallel,
        gpu_bytes,
        gpu_weight_bytes: gpu_bytes - gpu_kv - gpu_scratch,
        gpu_kv_bytes: gpu_kv,
        gpu_scratch_bytes: gpu_scratch,
        cpu_bytes: host.weights + host.kv,
        cpu_weight_bytes: host.weights,
        cpu_kv_bytes: host.kv,
        kv_bytes: gpu_kv + host.kv,
        budget_bytes: usable,
        margin_bytes: req.budget.as_ref().map(|b| b.margin),
        budget_source: req.budget.as_ref().map(|b| b.source.clone()),
        fits: fit,
        predicted_tg: None,
        predicted_pp: None,
        notes,
    }
}

/// The most blocks that fit, with the output layer too when every block fits (it then
/// saves the hidden state's trip back), unless `output_on` says otherwise.
fn auto_split(
    n_layer: usize,
    output_on: Option<OutputOn>,
    fits: &dyn Fn(usize, bool) -> bool,
) -> (usize, bool) {
    let most = |head: bool| (0..=n_layer).rev().find(|&n| fits(n, head)).unwrap_or(0);
    match output_on {
        Some(OutputOn::Gpu) => {
            let n = most(true);
            (n, fits(n, true))
        }
        Some(OutputOn::Cpu) => (most(false), false),
        None if fits(n_layer, true) => (n_layer, true),
        None => (most(false), false),
    }
}

/// When the K/V cache is what keeps blocks off the GPU: how many more would fit with it
/// in host memory.
fn kv_advice(
    shape: &ModelShape,
    req: &PlanRequest,
    costs: &GpuCosts,
    n_gpu: usize,
    usable: u64,
) -> Option<String> {
    if req.sizing.kv_on_cpu || costs.block_kv == 0 {
        return None;
    }
    let host_kv = GpuCosts::of(
        shape,
        &Sizing {
            kv_on_cpu: true,
            ..req.sizing
        },
    );
    let with_host_kv = (0..=shape.n_layer)
        .rev()
        .find(|&n| host_kv.total(n, false) <= usable)
        .unwrap_or(0);
    let mean_weights = costs.block_weights.iter().sum::<u64>() / shape.n_layer.max(1) as u64;
    if with_host_kv > n_gpu && costs.block_kv * 4 < mean_weights {
        return Some(format!(
            "--kv-on-cpu (K/V in host memory) fits {with_host_kv} blocks instead of {n_gpu}"
        ));
    }
    (with_host_kv > n_gpu).then(|| {
        let what = if n_gpu == 0 {
            "no block fits beside it".to_string()
        } else {
            format!("only {n_gpu} blocks fit beside it")
        };
        format!(
            "the K/V cache of -c {} takes {} per block, so {what}: --kv-on-cpu fits {with_host_kv} \
             blocks, or lower -c",
            req.sizing.n_ctx,
            mib(costs.block_kv)
        )
    })
}

fn describe(n: usize, head: bool) -> String {
    match (n, head) {
        (n, true) => format!("{n} blocks and the output layer"),
        (n, false) => format!("{n} blocks"),
    }
}

pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Shares of the measured speeds the engine reaches, from `tandem bench` on the test
/// machines (docs/perf.md). CPU decode reads at about 80% of the read bandwidth plus a
/// fixed cost per block (its ~10 parallel operations); CPU prefill runs at the measured
/// matmul rate plus a fixed cost per block and token (attention, norms, rope, quantizing
/// activations).
/// GPU decode reads, by a reading of its kernels, at about a third of the copy bandwidth
/// (issue 14), or at its matrix-vector rate where that is lower, and pays each of a
/// block's dispatches (measured); GPU prefill gets a share of the f32 rate. The shares of
/// the f32 rate are lavapipe's, measured (a software adapter runs the dequantizing
/// kernels far below its FMA rate); on hardware they are a reading of the kernels until
/// a GPU times them.
const CPU_READ_SHARE: f64 = 0.8;
const CPU_SECONDS_PER_BLOCK: f64 = 40e-6;
const CPU_PREFILL_SECONDS_PER_BLOCK: f64 = 30e-6;
const GPU_READ_SHARE: f64 = 0.33;
const GPU_MATVEC_FLOP_SHARE: f64 = 0.1;
const GPU_PREFILL_FLOP_SHARE: f64 = 0.1;
const SOFTWARE_MATVEC_FLOP_SHARE: f64 = 0.015;
const SOFTWARE_PREFILL_FLOP_SHARE: f64 = 0.06;
/// Kernel dispatches of one block in a decode step (norms, rounding, the seven matrix
/// products, rope, the K/V store, attention, activations, residual adds).
const GPU_DISPATCHES_PER_BLOCK: f64 = 18.0;
/// The hidden state crossing to the GPU and back once per token.
const CROSSING_SECONDS: f64 = 200e-6;
/// The batch a prefill prediction is for (the output layer runs for its last token only).
const PREFILL_BATCH: f64 = 512.0;

/// What one device does per token: bytes of weights read, multiply-adds in blocks and in
/// the output layer.
#[derive(Default)]
struct Work {
    bytes: f64,
    block_macs: f64,
    head_macs: f64,
    blocks: usize,
}

impl Plan {
    /// Fills in the predicted speeds from the devices' measured speeds (`gpu` is needed
    /// when anything is on the GPU).
    pub fn predict(&mut self, shape: &ModelShape, cpu: Speed, gpu: Option<Speed>) {
        if let Some((pp, tg)) = predict(shape, self.gpu_layers, self.output_on_gpu, cpu, gpu) {
            self.predicted_pp = Some(pp);
            self.predicted_tg = Some(tg);
        }
    }
}

/// Predicted (prompt, generation) tokens/s with blocks `0..n` (and the output layer when
/// `head_on_gpu`) on the GPU; `None` when that needs a GPU figure and `gpu` is `None`.
pub fn predict(
    shape: &ModelShape,
    n: usize,
    head_on_gpu: bool,
    cpu: Speed,
    gpu: Option<Speed>,
) -> Option<(f64, f64)> {
    let macs = |t: &shape::TensorShape| t.dims.iter().product::<u64>() as f64;
    let (mut on_cpu, mut on_gpu) = (Work::default(), Work::default());
    for i in 0..shape.n_layer {
        let work = if i < n { &mut on_gpu } else { &mut on_cpu };
        work.blocks += 1;
        for t in shape.block_tensors(i) {
            work.bytes += t.n_bytes as f64;
            if !t.is_vector() {
                work.block_macs += macs(t);
            }
        }
    }
    if let Some(head) = shape.head_matrix() {
        let work = if head_on_gpu {
            &mut on_gpu
        } else {
            &mut on_cpu
        };
        work.bytes += head.n_bytes as f64;
        work.head_macs += macs(head);
    }
    let mut tg = on_cpu.bytes / (cpu.bytes_per_sec * CPU_READ_SHARE)
        + on_cpu.blocks as f64 * CPU_SECONDS_PER_BLOCK;
    let mut pp = 2.0 * (on_cpu.block_macs + on_cpu.head_macs / PREFILL_BATCH) / cpu.flops
        + on_cpu.blocks as f64 * CPU_PREFILL_SECONDS_PER_BLOCK;
    if on_gpu.bytes > 0.0 {
        let gpu = gpu?;
        let (matvec_share, prefill_share) = if gpu.software {
            (SOFTWARE_MATVEC_FLOP_SHARE, SOFTWARE_PREFILL_FLOP_SHARE)
        } else {
            (GPU_MATVEC_FLOP_SHARE, GPU_PREFILL_FLOP_SHARE)
        };
        let read = on_gpu.bytes / (gpu.bytes_per_sec * GPU_READ_SHARE);
        let compute = 2.0 * (on_gpu.block_macs + on_gpu.head_macs) / (gpu.flops * matvec_share);
        let dispatches =
            on_gpu.blocks as f64 * GPU_DISPATCHES_PER_BLOCK + if head_on_gpu { 3.0 } else { 0.0 };
        tg += read.max(compute) + dispatches * gpu.dispatch_seconds;
        if on_cpu.blocks > 0 || !head_on_gpu {
            tg += CROSSING_SECONDS;
        }
        pp += 2.0 * (on_gpu.block_macs + on_gpu.head_macs / PREFILL_BATCH)
            / (gpu.flops * prefill_share)
            + dispatches * gpu.dispatch_seconds / PREFILL_BATCH;
    }
    Some((1.0 / pp, 1.0 / tg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::CacheType;
    use crate::weight_types::WeightTypeChoice;

    fn sizing(n_ctx: usize) -> Sizing {
        Sizing {
            n_ctx,
            n_parallel: 1,
            n_rows: 512,
            cache_type: CacheType::F16,
            kv_on_cpu: false,
        }
    }

    fn request(n_ctx: usize, budget: u64) -> PlanRequest {
        PlanRequest {
            sizing: sizing(n_ctx),
            gpu_layers: GpuLayers::Auto,
            output_on: None,
            budget: GpuBudget::new(Some((budget, "test")), None),
        }
    }

    fn preset(name: &str) -> ModelShape {
        ModelShape::of_preset(name, WeightTypeChoice::Q4KM, 32000).unwrap()
    }

    #[test]
    fn a_70b_q4_k_m_on_an_8_gib_gpu_comes_from_the_preset_alone() {
        let shape = preset("70b");
        // LLaMA 2 70B Q4_K_M is 41.4 GB (38.6 GiB) in llama.cpp's listings.
        let total = shape.total_bytes() as f64 / (1u64 << 30) as f64;
        assert!((37.0..40.0).contains(&total), "{total} GiB");
        let p = plan(&shape, &request(4096, 8 << 30));
        // Each block is about half a GiB of weights plus 16 MiB of K/V.
        assert_eq!((p.gpu_layers, p.output_on_gpu, p.fits), (15, false, true));
        assert!(p.gpu_bytes <= 8 << 30);
        let json = serde_json::to_value(&p).unwrap();
        for key in [
            "gpu_layers",
            "n_layers",
            "gpu_bytes",
            "cpu_bytes",
            "kv_bytes",
            "predicted_tg",
            "predicted_pp",
        ] {
            assert!(json.get(key).is_some(), "no {key} in {json}");
        }
        assert_eq!(p.kv_bytes, 80 * 4096 * 2 * 8 * 128 * 2);
    }

    #[test]
    fn auto_is_maximal_for_every_budget() {
        let shape = preset("7b");
        let costs = GpuCosts::of(&shape, &sizing(2048));
        for budget_mib in (0..8000).step_by(97) {
            let budget = budget_mib << 20;
            let p = plan(&shape, &request(2048, budget));
            assert!(p.fits && p.gpu_bytes <= budget, "{budget_mib} MiB");
            assert_eq!(p.gpu_bytes, costs.total(p.gpu_layers, p.output_on_gpu));
            if p.gpu_layers < shape.n_layer {
                assert!(
                    costs.total(p.gpu_layers + 1, false) > budget,
                    "{budget_mib} MiB"
                );
            } else if !p.output_on_gpu {
                assert!(
                    costs.total(shape.n_layer, true) > budget,
                    "{budget_mib} MiB"
                );
            }
        }
    }

    #[test]
    fn a_fixed_count_is_checked_against_the_budget() {
        let shape = preset("7b");
        let mut req = request(2048, 4 << 30);
        req.gpu_layers = GpuLayers::All;
        let p = plan(&shape, &req);
        assert!(!p.fits);
        assert!(p.notes[0].contains("at most"), "{:?}", p.notes);
        req.gpu_layers = GpuLayers::Count(3);
        assert!(plan(&shape, &req).fits);
    }

    #[test]
    fn a_context_too_big_for_any_block_says_what_to_do() {
        let shape = preset("7b");
        // 32768 cells of f16 K/V are 16 GiB for the 32 blocks: half a GiB per block.
        let p = plan(&shape, &request(32768, 700 << 20));
        assert_eq!(p.gpu_layers, 0);
        let note = p.notes.join("\n");
        assert!(
            note.contains("--kv-on-cpu") && note.contains("lower -c"),
            "{note}"
        );
        let no_gpu = PlanRequest {
            budget: None,
            ..request(2048, 0)
        };
        let p = plan(&shape, &no_gpu);
        assert_eq!((p.gpu_layers, p.gpu_bytes, p.fits), (0, 0, true));
    }

    #[test]
    fn prediction_follows_the_bytes_each_device_reads() {
        let shape = preset("7b");
        let cpu = Speed {
            bytes_per_sec: 20e9,
            flops: 200e9,
            dispatch_seconds: 0.0,
            software: false,
        };
        let gpu = Speed {
            bytes_per_sec: 300e9,
            flops: 20e12,
            dispatch_seconds: 5e-6,
            software: false,
        };
        let mut all_cpu = plan(
            &shape,
            &PlanRequest {
                budget: None,
                ..request(2048, 0)
            },
        );
        all_cpu.predict(&shape, cpu, None);
        let weights = shape.total_bytes() as f64 - 32000.0 * 4096.0 * 4.5 / 8.0;
        let expected = 1.0 / (weights / (20e9 * CPU_READ_SHARE) + 32.0 * CPU_SECONDS_PER_BLOCK);
        let tg = all_cpu.predicted_tg.unwrap();
        assert!((tg / expected - 1.0).abs() < 0.02, "{tg} vs {expected}");
        let mut half = plan(&shape, &request(2048, 2 << 30));
        half.predict(&shape, cpu, Some(gpu));
        assert!(half.gpu_layers > 0);
        assert!(half.predicted_tg.unwrap() > tg);
        assert!(half.predicted_pp.unwrap() > all_cpu.predicted_pp.unwrap());
    }
}
