// Q6_K: ql[128], qh[64], scales[16] as i8, d: f16. Element e: half h = e / 128,
// quarter s = (e % 128) / 32, lane l = e % 32: low 4 bits are nibble s / 2 of
// ql[64h + l + 32 (s % 2)], high 2 bits are bits 2s..2s+1 of qh[32h + l];
// value = d * scales[8h + l / 16 + 2s] * (q - 32).
const BLOCK_ELEMS: u32 = 256u;
const BLOCK_BYTES: u32 = 210u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let e = 4u * j;
    let h = e / 128u;
    let s = (e % 128u) / 32u;
    let l = e % 32u;
    let low = byte_fields(ld_u32(blk + 64u * h + l + 32u * (s % 2u)), 4u * (s / 2u), 15u);
    let high = byte_fields(ld_u32(blk + 128u + 32u * h + l), 2u * s, 3u);
    let q = vec4<i32>(low | (high << vec4<u32>(4u))) - vec4<i32>(32);
    let scale = f32(bitcast<i32>(ld_u8(blk + 192u + 8u * h + l / 16u + 2u * s) << 24u) >> 24u);
    let d = ld_f16(blk + 208u);
    return vec4<f32>(q) * (d * scale);
}
