// Q4_K x Q8_K (layout as dequant/q4_k.wgsl): dx·(d·sc·Σ q·xq − dmin·m·Σ xq) per
// sub-block, two sub-blocks per step (j = 2m, 2m + 1 of super-block s / 4), which share
// 32 code bytes (low and high nibbles): 3 aligned vec4s per step.
const ACT_BLOCK: u32 = 256u;
const UNITS_PER_STEP: u32 = 2u;

// The units of step s: consecutive.
fn step_unit(s: u32, i: u32) -> u32 {
    return s * UNITS_PER_STEP + i;
}

// Byte i (0..11) of the packed scales.
fn k_scale_byte(b: vec3<u32>, i: u32) -> u32 {
    return (b[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

// The 6-bit scale and min of sub-block j, as dequant/k_scale_min.wgsl, from words held.
fn k_scale_min_held(b: vec3<u32>, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(k_scale_byte(b, j) & 63u), f32(k_scale_byte(b, j + 4u) & 63u));
    }
    let hi = k_scale_byte(b, j + 4u);
    let sc = (hi & 15u) | ((k_scale_byte(b, j - 4u) >> 6u) << 4u);
    let m = (hi >> 4u) | ((k_scale_byte(b, j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

fn step_dot(row: u32, s: u32, x: XStep) -> array<f32, N_TOKENS> {
    // 144-byte super-blocks: 9 vec4s, the first d, dmin and the 12 scale bytes, then
    // the codes, two vec4s per pair of sub-blocks.
    let blk = (row + (s / 4u) * BLOCK_BYTES) >> 4u;
    let pair = s % 4u;
    let head = weights[blk];
    let d = f16_bits_to_f32(head.x);
    let dmin = f16_bits_to_f32(head.x >> 16u);
    let scales = head.yzw;
    let lo_codes = weights[blk + 1u + 2u * pair];
    let hi_codes = weights[blk + 2u + 2u * pair];
    var q: array<u32, 8>;
    for (var k = 0u; k < 4u; k++) {
        q[k] = lo_codes[k];
        q[k + 4u] = hi_codes[k];
    }
    let sm0 = k_scale_min_held(scales, 2u * pair);
    let sm1 = k_scale_min_held(scales, 2u * pair + 1u);
    var out: array<f32, N_TOKENS>;
    for (var t = 0u; t < N_TOKENS; t++) {
        let x0 = x[t][0];
        let x1 = x[t][1];
        var lo = 0;
        var hi = 0;
        for (var k = 0u; k < 8u; k++) {
            lo += dot4I8Packed(nibbles(q[k], 0u), x0.q[k]);
            hi += dot4I8Packed(nibbles(q[k], 4u), x1.q[k]);
        }
        out[t] = x0.d * (d * sm0.x * f32(lo) - dmin * sm0.y * f32(x0.s0 + x0.s1))
            + x1.d * (d * sm1.x * f32(hi) - dmin * sm1.y * f32(x1.s0 + x1.s1));
    }
    return out;
}
