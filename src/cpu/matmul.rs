//! Matrix products with GGUF weights: y = W·x for a batch of activation rows.
//!
//! The activations are quantized once per call into the weight type's partner format
//! (see [`super::act_quant`]). Then one of two paths:
//! - row kernels (decode, and prefill without a panel tile): each weight row is streamed once
//!   per tile of up to [`TILE_TOKENS`] activation rows, so each weight block is decoded
//!   once per tile; decode is memory-bound and this streams the weights once;
//! - weight panels (prefill, more than [`TILE_TOKENS`] tokens, AVX2 or AVX-512 VNNI): 16
//!   rows at a time are decoded once into interleaved signed bytes and multiplied with
//!   every token (see [`super::kernels::panel`]); this is compute-bound and keeps
//!   `vpdpbusd` (or `maddubs`) busy.
//!
//! Rows (or panels) are handed out to the pool's threads in chunks from a shared counter,
//! so threads on a busy machine do not wait for a slow sibling's fixed share. Weight
//! types without kernels (Q8_1, Q8_K) fall back to dequantize-and-dot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::quant::GgmlType;

use super::act_quant::{ActFormat, ActsPart, QuantizedActs};
use super::kernels::ordered_panel::{Family, OrderedActs, OrderedPanel};
use super::kernels::panel;
use super::kernels::panel::{FloatPanel, Panel, PanelActs, FLOAT_PANEL_TOKENS, PANEL_ROWS};
use super::kernels::{
    Acts, FloatPanelTile, KernelTable, OrderedTile, PanelTile, RowKernel, RowsKernel, SimdLevel,
    PANEL_TOKENS, ROWS_AT_ONCE, TILE_TOKENS,
};
use super::ThreadPool;

/// A weight matrix as it lies in the file: `rows` rows of `cols` elements, each row a
/// whole number of `ty` blocks.
#[derive(Clone, Copy, Debug)]
pub struct WeightRef<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

impl WeightRef<'_> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_elems() * self.ty.block_bytes()
    }
}

/// `y[t][r] = Σ_c W[r][c] · x[t][c]` for `n_tokens` rows of `x` (`n_tokens × cols`),
/// writing `y` (`n_tokens × rows`), with the kernels of [`SimdLevel::selected`].
pub fn matmul(pool: &ThreadPool, w: WeightRef<'_>, x: &[f32], n_tokens: usize, y: &mut [f32]) {
    matmul_with(
        pool,
        KernelTable::selected(),
        w,
        x,
        n_tokens,
        RowOrder::Batch,
        y,
    );
}

/// How the tokens of a matmul are summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOrder {
    /// As llama.cpp sums a batch of that many tokens (its order for some types depends
    /// on the batch size and a token's place in it).
    Batch,
    /// Every token as a batch of one would be: each row gets the bits it gets alone
    /// (the rows of a batched decode step, one per sequence). The weights are still
    /// read once for every [`TILE_TOKENS`] tokens.
    Lone,
}

/// [`matmul`] with the tokens summed in `order`.
pub fn matmul_ordered(
    pool: &ThreadPool,
    w: WeightRef<'_>,
    x: &[f32],
    n_tokens: usize,
    order: RowOrder,
    y: &mut [f32],
) {
    matmul_with(pool, KernelTable::selected(), w, x, n_tokens, order, y);
}

/// [`matmul`] with the kernels of a given level (for tests and benchmarks). Panics if
/// the machine lacks `level`.
pub fn matmul_at_level(
    pool: &ThreadPool,
    level: SimdLevel,
    w: WeightRef<'_>,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) {
    matmul_with(
        pool,
        KernelTable::for_level(level),
        w,
        x,
        n_tokens,
        RowOrder::Batch,
        y,
    );
}

/// [`matmul_ordered`] with the kernels of a given level (for tests). Panics if the
/// machine lacks `level`.
pub fn matmul_ordered_at_level(
    pool: &ThreadPool,
    level: SimdLevel,
    w: WeightRef<'_>,
    x: &[f32],
    n_tokens: usize,
    order: RowOrder,
    y: &mut [f32],
) {
    matmul_with(
        pool,
        KernelTable::for_level(level),
        w,
        x,
        n_tokens,
        order,
        y,
    );
}

