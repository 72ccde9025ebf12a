// The 6-bit scale and min of sub-block j (0..7) of Q4_K / Q5_K, packed in the 12 bytes
// at `off`: j < 4: sc = b[j] & 63, m = b[j+4] & 63; j >= 4: sc = (b[j+4] & 15) |
// ((b[j-4] >> 6) << 4), m = (b[j+4] >> 4) | ((b[j] >> 6) << 4).
fn k_scale_min(off: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(ld_u8(off + j) & 63u), f32(ld_u8(off + j + 4u) & 63u));
    }
    let b = ld_u8(off + j + 4u);
    let sc = (b & 15u) | ((ld_u8(off + j - 4u) >> 6u) << 4u);
    let m = (b >> 4u) | ((ld_u8(off + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}
