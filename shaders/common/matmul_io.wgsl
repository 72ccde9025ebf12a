// Parameters and bindings shared by the matrix kernels (matvec.wgsl and matmul.wgsl):
// y[t * y_stride + row_base + r] = sum_k W[r, k] * x[t * x_stride + k].

struct Params {
    rows: u32,
    cols: u32,
    row_base: u32,
    x_stride: u32,
    y_stride: u32,
    n_tokens: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
