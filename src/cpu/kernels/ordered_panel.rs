//! Prefill panels for the types summed in llama.cpp's order ([`super::summation`]): 16
//! weight rows decoded once into unsigned bytes, interleaved so that one 64-byte load
//! holds 4 consecutive columns (a "quad") of all 16 rows, plus the integer scales that
//! the order keeps apart from the float ones. A tile then takes each quad's products for
//! 16 rows with one `vpdpbusd` (or `vpmaddubsw` + `vpdpwssd` where a 16-column group
//! has its own integer scale), and adds them into the same lanes, in the same order, as
//! the row kernels do.
//!
//! Weights enter as unsigned bytes `u = q + offset` (Q4_0: 8, Q5_0: 16, Q8_0: 128, the
//! K-quants: 0) and activations as their signed Q8 codes, so `Σ u·x − offset·Σ x` over
//! a quad is the quad's exact integer dot product; `offset·Σ x` is per token and quad
//! (per block where the order sums whole blocks), computed once per matmul
//! ([`OrderedActs::corr`]).

use crate::quant::GgmlType;

use super::super::act_quant::QuantizedActs;
use super::panel::PANEL_ROWS;
use super::portable::{decode_k, decode_legacy, k4_scale_min};

/// The three shapes of ordered panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Q5_0, Q8_0: eight lanes per 32-column block.
    Lanes32,
    /// Q4_0: one exact integer sum per 32-column block (same panel as `Lanes32`).
    Exact32,
    /// Q4_K: integer sub-block scales and mins, one or four terms per super-block.
    Q4K,
    /// Q6_K: eight lanes per super-block, integer scales per 16 columns.
    Q6K,
}

impl Family {
    pub fn of(ty: GgmlType) -> Option<Family> {
        match ty {
            GgmlType::Q4_0 => Some(Family::Exact32),
            GgmlType::Q5_0 | GgmlType::Q8_0 => Some(Family::Lanes32),
            GgmlType::Q4K => Some(Family::Q4K),
            GgmlType::Q6K => Some(Family::Q6K),
            _ => None,
        }
    }
}

/// What a weight type adds to its unsigned bytes.
fn offset(ty: GgmlType) -> i32 {
    match ty {
        GgmlType::Q4_0 => 8,
        GgmlType::Q5_0 => 16,
        GgmlType::Q8_0 => 128,
        _ => 0,
    }
}

/// 16 decoded weight rows. Per-row arrays are `[item][16 rows]`.
pub struct OrderedPanel {
    pub ty: GgmlType,
    pub cols: usize,
    /// `[cols/4][16]` quads of unsigned bytes (one u32 each).
    pub w: Vec<u32>,
    /// Float scale per block (Lanes32, Exact32), per super-block (Q4K: `d`; Q6K: `d`).
    pub d: Vec<f32>,
    /// Q4K: `dmin` per super-block.
    pub dmin: Vec<f32>,
    /// Q4K: scale per 32-column sub-block; Q6K: scale of each 16-column group twice,
    /// as two i16 halves (for `vpdpwssd`).
    pub sc: Vec<i32>,
    /// Q4K: the mins of each pair of sub-blocks as two i16 halves; Q6K: per super-block and lane `k`, the scales of groups
    /// `2k` and `2k+1` as two i16 halves.
    pub mn: Vec<i32>,
    /// Scratch: one row's unsigned bytes.
    row_bytes: Vec<u8>,
}

impl OrderedPanel {
    pub fn new(ty: GgmlType, cols: usize) -> OrderedPanel {
        let [w, d, dmin, sc, mn] = Self::lengths(ty, cols);
        OrderedPanel {
            ty,
            cols,
            w: vec![0; w],
            d: vec![0.0; d],
            dmin: vec![0.0; dmin],
            sc: vec![0; sc],
            mn: vec![0; mn],
            row_bytes: vec![0; cols],
        }
    }

    /// The lengths of `w`, `d`, `dmin`, `sc` and `mn`.
    fn lengths(ty: GgmlType, cols: usize) -> [usize; 5] {
        let family = Family::of(ty).expect("an ordered type");
        let blocks = cols / ty.block_elems();
        let (dmin, sc, mn) = match family {
            Family::Lanes32 | Family::Exact32 => (0, 0, 0),
            Family::Q4K => (blocks, cols / 32, cols / 64),
            Family::Q6K => (0, cols / 16, blocks * 8),
        };
        [cols / 4, blocks, dmin, sc, mn].map(|n| n * PANEL_ROWS)
    }

    /// Asserts that the arrays hold what the type and `cols` promise (the SIMD tiles
    /// read them through raw pointers).
    pub fn check(&self) {
        let [w, d, dmin, sc, mn] = Self::lengths(self.ty, self.cols);
        assert!(self.w.len() >= w && self.d.len() >= d && self.dmin.len() >= dmin);
        assert!(self.sc.len() >= sc && self.mn.len() >= mn);
    }

