// y[t, row_base + r] = sum_k W[r, k] * x[t, k]: each workgroup computes 4 consecutive rows
// for one token (workgroup layer z), so every activation load serves 4 rows and one
// reduction finishes 4 outputs. Workgroups are linearized over x and y so more than
// 65535 * 4 rows fit. Needs BLOCK_ELEMS, BLOCK_BYTES and dequant4 from a dequant helper.

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
const ROWS_PER_WG: u32 = 4u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let row0 = (cin.wid.x + cin.wid.y * cin.nwg.x) * ROWS_PER_WG;
    let tok = cin.wid.z;
    let groups_per_block = BLOCK_ELEMS / 4u;
    let units = p.cols / 4u;
    let row_bytes = (p.cols / BLOCK_ELEMS) * BLOCK_BYTES;
    let x_base = tok * p.x_stride / 4u;
    // Rows past the end repeat the last row (their sums are discarded), keeping the
    // loop free of per-row branches.
    let last = p.rows - 1u;
    let off0 = min(row0, last) * row_bytes;
    let off1 = min(row0 + 1u, last) * row_bytes;
    let off2 = min(row0 + 2u, last) * row_bytes;
    let off3 = min(row0 + 3u, last) * row_bytes;
    var acc = vec4<f32>(0.0);
    if (row0 < p.rows) {
        for (var u = cin.lid; u < units; u += WG_SIZE) {
            let xv = x[x_base + u];
            let blk = (u / groups_per_block) * BLOCK_BYTES;
            let j = u % groups_per_block;
            acc += vec4<f32>(
                dot(dequant4(off0 + blk, j), xv),
                dot(dequant4(off1 + blk, j), xv),
                dot(dequant4(off2 + blk, j), xv),
                dot(dequant4(off3 + blk, j), xv),
            );
        }
    }
    let total = workgroup_sum4(acc, cin);
    if (cin.lid < ROWS_PER_WG && row0 + cin.lid < p.rows) {
        y[tok * p.y_stride + p.row_base + row0 + cin.lid] = total[cin.lid];
    }
}
