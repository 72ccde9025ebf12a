// KV cache destination of f32 values.
@group(0) @binding(1) var<storage, read_write> cache: array<f32>;

fn store_pair(i: u32, v0: f32, v1: f32) {
    cache[i] = v0;
    cache[i + 1u] = v1;
}