    /// Decodes `rows` (at most 16, each `row_bytes` long, back to back); missing rows
    /// become zeros.
    pub fn fill(&mut self, data: &[u8], row_bytes: usize, rows: usize) {
        let ty = self.ty;
        let bb = ty.block_bytes();
        let quads = self.cols / 4;
        let mut vals = std::mem::take(&mut self.row_bytes);
        for r in 0..PANEL_ROWS {
            vals.fill(0);
            let row = (r < rows).then(|| &data[r * row_bytes..(r + 1) * row_bytes]);
            for b in 0..self.cols / ty.block_elems() {
                let block = row.map(|row| &row[b * bb..(b + 1) * bb]);
                self.put_block(block, b, r, &mut vals);
            }
            for (k4, quad) in vals.chunks_exact(4).enumerate() {
                self.w[k4 * PANEL_ROWS + r] =
                    u32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]);
            }
        }
        debug_assert_eq!(self.w.len(), quads * PANEL_ROWS);
        self.row_bytes = vals;
    }

    /// Decodes block `b` of row `r` (`None`: a missing row, all zero).
    fn put_block(&mut self, block: Option<&[u8]>, b: usize, r: usize, vals: &mut [u8]) {
        let at = |i: usize| i * PANEL_ROWS + r;
        match Family::of(self.ty).expect("an ordered type") {
            Family::Lanes32 | Family::Exact32 => {
                let Some(block) = block else {
                    self.d[at(b)] = 0.0;
                    return;
                };
                let blk = match self.ty {
                    GgmlType::Q4_0 => decode_legacy::<0>(block),
                    GgmlType::Q5_0 => decode_legacy::<2>(block),
                    _ => decode_legacy::<4>(block),
                };
                let off = offset(self.ty);
                for (v, q) in vals[32 * b..32 * b + 32].iter_mut().zip(blk.q) {
                    *v = (q as i32 + off) as u8;
                }
                self.d[at(b)] = blk.d;
            }
            Family::Q4K => {
                let Some(block) = block else {
                    self.d[at(b)] = 0.0;
                    self.dmin[at(b)] = 0.0;
                    for j in 0..8 {
                        self.sc[at(8 * b + j)] = 0;
                    }
                    for p in 0..4 {
                        self.mn[at(4 * b + p)] = 0;
                    }
                    return;
                };
                let blk = decode_k::<2>(block);
                for (v, q) in vals[256 * b..256 * b + 256].iter_mut().zip(blk.q) {
                    *v = q as u8;
                }
                self.d[at(b)] = blk.d;
                self.dmin[at(b)] = blk.dmin;
                for p in 0..4 {
                    let (s0, m0) = k4_scale_min(&block[4..16], 2 * p);
                    let (s1, m1) = k4_scale_min(&block[4..16], 2 * p + 1);
                    self.sc[at(8 * b + 2 * p)] = s0 as i32;
                    self.sc[at(8 * b + 2 * p + 1)] = s1 as i32;
                    self.mn[at(4 * b + p)] = i16_pair(m0 as i32, m1 as i32);
                }
            }
            Family::Q6K => {
                let Some(block) = block else {
                    self.d[at(b)] = 0.0;
                    for g in 0..16 {
                        self.sc[at(16 * b + g)] = 0;
                    }
                    for k in 0..8 {
                        self.mn[at(8 * b + k)] = 0;
                    }
                    return;
                };
                let blk = decode_k::<4>(block);
                for (v, q) in vals[256 * b..256 * b + 256].iter_mut().zip(blk.q) {
                    *v = (q as i32 + 32) as u8;
                }
                self.d[at(b)] = blk.d;
                let pair = i16_pair;
                for g in 0..16 {
                    self.sc[at(16 * b + g)] = pair(blk.sc[g], blk.sc[g]);
                }
                for k in 0..8 {
                    self.mn[at(8 * b + k)] = pair(blk.sc[2 * k], blk.sc[2 * k + 1]);
                }
            }
        }
    }
}

/// The activation side of ordered panels: the signed codes and scales of
/// [`QuantizedActs`], plus per-token integers the tiles add.
pub struct OrderedActs<'a> {
    pub q: &'a QuantizedActs,
    /// Tokens in the whole batch (see [`super::summation::BatchPlace`]).
    pub n_tokens: usize,
    /// `−offset·Σx`: Lanes32 of each quad, `[token][cols/4]`; Exact32 of each 32-column
    /// block, `[token][cols/32]`.
    pub corr: Vec<i32>,
    /// Q4K: `Σx` of the two 32-column sub-blocks of each pair as two i16 halves,
    /// `[token][cols/64]`. Q6K: the group sums
    /// `bsums[2k]`, `bsums[2k+1]` of each lane `k` as two i16 halves, `[token][cols/32]`.
    pub sums: Vec<i32>,
}

impl<'a> OrderedActs<'a> {
    /// Where token `t` stands in the batch.
    pub fn place(&self, t: usize) -> super::summation::BatchPlace {
        super::summation::BatchPlace::of(t, self.n_tokens)
    }

    pub fn new(ty: GgmlType, q: &'a QuantizedActs) -> OrderedActs<'a> {
        let family = Family::of(ty).expect("an ordered type");
        let off = offset(ty);
        let span = match family {
            Family::Lanes32 => 4,
            Family::Exact32 => 32,
            Family::Q4K | Family::Q6K => 0,
        };
        let corr = if span > 0 {
            q.qs.chunks_exact(span)
                .map(|c| -off * c.iter().map(|&v| v as i32).sum::<i32>())
                .collect()
        } else {
            Vec::new()
        };
        let sums = match family {
            Family::Lanes32 | Family::Exact32 => Vec::new(),
            Family::Q4K => q
                .bsums
                .chunks_exact(4)
                .map(|g| i16_pair(g[0] as i32 + g[1] as i32, g[2] as i32 + g[3] as i32))
                .collect(),
            Family::Q6K => q
                .bsums
                .chunks_exact(2)
                .map(|p| i16_pair(p[0] as i32, p[1] as i32))
                .collect(),
        };
        OrderedActs {
            q,
            n_tokens: q.n_tokens,
            corr,
            sums,
        }
    }
}

/// Two values that fit i16 packed as the halves of an i32 (low first), for `vpdpwssd`.
fn i16_pair(lo: i32, hi: i32) -> i32 {
    (lo as i16 as u16 as u32 | ((hi as i16 as u16 as u32) << 16)) as i32
}
