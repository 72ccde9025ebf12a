// Q8_0: d: f16, qs[32] as i8; value = q * d.
const BLOCK_ELEMS: u32 = 32u;
const BLOCK_BYTES: u32 = 34u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let d = ld_f16(blk);
    return vec4<f32>(bytes_i8(ld_u32(blk + 2u + 4u * j))) * d;
}
