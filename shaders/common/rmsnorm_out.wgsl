// rmsnorm bindings: input x, weight w, separate output y.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn load_x(i: u32) -> f32 {
    return x[i];
}

fn store(i: u32, v: f32) {
    y[i] = v;
}