fn matmul_with(
    pool: &ThreadPool,
    table: &KernelTable,
    w: WeightRef<'_>,
    x: &[f32],
    n_tokens: usize,
    order: RowOrder,
    y: &mut [f32],
) {
    assert_eq!(x.len(), n_tokens * w.cols, "activation length");
    assert_eq!(y.len(), n_tokens * w.rows, "output length");
    assert_eq!(
        w.cols % w.ty.block_elems(),
        0,
        "row length is not whole blocks"
    );
    let row_bytes = w.row_bytes();
    assert!(w.data.len() >= w.rows * row_bytes, "weight data too short");
    if n_tokens == 0 || w.rows == 0 {
        return;
    }
    let Some(kernel) = table.kernel(w.ty) else {
        return naive_parallel(pool, w, x, n_tokens, y);
    };
    let format = ActFormat::for_weight(w.ty);
    // Panels and tiles take many tokens at once, in the orders of wide and grouped
    // batches; tokens summed as lone ones take the row kernels, TILE_TOKENS at a time.
    let lone = order == RowOrder::Lone;
    let many = n_tokens > TILE_TOKENS && !lone;
    if let Some(tile) = table.float_panel_tile {
        if many && format == ActFormat::F32 && !w.ty.is_quantized() {
            return run_float_panels(pool, tile, w, x, n_tokens, y);
        }
    }
    let mut quantized = if format == ActFormat::F32 {
        QuantizedActs::default()
    } else {
        quantize_parallel(pool, table, format, x, n_tokens, w.cols)
    };
    if let Some(tile) = table.panel_tile {
        if many && (table.panel_supports)(w.ty) {
            return run_panels(pool, tile, w, &mut quantized, n_tokens, y);
        }
    }
    if let Some(tiles) = table.ordered_tile {
        if many {
            if let Some(family) = Family::of(w.ty) {
                let step = (tiles.tokens_per_tile)(family, n_tokens);
                if step > 0 {
                    let acts = OrderedActs::new(w.ty, &quantized);
                    return run_ordered_panels(pool, tiles.tile, step, w, &acts, n_tokens, y);
                }
            }
        }
    }
    let acts = Acts {
        cols: w.cols,
        x,
        q: &quantized,
        n_tokens,
        lone,
    };
    match table.rows_kernel(w.ty) {
        Some(rows_kernel) => run_row_groups(pool, rows_kernel, w, &acts, n_tokens, y),
        None => run_tiles(pool, kernel, w, &acts, n_tokens, y),
    }
}

/// Rows per chunk handed to a thread: decode takes a few chunks per thread so a delayed
/// thread's share can be taken over; prefill keeps a chunk's weights in L2 across token
/// tiles.
fn chunk_rows(pool: &ThreadPool, rows: usize, n_tokens: usize) -> usize {
    if n_tokens <= TILE_TOKENS {
        rows.div_ceil(pool.n_threads() * 8).max(16)
    } else {
        32
    }
}

/// [`run_tiles`] with a multi-row kernel: four rows at a time for one token (four
/// independent chains), two for more tokens (registers hold rows × tokens chains).
fn run_row_groups(
    pool: &ThreadPool,
    kernel: RowsKernel,
    w: WeightRef<'_>,
    acts: &Acts<'_>,
    n_tokens: usize,
    y: &mut [f32],
) {
    let rows = w.rows;
    let row_bytes = w.row_bytes();
    let chunk_rows = chunk_rows(pool, rows, n_tokens);
    let group = if n_tokens == 1 { ROWS_AT_ONCE } else { 2 };
    let n_chunks = rows.div_ceil(chunk_rows);
    let next = AtomicUsize::new(0);
    let out = SharedOut(y.as_mut_ptr());
    pool.run(|_, _| {
        let out = &out;
        let mut tile = [[0f32; TILE_TOKENS]; ROWS_AT_ONCE];
        loop {
            let chunk = next.fetch_add(1, Ordering::Relaxed);
            if chunk >= n_chunks {
                break;
            }
            let r0 = chunk * chunk_rows;
            let r1 = (r0 + chunk_rows).min(rows);
            for t0 in (0..n_tokens).step_by(TILE_TOKENS) {
                let nt = TILE_TOKENS.min(n_tokens - t0);
                for r in (r0..r1).step_by(group) {
                    let nr = group.min(r1 - r);
                    let data = &w.data[r * row_bytes..(r + nr) * row_bytes];
                    kernel(data, row_bytes, nr, acts, t0, nt, &mut tile);
                    for (i, vals) in tile.iter().enumerate().take(nr) {
                        for (k, &v) in vals.iter().enumerate().take(nt) {
                            // SAFETY: rows r0..r1 belong to this chunk alone; t0+k <
                            // n_tokens and r+i < rows, so the index is inside y.
                            unsafe { *out.0.add((t0 + k) * rows + r + i) = v };
                        }
                    }
                }
            }
        }
    });
}

