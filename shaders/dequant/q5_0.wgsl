// Q5_0: d: f16, qh: u32, qs[16]; low nibbles as Q4_0, bit e of qh is bit 4 of element e;
// value = (q - 16) * d.
const BLOCK_ELEMS: u32 = 32u;
const BLOCK_BYTES: u32 = 22u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let d = ld_f16(blk);
    let qh = ld_u32(blk + 2u);
    let low = byte_fields(ld_u32(blk + 6u + 4u * (j & 3u)), 4u * (j >> 2u), 15u);
    let e = 4u * j;
    let high = (vec4<u32>(qh) >> vec4<u32>(e, e + 1u, e + 2u, e + 3u)) & vec4<u32>(1u);
    return (vec4<f32>(low | (high << vec4<u32>(4u))) - 16.0) * d;
}
