// Q4_0 x Q8_0: d·dx·(Σ q·xq − 8·Σ xq) per block (nibbles as dequant/q4_0.wgsl), two
// blocks per step: 36 bytes, 9 aligned words, where one block alone is misaligned.
const ACT_BLOCK: u32 = 32u;
const UNITS_PER_STEP: u32 = 2u;

// The units of step s: consecutive.
fn step_unit(s: u32, i: u32) -> u32 {
    return s * UNITS_PER_STEP + i;
}

fn step_dot(row: u32, s: u32, x: XStep) -> array<f32, N_TOKENS> {
    let base = (row + s * 2u * BLOCK_BYTES) >> 2u;
    let w = load_span(base, 3u); // the first 9 words
    // Block 0: scale in bytes 0..1, codes in 2..17; block 1: scale in 18..19, codes in
    // 20..35 (words 5..8).
    let d = vec2<f32>(f16_bits_to_f32(w[0]), f16_bits_to_f32(w[4] >> 16u));
    var q: array<array<u32, 4>, 2>;
    for (var k = 0u; k < 4u; k++) {
        q[0][k] = half_shifted(w[k], w[k + 1u]);
        q[1][k] = w[5u + k];
    }
    var out: array<f32, N_TOKENS>;
    for (var t = 0u; t < N_TOKENS; t++) {
        for (var b = 0u; b < 2u; b++) {
            let xu = x[t][b];
            var sumi = 0;
            for (var k = 0u; k < 4u; k++) {
                sumi += dot4I8Packed(nibbles(q[b][k], 0u), xu.q[k])
                    + dot4I8Packed(nibbles(q[b][k], 4u), xu.q[k + 4u]);
            }
            out[t] += d[b] * xu.d * f32(sumi - 8 * (xu.s0 + xu.s1));
        }
    }
    return out;
}
