//! WGSL sources, assembled per kernel and device feature set from shared pieces.
//!
//! Each kernel file in `shaders/` states what it needs (a `ComputeIn` entry-point input
//! and `workgroup_sum`, the byte readers, a `dequant4` for one weight type); this module
//! concatenates exactly those pieces, so every helper is written once.

use crate::gpu::device::ShaderFeatures;
use crate::quant::GgmlType;

const BYTES: &str = include_str!("../../shaders/common/bytes.wgsl");
const REDUCE_SUBGROUP: &str = include_str!("../../shaders/common/reduce_subgroup.wgsl");
const REDUCE_WORKGROUP: &str = include_str!("../../shaders/common/reduce_workgroup.wgsl");
const F16_UNPACK_BITS: &str = include_str!("../../shaders/common/f16_unpack.wgsl");
const F16_UNPACK_NATIVE: &str = include_str!("../../shaders/common/f16_unpack_native.wgsl");
const F16_PACK: &str = include_str!("../../shaders/common/f16_pack.wgsl");
const KV_F32: &str = include_str!("../../shaders/common/kv_f32.wgsl");
const KV_F16: &str = include_str!("../../shaders/common/kv_f16.wgsl");
const KV_STORE_F32: &str = include_str!("../../shaders/common/kv_store_f32.wgsl");
const KV_STORE_F16: &str = include_str!("../../shaders/common/kv_store_f16.wgsl");
const ELEMENTWISE_OUT: &str = include_str!("../../shaders/common/elementwise_out.wgsl");
const ELEMENTWISE_IN_PLACE: &str = include_str!("../../shaders/common/elementwise_in_place.wgsl");
const RMSNORM_OUT: &str = include_str!("../../shaders/common/rmsnorm_out.wgsl");
const RMSNORM_IN_PLACE: &str = include_str!("../../shaders/common/rmsnorm_in_place.wgsl");
const K_SCALE_MIN: &str = include_str!("../../shaders/dequant/k_scale_min.wgsl");

const MATMUL_IO: &str = include_str!("../../shaders/common/matmul_io.wgsl");
const MATVEC: &str = include_str!("../../shaders/matvec.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const GET_ROWS: &str = include_str!("../../shaders/get_rows.wgsl");
const RMSNORM: &str = include_str!("../../shaders/rmsnorm.wgsl");
const ELEMENTWISE: &str = include_str!("../../shaders/elementwise.wgsl");
const ROPE: &str = include_str!("../../shaders/rope.wgsl");
const ATTENTION: &str = include_str!("../../shaders/attention.wgsl");
const KV_STORE: &str = include_str!("../../shaders/kv_store.wgsl");
const ACT_QUANT: &str = include_str!("../../shaders/act_quant.wgsl");
const ACT_PACK: &str = include_str!("../../shaders/act_pack.wgsl");
const ACT_SCALES: &str = include_str!("../../shaders/common/act_scales.wgsl");
const PACKED_ACTS: &str = include_str!("../../shaders/common/packed_acts.wgsl");
const NIBBLES: &str = include_str!("../../shaders/common/nibbles.wgsl");
const MATVEC_INT: &str = include_str!("../../shaders/matvec_int.wgsl");

/// The most tokens the matrix x vector kernels take (above, the tiled kernel runs).
pub const MAX_MAT_VEC_TOKENS: u8 = 4;

/// Weight types the GPU kernels read (the activation-only Q8_1 and Q8_K are not weights).
pub const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// The `dequant4` helper of a weight type, or `None` when the GPU cannot read it.
fn dequant_source(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::F32 => include_str!("../../shaders/dequant/f32.wgsl"),
        GgmlType::F16 => include_str!("../../shaders/dequant/f16.wgsl"),
        GgmlType::BF16 => include_str!("../../shaders/dequant/bf16.wgsl"),
        GgmlType::Q4_0 => include_str!("../../shaders/dequant/q4_0.wgsl"),
        GgmlType::Q4_1 => include_str!("../../shaders/dequant/q4_1.wgsl"),
        GgmlType::Q5_0 => include_str!("../../shaders/dequant/q5_0.wgsl"),
        GgmlType::Q5_1 => include_str!("../../shaders/dequant/q5_1.wgsl"),
        GgmlType::Q8_0 => include_str!("../../shaders/dequant/q8_0.wgsl"),
        GgmlType::Q2K => include_str!("../../shaders/dequant/q2_k.wgsl"),
        GgmlType::Q3K => include_str!("../../shaders/dequant/q3_k.wgsl"),
        GgmlType::Q4K => include_str!("../../shaders/dequant/q4_k.wgsl"),
        GgmlType::Q5K => include_str!("../../shaders/dequant/q5_k.wgsl"),
        GgmlType::Q6K => include_str!("../../shaders/dequant/q6_k.wgsl"),
        GgmlType::Q8_1 | GgmlType::Q8K => return None,
    })
}