fn run_tiles(
    pool: &ThreadPool,
    kernel: RowKernel,
    w: WeightRef<'_>,
    acts: &Acts<'_>,
    n_tokens: usize,
    y: &mut [f32],
) {
    let rows = w.rows;
    let row_bytes = w.row_bytes();
    let chunk_rows = chunk_rows(pool, rows, n_tokens);
    let n_chunks = rows.div_ceil(chunk_rows);
    let next = AtomicUsize::new(0);
    let out = SharedOut(y.as_mut_ptr());
    pool.run(|_, _| {
        let out = &out;
        let mut tile = [0f32; TILE_TOKENS];
        loop {
            let chunk = next.fetch_add(1, Ordering::Relaxed);
            if chunk >= n_chunks {
                break;
            }
            let r0 = chunk * chunk_rows;
            let r1 = (r0 + chunk_rows).min(rows);
            for t0 in (0..n_tokens).step_by(TILE_TOKENS) {
                let nt = TILE_TOKENS.min(n_tokens - t0);
                for r in r0..r1 {
                    kernel(
                        &w.data[r * row_bytes..(r + 1) * row_bytes],
                        acts,
                        t0,
                        nt,
                        &mut tile,
                    );
                    for (k, &v) in tile.iter().enumerate().take(nt) {
                        // SAFETY: rows r0..r1 belong to this chunk alone; (t0+k) < n_tokens
                        // and r < rows, so the index is inside y.
                        unsafe { *out.0.add((t0 + k) * rows + r) = v };
                    }
                }
            }
        }
    });
}

/// Prefill through weight panels: each thread decodes 16 rows at a time into a panel
/// and multiplies it with every token, [`PANEL_TOKENS`] at a time.
fn run_panels(
    pool: &ThreadPool,
    tile: PanelTile,
    w: WeightRef<'_>,
    quantized: &mut QuantizedActs,
    n_tokens: usize,
    y: &mut [f32],
) {
    let acts = PanelActs::new(w.ty, quantized);
    let rows = w.rows;
    let row_bytes = w.row_bytes();
    let g_cols = panel::group_cols(w.ty);
    let mins = panel::has_mins(w.ty);
    let n_panels = rows.div_ceil(PANEL_ROWS);
    let next = AtomicUsize::new(0);
    let out = SharedOut(y.as_mut_ptr());
    pool.run(|_, _| {
        let out = &out;
        let mut panel = Panel::new(w.ty, w.cols);
        let mut tile_out = [[0f32; PANEL_ROWS]; PANEL_TOKENS];
        loop {
            let p = next.fetch_add(1, Ordering::Relaxed);
            if p >= n_panels {
                break;
            }
            let r0 = p * PANEL_ROWS;
            let nr = PANEL_ROWS.min(rows - r0);
            panel.fill(
                w.ty,
                &w.data[r0 * row_bytes..(r0 + nr) * row_bytes],
                row_bytes,
                nr,
            );
            for t0 in (0..n_tokens).step_by(PANEL_TOKENS) {
                let nt = PANEL_TOKENS.min(n_tokens - t0);
                tile(&panel, &acts, t0, nt, g_cols, mins, &mut tile_out);
                // SAFETY: rows r0..r0+nr belong to this panel alone and lie inside y's
                // rows t0..t0+nt (t0+nt ≤ n_tokens, r0+nr ≤ rows).
                unsafe { out.write_tile(&tile_out[..nt], rows, r0, nr, t0) };
            }
        }
    });
}

/// Prefill of the types summed in llama.cpp's order: each thread decodes 16 rows at a
/// time into an [`OrderedPanel`] and multiplies it with every token, `step` at a time.
fn run_ordered_panels(
    pool: &ThreadPool,
    tile: OrderedTile,
    step: usize,
    w: WeightRef<'_>,
    acts: &OrderedActs<'_>,
    n_tokens: usize,
    y: &mut [f32],
) {
    let rows = w.rows;
    let row_bytes = w.row_bytes();
    let n_panels = rows.div_ceil(PANEL_ROWS);
    let next = AtomicUsize::new(0);
    let out = SharedOut(y.as_mut_ptr());
    pool.run(|_, _| {
        let out = &out;
        let mut panel = OrderedPanel::new(w.ty, w.cols);
        let mut tile_out = [[0f32; PANEL_ROWS]; PANEL_TOKENS];
        loop {
            let p = next.fetch_add(1, Ordering::Relaxed);
            if p >= n_panels {
                break;
            }
            let r0 = p * PANEL_ROWS;
            let nr = PANEL_ROWS.min(rows - r0);
            panel.fill(
                &w.data[r0 * row_bytes..(r0 + nr) * row_bytes],
                row_bytes,
                nr,
            );
            for t0 in (0..n_tokens).step_by(step) {
                let nt = step.min(n_tokens - t0);
                tile(&panel, acts, t0, nt, &mut tile_out);
                // SAFETY: rows r0..r0+nr belong to this panel alone and lie inside y's
                // rows t0..t0+nt (t0+nt ≤ n_tokens, r0+nr ≤ rows).
                unsafe { out.write_tile(&tile_out[..nt], rows, r0, nr, t0) };
            }
        }
    });
}

