// y[t, :] = dequantized row ids[t] of W (embedding lookup). One invocation per 4 elements;
// the token is workgroup layer z. Rows outside this weight chunk are left untouched, so
// a chunked tensor is looked up by one dispatch per chunk.
// Needs BLOCK_ELEMS, BLOCK_BYTES and dequant4 from a dequant helper.

struct Params {
    rows: u32,
    cols: u32,
    row_base: u32,
    y_stride: u32,
    n_tokens: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let u = (cin.wid.x + cin.wid.y * cin.nwg.x) * WG_SIZE + cin.lid;
    let tok = cin.wid.z;
    let id = ids[tok];
    if (u >= p.cols / 4u || id < p.row_base || id >= p.row_base + p.rows) {
        return;
    }
    let groups_per_block = BLOCK_ELEMS / 4u;
    let row_bytes = (p.cols / BLOCK_ELEMS) * BLOCK_BYTES;
    let blk = (id - p.row_base) * row_bytes + (u / groups_per_block) * BLOCK_BYTES;
    y[(tok * p.y_stride) / 4u + u] = dequant4(blk, u % groups_per_block);
}
