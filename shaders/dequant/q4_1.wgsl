// Q4_1: d: f16, m: f16, qs[16] (nibbles as Q4_0); value = q * d + m.
const BLOCK_ELEMS: u32 = 32u;
const BLOCK_BYTES: u32 = 20u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let d = ld_f16(blk);
    let m = ld_f16(blk + 2u);
    let q = byte_fields(ld_u32(blk + 4u + 4u * (j & 3u)), 4u * (j >> 2u), 15u);
    return vec4<f32>(q) * d + m;
}