/// The `step_dot` helper of a weight type whose matrix x vector products run on
/// integer dot products against quantized activations, or `None` for the float path.
fn int_dot_source(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::Q4_0 => include_str!("../../shaders/int_dot/q4_0.wgsl"),
        GgmlType::Q4_1 => include_str!("../../shaders/int_dot/q4_1.wgsl"),
        GgmlType::Q5_0 => include_str!("../../shaders/int_dot/q5_0.wgsl"),
        GgmlType::Q5_1 => include_str!("../../shaders/int_dot/q5_1.wgsl"),
        GgmlType::Q8_0 => include_str!("../../shaders/int_dot/q8_0.wgsl"),
        GgmlType::Q4K => include_str!("../../shaders/int_dot/q4_k.wgsl"),
        GgmlType::Q6K => include_str!("../../shaders/int_dot/q6_k.wgsl"),
        _ => return None,
    })
}

/// Elements of a row that one lane of the integer kernel takes per step (a whole number
/// of words of weights): rows must be a multiple of it.
pub fn int_mat_vec_step(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => 64,
        GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q6K => 64,
        _ => 32,
    }
}

/// Whether small batches through weights of this type take the integer kernel
/// ([`Kernel::MatVecInt`]) over activations packed by [`Kernel::ActPack`].
pub fn has_int_mat_vec(ty: GgmlType) -> bool {
    int_dot_source(ty).is_some()
}

/// Whether the GPU kernels can read weights of this type.
pub fn supports_weight_type(ty: GgmlType) -> bool {
    dequant_source(ty).is_some()
}

/// Element-wise operations of a and b (b repeating along a).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Mul,
    /// silu(a) * b (SwiGLU gate).
    SiluMul,
    /// gelu_tanh(a) * b (GeGLU gate).
    GeluMul,
    /// a * s for a scalar parameter s (b is not read).
    Scale,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 5] = [
        BinaryOp::Add,
        BinaryOp::Mul,
        BinaryOp::SiluMul,
        BinaryOp::GeluMul,
        BinaryOp::Scale,
    ];

    fn code(self) -> u32 {
        match self {
            BinaryOp::Add => 0,
            BinaryOp::Mul => 1,
            BinaryOp::SiluMul => 2,
            BinaryOp::GeluMul => 3,
            BinaryOp::Scale => 4,
        }
    }
}

/// Every compute kernel, with what it is specialized for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Matrix x vector over f32 activations, for `n_tokens` (1 to 4) tokens.
    MatVec {
        ty: GgmlType,
        n_tokens: u8,
    },
    /// Matrix x vector by integer dot products over packed activations.
    MatVecInt {
        ty: GgmlType,
        n_tokens: u8,
    },
    MatMul(GgmlType),
    GetRows(GgmlType),
    /// RMS normalization into a separate output or in place.
    RmsNorm {
        in_place: bool,
    },
    /// An element-wise op into a separate output or in place (into a).
    Binary {
        op: BinaryOp,
        in_place: bool,
    },
    Rope,
    /// Streaming (online-softmax) attention over a KV cache of f32 (`f16_kv: false`) or
    /// packed f16 values.
    Attention {
        f16_kv: bool,
    },
    /// Appends keys or values to a KV cache of f32 or packed f16 values.
    KvStore {
        f16_kv: bool,
    },
    /// Rounds activations as the CPU quantizes them, in blocks of 32 or 256.
    ActQuant {
        block256: bool,
    },
    /// Quantizes activations into codes, block scales and sums of 16 codes, in blocks of
    /// 32 or 256 (the input of [`Kernel::MatVecInt`]).
    ActPack {
        block256: bool,
    },
}

fn suffix(in_place: bool) -> &'static str {
    if in_place {
        "_in_place"
    } else {
        ""
    }
}

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

