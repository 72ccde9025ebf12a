// Q3_K: hmask[32], qs[64], scales[12], d: f16. Low two bits as Q2_K; group n = e / 32
// takes its high bit from bit n of hmask[e % 32]; q = low2 - (high ? 0 : 4);
// 6-bit scale i = e / 16: low 4 bits from scales[i % 8] (nibble i / 8), high 2 bits from
// scales[8 + i % 4] (pair i / 4); value = d * (scale - 32) * q.
const BLOCK_ELEMS: u32 = 256u;
const BLOCK_BYTES: u32 = 110u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let e = 4u * j;
    let h = e / 128u;
    let s = (e % 128u) / 32u;
    let g = e % 32u;
    let i = e / 16u;
    let low_sc = (ld_u8(blk + 96u + (i % 8u)) >> (4u * (i / 8u))) & 15u;
    let high_sc = (ld_u8(blk + 104u + (i % 4u)) >> (2u * (i / 4u))) & 3u;
    let scale = f32(i32(low_sc | (high_sc << 4u)) - 32);
    let d = ld_f16(blk + 108u);
    let low2 = byte_fields(ld_u32(blk + 32u + 32u * h + g), 2u * s, 3u);
    let high = byte_fields(ld_u32(blk + g), e / 32u, 1u);
    let q = vec4<i32>(low2) - select(vec4<i32>(4), vec4<i32>(0), high == vec4<u32>(1u));
    return vec4<f32>(q) * (d * scale);
}
