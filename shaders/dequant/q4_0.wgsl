// Q4_0: d: f16, qs[16]; byte i holds element i (low nibble) and i+16 (high nibble);
// value = (q - 8) * d.
const BLOCK_ELEMS: u32 = 32u;
const BLOCK_BYTES: u32 = 18u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let d = ld_f16(blk);
    let q = byte_fields(ld_u32(blk + 2u + 4u * (j & 3u)), 4u * (j >> 2u), 15u);
    return (vec4<f32>(q) - 8.0) * d;
}
