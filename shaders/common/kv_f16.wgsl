// KV cache of IEEE halves packed two per u32 (element i is the low half of word i / 2
// when i is even, the high half when odd). Needs f16_bits_to_f32 (f16_unpack*.wgsl).
@group(0) @binding(1) var<storage, read> k: array<u32>;
@group(0) @binding(2) var<storage, read> v: array<u32>;

fn half_at(word: u32, i: u32) -> f32 {
    return f16_bits_to_f32(word >> ((i & 1u) * 16u));
}

fn load_k(i: u32) -> f32 {
    return half_at(k[i / 2u], i);
}

fn load_v(i: u32) -> f32 {
    return half_at(v[i / 2u], i);
}
