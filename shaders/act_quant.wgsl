// Rounds activations the way the CPU kernels quantize them before an integer dot
// product, and writes the rounded values back as f32, so that a matrix product on the
// GPU sees the numbers the CPU sees (llama.cpp's Q8_0 / Q8_K activations):
// - 32-element blocks (llama.cpp's x86 quantize_row_q8_0): q = x · (127 / max|x|)
//   rounded half to even, and the value is q times d = max|x| / 127 rounded to f16 (the
//   block stores d as f16);
// - 256-element blocks: d = −max / 127 with max the element of largest magnitude,
//   q = min(127, round(x / d)) ties to even, value q·d (d stays f32).
// One invocation per block, scales from common/act_scales.wgsl. BLOCK (32 or 256)
// comes from the assembler.

struct Params {
    n_blocks: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let block = (cin.wid.x + cin.wid.y * cin.nwg.x) * WG_SIZE + cin.lid;
    if (block >= p.n_blocks) {
        return;
    }
    let base = block * BLOCK;
    let scales = act_block_scales(base);
    for (var i = 0u; i < BLOCK; i++) {
        y[base + i] = min(127.0, round(x[base + i] * scales.x)) * scales.y;
    }
}
