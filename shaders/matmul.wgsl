// Tiled y[t, row_base + r] = sum_k W[r, k] * x[t, k] for prefill: each workgroup owns a
// 32-row x 32-token output tile and walks k in steps of 32, dequantizing a 32x32 weight
// tile and loading a 32x32 activation tile into workgroup memory; each of the 256
// invocations accumulates a 2x2 block of outputs.
// Needs BLOCK_ELEMS, BLOCK_BYTES and dequant4 from a dequant helper, and the
// bindings of common/matmul_io.wgsl.

const WG_SIZE: u32 = 256u;
const TILE: u32 = 32u;
const TILE_K4: u32 = 8u;

// [row][k / 4] and [token][k / 4] of the current k step.
var<workgroup> w_tile: array<vec4<f32>, 256>;
var<workgroup> x_tile: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn main(cin: ComputeIn) {
    let row0 = cin.wid.x * TILE;
    let tok0 = cin.wid.y * TILE;
    let lid = cin.lid;
    let groups_per_block = BLOCK_ELEMS / 4u;
    let row_bytes = (p.cols / BLOCK_ELEMS) * BLOCK_BYTES;
    // The tile element this invocation loads, and the 2x2 outputs it accumulates.
    let load_r = lid / TILE_K4;
    let load_k4 = lid % TILE_K4;
    let out_r = (lid % 16u) * 2u;
    let out_t = (lid / 16u) * 2u;
    var acc = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < p.cols; k0 += TILE) {
        let k = k0 + load_k4 * 4u;
        var w = vec4<f32>(0.0);
        let r = row0 + load_r;
        if (r < p.rows && k < p.cols) {
            let u = k / 4u;
            w = dequant4(r * row_bytes + (u / groups_per_block) * BLOCK_BYTES, u % groups_per_block);
        }
        w_tile[lid] = w;
        var xv = vec4<f32>(0.0);
        let t = tok0 + load_r;
        if (t < p.n_tokens && k < p.cols) {
            xv = x[(t * p.x_stride + k) / 4u];
        }
        x_tile[lid] = xv;
        workgroupBarrier();
        for (var k4 = 0u; k4 < TILE_K4; k4 += 1u) {
            let w0 = w_tile[out_r * TILE_K4 + k4];
            let w1 = w_tile[(out_r + 1u) * TILE_K4 + k4];
            let x0 = x_tile[out_t * TILE_K4 + k4];
            let x1 = x_tile[(out_t + 1u) * TILE_K4 + k4];
            acc += vec4<f32>(dot(w0, x0), dot(w1, x0), dot(w0, x1), dot(w1, x1));
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i += 1u) {
        let r = row0 + out_r + (i & 1u);
        let t = tok0 + out_t + (i >> 1u);
        if (r < p.rows && t < p.n_tokens) {
            y[t * p.y_stride + p.row_base + r] = acc[i];
        }
    }
}
