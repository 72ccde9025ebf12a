//! Row kernels: dot products of one weight row with a few activation rows, per weight
//! type and per instruction-set level, and the one place where a level is chosen.

use std::sync::OnceLock;

use crate::quant::GgmlType;

use super::act_quant::QuantizedActs;

#[cfg(target_arch = "x86_64")]
pub mod ordered_avx2;
#[cfg(target_arch = "x86_64")]
pub mod ordered_avx512;
pub mod ordered_panel;
#[cfg(target_arch = "x86_64")]
pub mod ordered_tile_avx2;
pub mod panel;
pub mod portable;
pub mod summation;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512;

/// Most activation rows one kernel call handles (each weight block is decoded once and
/// used for all of them).
pub const TILE_TOKENS: usize = 4;

/// The activations of one matmul as the kernels read them.
pub struct Acts<'a> {
    pub cols: usize,
    /// Raw f32 activations (read by the float-weight kernels).
    pub x: &'a [f32],
    /// Quantized activations (read by the quantized-weight kernels).
    pub q: &'a QuantizedActs,
    /// Tokens in the whole batch, which picks the summation order of some types (see
    /// [`summation::BatchPlace`]).
    pub n_tokens: usize,
    /// Every token is summed as a batch of one would be (the rows of a batched decode
    /// step, each of its own sequence).
    pub lone: bool,
}

impl Acts<'_> {
    /// Where token `t` stands in the batch.
    pub fn place(&self, t: usize) -> summation::BatchPlace {
        if self.lone {
            summation::BatchPlace::LONE
        } else {
            summation::BatchPlace::of(t, self.n_tokens)
        }
    }

    /// Asserts that tokens `t0 .. t0 + nt` exist in every array a kernel of `format`
    /// reads (the SIMD kernels read them through raw pointers).
    pub fn check(&self, format: super::act_quant::ActFormat, t0: usize, nt: usize) {
        use super::act_quant::ActFormat;
        assert!(
            nt <= TILE_TOKENS,
            "at most {TILE_TOKENS} tokens per kernel call"
        );
        let end = (t0 + nt) * self.cols;
        match format {
            ActFormat::F32 => assert!(self.x.len() >= end, "f32 activations too short"),
            ActFormat::Q8Block32 => {
                let q = self.q;
                assert!(q.qs.len() >= end && q.d.len() >= end / 32 && q.s.len() >= end / 32);
                assert_eq!(self.cols % 32, 0);
            }
            ActFormat::Q8K => {
                let q = self.q;
                assert!(q.qs.len() >= end && q.d.len() >= end / 256 && q.bsums.len() >= end / 16);
                assert_eq!(self.cols % 256, 0);
            }
        }
    }
}

/// `out[k] = row · activation row (t0 + k)` for `k < nt` (`nt ≤ TILE_TOKENS`).
pub type RowKernel =
    fn(row: &[u8], acts: &Acts<'_>, t0: usize, nt: usize, out: &mut [f32; TILE_TOKENS]);

/// Most weight rows one [`RowsKernel`] call handles.
pub const ROWS_AT_ONCE: usize = 4;

/// `out[r][k]` for `r < nr ≤ ROWS_AT_ONCE` rows, `k < nt ≤ TILE_TOKENS` tokens.
pub type RowsOut = [[f32; TILE_TOKENS]; ROWS_AT_ONCE];

/// A row kernel over several weight rows at once (`rows` holds `nr` rows of `row_bytes`
/// each), so that rows' independent accumulator chains overlap in the pipeline: for the
/// types summed in a fixed order, whose chains cannot be split.
pub type RowsKernel = fn(
    rows: &[u8],
    row_bytes: usize,
    nr: usize,
    acts: &Acts<'_>,
    t0: usize,
    nt: usize,
    out: &mut RowsOut,
);

/// An instruction-set level for the CPU kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Portable Rust (any architecture).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI (plus the AVX2 set).
    Avx512,
}

