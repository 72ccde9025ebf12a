// Attention of n_tokens queries over a KV cache without a score matrix: one workgroup per
// (query head, token) streams the visible keys in tiles of TILE, keeping a running max m,
// a running sum l of exp(score - m) and the output accumulator, rescaled whenever the max
// grows (online softmax), so memory use does not depend on the context length.
// q: [n_tokens][n_heads][head_dim]; out: [n_tokens][n_heads][head_dim_v];
// k cache: [n_kv_heads][n_ctx][head_dim], v cache: [n_kv_heads][n_ctx][head_dim_v], the
// batch's own keys and values already stored.
// Query t sits at position pos = places[2t] of the sequence whose position 0 is cache cell
// places[2t + 1], and sees that sequence's positions j <= pos and, when window > 0,
// j > pos - window. Head h reads kv head h / (n_heads / n_kv_heads).
// head_dim and head_dim_v are at most MAX_HEAD_DIM (the host checks).
// Bindings 1 and 2 (k and v) and load_k / load_v come from kv_f32.wgsl or kv_f16.wgsl;
// workgroup_max / workgroup_sum from reduce_subgroup.wgsl or reduce_workgroup.wgsl;
// f32_to_f16_bits / f16_bits_to_f32 from f16_pack.wgsl and f16_unpack*.wgsl.
//
// With half_accumulator set (the host sets it over an f16 cache for batches of fewer than
// 64 queries, where llama.cpp's CPU flash attention takes its one-query-at-a-time path),
// the numbers follow that path: the query rounded to f16, keys taken one at a time in
// order with the running max, and the output accumulator held in f16 (rounded after
// every rescale and every fused value·weight add). Without it, keys are weighed a tile at
// a time against the tile's max with an f32 accumulator (as llama.cpp's tiled path).

struct Params {
    n_tokens: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    head_dim_v: u32,
    n_ctx: u32,
    pad0: u32,
    window: u32,
    scale: f32,
    half_accumulator: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> places: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;
// Keys per tile: one score per invocation.
const TILE: u32 = WG_SIZE;
// Invocations sharing one key's dot product: neighbours read neighbouring dims of a key
// row, so the K reads of a tile are contiguous runs rather than strided single values.
const LANES_PER_KEY: u32 = 8u;
const KEYS_PER_SWEEP: u32 = WG_SIZE / LANES_PER_KEY;
const MAX_HEAD_DIM: u32 = 256u;
// Output dims each invocation owns: d = lid + i * WG_SIZE.
const DIMS_PER_INVOCATION: u32 = MAX_HEAD_DIM / WG_SIZE;
// Below any score (scores are finite), without relying on infinities.
const NO_SCORE: f32 = -3.0e38;

var<workgroup> q_tile: array<f32, MAX_HEAD_DIM>;
// Partial dot products: [key in tile][lane].
var<workgroup> partial: array<f32, TILE * LANES_PER_KEY>;
// exp(score - running max) of the tile's keys (0 for keys not visible).
var<workgroup> key_weights: array<f32, TILE>;
// The tile's scores (half_accumulator only).
var<workgroup> key_scores: array<f32, TILE>;

fn half_round(v: f32) -> f32 {
    return f16_bits_to_f32(f32_to_f16_bits(v));
}

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let head = cin.wid.x;
    let t = cin.wid.y;
    let lid = cin.lid;
    let kv_head = head / (p.n_heads / p.n_kv_heads);
    let q_base = (t * p.n_heads + head) * p.head_dim;
    let out_base = (t * p.n_heads + head) * p.head_dim_v;
    let pos = places[2u * t];
    let cell0 = places[2u * t + 1u];
    // Position 0 of the query's sequence in this kv head.
    let k_head = (kv_head * p.n_ctx + cell0) * p.head_dim;
    let v_head = (kv_head * p.n_ctx + cell0) * p.head_dim_v;
    var first = 0u;
    if (p.window > 0u && pos + 1u > p.window) {
        first = pos + 1u - p.window;
    }

    let half_acc = p.half_accumulator != 0u;
    for (var d = lid; d < p.head_dim; d += WG_SIZE) {
        if (half_acc) {
            q_tile[d] = half_round(q[q_base + d]);
        } else {
            q_tile[d] = q[q_base + d];
        }
    }
    workgroupBarrier();

