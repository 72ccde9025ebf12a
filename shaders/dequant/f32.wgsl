// F32: plain floats, handled as pseudo-blocks of 4.
const BLOCK_ELEMS: u32 = 4u;
const BLOCK_BYTES: u32 = 16u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    return vec4<f32>(ld_f32(blk), ld_f32(blk + 4u), ld_f32(blk + 8u), ld_f32(blk + 12u));
}
