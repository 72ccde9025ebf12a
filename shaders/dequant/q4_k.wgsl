// Q4_K: d: f16, dmin: f16, scales[12], qs[128]. Chunk c = e / 64 uses qs[32c..32c+32]:
// low nibbles are sub-block 2c, high nibbles sub-block 2c+1;
// value = d * sc * q - dmin * m (sc, m of sub-block e / 32).
const BLOCK_ELEMS: u32 = 256u;
const BLOCK_BYTES: u32 = 144u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let e = 4u * j;
    let sub = e / 32u;
    let sm = k_scale_min(blk + 4u, sub);
    let d = ld_f16(blk);
    let dmin = ld_f16(blk + 2u);
    let q = byte_fields(ld_u32(blk + 16u + 32u * (e / 64u) + e % 32u), 4u * (sub & 1u), 15u);
    return vec4<f32>(q) * (d * sm.x) - dmin * sm.y;
}