    let lane = lid % LANES_PER_KEY;
    var m = NO_SCORE;
    var l = 0.0;
    var acc: array<f32, DIMS_PER_INVOCATION>;
    // pos - first + 1 >= 1 keys are visible, so every tile has at least one.
    for (var j0 = first; j0 <= pos; j0 += TILE) {
        let tile_len = min(TILE, pos + 1u - j0);

        // Scores: each sweep covers KEYS_PER_SWEEP keys with LANES_PER_KEY lanes each.
        for (var sweep = 0u; sweep < TILE / KEYS_PER_SWEEP; sweep += 1u) {
            let key = sweep * KEYS_PER_SWEEP + lid / LANES_PER_KEY;
            var dot_qk = 0.0;
            if (key < tile_len) {
                let k_base = k_head + (j0 + key) * p.head_dim;
                for (var d = lane; d < p.head_dim; d += LANES_PER_KEY) {
                    dot_qk += q_tile[d] * load_k(k_base + d);
                }
            }
            partial[key * LANES_PER_KEY + lane] = dot_qk;
        }
        workgroupBarrier();
        var score = NO_SCORE;
        if (lid < tile_len) {
            var dot_qk = 0.0;
            for (var i = 0u; i < LANES_PER_KEY; i += 1u) {
                dot_qk += partial[lid * LANES_PER_KEY + i];
            }
            score = dot_qk * p.scale;
        }

        if (half_acc) {
            key_scores[lid] = score;
            workgroupBarrier();
            for (var key = 0u; key < tile_len; key += 1u) {
                let s = key_scores[key];
                var weight = 1.0;
                if (s > m) {
                    let rescale = exp(m - s);
                    m = s;
                    l = l * rescale + 1.0;
                    for (var i = 0u; i < DIMS_PER_INVOCATION; i += 1u) {
                        acc[i] = half_round(acc[i] * rescale);
                    }
                } else {
                    weight = exp(s - m);
                    l += weight;
                }
                let v_base = v_head + (j0 + key) * p.head_dim_v;
                for (var i = 0u; i < DIMS_PER_INVOCATION; i += 1u) {
                    let d = lid + i * WG_SIZE;
                    if (d < p.head_dim_v) {
                        acc[i] = half_round(fma(load_v(v_base + d), weight, acc[i]));
                    }
                }
            }
        } else {
            // Online softmax: rescale what came before to the new max.
            let m_new = max(m, workgroup_max(score, cin));
            let rescale = exp(m - m_new);
            var w = 0.0;
            if (lid < tile_len) {
                w = exp(score - m_new);
            }
            l = l * rescale + workgroup_sum(w, cin);
            m = m_new;
            key_weights[lid] = w;
            workgroupBarrier();

            // Each invocation adds sum_j w_j * v_j to its own output dims (reads of one value
            // row are contiguous across invocations).
            for (var i = 0u; i < DIMS_PER_INVOCATION; i += 1u) {
                acc[i] *= rescale;
            }
            for (var key = 0u; key < tile_len; key += 1u) {
                let wk = key_weights[key];
                let v_base = v_head + (j0 + key) * p.head_dim_v;
                for (var i = 0u; i < DIMS_PER_INVOCATION; i += 1u) {
                    let d = lid + i * WG_SIZE;
                    if (d < p.head_dim_v) {
                        acc[i] += wk * load_v(v_base + d);
                    }
                }
            }
        }
        // No barrier needed before the next tile: it writes partial only after this
        // tile's reductions or key_scores barrier (which everyone passed after reading
        // partial), and key_weights / key_scores only after its own reductions or
        // barrier after the scores (reached after this tile's loops).
    }

    for (var i = 0u; i < DIMS_PER_INVOCATION; i += 1u) {
        let d = lid + i * WG_SIZE;
        if (d < p.head_dim_v) {
            if (half_acc) {
                out[out_base + d] = acc[i] * (1.0 / l);
            } else {
                out[out_base + d] = acc[i] / l;
            }
        }
    }
}
