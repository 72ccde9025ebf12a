//! Weight panels for prefill: 16 rows decoded once into signed bytes, interleaved so
//! that one 64-byte load holds 4 consecutive columns of all 16 rows. A kernel then
//! multiplies a panel with many activation rows, each loaded 4 bytes at a time and
//! broadcast, accumulating 16 rows' dot products in the 16 lanes of one register.
//!
//! Every quantized type is expressed the same way, in scale groups of `G` columns
//! (32, or 16 for Q2_K/Q3_K/Q6_K): `w = scale[g]·q + minv[g]`, `q` a signed byte.
//! Activations enter as `qx + 128` (unsigned bytes, what `vpdpbusd` wants); `corr[g]`
//! = −128·Σq removes that shift. Per token the activations supply one scale `dx` per
//! activation block (applied once per block, after its groups are summed) and the sum
//! `xs = Σqx` of each group (for the `minv` term).

use crate::quant::GgmlType;

use super::super::act_quant::QuantizedActs;
use super::portable::{decode_k, decode_legacy, KBlock, LegacyBlock};

/// Rows in one panel.
pub const PANEL_ROWS: usize = 16;

/// Columns per scale group for a weight type.
pub fn group_cols(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q2K | GgmlType::Q3K => 16,
        _ => 32,
    }
}

/// Whether the type has a `minv` term.
pub fn has_mins(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q2K | GgmlType::Q5K
    )
}

/// Types the panel path handles.
pub fn supported(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q5K
    )
}

/// 16 decoded weight rows.
pub struct Panel {
    pub cols: usize,
    pub groups: usize,
    /// `[cols/4][16 rows]` little groups of 4 signed values (one u32 each).
    pub w: Vec<u32>,
    /// `[group][16 rows]`.
    pub scale: Vec<f32>,
    pub corr: Vec<i32>,
    pub minv: Vec<f32>,
    /// Scratch: the 16 rows decoded, row after row (`[16][cols/4]` quads).
    rows_vals: Vec<u32>,
}

impl Panel {
    pub fn new(ty: GgmlType, cols: usize) -> Panel {
        let groups = cols / group_cols(ty);
        Panel {
            cols,
            groups,
            w: vec![0; cols / 4 * PANEL_ROWS],
            scale: vec![0.0; groups * PANEL_ROWS],
            corr: vec![0; groups * PANEL_ROWS],
            minv: vec![0.0; groups * PANEL_ROWS],
            rows_vals: vec![0; cols / 4 * PANEL_ROWS],
        }
    }

    /// Asserts that the arrays hold what `cols` and `groups` promise (the SIMD tiles
    /// read them through raw pointers).
    pub fn check(&self) {
        let n = self.groups * PANEL_ROWS;
        assert!(self.w.len() * 4 >= self.cols * PANEL_ROWS);
        assert!(self.scale.len() >= n && self.corr.len() >= n && self.minv.len() >= n);
    }

    /// Decodes `rows` (at most 16, each `row_bytes` long, back to back); missing rows
    /// become zeros.
    pub fn fill(&mut self, ty: GgmlType, data: &[u8], row_bytes: usize, rows: usize) {
        let g_cols = group_cols(ty);
        let quads = self.cols / 4;
        let mut all = std::mem::take(&mut self.rows_vals);
        for (r, vals) in all.chunks_exact_mut(quads).enumerate() {
            let vals: &mut [i8] = bytemuck::cast_slice_mut(vals);
            if r < rows {
                let row = &data[r * row_bytes..(r + 1) * row_bytes];
                #[cfg(target_arch = "x86_64")]
                if super::x86_avx2::panel_row(
                    ty,
                    row,
                    r,
                    vals,
                    &mut self.scale,
                    &mut self.minv,
                    &mut self.corr,
                ) {
                    continue;
                }
                self.decode_row(ty, row, r, vals);
            } else {
                vals.fill(0);
                for g in 0..self.groups {
                    self.scale[g * PANEL_ROWS + r] = 0.0;
                    self.minv[g * PANEL_ROWS + r] = 0.0;
                }
            }
            for (g, chunk) in vals.chunks_exact(g_cols).enumerate() {
                let sum: i32 = chunk.iter().map(|&q| q as i32).sum();
                self.corr[g * PANEL_ROWS + r] = -128 * sum;
            }
        }
        #[cfg(target_arch = "x86_64")]
        if super::x86_avx2::interleave_panel(&all, quads, &mut self.w) {
            self.rows_vals = all;
            return;
        }
        // Interleave: each output line of 16 quads is written once, in order.
        for (k4, line) in self.w.chunks_exact_mut(PANEL_ROWS).enumerate() {
            for (r, v) in line.iter_mut().enumerate() {
                *v = all[r * quads + k4];
            }
        }
        self.rows_vals = all;
    }

