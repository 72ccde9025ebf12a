// Helpers of the integer dot products over packed 8-bit codes.

// The low (shift 0) or high (shift 4) nibbles of the four bytes of `word`, as bytes.
fn nibbles(word: u32, shift: u32) -> u32 {
    return (word >> shift) & 0x0f0f0f0fu;
}

// Bits 0..3 of `bits` moved to bit 4 of bytes 0..3 (the fifth bit of Q5 codes): the
// multiply copies bit i to bit 8i + i, with no carries between the copies.
fn fifth_bits(bits: u32) -> u32 {
    return (((bits & 15u) * 0x00204081u) & 0x01010101u) << 4u;
}

// The word at bytes 2 .. 6 of the pair of words (lo, hi): what a block that starts two
// bytes into a word holds at an aligned offset of its own.
fn half_shifted(lo: u32, hi: u32) -> u32 {
    return (lo >> 16u) | (hi << 16u);
}
