// Quantizes activations once per token for the integer matrix x vector kernel, into
// the three regions of common/packed_acts.wgsl (codes, block scales, sums of 16 codes),
// with the codes and scales of the CPU's quantizers (common/act_scales.wgsl, as
// act_quant.wgsl rounds). One invocation per block. BLOCK (32 or 256) comes from the
// assembler.

struct Params {
    n_blocks: u32,
    d_base: u32,
    s_base: u32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
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
    let scale = scales.x;
    let d = scales.y;
    out[p.d_base + block] = bitcast<u32>(d);
    for (var g = 0u; g < BLOCK / 16u; g++) {
        var sum = 0;
        for (var w = 0u; w < 4u; w++) {
            var word = 0u;
            for (var b = 0u; b < 4u; b++) {
                // WGSL's round() rounds half to even, as the CPU quantizers do.
                let q = i32(min(127.0, round(x[base + 16u * g + 4u * w + b] * scale)));
                sum += q;
                word |= (bitcast<u32>(q) & 0xffu) << (8u * b);
            }
            out[(base + 16u * g + 4u * w) / 4u] = word;
        }
        out[p.s_base + base / 16u + g] = bitcast<u32>(sum);
    }
}
