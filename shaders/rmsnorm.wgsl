// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, one workgroup per row.

struct Params {
    cols: u32,
    rows: u32,
    eps: f32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let row = cin.wid.x + cin.wid.y * cin.nwg.x;
    let base = row * p.cols;
    var sq = 0.0;
    if (row < p.rows) {
        for (var i = cin.lid; i < p.cols; i += WG_SIZE) {
            let v = x[base + i];
            sq += v * v;
        }
    }
    let total = workgroup_sum(sq, cin);
    if (row < p.rows) {
        let inv = inverseSqrt(total / f32(p.cols) + p.eps);
        for (var i = cin.lid; i < p.cols; i += WG_SIZE) {
            y[base + i] = x[base + i] * inv * w[i];
        }
    }
}
