//! AVX-512 (F/BW/VL) + VNNI kernels.

use crate::quant::GgmlType;

use super::RowKernel;

pub fn kernel(_ty: GgmlType) -> Option<RowKernel> {
    None
}
