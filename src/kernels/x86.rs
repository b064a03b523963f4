//! The x86-64 kernel sets: C files in `kernels/x86/`, one row each in the table below.

#![allow(unused_imports)]
use super::{cpu, FormatKernels, KernelSet, KvKernels, TableKernels};

c_kernels! {
    I2S_AVX2:   bitnet_i2s_avx2       => bitnet_i2s_gemv_avx2,       bitnet_i2s_gemm_avx2       if cpu::always;
    I2S_AVX512: bitnet_i2s_avx512     => bitnet_i2s_gemv_avx512,     bitnet_i2s_gemm_avx512     if cpu::always;
    TL1_AVX2:   bitnet_tl1_avx2       => bitnet_tl1_gemv_avx2,       bitnet_tl1_gemm_avx2       if cpu::always,
        tables bitnet_tl1_table_step_avx2, bitnet_tl1_table_avx2, bitnet_tl1_gemv_table_avx2;
    TL2_AVX2:   bitnet_tl2_avx2       => bitnet_tl2_gemv_avx2,       bitnet_tl2_gemm_avx2       if cpu::always,
        tables bitnet_tl2_table_step_avx2, bitnet_tl2_table_avx2, bitnet_tl2_gemv_table_avx2;
    I2S_COL_AVX2:   bitnet_i2s_col_avx2   => bitnet_i2s_col_gemv_avx2,   bitnet_i2s_col_gemm_avx2   if cpu::always => strided;
    I2S_COL_AVX512: bitnet_i2s_col_avx512 => bitnet_i2s_col_gemv_avx512, bitnet_i2s_col_gemm_avx512 if cpu::always => strided;
    // The lookup-table files use VBMI byte permutes; the I2_S one must run without them.
    TL1_AVX512: bitnet_tl1_avx512vbmi => bitnet_tl1_gemv_avx512vbmi, bitnet_tl1_gemm_avx512vbmi if cpu::avx512vbmi,
        tables bitnet_tl1_table_step_avx512vbmi, bitnet_tl1_table_avx512vbmi, bitnet_tl1_gemv_table_avx512vbmi;
    TL2_AVX512: bitnet_tl2_avx512vbmi => bitnet_tl2_gemv_avx512vbmi, bitnet_tl2_gemm_avx512vbmi if cpu::avx512vbmi,
        tables bitnet_tl2_table_step_avx512vbmi, bitnet_tl2_table_avx512vbmi, bitnet_tl2_gemv_table_avx512vbmi;
    // TL1 / TL2 for int4 activations (one-byte tables): the int4 forms of the rows above.
    TL1I4_AVX2:   bitnet_tl1i4_avx2     => bitnet_tl1i4_gemv_avx2,     bitnet_tl1i4_gemm_avx2     if cpu::always,
        tables bitnet_tl1i4_table_step_avx2, bitnet_tl1i4_table_avx2, bitnet_tl1i4_gemv_table_avx2;
    TL1I4_AVX512: bitnet_tl1i4_avx512vbmi => bitnet_tl1i4_gemv_avx512vbmi, bitnet_tl1i4_gemm_avx512vbmi if cpu::avx512vbmi,
        tables bitnet_tl1i4_table_step_avx512vbmi, bitnet_tl1i4_table_avx512vbmi, bitnet_tl1i4_gemv_table_avx512vbmi;
    TL2I4_AVX2:   bitnet_tl2i4_avx2     => bitnet_tl2i4_gemv_avx2,     bitnet_tl2i4_gemm_avx2     if cpu::always,
        tables bitnet_tl2i4_table_step_avx2, bitnet_tl2i4_table_avx2, bitnet_tl2i4_gemv_table_avx2;
    TL2I4_AVX512: bitnet_tl2i4_avx512vbmi => bitnet_tl2i4_gemv_avx512vbmi, bitnet_tl2i4_gemm_avx512vbmi if cpu::avx512vbmi,
        tables bitnet_tl2i4_table_step_avx512vbmi, bitnet_tl2i4_table_avx512vbmi, bitnet_tl2i4_gemv_table_avx512vbmi;
}

kv_kernels! {
    KV3_AVX2:   bitnet_kv3_avx2   => bitnet_kv3_dot_avx2,   bitnet_kv3_wsum_avx2   if cpu::always;
    // VBMI byte permutes unpack the codes; where they are missing the AVX2 kernels serve.
    KV3_AVX512: bitnet_kv3_avx512vbmi => bitnet_kv3_dot_avx512vbmi, bitnet_kv3_wsum_avx512vbmi,
        scores bitnet_kv3_scores_avx512vbmi if cpu::avx512vbmi;
}

/// AVX2 + FMA (Haswell and later, Zen 1 and later).
pub(super) static AVX2: KernelSet = KernelSet {
    name: "avx2",
    is_available: cpu::avx2,
    i2s: I2S_AVX2,
    tl1: FormatKernels::with_i4(TL1_AVX2, TL1I4_AVX2),
    tl2: FormatKernels::with_i4(TL2_AVX2, TL2I4_AVX2),
    i2s_col: I2S_COL_AVX2,
    act: super::act::AVX2,
    kv3: KV3_AVX2,
};

/// AVX-512 F/BW/VL with VNNI (`vpdpbusd`): Ice Lake, Cascade Lake, Sapphire Rapids, Zen 4
/// and later. Its TL1 / TL2 also need VBMI; where it is missing they come from [`AVX2`].
pub(super) static AVX512: KernelSet = KernelSet {
    name: "avx512",
    is_available: cpu::avx512,
    i2s: I2S_AVX512,
    tl1: FormatKernels::with_i4(TL1_AVX512, TL1I4_AVX512),
    tl2: FormatKernels::with_i4(TL2_AVX512, TL2I4_AVX512),
    i2s_col: I2S_COL_AVX512,
    act: super::act::AVX512,
    kv3: KV3_AVX512,
};
