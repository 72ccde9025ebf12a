//! The CPU implementation of the model's backend operations.

use std::sync::{Arc, Mutex};

use anyhow::{bail, ensure, Result};

use crate::cpu::matmul::{matmul_ordered, RowOrder};
use crate::cpu::ops::{self, AttnScratch};
use crate::cpu::{ThreadPool, WeightRef};
use crate::gguf::{GgufFile, TensorInfo};
use crate::kv::{BlockKv, CpuKv, KvStorage};
use crate::model::{Act, ActWidths, Activation, AttnShape, Backend, RopeParams, SeqRun};
use crate::quant::GgmlType;

/// A matrix read in place from the memory-mapped file.
pub struct CpuMatrix {
    file: Arc<GgufFile>,
    info: TensorInfo,
    rows: usize,
    cols: usize,
}

impl CpuMatrix {
    fn weight(&self) -> WeightRef<'_> {
        WeightRef {
            ty: self.info.ty,
            data: self.file.tensor_data(&self.info),
            rows: self.rows,
            cols: self.cols,
        }
    }

    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }
}

/// The CPU backend: a thread pool and preallocated activation buffers for `n_batch` tokens.
pub struct CpuBackend {
    pool: Arc<ThreadPool>,
    acts: Buffers,
    host_attention: HostAttention,
    rope_cache: RopeCache,
}

impl CpuBackend {
    pub fn new(n_threads: usize, n_batch: usize, widths: ActWidths) -> CpuBackend {
        let pool = Arc::new(ThreadPool::new(n_threads));
        let bufs = Act::ALL
            .iter()
            .map(|&a| vec![0f32; n_batch * widths.of(a)])
            .collect();
        CpuBackend {
            host_attention: HostAttention::new(Arc::clone(&pool)),
            pool,
            acts: Buffers {
                widths,
                bufs,
                n_tokens: 0,
                runs: Vec::new(),
            },
            rope_cache: RopeCache::default(),
        }
    }

    /// The worker threads, to share with work the GPU side hands to the CPU.
    pub fn pool(&self) -> &Arc<ThreadPool> {
        &self.pool
    }

    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }
}

/// The activation buffers and the rows of the current micro-batch.
struct Buffers {
    widths: ActWidths,
    bufs: Vec<Vec<f32>>,
    n_tokens: usize,
    runs: Vec<SeqRun>,
}

impl Buffers {
    /// The used part of a buffer.
    fn buf(&self, a: Act) -> &[f32] {
        &self.bufs[a.index()][..self.n_tokens * self.widths.of(a)]
    }

    fn buf_mut(&mut self, a: Act) -> &mut [f32] {
        let len = self.n_tokens * self.widths.of(a);
        &mut self.bufs[a.index()][..len]
    }

    /// A source and a distinct destination buffer.
    fn src_dst(&mut self, src: Act, dst: Act) -> (&[f32], &mut [f32]) {
        assert_ne!(src, dst, "source and destination must differ");
        let (ls, ld) = (
            self.n_tokens * self.widths.of(src),
            self.n_tokens * self.widths.of(dst),
        );
        let (si, di) = (src.index(), dst.index());
        if si < di {
            let (a, b) = self.bufs.split_at_mut(di);
            (&a[si][..ls], &mut b[0][..ld])
        } else {
            let (a, b) = self.bufs.split_at_mut(si);
            (&b[0][..ls], &mut a[di][..ld])
        }
    }
}

impl Backend for CpuBackend {
    type Matrix = CpuMatrix;
    type Vector = Vec<f32>;

