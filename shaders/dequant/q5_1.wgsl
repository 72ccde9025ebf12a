// Q5_1: d: f16, m: f16, qh: u32, qs[16] (bits as Q5_0); value = q * d + m.
const BLOCK_ELEMS: u32 = 32u;
const BLOCK_BYTES: u32 = 24u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let d = ld_f16(blk);
    let m = ld_f16(blk + 2u);
    let qh = ld_u32(blk + 4u);
    let low = byte_fields(ld_u32(blk + 8u + 4u * (j & 3u)), 4u * (j >> 2u), 15u);
    let e = 4u * j;
    let high = (vec4<u32>(qh) >> vec4<u32>(e, e + 1u, e + 2u, e + 3u)) & vec4<u32>(1u);
    return vec4<f32>(low | (high << vec4<u32>(4u))) * d + m;
}
