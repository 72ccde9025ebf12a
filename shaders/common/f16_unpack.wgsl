// IEEE half (low 16 bits of `bits`) to f32 by bit manipulation: works without the f16
// extension and without relying on unpack2x16float's downlevel support.
fn f16_bits_to_f32(bits: u32) -> f32 {
    let h = bits & 0xffffu;
    let sign = (h & 0x8000u) << 16u;
    let exponent = (h >> 10u) & 0x1fu;
    let mantissa = h & 0x3ffu;
    if (exponent == 0u) {
        // Zero or subnormal: mantissa * 2^-24.
        return bitcast<f32>(sign | bitcast<u32>(f32(mantissa) * 5.9604644775390625e-8));
    }
    if (exponent == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u));
    }
    return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}
