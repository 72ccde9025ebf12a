// Q5_K: d: f16, dmin: f16, scales[12], qh[32], qs[128]. Nibbles as Q4_K; element e takes
// bit e / 32 of qh[e % 32] as its fifth bit (worth 16); value = d * sc * q - dmin * m.
const BLOCK_ELEMS: u32 = 256u;
const BLOCK_BYTES: u32 = 176u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let e = 4u * j;
    let sub = e / 32u;
    let sm = k_scale_min(blk + 4u, sub);
    let d = ld_f16(blk);
    let dmin = ld_f16(blk + 2u);
    let low = byte_fields(ld_u32(blk + 48u + 32u * (e / 64u) + e % 32u), 4u * (sub & 1u), 15u);
    let high = byte_fields(ld_u32(blk + 16u + e % 32u), sub, 1u);
    return vec4<f32>(low | (high << vec4<u32>(4u))) * (d * sm.x) - dmin * sm.y;
}
