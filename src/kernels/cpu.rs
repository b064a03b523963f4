//! Every run-time CPU check the kernel sets make, in one place.
//!
//! Each check covers the target flags its C files are compiled with (`build.rs` gives every
//! file exactly its ISA suffix's flags; the GCC/Clang spelling is shown below), so a set is
//! offered only on a CPU that can execute every instruction its files may contain. `std`'s
//! detection macros cache their answer, so these are cheap enough to ask on every call.
//! `docs/kernels.md` lists the sets and what each needs.

/// For the reference set and for kernels that need nothing beyond their set's check.
pub(crate) fn always() -> bool {
    true
}

/// `*_avx2.c` (`-mavx2 -mfma`): AVX2 with FMA (Haswell and later, Zen 1 and later).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `*_avx512.c` (the AVX2 flags plus `-mavx512f -mavx512bw -mavx512vl -mavx512vnni`):
/// Ice Lake, Cascade Lake, Sapphire Rapids, Zen 4 and later.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    avx2()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// `*_avx512vbmi.c` (the AVX-512 flags plus `-mavx512vbmi`): byte permutes (`vpermb`,
/// `vpermi2b`); Ice Lake and Zen 4 have them, Cascade Lake does not.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512vbmi() -> bool {
    avx512() && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// `*_neon.c` (`-march=armv8-a`): Advanced SIMD, present on every AArch64 core.
#[cfg(target_arch = "aarch64")]
pub(crate) fn neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

/// `*_dotprod.c` (`-march=armv8.2-a+dotprod`): the dot-product extension (`sdot`;
/// Cortex-A55/A76 and later, Neoverse N1/V1/N2, Apple M1 and later).
#[cfg(target_arch = "aarch64")]
pub(crate) fn dotprod() -> bool {
    neon() && std::arch::is_aarch64_feature_detected!("dotprod")
}
