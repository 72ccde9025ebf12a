// Each row of cols values: out = x / sqrt(mean(x^2) + eps) * w, one workgroup per row.
// Rows may be whole token rows or single heads (cols = head_dim). Each invocation writes
// only elements it has read, so the result may replace x. Bindings, Params and
// load_x / store come from rmsnorm_out.wgsl or rmsnorm_in_place.wgsl.

struct Params {
    cols: u32,
    rows: u32,
    eps: f32,
    pad0: u32,
}

const WG_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn main(cin: ComputeIn) {
    let row = cin.wid.x + cin.wid.y * cin.nwg.x;
    let base = row * p.cols;
    var sq = 0.0;
    if (row < p.rows) {
        for (var i = cin.lid; i < p.cols; i += WG_SIZE) {
            let v = load_x(base + i);
            sq += v * v;
        }
    }
    let total = workgroup_sum(sq, cin);
    if (row < p.rows) {
        let inv = inverseSqrt(total / f32(p.cols) + p.eps);
        for (var i = cin.lid; i < p.cols; i += WG_SIZE) {
            store(base + i, load_x(base + i) * inv * w[i]);
        }
    }
}
