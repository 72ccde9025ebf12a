// Workgroup-wide sum and max through subgroup operations: each subgroup reduces in
// registers, then one value per subgroup goes through workgroup memory.
// Needs WG_SIZE (the workgroup's invocation count) from the kernel.

struct ComputeIn {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) sg_count: u32,
}

var<workgroup> reduce_scratch: array<f32, WG_SIZE>;
var<workgroup> reduce_scratch4: array<vec4<f32>, WG_SIZE>;

fn workgroup_sum(v: f32, cin: ComputeIn) -> f32 {
    let s = subgroupAdd(v);
    if (cin.sg_lane == 0u) {
        reduce_scratch[cin.sg_id] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < cin.sg_count; i += 1u) {
        total += reduce_scratch[i];
    }
    workgroupBarrier();
    return total;
}

fn workgroup_max(v: f32, cin: ComputeIn) -> f32 {
    let s = subgroupMax(v);
    if (cin.sg_lane == 0u) {
        reduce_scratch[cin.sg_id] = s;
    }
    workgroupBarrier();
    var best = reduce_scratch[0];
    for (var i = 1u; i < cin.sg_count; i += 1u) {
        best = max(best, reduce_scratch[i]);
    }
    workgroupBarrier();
    return best;
}

// Four independent sums at once (e.g. four matrix rows).
fn workgroup_sum4(v: vec4<f32>, cin: ComputeIn) -> vec4<f32> {
    let s = subgroupAdd(v);
    if (cin.sg_lane == 0u) {
        reduce_scratch4[cin.sg_id] = s;
    }
    workgroupBarrier();
    var total = vec4<f32>(0.0);
    for (var i = 0u; i < cin.sg_count; i += 1u) {
        total += reduce_scratch4[i];
    }
    workgroupBarrier();
    return total;
}
