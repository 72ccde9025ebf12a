// IEEE half (low 16 bits of `bits`) to f32 with the hardware conversion; used where the
// device has shader-f16 (llvmpipe, for one, only converts halves then).
fn f16_bits_to_f32(bits: u32) -> f32 {
    return unpack2x16float(bits & 0xffffu).x;
}
