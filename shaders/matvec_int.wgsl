// y[t, row_base + r] = sum_k W[r, k] x[t, k] for N_TOKENS tokens (1 to 4, fixed per
// pipeline so the loops unroll), by integer dot products of the weight codes with the
// activation codes (common/packed_acts.wgsl). Each lane takes one step of
// UNITS_PER_STEP 32-element units at a time: the step's weight bytes are read as whole
// aligned words once for all tokens (a load per lane is what costs most on a software
// adapter), their scales decoded once, and its activations loaded once for the
// workgroup's 4 rows. Needs step_dot and step_unit (which units a step takes) from an
// int_dot/ helper, which also sets ACT_BLOCK and UNITS_PER_STEP.

const WG_SIZE: u32 = 64u;
const ROWS_PER_WG: u32 = 4u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let row0 = (cin.wid.x + cin.wid.y * cin.nwg.x) * ROWS_PER_WG;
    let steps = p.cols / (32u * UNITS_PER_STEP);
    let row_bytes = (p.cols / BLOCK_ELEMS) * BLOCK_BYTES;
    // Rows past the end repeat the last row (their sums are discarded).
    let last = p.rows - 1u;
    var off: array<u32, ROWS_PER_WG>;
    for (var r = 0u; r < ROWS_PER_WG; r++) {
        off[r] = min(row0 + r, last) * row_bytes;
    }
    // acc[t][r]: token t, row row0 + r.
    var acc: array<vec4<f32>, N_TOKENS>;
    if (row0 < p.rows) {
        for (var s = cin.lid; s < steps; s += WG_SIZE) {
            var x: XStep;
            for (var t = 0u; t < N_TOKENS; t++) {
                for (var i = 0u; i < UNITS_PER_STEP; i++) {
                    x[t][i] = load_x_unit(t, step_unit(s, i));
                }
            }
            // A loop, not four calls: one copy of step_dot's code keeps the pipeline
            // quick to compile (seconds per pipeline on lavapipe otherwise).
            for (var r = 0u; r < ROWS_PER_WG; r++) {
                let d = step_dot(off[r], s, x);
                for (var t = 0u; t < N_TOKENS; t++) {
                    acc[t][r] += d[t];
                }
            }
        }
    }
    for (var t = 0u; t < N_TOKENS; t++) {
        let total = workgroup_sum4(acc[t], cin);
        if (cin.lid < ROWS_PER_WG && row0 + cin.lid < p.rows) {
            y[t * p.y_stride + p.row_base + row0 + cin.lid] = total[cin.lid];
        }
    }
}
