// BF16: the upper halves of f32s, handled as pseudo-blocks of 4.
const BLOCK_ELEMS: u32 = 4u;
const BLOCK_BYTES: u32 = 8u;

fn dequant4(blk: u32, j: u32) -> vec4<f32> {
    let lo = ld_u32(blk);
    let hi = ld_u32(blk + 4u);
    return vec4<f32>(
        bitcast<f32>(lo << 16u),
        bitcast<f32>(lo & 0xffff0000u),
        bitcast<f32>(hi << 16u),
        bitcast<f32>(hi & 0xffff0000u),
    );
}
