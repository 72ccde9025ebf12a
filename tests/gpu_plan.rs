//! The planner on a real adapter (lavapipe in CI): `--gpu-layers auto` loads what the
//! plan says, the GPU then holds exactly the bytes the plan counted, and one more block
//! than the plan gives does not load under the same budget.

mod common;

use tandem::engine::{Engine, EngineOptions, GpuLayers, OutputOn};
use tandem::gguf::GgufFile;
use tandem::plan::memory::Sizing;
use tandem::plan::{plan, GpuBudget, ModelShape, PlanRequest};

fn options(layers: GpuLayers, budget: u64, output_on: Option<OutputOn>) -> EngineOptions {
    EngineOptions {
        n_ctx: Some(1024),
        n_batch: 64,
        n_threads: Some(2),
        gpu_layers: layers,
        output_on,
        gpu_device: Some(0),
        vram_budget: Some(budget),
        ..EngineOptions::default()
    }
}

/// The plan `Engine::load` makes for these options, made here from the file alone.
fn planned(budget: u64, output_on: Option<OutputOn>) -> tandem::plan::Plan {
    let shape = ModelShape::of_file(&GgufFile::open(common::gemma3_path()).unwrap()).unwrap();
    let request = PlanRequest {
        sizing: Sizing {
            n_ctx: 1024,
            n_parallel: 1,
            n_rows: 64,
            cache_type: tandem::engine::CacheType::F16,
            kv_on_cpu: false,
        },
        gpu_layers: GpuLayers::Auto,
        output_on,
        budget: GpuBudget::new(Some((budget, "test")), None),
    };
    plan(&shape, &request)
}

fn assert_gpu_found() {
    assert!(
        !tandem::gpu::list_adapters().is_empty(),
        "{}",
        tandem::gpu::device::NO_ADAPTER_MESSAGE
    );
}

#[test]
fn auto_loads_the_plan_and_the_gpu_holds_what_it_counted() {
    assert_gpu_found();
    let path = common::gemma3_path();
    // A part of the blocks; all blocks without the 170 MiB output layer; everything.
    for (budget, output_on) in [
        (40u64 << 20, None),
        (100 << 20, Some(OutputOn::Cpu)),
        (600 << 20, None),
    ] {
        let expected = planned(budget, output_on);
        assert!(expected.fits);
        let mut engine = Engine::load(&path, options(GpuLayers::Auto, budget, output_on))
            .unwrap_or_else(|e| panic!("budget {budget}: the plan did not load: {e:#}"));
        let split = engine.split();
        assert_eq!(
            (split.device_blocks, split.head_on_device),
            (expected.gpu_layers, expected.output_on_gpu),
            "budget {budget}"
        );
        let tokens = engine
            .tokenizer()
            .encode("The three primary colors are", true, false);
        engine.eval(&tokens).unwrap();
        assert_eq!(
            engine.gpu_allocated_bytes(),
            Some(expected.gpu_bytes),
            "budget {budget}: the GPU holds other bytes than the plan counted"
        );
        assert!(expected.gpu_bytes <= budget);
        // Maximal: one more block does not load under the same budget.
        if expected.gpu_layers < expected.n_layers {
            let more = GpuLayers::Count(expected.gpu_layers + 1);
            let err = Engine::load(&path, options(more, budget, Some(OutputOn::Cpu)))
                .err()
                .unwrap_or_else(|| panic!("budget {budget}: one block more also loaded"));
            assert!(format!("{err:#}").contains("out of GPU memory"), "{err:#}");
        }
    }
    assert_eq!(planned(600 << 20, None).gpu_layers, 18);
    assert!(planned(600 << 20, None).output_on_gpu);
}
