// y[t, row_base + r] = sum_k W[r, k] * x[t, k] for one token t per workgroup layer z and
// one weight row r per workgroup (x and y linearized so more than 65535 rows fit).
// Needs BLOCK_ELEMS, BLOCK_BYTES and dequant4 from a dequant helper.

struct Params {
    rows: u32,
    cols: u32,
    row_base: u32,
    x_stride: u32,
    y_stride: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let row = cin.wid.x + cin.wid.y * cin.nwg.x;
    let tok = cin.wid.z;
    let groups_per_block = BLOCK_ELEMS / 4u;
    let units = p.cols / 4u;
    let row_off = row * (p.cols / BLOCK_ELEMS) * BLOCK_BYTES;
    let x_base = tok * p.x_stride / 4u;
    var acc = 0.0;
    if (row < p.rows) {
        for (var u = cin.lid; u < units; u += WG_SIZE) {
            let blk = row_off + (u / groups_per_block) * BLOCK_BYTES;
            acc += dot(dequant4(blk, u % groups_per_block), x[x_base + u]);
        }
    }
    let total = workgroup_sum(acc, cin);
    if (cin.lid == 0u && row < p.rows) {
        y[tok * p.y_stride + p.row_base + row] = total;
    }
}
