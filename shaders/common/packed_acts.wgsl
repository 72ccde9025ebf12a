// Activations quantized once per token for the integer matrix x vector kernel (written
// by act_pack.wgsl), in one buffer of three regions, each starting on a 16-byte boundary
// so that they are read as vec4<u32>:
// - codes: 4 signed 8-bit codes per word, element e of token t in word (t·cols + e) / 4;
// - scales: one f32 per activation block (32 or 256 elements) from word p.d_base on;
// - sums: the sum of the codes of each 16 elements (i32) from word p.s_base on.
// The values are code × scale: exactly the CPU's Q8_0 / Q8_K activations.

struct Params {
    rows: u32,
    cols: u32,
    row_base: u32,
    y_stride: u32,
    d_base: u32,
    s_base: u32,
    pad0: u32,
    pad1: u32,
}

// Read as vec4s where a kernel's step spans whole ones (the host pads the buffer to a
// whole vec4, plus a spare word), else a word at a time.
@group(0) @binding(0) var<storage, read> weights: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// 32 activations of one token: their codes, their block's scale and the code sums of
// their two halves.
struct XUnit {
    q: array<u32, 8>,
    d: f32,
    s0: i32,
    s1: i32,
}

// The activations of one step of the kernel: UNITS_PER_STEP units of each token.
alias XStep = array<array<XUnit, UNITS_PER_STEP>, N_TOKENS>;

// Word i of the weights.
fn weight_word(i: u32) -> u32 {
    return weights[i >> 2u][i & 3u];
}

// Spans of weight words that start at any word: read as the whole vec4s that hold them
// (one load each) and rotated by w0 % 4 without branches.
fn rotated_word(a: ptr<function, array<u32, 20>>, i: u32, o: u32) -> u32 {
    let lo = select((*a)[i], (*a)[i + 1u], o == 1u);
    let hi = select((*a)[i + 2u], (*a)[i + 3u], o == 3u);
    return select(lo, hi, o >= 2u);
}

fn load_vec4s(w0: u32, n: u32) -> array<u32, 20> {
    var a: array<u32, 20>;
    for (var j = 0u; j < n; j++) {
        let v = weights[(w0 >> 2u) + j];
        for (var c = 0u; c < 4u; c++) {
            a[4u * j + c] = v[c];
        }
    }
    return a;
}

// Words w0 .. w0 + 17 (a caller uses the first 4·n_vec4 − 3 of them, which n_vec4
// vec4 loads hold wherever w0 falls).
fn load_span(w0: u32, n_vec4: u32) -> array<u32, 17> {
    var a = load_vec4s(w0, n_vec4);
    var out: array<u32, 17>;
    for (var i = 0u; i < 17u; i++) {
        out[i] = rotated_word(&a, i, w0 & 3u);
    }
    return out;
}

// Word i of the packed activations.
fn xq_word(i: u32) -> u32 {
    return xq[i >> 2u][i & 3u];
}

// Unit u (elements 32u .. 32u + 32) of token t.
fn load_x_unit(t: u32, u: u32) -> XUnit {
    var x: XUnit;
    // Codes: 8 words from word t·cols/4 + 8u, a multiple of 4.
    let c = t * (p.cols / 16u) + 2u * u;
    let lo = xq[c];
    let hi = xq[c + 1u];
    for (var k = 0u; k < 4u; k++) {
        x.q[k] = lo[k];
        x.q[k + 4u] = hi[k];
    }
    x.d = bitcast<f32>(xq_word(p.d_base + (t * p.cols + 32u * u) / ACT_BLOCK));
    // The two sums start at an even word: one half of a vec4.
    let s = p.s_base + t * (p.cols / 16u) + 2u * u;
    let sums = xq[s >> 2u];
    let pair = select(sums.xy, sums.zw, (s & 2u) != 0u);
    x.s0 = bitcast<i32>(pair.x);
    x.s1 = bitcast<i32>(pair.y);
    return x;
}
