// rmsnorm bindings: the result replaces x.
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn load_x(i: u32) -> f32 {
    return x[i];
}

fn store(i: u32, v: f32) {
    x[i] = v;
}
