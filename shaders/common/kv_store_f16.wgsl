// KV cache destination of halves packed two per u32 (i is even). Needs f16_pack.wgsl.
@group(0) @binding(1) var<storage, read_write> cache: array<u32>;

fn store_pair(i: u32, v0: f32, v1: f32) {
    cache[i / 2u] = f32_to_f16_bits(v0) | (f32_to_f16_bits(v1) << 16u);
}
