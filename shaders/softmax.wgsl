// In-place softmax of each row of x (rows x cols) after multiplying by scale; one
// workgroup per row.

struct Params {
    cols: u32,
    rows: u32,
    scale: f32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let row = cin.wid.x + cin.wid.y * cin.nwg.x;
    let base = row * p.cols;
    let live = row < p.rows;
    var m = -3.0e38;
    if (live) {
        for (var i = cin.lid; i < p.cols; i += WG_SIZE) {
            m = max(m, x[base + i] * p.scale);
        }
    }
    let row_max = workgroup_max(m, cin);
    var s = 0.0;
    if (live) {
        for (var i = cin.lid; i < p.cols; i += WG_SIZE) {
            let e = exp(x[base + i] * p.scale - row_max);
            x[base + i] = e;
            s += e;
        }
    }
    let total = workgroup_sum(s, cin);
    if (live) {
        for (var i = cin.lid; i < p.cols; i += WG_SIZE) {
            x[base + i] = x[base + i] / total;
        }
    }
}
