/* Software prefetch of a kernel's weight stream (I2_S and TL, AVX2 and AVX-512), on Intel
 * CPUs only.
 *
 * Why only Intel: on a Sapphire-Rapids-class Xeon (KVM guest, 2026-11-23), prefetcht0
 * 1 KiB ahead of the stream made a 1 GiB streaming read 16 -> 18.5-20 GB/s, the
 * DRAM-resident I2_S AVX-512 GEMV 13.4 -> 14.9 GB/s and the TL2 one 11.7 -> 13.2 GB/s
 * (6912x2560, same-run A/B), with 256-1024 B about equal and 2-4 KiB slower than none; on Zen 4 (KVM guest, same day) every distance from
 * 0.5 to 16 KiB was as fast or 10-50 % slower than the hardware prefetchers alone.
 * Prefetches never fault, so reading ahead past the end of the weights is harmless. */
#ifndef BITNET_X86_PREFETCH_H
#define BITNET_X86_PREFETCH_H

#include <immintrin.h>
#include <stdint.h>
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h> /* __cpuid */
#else
#include <cpuid.h> /* __get_cpuid (GCC, Clang, MinGW) */
#endif

#define BITNET_PREFETCH_BYTES 1024

/* 1 on a GenuineIntel CPU, else 0; cpuid runs once per translation unit. The cache is read
 * and written with relaxed atomics (GCC / Clang builtins), or on MSVC a volatile int (an
 * aligned int access is atomic on x86): racing first calls all store the same value. */
static inline int bitnet_x86_is_intel(void) {
#if defined(_MSC_VER) && !defined(__clang__)
    int r[4]; /* eax, ebx, ecx, edx */
    __cpuid(r, 0);
    return (unsigned)r[1] == 0x756e6547u /* Genu */ &&
           (unsigned)r[3] == 0x49656e69u /* ineI */ && (unsigned)r[2] == 0x6c65746eu /* ntel */;
#else
    unsigned a, b, c, d;
    return __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u /* Genu */ &&
           d == 0x49656e69u /* ineI */ && c == 0x6c65746eu /* ntel */;
#endif
}

static inline int bitnet_x86_prefetch_on(void) {
#if defined(_MSC_VER) && !defined(__clang__)
    static volatile int cached = -1;
    int v = cached;
    if (v < 0) cached = v = bitnet_x86_is_intel();
#else
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = bitnet_x86_is_intel();
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
#endif
    return v;
}

/* Prefetch the `lines` cache lines starting BITNET_PREFETCH_BYTES past p (pf = 0: none). */
#define BITNET_PREFETCH_AHEAD(pf, p, lines)                                                 \
    do {                                                                                    \
        if (pf)                                                                             \
            for (int l_ = 0; l_ < (lines); l_++)                                            \
                _mm_prefetch((const char *)(p) + BITNET_PREFETCH_BYTES + 64 * l_, _MM_HINT_T0); \
    } while (0)

#endif
