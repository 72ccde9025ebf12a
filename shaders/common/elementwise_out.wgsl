// Element-wise op bindings: inputs a and b, separate output y.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn load_a(i: u32) -> f32 {
    return a[i];
}

fn store(i: u32, v: f32) {
    y[i] = v;
}
