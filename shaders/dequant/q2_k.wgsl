// Q2_K: scales[16], qs[64], d: f16, dmin: f16. Element e lies in half h = e / 128,
// shift group s = (e % 128) / 32, lane g = e % 32: q = (qs[32h + g] >> 2s) & 3, with
// scale byte scales[e / 16] (low nibble: scale, high nibble: min);
// value = d * scale * q - dmin * min.
const BLOCK_ELEMS: u32 = 256u;
const BLOCK_BYTES: u32 = 84u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let e = 4u * j;
    let h = e / 128u;
    let s = (e % 128u) / 32u;
    let g = e % 32u;
    let sc = ld_u8(blk + e / 16u);
    let d = ld_f16(blk + 80u);
    let dmin = ld_f16(blk + 82u);
    let q = byte_fields(ld_u32(blk + 16u + 32u * h + g), 2u * s, 3u);
    return vec4<f32>(q) * (d * f32(sc & 15u)) - dmin * f32(sc >> 4u);
}
