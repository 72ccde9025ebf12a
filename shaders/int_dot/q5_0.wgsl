// Q5_0 x Q8_0: d·dx·(Σ q·xq − 16·Σ xq) per block (layout as dequant/q5_0.wgsl), two
// blocks per step: 44 bytes, 11 aligned words, where one block alone is misaligned.
const ACT_BLOCK: u32 = 32u;
const UNITS_PER_STEP: u32 = 2u;

// The units of step s: consecutive.
fn step_unit(s: u32, i: u32) -> u32 {
    return s * UNITS_PER_STEP + i;
}

fn step_dot(row: u32, s: u32, x: XStep) -> array<f32, N_TOKENS> {
    let base = (row + s * 2u * BLOCK_BYTES) >> 2u;
    let w = load_span(base, 4u); // the first 11 words
    // Block 0: scale 0..1, high bits 2..5, codes 6..21; block 1: scale 22..23, high bits
    // 24..27 (word 6), codes 28..43 (words 7..10).
    let d = vec2<f32>(f16_bits_to_f32(w[0]), f16_bits_to_f32(w[5] >> 16u));
    let qh = vec2<u32>(half_shifted(w[0], w[1]), w[6]);
    var q: array<array<u32, 4>, 2>;
    for (var k = 0u; k < 4u; k++) {
        q[0][k] = half_shifted(w[1u + k], w[2u + k]);
        q[1][k] = w[7u + k];
    }
    var out: array<f32, N_TOKENS>;
    for (var t = 0u; t < N_TOKENS; t++) {
        for (var b = 0u; b < 2u; b++) {
            let xu = x[t][b];
            var sumi = 0;
            for (var k = 0u; k < 4u; k++) {
                let lo = nibbles(q[b][k], 0u) | fifth_bits(qh[b] >> (4u * k));
                let hi = nibbles(q[b][k], 4u) | fifth_bits(qh[b] >> (16u + 4u * k));
                sumi += dot4I8Packed(lo, xu.q[k]) + dot4I8Packed(hi, xu.q[k + 4u]);
            }
            out[t] += d[b] * xu.d * f32(sumi - 16 * (xu.s0 + xu.s1));
        }
    }
    return out;
}
