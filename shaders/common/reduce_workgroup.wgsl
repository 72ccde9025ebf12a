// Workgroup-wide sum and max by a tree in workgroup memory (no subgroup support).
// Needs WG_SIZE (a power of two, the workgroup's invocation count) from the kernel.

struct ComputeIn {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

var<workgroup> reduce_scratch: array<f32, WG_SIZE>;
var<workgroup> reduce_scratch4: array<vec4<f32>, WG_SIZE>;

fn workgroup_sum(v: f32, cin: ComputeIn) -> f32 {
    reduce_scratch[cin.lid] = v;
    workgroupBarrier();
    for (var half = WG_SIZE / 2u; half > 0u; half >>= 1u) {
        if (cin.lid < half) {
            reduce_scratch[cin.lid] += reduce_scratch[cin.lid + half];
        }
        workgroupBarrier();
    }
    let total = reduce_scratch[0];
    workgroupBarrier();
    return total;
}

fn workgroup_max(v: f32, cin: ComputeIn) -> f32 {
    reduce_scratch[cin.lid] = v;
    workgroupBarrier();
    for (var half = WG_SIZE / 2u; half > 0u; half >>= 1u) {
        if (cin.lid < half) {
            reduce_scratch[cin.lid] = max(reduce_scratch[cin.lid], reduce_scratch[cin.lid + half]);
        }
        workgroupBarrier();
    }
    let best = reduce_scratch[0];
    workgroupBarrier();
    return best;
}

// Four independent sums at once (e.g. four matrix rows).
fn workgroup_sum4(v: vec4<f32>, cin: ComputeIn) -> vec4<f32> {
    reduce_scratch4[cin.lid] = v;
    workgroupBarrier();
    for (var half = WG_SIZE / 2u; half > 0u; half >>= 1u) {
        if (cin.lid < half) {
            reduce_scratch4[cin.lid] += reduce_scratch4[cin.lid + half];
        }
        workgroupBarrier();
    }
    let total = reduce_scratch4[0];
    workgroupBarrier();
    return total;
}
