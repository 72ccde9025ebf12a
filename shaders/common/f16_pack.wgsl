// f32 to IEEE half bits with round-to-nearest-even (as llama.cpp's conversions), by bit
// manipulation so it needs neither the f16 extension nor pack2x16float.
fn f32_to_f16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x >> 16u) & 0x8000u;
    let abs_bits = x & 0x7fffffffu;
    if (abs_bits > 0x7f800000u) {
        return sign | 0x7e00u;
    }
    let e = i32((x >> 23u) & 0xffu) - 112;
    let m = x & 0x7fffffu;
    if (e >= 31) {
        return sign | 0x7c00u;
    }
    if (e <= 0) {
        if (e < -10) {
            return sign;
        }
        let full = m | 0x800000u;
        let shift = u32(14 - e);
        var h = full >> shift;
        let rest = full & ((1u << shift) - 1u);
        let half_way = 1u << (shift - 1u);
        if (rest > half_way || (rest == half_way && (h & 1u) == 1u)) {
            h += 1u;
        }
        return sign | h;
    }
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    var h = (u32(e) << 10u) | (m >> 13u);
    let rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) {
        h += 1u;
    }
    return sign | h;
}
