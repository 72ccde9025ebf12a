// dst (packed halves, two per u32) [dst_offset + i] = f16(src[src_offset + i]) for i < n;
// offsets and n are even, one invocation per pair (KV cache append in f16).

struct Params {
    n: u32,
    src_offset: u32,
    dst_offset: u32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG_SIZE: u32 = 256u;

@compute @workgroup_size(256)
fn main(cin: ComputeIn) {
    let pair = (cin.wid.x + cin.wid.y * cin.nwg.x) * WG_SIZE + cin.lid;
    if (2u * pair >= p.n) {
        return;
    }
    let s = p.src_offset + 2u * pair;
    let lo = f32_to_f16_bits(src[s]);
    let hi = f32_to_f16_bits(src[s + 1u]);
    dst[p.dst_offset / 2u + pair] = lo | (hi << 16u);
}
