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

#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>

#define BITNET_PREFETCH_BYTES 1024

/* 1 on a GenuineIntel CPU, else 0; cpuid runs once per translation unit (relaxed atomics:
 * racing first calls all store the same value). */
static inline int bitnet_x86_prefetch_on(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        unsigned a, b, c, d;
        v = __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u /* Genu */ &&
            d == 0x49656e69u /* ineI */ && c == 0x6c65746eu /* ntel */;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
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