    fn decode_row(&mut self, ty: GgmlType, row: &[u8], r: usize, vals: &mut [i8]) {
        let bb = ty.block_bytes();
        let be = ty.block_elems();
        for (b, (block, out)) in row
            .chunks_exact(bb)
            .zip(vals.chunks_exact_mut(be))
            .enumerate()
        {
            match ty {
                GgmlType::Q4_1 => self.put_legacy(decode_legacy::<1>(block), b, r, out),
                GgmlType::Q5_1 => self.put_legacy(decode_legacy::<3>(block), b, r, out),
                GgmlType::Q2K => self.put_k(decode_k::<0>(block), 16, b, r, out),
                GgmlType::Q3K => self.put_k(decode_k::<1>(block), 16, b, r, out),
                GgmlType::Q5K => self.put_k(decode_k::<3>(block), 32, b, r, out),
                other => unreachable!("no panel decoding for {other}"),
            }
        }
    }

    fn put_legacy(&mut self, blk: LegacyBlock, b: usize, r: usize, out: &mut [i8]) {
        out.copy_from_slice(&blk.q);
        self.scale[b * PANEL_ROWS + r] = blk.d;
        self.minv[b * PANEL_ROWS + r] = blk.m;
    }

    fn put_k(&mut self, blk: KBlock, g_cols: usize, b: usize, r: usize, out: &mut [i8]) {
        out.copy_from_slice(&blk.q);
        let per_block = 256 / g_cols;
        for j in 0..per_block {
            // Groups of 32 take the scale of their first 16 (both halves share it).
            let sub = j * g_cols / 16;
            let g = b * per_block + j;
            self.scale[g * PANEL_ROWS + r] = blk.d * blk.sc[sub] as f32;
            self.minv[g * PANEL_ROWS + r] = -blk.dmin * blk.mn[sub] as f32;
        }
    }
}

/// The activation side of the panel path: shifted bytes and per-group scale and sum.
pub struct PanelActs<'a> {
    pub cols: usize,
    pub groups: usize,
    /// Scale groups per activation block (1 for the legacy formats, 256/G for K-quants).
    pub groups_per_block: usize,
    /// `qx + 128`, `n_tokens × cols`.
    pub xu8: &'a [u8],
    /// `[token][activation block]` activation scale.
    pub dx: Vec<f32>,
    /// `[token][group]` `Σqx` (unscaled).
    pub xs: Vec<f32>,
}

impl PanelActs<'_> {
    /// Takes over `q`, shifting its values to unsigned bytes in place.
    pub fn new(ty: GgmlType, q: &mut QuantizedActs) -> PanelActs<'_> {
        let cols = q.cols;
        let g_cols = group_cols(ty);
        let groups = cols / g_cols;
        let xs: Vec<f32> =
            q.qs.chunks_exact(g_cols)
                .map(|g| g.iter().map(|&v| v as i32).sum::<i32>() as f32)
                .collect();
        for v in q.qs.iter_mut() {
            *v = (*v as u8 ^ 0x80) as i8;
        }
        PanelActs {
            cols,
            groups,
            groups_per_block: ty.block_elems() / g_cols,
            xu8: bytemuck::cast_slice(&q.qs),
            dx: q.d.clone(),
            xs,
        }
    }
}

