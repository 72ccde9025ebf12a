// Q5_1 x Q8_1: d·dx·Σ q·xq + m·dx·Σ xq per block (layout as dequant/q5_1.wgsl), two
// blocks of 24 bytes per step: 3 aligned vec4s.
const ACT_BLOCK: u32 = 32u;
const UNITS_PER_STEP: u32 = 2u;

// The units of step s: consecutive.
fn step_unit(s: u32, i: u32) -> u32 {
    return s * UNITS_PER_STEP + i;
}

fn step_dot(row: u32, s: u32, x: XStep) -> array<f32, N_TOKENS> {
    let base = (row + s * 2u * BLOCK_BYTES) >> 4u;
    var w: array<u32, 12>;
    for (var i = 0u; i < 3u; i++) {
        let v = weights[base + i];
        for (var c = 0u; c < 4u; c++) {
            w[4u * i + c] = v[c];
        }
    }
    var out: array<f32, N_TOKENS>;
    for (var b = 0u; b < 2u; b++) {
        let o = 6u * b;
        let d = f16_bits_to_f32(w[o]);
        let m = f16_bits_to_f32(w[o] >> 16u);
        let qh = w[o + 1u];
        for (var t = 0u; t < N_TOKENS; t++) {
            let xu = x[t][b];
            var sumi = 0;
            for (var k = 0u; k < 4u; k++) {
                let lo = nibbles(w[o + 2u + k], 0u) | fifth_bits(qh >> (4u * k));
                let hi = nibbles(w[o + 2u + k], 4u) | fifth_bits(qh >> (16u + 4u * k));
                sumi += dot4I8Packed(lo, xu.q[k]) + dot4I8Packed(hi, xu.q[k + 4u]);
            }
            out[t] += xu.d * (d * f32(sumi) + m * f32(xu.s0 + xu.s1));
        }
    }
    return out;
}
