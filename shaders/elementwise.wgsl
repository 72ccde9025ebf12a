// Binary element-wise ops: y[i] = op(a[i], b[i % b_len]) (b broadcasts by repetition, so a
// per-channel vector applies to every token). OP selects the operation:
// 0 add, 1 multiply, 2 silu(a) * b, 3 gelu_tanh(a) * b.

struct Params {
    n: u32,
    b_len: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG_SIZE: u32 = 256u;

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

fn gelu_tanh(v: f32) -> f32 {
    // 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))); tanh clamped so exp cannot overflow.
    let inner = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
    return 0.5 * v * (1.0 + tanh(inner));
}

@compute @workgroup_size(256)
fn main(cin: ComputeIn) {
    let i = (cin.wid.x + cin.wid.y * cin.nwg.x) * WG_SIZE + cin.lid;
    if (i >= p.n) {
        return;
    }
    let av = a[i];
    let bv = b[i % p.b_len];
    var r: f32;
    switch OP {
        case 0u: { r = av + bv; }
        case 1u: { r = av * bv; }
        case 2u: { r = silu(av) * bv; }
        default: { r = gelu_tanh(av) * bv; }
    }
    y[i] = r;
}
