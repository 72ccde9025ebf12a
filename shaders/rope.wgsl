// Rotary position embedding in place on x[t, head, 0..head_dim] for n_heads heads per
// token, rotating the first n_rot dims. Token t is at pos[t] when use_pos_buffer != 0,
// else at pos0 + t. theta_i = position * freq_scale * base^(-2i/n_rot)
// / freq_factors[i]. Pairs are (2i, 2i+1) when neox == 0 (llama's "normal" mode) and
// (i, i + n_rot/2) when neox == 1. One invocation per pair.

struct Params {
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    n_rot: u32,
    freq_base: f32,
    freq_scale: f32,
    neox: u32,
    use_freq_factors: u32,
    use_pos_buffer: u32,
    pos0: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> pos: array<i32>;
@group(0) @binding(2) var<storage, read> freq_factors: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG_SIZE: u32 = 256u;

@compute @workgroup_size(256)
fn main(cin: ComputeIn) {
    let pairs = p.n_rot / 2u;
    let idx = (cin.wid.x + cin.wid.y * cin.nwg.x) * WG_SIZE + cin.lid;
    if (idx >= p.n_tokens * p.n_heads * pairs) {
        return;
    }
    let i = idx % pairs;
    let head = (idx / pairs) % p.n_heads;
    let t = idx / (pairs * p.n_heads);
    let base = (t * p.n_heads + head) * p.head_dim;
    var position = f32(p.pos0 + t);
    if (p.use_pos_buffer != 0u) {
        position = f32(pos[t]);
    }
    var theta = position * p.freq_scale * pow(p.freq_base, -2.0 * f32(i) / f32(p.n_rot));
    if (p.use_freq_factors != 0u) {
        theta /= freq_factors[i];
    }
    var i0 = base + 2u * i;
    var i1 = i0 + 1u;
    if (p.neox != 0u) {
        i0 = base + i;
        i1 = i0 + pairs;
    }
    let c = cos(theta);
    let s = sin(theta);
    let x0 = x[i0];
    let x1 = x[i1];
    x[i0] = x0 * c - x1 * s;
    x[i1] = x0 * s + x1 * c;
}
