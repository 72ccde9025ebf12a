// Half floats through the shader-f16 extension.
fn f16_bits_to_f32(bits: u32) -> f32 {
    return f32(bitcast<vec2<f16>>(bits & 0xffffu).x);
}
