// F16: IEEE half floats, handled as pseudo-blocks of 4.
const BLOCK_ELEMS: u32 = 4u;
const BLOCK_BYTES: u32 = 8u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let lo = ld_u32(blk);
    let hi = ld_u32(blk + 4u);
    return vec4<f32>(f16_bits_to_f32(lo), f16_bits_to_f32(lo >> 16u), f16_bits_to_f32(hi), f16_bits_to_f32(hi >> 16u));
}