impl Kernel {
    /// Every kernel variant tandem builds.
    pub fn all() -> Vec<Kernel> {
        let mut all = Vec::new();
        for ty in WEIGHT_TYPES {
            all.extend([Kernel::MatMul(ty), Kernel::GetRows(ty)]);
            for n_tokens in 1..=MAX_MAT_VEC_TOKENS {
                all.push(Kernel::MatVec { ty, n_tokens });
                if has_int_mat_vec(ty) {
                    all.push(Kernel::MatVecInt { ty, n_tokens });
                }
            }
        }
        all.push(Kernel::Rope);
        for flag in [false, true] {
            all.extend([
                Kernel::RmsNorm { in_place: flag },
                Kernel::Attention { f16_kv: flag },
                Kernel::KvStore { f16_kv: flag },
                Kernel::ActQuant { block256: flag },
                Kernel::ActPack { block256: flag },
            ]);
            all.extend(BinaryOp::ALL.map(|op| Kernel::Binary { op, in_place: flag }));
        }
        all
    }

    /// The storage bindings, in binding order; the uniform parameters follow them.
    pub fn storage_bindings(self) -> &'static [Access] {
        use Access::*;
        match self {
            Kernel::MatVec { .. }
            | Kernel::MatVecInt { .. }
            | Kernel::MatMul(_)
            | Kernel::GetRows(_)
            | Kernel::RmsNorm { in_place: false }
            | Kernel::Binary {
                in_place: false, ..
            } => &[Read, Read, ReadWrite],
            Kernel::RmsNorm { in_place: true } | Kernel::Binary { in_place: true, .. } => {
                &[ReadWrite, Read]
            }
            Kernel::Rope => &[ReadWrite, Read, Read],
            Kernel::Attention { .. } => &[Read, Read, Read, ReadWrite, Read],
            Kernel::KvStore { .. } => &[Read, ReadWrite, Read],
            Kernel::ActQuant { .. } | Kernel::ActPack { .. } => &[Read, ReadWrite],
        }
    }

    /// Invocations per workgroup (as written in the kernel's WGSL).
    pub fn workgroup_size(self) -> u32 {
        match self {
            Kernel::MatMul(_) | Kernel::Binary { .. } | Kernel::Rope | Kernel::KvStore { .. } => {
                256
            }
            _ => 64,
        }
    }

    /// A short name for labels and test messages.
    pub fn name(self) -> String {
        match self {
            Kernel::MatVec { ty, n_tokens } => format!("matvec_{}_x{n_tokens}", ty.name()),
            Kernel::MatVecInt { ty, n_tokens } => {
                format!("matvec_int_{}_x{n_tokens}", ty.name())
            }
            Kernel::MatMul(t) => format!("matmul_{}", t.name()),
            Kernel::GetRows(t) => format!("get_rows_{}", t.name()),
            Kernel::RmsNorm { in_place } => format!("rmsnorm{}", suffix(in_place)),
            Kernel::Binary { op, in_place } => format!("binary_{op:?}{}", suffix(in_place)),
            Kernel::Rope => "rope".into(),
            Kernel::Attention { f16_kv: false } => "attention".into(),
            Kernel::Attention { f16_kv: true } => "attention_f16_kv".into(),
            Kernel::KvStore { f16_kv: false } => "kv_store".into(),
            Kernel::KvStore { f16_kv: true } => "kv_store_f16".into(),
            Kernel::ActQuant { block256: false } => "act_quant_32".into(),
            Kernel::ActQuant { block256: true } => "act_quant_256".into(),
            Kernel::ActPack { block256: false } => "act_pack_32".into(),
            Kernel::ActPack { block256: true } => "act_pack_256".into(),
        }
    }

    /// The complete WGSL module for this kernel on a device with `features`.
    pub fn source(self, features: ShaderFeatures) -> anyhow::Result<String> {
        let mut parts: Vec<&str> = Vec::new();
        if features.f16 {
            parts.push("enable f16;\n");
        }
        parts.push(if features.subgroup {
            REDUCE_SUBGROUP
        } else {
            REDUCE_WORKGROUP
        });
        let f16_unpack = if features.f16 {
            F16_UNPACK_NATIVE
        } else {
            F16_UNPACK_BITS
        };
        let op_const;
        match self {
            Kernel::MatVecInt { ty, n_tokens } => {
                let dot = int_dot_source(ty).ok_or_else(|| {
                    anyhow::anyhow!("no integer matrix x vector kernel for {}", ty.name())
                })?;
                // The weights are read as vec4s here, so no byte reader joins in.
                op_const = format!(
                    "const N_TOKENS: u32 = {n_tokens}u;\nconst BLOCK_ELEMS: u32 = {}u;\n\
                     const BLOCK_BYTES: u32 = {}u;\n",
                    ty.block_elems(),
                    ty.block_bytes()
                );
                parts.extend([op_const.as_str(), f16_unpack, NIBBLES, PACKED_ACTS, dot]);
                parts.push(MATVEC_INT);
            }
            Kernel::MatVec { ty, .. } | Kernel::MatMul(ty) | Kernel::GetRows(ty) => {
                let dequant = dequant_source(ty).ok_or_else(|| {
                    anyhow::anyhow!("the GPU kernels cannot read {} weights", ty.name())
                })?;
                parts.push(BYTES);
                parts.push(f16_unpack);
                if matches!(ty, GgmlType::Q4K | GgmlType::Q5K) {
                    parts.push(K_SCALE_MIN);
                }
                parts.push(dequant);
                match self {
                    Kernel::MatVec { n_tokens, .. } => {
                        op_const = format!("const N_TOKENS: u32 = {n_tokens}u;\n");
                        parts.extend([op_const.as_str(), MATMUL_IO, MATVEC]);
                    }
                    Kernel::MatMul(_) => parts.extend([MATMUL_IO, MATMUL]),
                    _ => parts.push(GET_ROWS),
                }
            }
            Kernel::RmsNorm { in_place } => {
                parts.push(if in_place {
                    RMSNORM_IN_PLACE
                } else {
                    RMSNORM_OUT
                });
                parts.push(RMSNORM);
            }
            Kernel::Binary { op, in_place } => {
                op_const = format!("const OP: u32 = {}u;\n", op.code());
                parts.extend([op_const.as_str(), F16_PACK, f16_unpack]);
                parts.push(if in_place {
                    ELEMENTWISE_IN_PLACE
                } else {
                    ELEMENTWISE_OUT
                });
                parts.push(ELEMENTWISE);
            }
            Kernel::Rope => parts.push(ROPE),
            Kernel::Attention { f16_kv } => {
                parts.extend([F16_PACK, f16_unpack]);
                if f16_kv {
                    parts.push(KV_F16);
                } else {
                    parts.push(KV_F32);
                }
                parts.push(ATTENTION);
            }
            Kernel::KvStore { f16_kv } => {
                if f16_kv {
                    parts.extend([F16_PACK, KV_STORE_F16]);
                } else {
                    parts.push(KV_STORE_F32);
                }
                parts.push(KV_STORE);
            }
            Kernel::ActQuant { block256 } => {
                op_const = format!("const BLOCK: u32 = {}u;\n", if block256 { 256 } else { 32 });
                parts.extend([
                    op_const.as_str(),
                    F16_PACK,
                    f16_unpack,
                    ACT_SCALES,
                    ACT_QUANT,
                ]);
            }
            Kernel::ActPack { block256 } => {
                op_const = format!("const BLOCK: u32 = {}u;\n", if block256 { 256 } else { 32 });
                parts.extend([
                    op_const.as_str(),
                    F16_PACK,
                    f16_unpack,
                    ACT_SCALES,
                    ACT_PACK,
                ]);
            }
        }
        Ok(parts.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_follow_the_subgroup_feature() {
        for features in ShaderFeatures::ALL {
            let src = Kernel::MatVec {
                ty: GgmlType::Q4K,
                n_tokens: 1,
            }
            .source(features)
            .unwrap();
            assert_eq!(src.contains("subgroupAdd"), features.subgroup);
            assert_eq!(src.starts_with("enable f16;"), features.f16);
            assert_eq!(src.contains("return unpack2x16float("), features.f16);
            // Helpers are included once, not copied per type.
            assert_eq!(src.matches("fn ld_u32(").count(), 1);
            assert_eq!(src.matches("fn k_scale_min(").count(), 1);
        }
    }

    #[test]
    fn attention_reductions_and_half_unpacking_follow_the_features() {
        for features in ShaderFeatures::ALL {
            for f16_kv in [false, true] {
                let src = Kernel::Attention { f16_kv }.source(features).unwrap();
                assert_eq!(src.contains("subgroupMax"), features.subgroup);
                assert_eq!(src.contains("fn half_at("), f16_kv);
                // Halves are unpacked (the f16 cache, the f16 accumulator) with the
                // hardware conversion where the device has one.
                assert_eq!(src.contains("return unpack2x16float("), features.f16);
            }
        }
    }

    #[test]
    fn only_weight_types_get_weight_kernels() {
        let q8k = Kernel::MatVec {
            ty: GgmlType::Q8K,
            n_tokens: 1,
        };
        assert!(q8k.source(ShaderFeatures::default()).is_err());
        assert!(WEIGHT_TYPES.iter().all(|&t| supports_weight_type(t)));
        // The non-weight kernels do not include the weight byte readers.
        let norm = Kernel::RmsNorm { in_place: false }
            .source(ShaderFeatures::default())
            .unwrap();
        assert!(!norm.contains("fn ld_u8("));
    }
}
