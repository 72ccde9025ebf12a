// Element-wise op bindings: the result replaces a.
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn load_a(i: u32) -> f32 {
    return a[i];
}

fn store(i: u32, v: f32) {
    a[i] = v;
}