impl SimdLevel {
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    pub fn from_name(name: &str) -> Option<SimdLevel> {
        Self::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The highest level this machine supports.
    pub fn detected() -> SimdLevel {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            let avx512 = avx2
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni");
            if avx512 {
                return SimdLevel::Avx512;
            }
            if avx2 {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Scalar
    }

    /// The level in use: the detected one, lowered by `TANDEM_CPU_SIMD=scalar|avx2|avx512`
    /// (a request above what the machine has is ignored, with a warning).
    pub fn selected() -> SimdLevel {
        static SELECTED: OnceLock<SimdLevel> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let detected = SimdLevel::detected();
            match std::env::var("TANDEM_CPU_SIMD") {
                Ok(v) => match SimdLevel::from_name(&v) {
                    Some(l) if l <= detected => l,
                    Some(l) => {
                        tracing::warn!(
                            "TANDEM_CPU_SIMD={} is not supported here; using {}",
                            l.name(),
                            detected.name()
                        );
                        detected
                    }
                    None => {
                        tracing::warn!(
                            "TANDEM_CPU_SIMD={v:?} is not one of scalar, avx2, avx512; using {}",
                            detected.name()
                        );
                        detected
                    }
                },
                Err(_) => detected,
            }
        })
    }

    /// Every level this machine can run, lowest first.
    pub fn available() -> Vec<SimdLevel> {
        let top = SimdLevel::detected();
        Self::ALL.into_iter().filter(|l| *l <= top).collect()
    }
}

/// The kernels for one level, one per weight type (None: no kernel, use the naive path).
pub struct KernelTable {
    pub level: SimdLevel,
    kernels: [Option<RowKernel>; GgmlType::ALL.len()],
    /// Multi-row kernels, where the level has one for the type (used before `kernels`).
    rows_kernels: [Option<RowsKernel>; GgmlType::ALL.len()],
    /// The prefill panel tile, where the level has one, and the types it takes.
    pub panel_tile: Option<PanelTile>,
    pub panel_supports: fn(GgmlType) -> bool,
    /// The prefill tile for float weights, where the level has one.
    pub float_panel_tile: Option<FloatPanelTile>,
    /// The prefill tiles of the types summed in llama.cpp's order, where the level has
    /// them.
    pub ordered_tile: Option<OrderedTiles>,
    /// Activation quantizers (bit-exact with the portable ones in `act_quant`).
    pub quantize_block32: QuantizeFn<f32>,
    pub quantize_q8k: QuantizeFn<i16>,
}

/// `(x, qs, d, s or bsums)`, as [`super::act_quant::quantize_block32`] / `quantize_q8k`.
pub type QuantizeFn<T> = fn(&[f32], &mut [i8], &mut [f32], &mut [T]);

/// See [`x86_avx512::panel_tile`].
pub type PanelTile = fn(
    &panel::Panel,
    &panel::PanelActs<'_>,
    usize,
    usize,
    usize,
    bool,
    &mut [[f32; panel::PANEL_ROWS]; PANEL_TOKENS],
);

/// See [`x86_avx512::float_panel_tile`].
pub type FloatPanelTile = fn(
    &panel::FloatPanel,
    &[f32],
    usize,
    usize,
    &mut [[f32; panel::PANEL_ROWS]; panel::FLOAT_PANEL_TOKENS],
);

/// See [`ordered_avx512::tile`].
pub type OrderedTile = fn(
    &ordered_panel::OrderedPanel,
    &ordered_panel::OrderedActs<'_>,
    usize,
    usize,
    &mut [[f32; panel::PANEL_ROWS]; PANEL_TOKENS],
);

/// A level's tiles over ordered panels, and how many tokens one call takes per family
/// (0: the level has no tile for that family).
#[derive(Clone, Copy)]
pub struct OrderedTiles {
    pub tile: OrderedTile,
    pub tokens_per_tile: fn(ordered_panel::Family, usize) -> usize,
}

/// Tokens per panel tile.
pub const PANEL_TOKENS: usize = 4;