/// Prefill with float weights: 16 rows at a time converted to an f32 panel, multiplied
/// with every token, [`FLOAT_PANEL_TOKENS`] at a time.
fn run_float_panels(
    pool: &ThreadPool,
    tile: FloatPanelTile,
    w: WeightRef<'_>,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) {
    let rows = w.rows;
    let row_bytes = w.row_bytes();
    let n_panels = rows.div_ceil(PANEL_ROWS);
    let next = AtomicUsize::new(0);
    let out = SharedOut(y.as_mut_ptr());
    pool.run(|_, _| {
        let out = &out;
        let mut panel = FloatPanel::new(w.cols);
        let mut tile_out = [[0f32; PANEL_ROWS]; FLOAT_PANEL_TOKENS];
        loop {
            let p = next.fetch_add(1, Ordering::Relaxed);
            if p >= n_panels {
                break;
            }
            let r0 = p * PANEL_ROWS;
            let nr = PANEL_ROWS.min(rows - r0);
            panel.fill(
                w.ty,
                &w.data[r0 * row_bytes..(r0 + nr) * row_bytes],
                row_bytes,
                nr,
            );
            for t0 in (0..n_tokens).step_by(FLOAT_PANEL_TOKENS) {
                let nt = FLOAT_PANEL_TOKENS.min(n_tokens - t0);
                tile(&panel, x, t0, nt, &mut tile_out);
                // SAFETY: rows r0..r0+nr belong to this panel alone and lie inside y's
                // rows t0..t0+nt (t0+nt ≤ n_tokens, r0+nr ≤ rows).
                unsafe { out.write_tile(&tile_out[..nt], rows, r0, nr, t0) };
            }
        }
    });
}

/// Quantizes the activation rows, split over the pool's threads by token.
fn quantize_parallel(
    pool: &ThreadPool,
    table: &KernelTable,
    format: ActFormat,
    x: &[f32],
    n_tokens: usize,
    cols: usize,
) -> QuantizedActs {
    let mut acts = QuantizedActs::zeroed(format, n_tokens, cols);
    let n_parts = if n_tokens >= 4 {
        pool.n_threads().min(n_tokens)
    } else {
        1
    };
    let per = n_tokens.div_ceil(n_parts);
    let mut parts = acts.split_tokens(per);
    if parts.len() == 1 {
        parts[0].quantize(table, format, x, cols);
    } else {
        let parts: Vec<Mutex<ActsPart<'_>>> = parts.into_iter().map(Mutex::new).collect();
        pool.run(|i, n| {
            for part in parts.iter().skip(i).step_by(n) {
                let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
                part.quantize(table, format, x, cols);
            }
        });
    }
    acts
}

/// Types without a kernel (Q8_1, Q8_K weights): dequantize each row and dot in f32.
fn naive_parallel(pool: &ThreadPool, w: WeightRef<'_>, x: &[f32], n_tokens: usize, y: &mut [f32]) {
    let row_bytes = w.row_bytes();
    let out = SharedOut(y.as_mut_ptr());
    pool.run(|ti, nt| {
        let out = &out;
        let mut row = vec![0f32; w.cols];
        let per = w.rows.div_ceil(nt);
        for r in ti * per..((ti + 1) * per).min(w.rows) {
            w.ty.dequantize_row(&w.data[r * row_bytes..(r + 1) * row_bytes], &mut row);
            for t in 0..n_tokens {
                let xs = &x[t * w.cols..(t + 1) * w.cols];
                let dot: f32 = row.iter().zip(xs).map(|(a, b)| a * b).sum();
                // SAFETY: each thread writes only the rows r of its own range.
                unsafe { *out.0.add(t * w.rows + r) = dot };
            }
        }
    });
}

struct SharedOut(*mut f32);
// SAFETY: writers touch disjoint elements (see run_tiles and naive_parallel).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Copies the outputs of a panel tile (`nr` weight rows from `r0`, one array per
    /// token from `t0`) into y, whose token rows hold `rows` outputs each.
    ///
    /// # Safety
    /// The caller alone writes y's rows `r0..r0 + nr` of the tokens `t0..t0 + tile.len()`,
    /// and those lie inside y.
    unsafe fn write_tile(
        &self,
        tile: &[[f32; PANEL_ROWS]],
        rows: usize,
        r0: usize,
        nr: usize,
        t0: usize,
    ) {
        for (k, vals) in tile.iter().enumerate() {
            // SAFETY: in bounds and unshared, as the caller promises.
            unsafe {
                std::ptr::copy_nonoverlapping(vals.as_ptr(), self.0.add((t0 + k) * rows + r0), nr)
            };
        }
    }
}
