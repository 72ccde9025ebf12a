//! AVX2 + FMA + F16C kernels.

use crate::quant::GgmlType;

use super::RowKernel;

pub fn kernel(_ty: GgmlType) -> Option<RowKernel> {
    None
}
