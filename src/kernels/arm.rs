//! The AArch64 kernel sets: C files in `kernels/arm/`, one row each in the table below.
//!
//! Two sets, chosen at run time, named after the instructions they need:
//! - `neon-dotprod`: ARMv8.2-A with the dot-product extension (`sdot`); files `*_dotprod.c`.
//! - `neon`: plain ARMv8-A Advanced SIMD, every AArch64 core (`smull`/`smlal`/`sadalp`);
//!   files `*_neon.c`.

#![allow(unused_imports)]
use super::{cpu, FormatKernels, KernelSet, KvKernels, TableKernels};

c_kernels! {
    I2S_NEON:    bitnet_i2s_neon    => bitnet_i2s_gemv_neon,    bitnet_i2s_gemm_neon    if cpu::always;
    I2S_DOTPROD: bitnet_i2s_dotprod => bitnet_i2s_gemv_dotprod, bitnet_i2s_gemm_dotprod if cpu::always;
    TL1_NEON:    bitnet_tl1_neon    => bitnet_tl1_gemv_neon,    bitnet_tl1_gemm_neon    if cpu::always,
        tables bitnet_tl1_table_step_neon, bitnet_tl1_table_neon, bitnet_tl1_gemv_table_neon;
    TL2_NEON:    bitnet_tl2_neon    => bitnet_tl2_gemv_neon,    bitnet_tl2_gemm_neon    if cpu::always,
        tables bitnet_tl2_table_step_neon, bitnet_tl2_table_neon, bitnet_tl2_gemv_table_neon;
    // TL1 / TL2 for int4 activations (one-byte tables): the int4 forms of TL1_NEON, TL2_NEON.
    TL1I4_NEON:  bitnet_tl1i4_neon  => bitnet_tl1i4_gemv_neon,  bitnet_tl1i4_gemm_neon  if cpu::always,
        tables bitnet_tl1i4_table_step_neon, bitnet_tl1i4_table_neon, bitnet_tl1i4_gemv_table_neon;
    TL2I4_NEON:  bitnet_tl2i4_neon  => bitnet_tl2i4_gemv_neon,  bitnet_tl2i4_gemm_neon  if cpu::always,
        tables bitnet_tl2i4_table_step_neon, bitnet_tl2i4_table_neon, bitnet_tl2i4_gemv_table_neon;
    I2S_COL_NEON: bitnet_i2s_col_neon => bitnet_i2s_col_gemv_neon, bitnet_i2s_col_gemm_neon if cpu::always => strided;
}

kv_kernels! {
    KV3_NEON: bitnet_kv3_neon => bitnet_kv3_dot_neon, bitnet_kv3_wsum_neon if cpu::always;
}

/// ARMv8.2-A Advanced SIMD with the dot-product extension (`sdot`). Its TL1 / TL2 come from
/// [`NEON`] (the lookup-table kernels use `tbl`, not `sdot`).
pub(super) static NEON_DOTPROD: KernelSet = KernelSet {
    name: "neon-dotprod",
    is_available: cpu::dotprod,
    i2s: I2S_DOTPROD,
    tl1: None,
    tl2: None,
    i2s_col: None,
    act: super::act::NEON,
    kv3: None,
};

/// Plain ARMv8-A Advanced SIMD: every AArch64 core.
pub(super) static NEON: KernelSet = KernelSet {
    name: "neon",
    is_available: cpu::neon,
    i2s: I2S_NEON,
    tl1: FormatKernels::with_i4(TL1_NEON, TL1I4_NEON),
    tl2: FormatKernels::with_i4(TL2_NEON, TL2I4_NEON),
    i2s_col: I2S_COL_NEON,
    act: super::act::NEON,
    kv3: KV3_NEON,
};
