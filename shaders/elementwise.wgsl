// Element-wise ops: result[i] = op(a[i], b[i % b_len]) (b repeats, so a per-channel
// vector applies to every token), written to y or back into a. OP selects the operation:
// 0 add, 1 multiply, 2 silu(a) * b, 3 gelu_tanh(a) * b, 4 a * scale (b unused).
// Bindings, Params and load_a / store come from elementwise_out.wgsl or
// elementwise_in_place.wgsl.

struct Params {
    n: u32,
    b_len: u32,
    scale: f32,
    pad0: u32,
}

const WG_SIZE: u32 = 256u;

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

fn gelu_tanh_f32(v: f32) -> f32 {
    // 0.5 v (1 + tanh(sqrt(2/pi) v (1 + 0.044715 v^2))); tanh's argument clamped so no
    // implementation overflows in exp.
    let inner = clamp(0.7978846 * v * (1.0 + 0.044715 * v * v), -15.0, 15.0);
    return 0.5 * v * (1.0 + tanh(inner));
}

fn f16_round(v: f32) -> f32 {
    return f16_bits_to_f32(f32_to_f16_bits(v));
}

// As the CPU (and llama.cpp's lookup table): input and result rounded to f16, 0 at or
// below -10, the identity at or above 10.
fn gelu_tanh(v: f32) -> f32 {
    if (v <= -10.0) {
        return 0.0;
    }
    if (v >= 10.0) {
        return v;
    }
    return f16_round(gelu_tanh_f32(f16_round(v)));
}

@compute @workgroup_size(256)
fn main(cin: ComputeIn) {
    let i = (cin.wid.x + cin.wid.y * cin.nwg.x) * WG_SIZE + cin.lid;
    if (i >= p.n) {
        return;
    }
    let av = load_a(i);
    var r: f32;
    switch OP {
        case 0u: { r = av + b[i % p.b_len]; }
        case 1u: { r = av * b[i % p.b_len]; }
        case 2u: { r = silu(av) * b[i % p.b_len]; }
        case 3u: { r = gelu_tanh(av) * b[i % p.b_len]; }
        default: { r = av * p.scale; }
    }
    store(i, r);
}
