// Q6_K x Q8_K (layout as dequant/q6_k.wgsl): dx·d·Σ_halves sc·(Σ q·xq − 32·Σ xq), a
// scale per 16 elements. A step is the two units j = 4h + a and 4h + a + 2 of
// super-block s / 4 (h, a the bits of s % 4), which share their 32 bytes of low code
// bits (low and high nibbles) and their 32 bytes of high bits. Super-blocks of 210
// bytes start on a word or two bytes into one: the words are read aligned and shifted
// in registers.
const ACT_BLOCK: u32 = 256u;
const UNITS_PER_STEP: u32 = 2u;

// The units of step s: 4h + a and 4h + a + 2 of super-block s / 4.
fn step_unit(s: u32, i: u32) -> u32 {
    return 8u * (s / 4u) + 4u * ((s / 2u) % 2u) + s % 2u + 2u * i;
}

// Words first .. first + 8 of the bytes from `blk` on (`blk` even).
fn q6_words(blk: u32, first: u32) -> array<u32, 8> {
    let raw = load_span((blk >> 2u) + first, 3u); // the first 9 words
    let shifted = (blk & 2u) != 0u;
    var out: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        out[i] = select(raw[i], half_shifted(raw[i], raw[i + 1u]), shifted);
    }
    return out;
}

// Word i of the bytes from `blk` on (`blk` even).
fn q6_word(blk: u32, i: u32) -> u32 {
    let w = (blk >> 2u) + i;
    let lo = weight_word(w);
    return select(lo, half_shifted(lo, weight_word(w + 1u)), (blk & 2u) != 0u);
}

// Signed byte i (0..3) of `word`.
fn q6_scale(word: u32, i: u32) -> f32 {
    return f32(bitcast<i32>(word << (24u - 8u * i)) >> 24u);
}

fn step_dot(row: u32, s: u32, x: XStep) -> array<f32, N_TOKENS> {
    let blk = row + (s / 4u) * BLOCK_BYTES;
    let h = (s / 2u) % 2u;
    let a = s % 2u;
    // Low four bits of units 4h + a (low nibbles) and 4h + a + 2 (high nibbles): bytes
    // 64h + 32a .. + 32; their high two bits: bytes 128 + 32h .. + 32, at bit 2a and
    // 2a + 4; their scales: bytes 192 + 8h + 2a (+1) and + 4 (+5); d at 208.
    let ql = q6_words(blk, 16u * h + 8u * a);
    let qh = q6_words(blk, 32u + 8u * h);
    let sc_lo = q6_word(blk, 48u + 2u * h);
    let sc_hi = q6_word(blk, 49u + 2u * h);
    let sc = vec4<f32>(
        q6_scale(sc_lo, 2u * a),
        q6_scale(sc_lo, 2u * a + 1u),
        q6_scale(sc_hi, 2u * a),
        q6_scale(sc_hi, 2u * a + 1u),
    );
    let d = f16_bits_to_f32(q6_word(blk, 52u));
    var out: array<f32, N_TOKENS>;
    for (var t = 0u; t < N_TOKENS; t++) {
        var total = 0.0;
        for (var b = 0u; b < 2u; b++) {
            let xu = x[t][b];
            var sums = vec2<i32>(0);
            for (var k = 0u; k < 8u; k++) {
                let q = nibbles(ql[k], 4u * b)
                    | (((qh[k] >> (2u * a + 4u * b)) & 0x03030303u) << 4u);
                sums[k / 4u] += dot4I8Packed(q, xu.q[k]);
            }
            let i0 = sums.x - 32 * xu.s0;
            let i1 = sums.y - 32 * xu.s1;
            total += xu.d * (sc[2u * b] * f32(i0) + sc[2u * b + 1u] * f32(i1));
        }
        out[t] = d * total;
    }
    return out;
}
