// Device speed probes for the planner: `copy` streams one buffer into another (read and
// write bandwidth), `fma` runs independent fused multiply-add chains (f32 throughput).

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;

const WORKGROUP: u32 = 256u;
const FMA_STEPS: u32 = 512u;

@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * WORKGROUP;
    let n = arrayLength(&src);
    for (var i = gid.x; i < n; i += stride) {
        dst[i] = src[i];
    }
}

@compute @workgroup_size(256)
fn fma_chains(@builtin(global_invocation_id) gid: vec3<u32>) {
    let seed = f32(gid.x & 1023u) * 1e-6;
    var a = vec4<f32>(seed, 0.25, 0.5, 0.75);
    var b = a + vec4<f32>(0.125);
    var c = a + vec4<f32>(0.375);
    var d = a + vec4<f32>(0.625);
    let m = vec4<f32>(0.999);
    let k = vec4<f32>(0.001);
    for (var s = 0u; s < FMA_STEPS; s++) {
        a = fma(a, m, k);
        b = fma(b, m, k);
        c = fma(c, m, k);
        d = fma(d, m, k);
    }
    let sum = a + b + c + d;
    // Never true for these inputs; keeps the chains from being optimized away.
    if (sum.x == -1.0) {
        dst[gid.x] = bitcast<vec4<u32>>(sum);
    }
}
