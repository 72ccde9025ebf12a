//! Every kernel's WGSL, assembled exactly as the runtime assembles it, parses and
//! validates with naga for every combination of the optional f16 and subgroup features.

use tandem::gpu::{Kernel, ShaderFeatures};

fn capabilities(features: ShaderFeatures) -> naga::valid::Capabilities {
    let mut caps = naga::valid::Capabilities::empty();
    if features.f16 {
        // What wgpu grants a device opened with SHADER_F16 and the f16-in-f32 downlevel
        // flag (the runtime requires both before it sets `f16`).
        caps |= naga::valid::Capabilities::SHADER_FLOAT16
            | naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    }
    if features.subgroup {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    caps
}

#[test]
fn every_kernel_validates_for_every_feature_set() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for features in ShaderFeatures::ALL {
        for kernel in Kernel::all() {
            let source = kernel.source(features).expect("kernel source");
            let module = match naga::front::wgsl::parse_str(&source) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!(
                        "{} {features:?}: parse: {}",
                        kernel.name(),
                        e.emit_to_string(&source)
                    ));
                    continue;
                }
            };
            let mut validator = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                capabilities(features),
            );
            if let Err(e) = validator.validate(&module) {
                failures.push(format!(
                    "{} {features:?}: validate: {:?} {}",
                    kernel.name(),
                    e.as_inner(),
                    e.emit_to_string(&source)
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // 13 weight types x (matrix x vector for 1 to 4 tokens, matrix x matrix, row
    // gather), the integer matrix x vector kernel of 7 types for 1 to 4 tokens, rope,
    // and 2 variants each of rmsnorm, attention (f32 and f16 caches), kv store,
    // activation rounding and activation packing (32 and 256 blocks) and 5 element-wise
    // ops, for 4 feature sets.
    assert_eq!(checked, 4 * (13 * 6 + 7 * 4 + 1 + 2 * 10));
}

#[test]
fn subgroup_kernels_are_refused_without_the_subgroup_capability() {
    // Guards the test above: it must actually depend on the capability set.
    let features = ShaderFeatures {
        f16: false,
        subgroup: true,
    };
    let source = Kernel::RmsNorm { in_place: false }
        .source(features)
        .unwrap();
    let module = naga::front::wgsl::parse_str(&source).unwrap();
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    assert!(validator.validate(&module).is_err());
}

/// The planner's speed probes validate too (they need no optional feature).
#[test]
fn the_speed_probe_validates() {
    let source = tandem::gpu::probe::PROBE_SOURCE;
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("parse: {}", e.emit_to_string(source)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("validate: {}", e.emit_to_string(source)));
    let entries: Vec<&str> = module
        .entry_points
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(entries, ["copy", "fma_chains"]);
}
