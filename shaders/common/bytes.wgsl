// Reads of little-endian values at any byte offset of the weight buffer `weights`
// (an array<u32> holding a tensor's GGUF bytes unchanged). The host pads every weight
// buffer with 4 spare bytes, so reading the word after the last one is always in bounds.
// ld_f16 needs f16_bits_to_f32 (f16_unpack.wgsl or f16_unpack_native.wgsl).

fn ld_u8(off: u32) -> u32 {
    return (weights[off >> 2u] >> ((off & 3u) << 3u)) & 0xffu;
}

fn ld_u32(off: u32) -> u32 {
    // Branch-free, so lanes reading at different alignments stay together.
    let w = off >> 2u;
    let shift = (off & 3u) << 3u;
    let lo = weights[w];
    let hi = weights[w + 1u];
    return select((lo >> shift) | (hi << (32u - shift)), lo, shift == 0u);
}

fn ld_u16(off: u32) -> u32 {
    return ld_u32(off) & 0xffffu;
}

fn ld_f16(off: u32) -> f32 {
    return f16_bits_to_f32(ld_u16(off));
}

fn ld_bf16(off: u32) -> f32 {
    return bitcast<f32>(ld_u16(off) << 16u);
}

fn ld_f32(off: u32) -> f32 {
    return bitcast<f32>(ld_u32(off));
}

// The field (word >> shift) & mask of each of the four bytes of `word`, low byte first.
fn byte_fields(word: u32, shift: u32, mask: u32) -> vec4<u32> {
    return (vec4<u32>(word) >> vec4<u32>(shift, shift + 8u, shift + 16u, shift + 24u)) & vec4<u32>(mask);
}

// The four bytes of `word` as signed 8-bit integers, low byte first.
fn bytes_i8(word: u32) -> vec4<i32> {
    return vec4<i32>(
        bitcast<i32>(word << 24u) >> 24u,
        bitcast<i32>(word << 16u) >> 24u,
        bitcast<i32>(word << 8u) >> 24u,
        bitcast<i32>(word) >> 24u,
    );
}
