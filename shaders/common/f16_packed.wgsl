// Half floats without the shader-f16 extension (core WGSL unpacking).
fn f16_bits_to_f32(bits: u32) -> f32 {
    return unpack2x16float(bits & 0xffffu).x;
}