impl KernelTable {
    /// The table for `level` (built once). Panics if the machine lacks `level`.
    pub fn for_level(level: SimdLevel) -> &'static KernelTable {
        static TABLES: [OnceLock<KernelTable>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        assert!(
            level <= SimdLevel::detected(),
            "SIMD level {} is not available on this machine",
            level.name()
        );
        TABLES[level as usize].get_or_init(|| KernelTable::build(level))
    }

    /// The table for [`SimdLevel::selected`].
    pub fn selected() -> &'static KernelTable {
        Self::for_level(SimdLevel::selected())
    }

    fn build(level: SimdLevel) -> KernelTable {
        let mut kernels = [None; GgmlType::ALL.len()];
        for (slot, ty) in kernels.iter_mut().zip(GgmlType::ALL) {
            #[allow(unused_mut)] // only x86-64 upgrades the portable entries
            let mut k = portable::kernel(ty);
            #[cfg(target_arch = "x86_64")]
            {
                if level >= SimdLevel::Avx2 {
                    // SAFETY of the entries: the AVX2 set was detected (for_level checks).
                    k = x86_avx2::kernel(ty).or(k);
                }
                if level >= SimdLevel::Avx512 {
                    k = x86_avx512::kernel(ty).or(k);
                }
                if summation::follows_llama_cpp(ty) {
                    k = portable::kernel(ty);
                }
            }
            *slot = k;
        }
        #[allow(unused_mut)]
        let mut rows_kernels = [None; GgmlType::ALL.len()];
        #[cfg(target_arch = "x86_64")]
        if level >= SimdLevel::Avx2 {
            for (slot, ty) in rows_kernels.iter_mut().zip(GgmlType::ALL) {
                *slot = ordered_avx2::kernel(ty);
            }
        }
        #[allow(unused_mut)]
        let mut panel_tile: Option<PanelTile> = Some(panel::panel_tile_portable);
        #[allow(unused_mut)]
        let mut panel_supports: fn(GgmlType) -> bool = panel::supported;
        #[allow(unused_mut)]
        let mut float_panel_tile: Option<FloatPanelTile> = None;
        #[allow(unused_mut)]
        let mut ordered_tile: Option<OrderedTiles> = None;
        #[allow(unused_mut)]
        let mut quantize_block32: QuantizeFn<f32> = super::act_quant::quantize_block32;
        #[allow(unused_mut)]
        let mut quantize_q8k: QuantizeFn<i16> = super::act_quant::quantize_q8k;
        #[cfg(target_arch = "x86_64")]
        {
            if level >= SimdLevel::Avx2 {
                quantize_block32 = x86_avx2::quantize_block32;
                quantize_q8k = x86_avx2::quantize_q8k;
                panel_tile = Some(x86_avx2::panel_tile);
                panel_supports = x86_avx2::panel_supports;
                ordered_tile = Some(OrderedTiles {
                    tile: ordered_tile_avx2::tile,
                    tokens_per_tile: ordered_tile_avx2::tokens_per_tile,
                });
            }
            if level >= SimdLevel::Avx512 {
                panel_tile = Some(x86_avx512::panel_tile);
                panel_supports = panel::supported;
                float_panel_tile = Some(x86_avx512::float_panel_tile);
                ordered_tile = Some(OrderedTiles {
                    tile: ordered_avx512::tile,
                    tokens_per_tile: ordered_avx512::tokens_per_tile,
                });
            }
        }
        KernelTable {
            level,
            kernels,
            rows_kernels,
            panel_tile,
            panel_supports,
            float_panel_tile,
            ordered_tile,
            quantize_block32,
            quantize_q8k,
        }
    }

    pub fn rows_kernel(&self, ty: GgmlType) -> Option<RowsKernel> {
        let index = GgmlType::ALL.iter().position(|t| *t == ty)?;
        self.rows_kernels[index]
    }

    pub fn kernel(&self, ty: GgmlType) -> Option<RowKernel> {
        let index = GgmlType::ALL.iter().position(|t| *t == ty)?;
        self.kernels[index]
    }
}
