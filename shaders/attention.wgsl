// Attention of n_tokens queries over a KV cache, one workgroup per (query head, token).
// q: [n_tokens][n_heads][head_dim]; out: [n_tokens][n_heads][head_dim_v];
// k cache: [n_kv_heads][n_ctx][head_dim], v cache: [n_kv_heads][n_ctx][head_dim_v], the
// batch's own keys and values already stored at positions pos0 ...
// Query t sits at position pos0 + t and sees cache positions j <= pos0 + t and, when
// window > 0, j > pos0 + t - window. Head h reads kv head h / (n_heads / n_kv_heads).
// scores: scratch of n_tokens * n_heads * (pos0 + n_tokens) floats.
// Bindings 1 and 2 (k and v) and load_k / load_v come from kv_f32.wgsl or kv_f16.wgsl.

struct Params {
    n_tokens: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    head_dim_v: u32,
    n_ctx: u32,
    pos0: u32,
    window: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let head = cin.wid.x;
    let t = cin.wid.y;
    let kv_head = head / (p.n_heads / p.n_kv_heads);
    let kv_len = p.pos0 + p.n_tokens;
    let q_base = (t * p.n_heads + head) * p.head_dim;
    let out_base = (t * p.n_heads + head) * p.head_dim_v;
    let s_base = (t * p.n_heads + head) * kv_len;
    let k_head = kv_head * p.n_ctx * p.head_dim;
    let v_head = kv_head * p.n_ctx * p.head_dim_v;
    let pos = p.pos0 + t;
    var first = 0u;
    if (p.window > 0u && pos + 1u > p.window) {
        first = pos + 1u - p.window;
    }

    var m = -3.0e38;
    for (var j = first + cin.lid; j <= pos; j += WG_SIZE) {
        let k_base = k_head + j * p.head_dim;
        var dot_qk = 0.0;
        for (var d = 0u; d < p.head_dim; d += 1u) {
            dot_qk += q[q_base + d] * load_k(k_base + d);
        }
        let s = dot_qk * p.scale;
        scores[s_base + j] = s;
        m = max(m, s);
    }
    let row_max = workgroup_max(m, cin);
    var sum = 0.0;
    for (var j = first + cin.lid; j <= pos; j += WG_SIZE) {
        let e = exp(scores[s_base + j] - row_max);
        scores[s_base + j] = e;
        sum += e;
    }
    let total = workgroup_sum(sum, cin);
    storageBarrier();
    for (var d = cin.lid; d < p.head_dim_v; d += WG_SIZE) {
        var acc = 0.0;
        for (var j = first; j <= pos; j += 1u) {
            acc += scores[s_base + j] * load_v(v_head + j * p.head_dim_v + d);
        }
        out[out_base + d] = acc / total;
    }
}
