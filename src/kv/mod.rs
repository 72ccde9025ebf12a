//! The key/value cache: per block, preallocated for the whole context.
//!
//! Layout of each block: `[kv_head][position][head_dim]`. Attention scans the positions
//! of one kv head, so keeping a head's positions contiguous makes that scan one linear
//! read (and lets f16 rows be converted in one slice call); appending a batch writes
//! `n_head_kv` short runs, which is cheap by comparison.
//!
//! The cells of a block are split into equal slots, one per sequence (see [`KvCache`]).
//! Every block keeps all positions of a slot, sliding-window blocks included (their
//! attention masks positions outside the window; a ring buffer of W positions would save
//! memory and is not done yet). One length per sequence counts its positions in all
//! blocks.
//!
//! Each block's K/V live with the block's device: host memory for CPU blocks, GPU
//! buffers (same layout, see [`gpu`]) for GPU blocks, unless the caller keeps them all
//! in host memory to save VRAM.

mod gpu;

pub use gpu::GpuKv;

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Element type of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheType {
    F32,
    #[default]
    F16,
}

impl CacheType {
    pub fn from_name(name: &str) -> Option<CacheType> {
        match name.to_ascii_lowercase().as_str() {
            "f32" => Some(CacheType::F32),
            "f16" => Some(CacheType::F16),
            _ => None,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            CacheType::F32 => 4,
            CacheType::F16 => 2,
        }
    }
}

impl std::str::FromStr for CacheType {
    type Err = String;
    fn from_str(s: &str) -> Result<CacheType, String> {
        CacheType::from_name(s).ok_or_else(|| format!("unknown cache type `{s}` (f32 or f16)"))
    }
}

/// Values of one kind (keys or values) of one block, `[kv_head][position][dim]`.
pub enum KvData {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl KvData {
    fn new(ty: CacheType, len: usize) -> KvData {
        match ty {
            CacheType::F32 => KvData::F32(vec![0.0; len]),
            CacheType::F16 => KvData::F16(vec![f16::ZERO; len]),
        }
    }

    /// Stores `src` at element offset `at`.
    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            KvData::F32(d) => d[at..at + src.len()].copy_from_slice(src),
            KvData::F16(d) => d[at..at + src.len()].convert_from_f32_slice(src),
        }
    }

    /// The elements `range`, as stored.
    fn rows(&self, range: std::ops::Range<usize>) -> KvRows<'_> {
        match self {
            KvData::F32(d) => KvRows::F32(&d[range]),
            KvData::F16(d) => KvRows::F16(&d[range]),
        }
    }
}

/// Consecutive key or value rows as stored in the cache.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

/// A block's K/V in host memory.
pub struct CpuKv {
    k: KvData,
    v: KvData,
    n_ctx: usize,
    head_dim: usize,
    head_dim_v: usize,
}

impl CpuKv {
    /// Whether keys and values are stored as f16.
    pub fn is_f16(&self) -> bool {
        matches!(self.k, KvData::F16(_))
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    pub fn head_dim_v(&self) -> usize {
        self.head_dim_v
    }

    /// Stores the batch's keys (rows of `n_head_kv × head_dim`) and values, each row at
    /// its cell (`cells` holds one per row).
    pub fn write_batch(&mut self, keys: &[f32], values: &[f32], cells: &[usize]) {
        let n_tokens = cells.len();
        let (kw, vw) = (keys.len() / n_tokens, values.len() / n_tokens);
        for (t, &cell) in cells.iter().enumerate() {
            for (h, row) in keys[t * kw..(t + 1) * kw].chunks(self.head_dim).enumerate() {
                self.write_k(h, cell, row);
            }
            for (h, row) in values[t * vw..(t + 1) * vw]
                .chunks(self.head_dim_v)
                .enumerate()
            {
                self.write_v(h, cell, row);
            }
        }
    }

    /// Stores the key row of kv head `head` at `cell`.
    pub fn write_k(&mut self, head: usize, cell: usize, row: &[f32]) {
        let at = (head * self.n_ctx + cell) * self.head_dim;
        self.k.write(at, row);
    }

    pub fn write_v(&mut self, head: usize, cell: usize, row: &[f32]) {
        let at = (head * self.n_ctx + cell) * self.head_dim_v;
        self.v.write(at, row);
    }

    /// Keys of kv head `head` in cells `lo..hi`, `(hi − lo) × head_dim` elements.
    pub fn keys(&self, head: usize, lo: usize, hi: usize) -> KvRows<'_> {
        let base = head * self.n_ctx;
        self.k
            .rows((base + lo) * self.head_dim..(base + hi) * self.head_dim)
    }

    /// Values of kv head `head` in cells `lo..hi`, `(hi − lo) × head_dim_v` elements.
    pub fn values(&self, head: usize, lo: usize, hi: usize) -> KvRows<'_> {
        let base = head * self.n_ctx;
        self.v
            .rows((base + lo) * self.head_dim_v..(base + hi) * self.head_dim_v)
    }
}

