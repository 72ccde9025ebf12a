// The scales of the CPU's activation quantizers for block [base, base + BLOCK) of `x`
// (BLOCK is 32 or 256, from the assembler): (to codes, one code's value), with the
// code of v = min(127, round(v · to_codes)) (WGSL's round() rounds half to even, as the
// CPU does):
// - 32-element blocks (Q8_0): to_codes = 127 / max|x|, value f16(max|x| / 127);
// - 256-element blocks (Q8_K): value d = −max / 127 with max the element of largest
//   magnitude, to_codes = 1 / d.
// An all-zero block gives (0, 0).
fn act_block_scales(base: u32) -> vec2<f32> {
    var amax = 0.0;
    var signed_max = 0.0;
    for (var i = 0u; i < BLOCK; i++) {
        let v = x[base + i];
        if (abs(v) > amax) {
            amax = abs(v);
            signed_max = v;
        }
    }
    if (amax == 0.0) {
        return vec2<f32>(0.0);
    }
    if (BLOCK == 32u) {
        return vec2<f32>(127.0 / amax, f16_bits_to_f32(f32_to_f16_bits(amax / 127.0)));
    }
    let to_codes = -127.0 / signed_max;
    return vec2<f32>(to_codes, 1.0 / to_codes);
}
