// y[t, row_base + r] = sum_k W[r, k] * x[t, k] for N_TOKENS tokens (1 to 4, fixed per
// pipeline so the loops unroll): each workgroup computes
// 4 consecutive rows for all tokens, so every weight is dequantized once per workgroup and
// every activation load serves 4 rows. Workgroups are linearized over x and y so more than
// 65535 * 4 rows fit. Needs BLOCK_ELEMS, BLOCK_BYTES and dequant4 from a dequant helper,
// and the bindings of common/matmul_io.wgsl.

const WG_SIZE: u32 = 64u;
const ROWS_PER_WG: u32 = 4u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let row0 = (cin.wid.x + cin.wid.y * cin.nwg.x) * ROWS_PER_WG;
    let groups_per_block = BLOCK_ELEMS / 4u;
    let units = p.cols / 4u;
    let row_bytes = (p.cols / BLOCK_ELEMS) * BLOCK_BYTES;
    let x_stride4 = p.x_stride / 4u;
    // Rows past the end repeat the last row (their sums are discarded), keeping the
    // loop free of per-row branches.
    let last = p.rows - 1u;
    let off0 = min(row0, last) * row_bytes;
    let off1 = min(row0 + 1u, last) * row_bytes;
    let off2 = min(row0 + 2u, last) * row_bytes;
    let off3 = min(row0 + 3u, last) * row_bytes;
    // acc[t][i]: token t, row row0 + i.
    var acc: array<vec4<f32>, N_TOKENS>;
    if (row0 < p.rows) {
        for (var u = cin.lid; u < units; u += WG_SIZE) {
            let blk = (u / groups_per_block) * BLOCK_BYTES;
            let j = u % groups_per_block;
            let w0 = dequant4(off0 + blk, j);
            let w1 = dequant4(off1 + blk, j);
            let w2 = dequant4(off2 + blk, j);
            let w3 = dequant4(off3 + blk, j);
            for (var t = 0u; t < N_TOKENS; t += 1u) {
                let xv = x[t * x_stride4 + u];
                acc[t] += vec4<f32>(dot(w0, xv), dot(w1, xv), dot(w2, xv), dot(w3, xv));
            }
        }
    }
    for (var t = 0u; t < N_TOKENS; t += 1u) {
        let total = workgroup_sum4(acc[t], cin);
        if (cin.lid < ROWS_PER_WG && row0 + cin.lid < p.rows) {
            y[t * p.y_stride + p.row_base + row0 + cin.lid] = total[cin.lid];
        }
    }
}