    fn bind_matrix(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Result<CpuMatrix> {
        Ok(CpuMatrix {
            file: Arc::clone(file),
            info: info.clone(),
            rows: info.n_rows(),
            cols: info.row_len(),
        })
    }

    fn bind_vector(&mut self, file: &Arc<GgufFile>, info: &TensorInfo) -> Result<Vec<f32>> {
        Ok(dequantize_vector(file, info))
    }

    fn begin_batch(&mut self, runs: &[SeqRun]) -> Result<()> {
        let n_tokens = SeqRun::rows(runs);
        let capacity = self.acts.bufs[Act::X.index()].len() / self.acts.widths.n_embd;
        ensure!(
            n_tokens <= capacity,
            "a batch of {n_tokens} tokens is larger than the buffers ({capacity})"
        );
        self.acts.n_tokens = n_tokens;
        if self.acts.runs != runs {
            self.acts.runs = runs.to_vec();
            self.rope_cache.entries.clear();
        }
        Ok(())
    }

    fn embed(
        &mut self,
        table: &CpuMatrix,
        tokens: &[u32],
        scale: Option<f32>,
        dst: Act,
    ) -> Result<()> {
        let w = table.weight();
        let row_bytes = w.row_bytes();
        let out = self.acts.buf_mut(dst);
        for (row, &tok) in out.chunks_mut(w.cols).zip(tokens) {
            let t = tok as usize;
            w.ty.dequantize_row(&w.data[t * row_bytes..(t + 1) * row_bytes], row);
            if let Some(s) = scale {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        Ok(())
    }

    fn matmul(&mut self, w: &CpuMatrix, src: Act, dst: Act) -> Result<()> {
        let runs = std::mem::take(&mut self.acts.runs);
        let (x, y) = self.acts.src_dst(src, dst);
        run_matmul(&self.pool, w, &runs, x, y);
        self.acts.runs = runs;
        Ok(())
    }

    fn add_bias(&mut self, dst: Act, bias: &Vec<f32>) -> Result<()> {
        for row in self.acts.buf_mut(dst).chunks_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        Ok(())
    }

    fn rms_norm(&mut self, src: Act, dst: Act, weight: &Vec<f32>, eps: f32) -> Result<()> {
        let n = weight.len();
        if src == dst {
            let buf = self.acts.buf_mut(dst);
            ops::par_rows(&self.pool, buf, n, |_, g| {
                ops::rms_norm_inplace(g, weight, eps)
            });
        } else {
            let (s, d) = self.acts.src_dst(src, dst);
            ops::par_rows(&self.pool, d, n, |i, g| {
                ops::rms_norm(&s[i * n..(i + 1) * n], weight, eps, g)
            });
        }
        Ok(())
    }

    fn rope(&mut self, buf: Act, head_dim: usize, rope: &RopeParams) -> Result<()> {
        let width = self.acts.widths.of(buf);
        let angles = self.rope_cache.angles(rope, &self.acts.runs);
        let half = rope.n_dims / 2;
        let data = self.acts.buf_mut(buf);
        ops::par_rows(&self.pool, data, width, |t, row| {
            let cs = &angles[t * half..(t + 1) * half];
            for head in row.chunks_mut(head_dim) {
                ops::rope_head(head, cs, rope.pairing);
            }
        });
        Ok(())
    }

    fn scale(&mut self, buf: Act, s: f32) -> Result<()> {
        self.acts.buf_mut(buf).iter_mut().for_each(|v| *v *= s);
        Ok(())
    }

    fn store_kv(&mut self, kv: &mut BlockKv, k: Act, v: Act) -> Result<()> {
        let KvStorage::Cpu(cpu) = &mut kv.storage else {
            bail!("a CPU block's K/V must be in host memory");
        };
        let cells = cells_of(&self.acts.runs);
        cpu.write_batch(self.acts.buf(k), self.acts.buf(v), &cells);
        Ok(())
    }

    fn attention(&mut self, kv: &BlockKv, q: Act, dst: Act, shape: &AttnShape) -> Result<()> {
        let KvStorage::Cpu(cpu) = &kv.storage else {
            bail!("a CPU block's K/V must be in host memory");
        };
        let runs = std::mem::take(&mut self.acts.runs);
        let (qb, out) = self.acts.src_dst(q, dst);
        self.host_attention.run(cpu, qb, &runs, shape, out);
        self.acts.runs = runs;
        Ok(())
    }

    fn gated_activation(&mut self, gate: Act, up: Act, act: Activation) -> Result<()> {
        let width = self.acts.widths.of(gate);
        let (u, g) = self.acts.src_dst(up, gate);
        let f: fn(f32) -> f32 = match act {
            Activation::Silu => ops::silu,
            Activation::GeluTanh => ops::gelu_tanh,
        };
        ops::par_rows(&self.pool, g, width, |t, row| {
            let up_row = &u[t * width..(t + 1) * width];
            row.iter_mut().zip(up_row).for_each(|(g, u)| *g = f(*g) * u);
        });
        Ok(())
    }

    fn add(&mut self, dst: Act, src: Act) -> Result<()> {
        let (s, d) = self.acts.src_dst(src, dst);
        d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
        Ok(())
    }

    fn keep_last_rows(&mut self, n_keep: usize, acts: &[Act]) -> Result<()> {
        let n = self.acts.n_tokens;
        ensure!(n_keep <= n, "{n_keep} rows kept of {n}");
        for &a in acts {
            let w = self.acts.widths.of(a);
            self.acts.bufs[a.index()].copy_within((n - n_keep) * w..n * w, 0);
        }
        self.acts.n_tokens = n_keep;
        self.acts.runs = SeqRun::last_rows(&self.acts.runs, n_keep);
        Ok(())
    }

    fn project_rows(
        &mut self,
        w: &CpuMatrix,
        src: Act,
        first_row: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let width = self.acts.widths.of(src);
        let x = &self.acts.buf(src)[first_row * width..];
        let runs = SeqRun::last_rows(&self.acts.runs, self.acts.n_tokens - first_row);
        run_matmul(&self.pool, w, &runs, x, out);
        Ok(())
    }

    fn upload_act(&mut self, dst: Act, data: &[f32]) -> Result<()> {
        let buf = self.acts.buf_mut(dst);
        ensure!(data.len() == buf.len(), "hidden state of the wrong size");
        buf.copy_from_slice(data);
        Ok(())
    }

    fn download_act(&mut self, src: Act, out: &mut [f32]) -> Result<()> {
        let buf = self.acts.buf(src);
        ensure!(out.len() == buf.len(), "hidden state of the wrong size");
        out.copy_from_slice(buf);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}

/// `y = W · x` for the rows of `runs`, each row summed as in a batch of its run alone:
/// one matmul for one run or for runs of one token each (a batched decode step), one
/// per run otherwise.
fn run_matmul(pool: &ThreadPool, w: &CpuMatrix, runs: &[SeqRun], x: &[f32], y: &mut [f32]) {
    let weight = w.weight();
    let n = SeqRun::rows(runs);
    if runs.len() <= 1 {
        return matmul_ordered(pool, weight, x, n, RowOrder::Batch, y);
    }
    if runs.iter().all(|r| r.len == 1) {
        return matmul_ordered(pool, weight, x, n, RowOrder::Lone, y);
    }
    let (mut xs, mut ys) = (x, y);
    for r in runs {
        let (xr, x_rest) = xs.split_at(r.len * weight.cols);
        let (yr, y_rest) = ys.split_at_mut(r.len * weight.rows);
        matmul_ordered(pool, weight, xr, r.len, RowOrder::Batch, yr);
        (xs, ys) = (x_rest, y_rest);
    }
}

/// The K/V cache cell of every row of `runs`.
pub fn cells_of(runs: &[SeqRun]) -> Vec<usize> {
    SeqRun::places(runs).map(|(p, cell0)| cell0 + p).collect()
}

/// A vector tensor as f32 values (norm weights and biases are small).
pub fn dequantize_vector(file: &GgufFile, info: &TensorInfo) -> Vec<f32> {
    let mut v = vec![0f32; info.n_elements() as usize];
    info.ty.dequantize_row(file.tensor_data(info), &mut v);
    v
}

/// Attention over a host-memory cache on the CPU threads; GPU blocks whose K/V are kept
/// in host memory (`--kv-on-cpu`) use it too.
pub struct HostAttention {
    pool: Arc<ThreadPool>,
    scratch: Vec<Mutex<AttnScratch>>,
}

impl HostAttention {
    pub fn new(pool: Arc<ThreadPool>) -> HostAttention {
        let scratch = (0..pool.n_threads())
            .map(|_| Mutex::new(AttnScratch::default()))
            .collect();
        HostAttention { pool, scratch }
    }

    pub fn run(&self, kv: &CpuKv, q: &[f32], runs: &[SeqRun], shape: &AttnShape, out: &mut [f32]) {
        ops::attention(&self.pool, &self.scratch, kv, q, runs, shape, out);
    }
}

/// Rope angles of the current batch: q and k of every block with the same rope settings
/// share them, so they are computed once per batch and setting (gemma3 has two). The
/// backend empties it when the batch's rows change.
#[derive(Default)]
struct RopeCache {
    entries: Vec<(RopeKey, AngleTable)>,
}

/// (cos, sin) pairs, token-major.
type AngleTable = Arc<Vec<(f32, f32)>>;

#[derive(Clone, Copy, PartialEq)]
struct RopeKey {
    n_dims: usize,
    freq_base: f32,
    freq_scale: f32,
    has_factors: bool,
}

impl RopeCache {
    /// (cos, sin) of the `n_dims / 2` angles of each row of `runs`, token-major.
    fn angles(&mut self, rope: &RopeParams, runs: &[SeqRun]) -> AngleTable {
        let key = RopeKey {
            n_dims: rope.n_dims,
            freq_base: rope.freq_base,
            freq_scale: rope.freq_scale,
            has_factors: rope.freq_factors.is_some(),
        };
        if let Some((_, a)) = self.entries.iter().find(|(k, _)| *k == key) {
            return Arc::clone(a);
        }
        let half = rope.n_dims / 2;
        let mut table = vec![(1.0, 0.0); SeqRun::rows(runs) * half];
        for (cs, (pos, _)) in table.chunks_mut(half.max(1)).zip(SeqRun::places(runs)) {
            ops::rope_angles(rope, pos, cs);
        }
        let table = Arc::new(table);
        self.entries.push((key, Arc::clone(&table)));
        table
    }
}
