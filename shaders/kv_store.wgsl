// Appends a batch's keys (or values) to a KV cache: row t of src [n_tokens][n_kv_heads][dim]
// goes to cache [n_kv_heads][n_ctx][dim] at cell places[2t + 1] + places[2t] (its
// sequence's first cell plus its position). One invocation per pair of elements (dim is
// even). Binding 1 and store_pair come from kv_store_f32.wgsl or kv_store_f16.wgsl.

struct Params {
    n_tokens: u32,
    n_kv_heads: u32,
    dim: u32,
    n_ctx: u32,
    pad0: u32,
    pad3: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> places: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG_SIZE: u32 = 256u;

@compute @workgroup_size(256)
fn main(cin: ComputeIn) {
    let pair = (cin.wid.x + cin.wid.y * cin.nwg.x) * WG_SIZE + cin.lid;
    let half_dim = p.dim / 2u;
    if (pair >= p.n_tokens * p.n_kv_heads * half_dim) {
        return;
    }
    let d = 2u * (pair % half_dim);
    let h = (pair / half_dim) % p.n_kv_heads;
    let t = pair / (half_dim * p.n_kv_heads);
    let s = (t * p.n_kv_heads + h) * p.dim + d;
    let cell = places[2u * t + 1u] + places[2u * t];
    store_pair((h * p.n_ctx + cell) * p.dim + d, src[s], src[s + 1u]);
}
