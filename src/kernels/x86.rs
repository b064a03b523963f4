//! The x86-64 kernel sets: C files in `kernels/x86/`, each compiled by `build.rs` with its
//! own target flags, which sets `cfg(bitnet_<file stem>)` for every file it compiled.

#![allow(unused_imports)]
use super::{FormatKernels, KernelSet};

fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

fn has_avx512() -> bool {
    has_avx2()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// For kernels that also use VBMI byte permutes (`vpermb`, `vpermi2b`).
#[allow(dead_code)]
fn has_avx512vbmi() -> bool {
    has_avx512() && std::arch::is_x86_feature_detected!("avx512vbmi")
}

#[allow(dead_code)]
fn yes() -> bool {
    true
}

c_kernels!(
    bitnet_i2s_avx2,
    I2S_AVX2,
    bitnet_i2s_gemv_avx2,
    bitnet_i2s_gemm_avx2,
    yes
);
c_kernels!(
    bitnet_i2s_avx512,
    I2S_AVX512,
    bitnet_i2s_gemv_avx512,
    bitnet_i2s_gemm_avx512,
    yes
);

c_kernels!(
    bitnet_tl1_avx2,
    TL1_AVX2,
    bitnet_tl1_gemv_avx2,
    bitnet_tl1_gemm_avx2,
    yes
);
c_kernels!(
    bitnet_tl2_avx2,
    TL2_AVX2,
    bitnet_tl2_gemv_avx2,
    bitnet_tl2_gemm_avx2,
    yes
);
c_kernels!(
    bitnet_tl1_avx512vbmi,
    TL1_AVX512,
    bitnet_tl1_gemv_avx512vbmi,
    bitnet_tl1_gemm_avx512vbmi,
    has_avx512vbmi
);
c_kernels!(
    bitnet_tl2_avx512vbmi,
    TL2_AVX512,
    bitnet_tl2_gemv_avx512vbmi,
    bitnet_tl2_gemm_avx512vbmi,
    has_avx512vbmi
);

/// AVX2 + FMA (Haswell and later, Zen 1 and later).
pub static AVX2: KernelSet = KernelSet {
    name: "avx2",
    is_available: has_avx2,
    i2s: I2S_AVX2,
    tl1: TL1_AVX2,
    tl2: TL2_AVX2,
};

/// AVX-512 F/BW/VL with VNNI (`vpdpbusd`): Ice Lake, Sapphire Rapids, Zen 4 and later.
pub static AVX512: KernelSet = KernelSet {
    name: "avx512",
    is_available: has_avx512,
    i2s: I2S_AVX512,
    tl1: TL1_AVX512,
    tl2: TL2_AVX512,
};
