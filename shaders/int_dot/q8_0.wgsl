// Q8_0 x Q8_0: d·dx·Σ q·xq per block, two blocks per step: 68 bytes, 17 aligned words,
// where one block alone is misaligned.
const ACT_BLOCK: u32 = 32u;
const UNITS_PER_STEP: u32 = 2u;

// The units of step s: consecutive.
fn step_unit(s: u32, i: u32) -> u32 {
    return s * UNITS_PER_STEP + i;
}

fn step_dot(row: u32, s: u32, x: XStep) -> array<f32, N_TOKENS> {
    let base = (row + s * 2u * BLOCK_BYTES) >> 2u;
    let w = load_span(base, 5u); // the first 17 words
    // Block 0: scale 0..1, codes 2..33; block 1: scale 34..35, codes 36..67 (words 9..16).
    let d = vec2<f32>(f16_bits_to_f32(w[0]), f16_bits_to_f32(w[8] >> 16u));
    var q: array<array<u32, 8>, 2>;
    for (var k = 0u; k < 8u; k++) {
        q[0][k] = half_shifted(w[k], w[k + 1u]);
        q[1][k] = w[9u + k];
    }
    var out: array<f32, N_TOKENS>;
    for (var t = 0u; t < N_TOKENS; t++) {
        for (var b = 0u; b < 2u; b++) {
            let xu = x[t][b];
            var sumi = 0;
            for (var k = 0u; k < 8u; k++) {
                sumi += dot4I8Packed(q[b][k], xu.q[k]);
            }
            out[t] += d[b] * xu.d * f32(sumi);
        }
    }
    return out;
}
