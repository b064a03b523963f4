//! The AArch64 kernel sets: C files in `kernels/arm/`, each compiled by `build.rs` with its
//! own target flags, which sets `cfg(bitnet_<file stem>)` for every file it compiled.
//!
//! Two sets, chosen at run time, named after the instructions they need:
//! - `neon-dotprod`: ARMv8.2-A with the dot-product extension (`sdot`; Cortex-A55/A76 and
//!   later, Neoverse N1/V1/N2, Apple M1 and later); files `*_dotprod.c`.
//! - `neon`: plain ARMv8-A Advanced SIMD, every AArch64 core (`smull`/`smlal`/`sadalp`);
//!   files `*_neon.c`.
//!
//! `BITNET_KERNEL=neon-dotprod` or `BITNET_KERNEL=neon` forces one of them.

#![allow(unused_imports)]
use super::{always, FormatKernels, KernelSet};

fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

fn has_dotprod() -> bool {
    has_neon() && std::arch::is_aarch64_feature_detected!("dotprod")
}

c_kernels!(
    bitnet_i2s_neon,
    I2S_NEON,
    bitnet_i2s_gemv_neon,
    bitnet_i2s_gemm_neon,
    always
);
c_kernels!(
    bitnet_i2s_dotprod,
    I2S_DOTPROD,
    bitnet_i2s_gemv_dotprod,
    bitnet_i2s_gemm_dotprod,
    always
);

c_kernels!(
    bitnet_tl1_neon,
    TL1_NEON,
    bitnet_tl1_gemv_neon,
    bitnet_tl1_gemm_neon,
    always
);
c_kernels!(
    bitnet_tl2_neon,
    TL2_NEON,
    bitnet_tl2_gemv_neon,
    bitnet_tl2_gemm_neon,
    always
);

/// ARMv8.2-A Advanced SIMD with the dot-product extension (`sdot`). Its TL1 / TL2 come from
/// [`NEON`] (the lookup-table kernels use `tbl`, not `sdot`): `kernels_for` falls back to it.
pub static NEON_DOTPROD: KernelSet = KernelSet {
    name: "neon-dotprod",
    is_available: has_dotprod,
    i2s: I2S_DOTPROD,
    tl1: None,
    tl2: None,
};

/// Plain ARMv8-A Advanced SIMD: every AArch64 core.
pub static NEON: KernelSet = KernelSet {
    name: "neon",
    is_available: has_neon,
    i2s: I2S_NEON,
    tl1: TL1_NEON,
    tl2: TL2_NEON,
};