/// Where a block's K/V live.
pub enum KvStorage {
    Cpu(CpuKv),
    Gpu(GpuKv),
}

/// One block's K/V.
pub struct BlockKv {
    pub storage: KvStorage,
}

/// The cache of all blocks, holding `n_seq` sequences with a position count each.
///
/// The `n_ctx` cells are split into `n_seq` equal slots of consecutive cells, one per
/// sequence (as llama-server splits its context between `--parallel` slots): each
/// sequence's keys stay contiguous, so attention reads them as one linear run, exactly
/// as for a single sequence.
pub struct KvCache {
    blocks: Vec<BlockKv>,
    n_ctx: usize,
    seq_capacity: usize,
    seq_len: Vec<usize>,
    cache_type: CacheType,
}

/// Shape of the cache.
#[derive(Clone, Copy, Debug)]
pub struct KvShape {
    pub n_layer: usize,
    /// Cells per block, shared by the sequences.
    pub n_ctx: usize,
    /// Sequences held at once (each gets `n_ctx / n_seq` cells).
    pub n_seq: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
}

impl KvCache {
    /// A cache for `shape.n_ctx` cells of every block; with `gpu = Some((gpu, n))`
    /// the K/V of blocks `0 .. n` are GPU buffers.
    pub fn new(
        shape: KvShape,
        cache_type: CacheType,
        gpu: Option<(&crate::gpu::Gpu, usize)>,
    ) -> anyhow::Result<KvCache> {
        anyhow::ensure!(
            shape.n_seq > 0 && shape.n_ctx >= shape.n_seq,
            "{} cells cannot hold {} sequences",
            shape.n_ctx,
            shape.n_seq
        );
        let n_gpu = gpu.map_or(0, |(_, n)| n.min(shape.n_layer));
        let mut blocks = Vec::with_capacity(shape.n_layer);
        for i in 0..shape.n_layer {
            let storage = match gpu {
                Some((gpu, _)) if i < n_gpu => {
                    KvStorage::Gpu(GpuKv::new(gpu, &shape, cache_type, i)?)
                }
                _ => KvStorage::Cpu(CpuKv {
                    k: KvData::new(cache_type, shape.n_head_kv * shape.n_ctx * shape.head_dim),
                    v: KvData::new(cache_type, shape.n_head_kv * shape.n_ctx * shape.head_dim_v),
                    n_ctx: shape.n_ctx,
                    head_dim: shape.head_dim,
                    head_dim_v: shape.head_dim_v,
                }),
            };
            blocks.push(BlockKv { storage });
        }
        Ok(KvCache {
            blocks,
            n_ctx: shape.n_ctx,
            seq_capacity: shape.n_ctx / shape.n_seq,
            seq_len: vec![0; shape.n_seq],
            cache_type,
        })
    }

    /// Bytes one block's K/V take (either device).
    pub fn block_bytes(shape: &KvShape, cache_type: CacheType) -> u64 {
        let values = shape.n_head_kv * shape.n_ctx * (shape.head_dim + shape.head_dim_v);
        (values * cache_type.bytes()) as u64
    }

    /// Cells per block (all sequences).
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn n_seq(&self) -> usize {
        self.seq_len.len()
    }

    /// Cells of one sequence: the most positions it holds.
    pub fn seq_capacity(&self) -> usize {
        self.seq_capacity
    }

    /// Positions filled in sequence `seq`.
    pub fn seq_len(&self, seq: usize) -> usize {
        self.seq_len[seq]
    }

    /// Cells in use, over all sequences.
    pub fn cells_used(&self) -> usize {
        self.seq_len.iter().sum()
    }

    /// The cell of position 0 of sequence `seq`.
    pub fn seq_cell0(&self, seq: usize) -> usize {
        assert!(seq < self.n_seq(), "sequence {seq} of {}", self.n_seq());
        seq * self.seq_capacity
    }

    pub fn cache_type(&self) -> CacheType {
        self.cache_type
    }

    /// Records that `n` more positions of sequence `seq` were written to every block.
    pub fn advance(&mut self, seq: usize, n: usize) {
        assert!(
            self.seq_len[seq] + n <= self.seq_capacity,
            "KV cache overflow"
        );
        self.seq_len[seq] += n;
    }

    /// Keeps the first `n` positions of sequence `seq` (later writes overwrite the rest).
    pub fn truncate(&mut self, seq: usize, n: usize) {
        self.seq_len[seq] = self.seq_len[seq].min(n);
    }

    /// Empties every sequence.
    pub fn clear(&mut self) {
        self.seq_len.iter_mut().for_each(|l| *l = 0);
    }

    pub fn block(&self, i: usize) -> &BlockKv {
        &self.blocks[i]
    }

    pub fn block_mut(&mut self, i: usize) -> &mut BlockKv {
        &mut self.blocks[i]
    }
}
