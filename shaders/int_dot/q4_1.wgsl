// Q4_1 x Q8_1: d·dx·Σ q·xq + m·dx·Σ xq per block (layout as dequant/q4_1.wgsl). Blocks
// of 20 bytes are word-aligned: one block per step, 5 words.
const ACT_BLOCK: u32 = 32u;
const UNITS_PER_STEP: u32 = 1u;

// The units of step s: consecutive.
fn step_unit(s: u32, i: u32) -> u32 {
    return s * UNITS_PER_STEP + i;
}

fn step_dot(row: u32, s: u32, x: XStep) -> array<f32, N_TOKENS> {
    let base = (row + s * BLOCK_BYTES) >> 2u;
    var w: array<u32, 5>;
    for (var i = 0u; i < 5u; i++) {
        w[i] = weight_word(base + i);
    }
    let d = f16_bits_to_f32(w[0]);
    let m = f16_bits_to_f32(w[0] >> 16u);
    var out: array<f32, N_TOKENS>;
    for (var t = 0u; t < N_TOKENS; t++) {
        let xu = x[t][0];
        var sumi = 0;
        for (var k = 0u; k < 4u; k++) {
            sumi += dot4I8Packed(nibbles(w[1u + k], 0u), xu.q[k])
                + dot4I8Packed(nibbles(w[1u + k], 4u), xu.q[k + 4u]);
        }
        out[t] = xu.d * (d * f32(sumi) + m * f32(xu.s0 + xu.s1));
    }
    return out;
}