/// The portable panel tile (any architecture): the same contract as the SIMD tiles,
/// written so that compilers can vectorize the 16-row inner loops.
pub fn panel_tile_portable(
    panel: &Panel,
    acts: &PanelActs<'_>,
    t0: usize,
    nt: usize,
    g_cols: usize,
    mins: bool,
    out: &mut [[f32; PANEL_ROWS]; super::PANEL_TOKENS],
) {
    let cols = acts.cols;
    let groups = panel.groups;
    let per_block = acts.groups_per_block;
    let blocks = groups / per_block;
    let w: &[i8] = bytemuck::cast_slice(&panel.w);
    for (t, out) in out.iter_mut().enumerate().take(nt) {
        let token = t0 + t;
        let x = &acts.xu8[token * cols..(token + 1) * cols];
        let mut facc = [0f32; PANEL_ROWS];
        for b in 0..blocks {
            let mut fblk = [0f32; PANEL_ROWS];
            for g in b * per_block..(b + 1) * per_block {
                let at = g * PANEL_ROWS;
                let mut iacc = [0i32; PANEL_ROWS];
                iacc.copy_from_slice(&panel.corr[at..at + PANEL_ROWS]);
                for col in (g * g_cols..(g + 1) * g_cols).step_by(4) {
                    let xq = &x[col..col + 4];
                    let wq = &w[col * PANEL_ROWS..(col + 4) * PANEL_ROWS];
                    for (acc, wr) in iacc.iter_mut().zip(wq.chunks_exact(4)) {
                        *acc += xq[0] as i32 * wr[0] as i32
                            + xq[1] as i32 * wr[1] as i32
                            + xq[2] as i32 * wr[2] as i32
                            + xq[3] as i32 * wr[3] as i32;
                    }
                }
                let sum = acts.xs[token * groups + g];
                for r in 0..PANEL_ROWS {
                    fblk[r] += iacc[r] as f32 * panel.scale[at + r];
                    if mins {
                        fblk[r] += panel.minv[at + r] * sum;
                    }
                }
            }
            let d = acts.dx[token * blocks + b];
            for (f, v) in facc.iter_mut().zip(&fblk) {
                *f += v * d;
            }
        }
        *out = facc;
    }
}

/// Tokens per float panel tile.
pub const FLOAT_PANEL_TOKENS: usize = 8;

/// 16 float weight rows (F32, F16 or BF16) as f32, interleaved `[col][16 rows]` so one
/// 64-byte load holds a column of all 16 rows.
pub struct FloatPanel {
    pub cols: usize,
    pub w: Vec<f32>,
    /// Scratch: the 16 rows, row after row.
    rows_vals: Vec<f32>,
}

impl FloatPanel {
    pub fn new(cols: usize) -> FloatPanel {
        FloatPanel {
            cols,
            w: vec![0.0; cols * PANEL_ROWS],
            rows_vals: vec![0.0; cols * PANEL_ROWS],
        }
    }

    /// Converts `rows` (at most 16, each `row_bytes` long, back to back); missing rows
    /// become zeros.
    pub fn fill(&mut self, ty: GgmlType, data: &[u8], row_bytes: usize, rows: usize) {
        let cols = self.cols;
        for (r, vals) in self.rows_vals.chunks_exact_mut(cols).enumerate() {
            if r < rows {
                ty.dequantize_row(&data[r * row_bytes..(r + 1) * row_bytes], vals);
            } else {
                vals.fill(0.0);
            }
        }
        // Each output line of 16 is written once, in order.
        for (c, line) in self.w.chunks_exact_mut(PANEL_ROWS).enumerate() {
            for (r, v) in line.iter_mut().enumerate() {
                *v = self.rows_vals[r * cols + c];
            }
        }
    }
}
