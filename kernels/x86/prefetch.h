/* Software prefetch of a kernel's weight stream (I2_S and TL, AVX2 and AVX-512), on Intel
 * CPUs only: prefetcht1 (into L2) 4 KiB ahead.
 *
 * Why: on an Emerald-Rapids-class Xeon (model 207, KVM guest, 2026-11-28, `cold_timing`,
 * whose "read 1t" column reads the same rotated copies with the streaming probe's loop), the
 * DRAM-resident 1-thread I2_S AVX-512 GEMV ran at 70-76 % of a plain read of the same bytes
 * with the former prefetcht0 1 KiB ahead, and at 91-96 % with prefetcht1 4 KiB ahead
 * (i2s_timing 6912x2560 cold: 355 -> 290 us AVX-512, 426 -> 361 us AVX2; TL1/TL2 cold 12-19 %
 * faster); 2 KiB or T0 at 4 KiB were in between, 8-16 KiB no better. The cost: a matrix
 * resident in L3 (warm) runs about 5-9 % slower (I2_S 143 -> 151 us, TL2 int4 126 -> 137 us),
 * since lines arrive in L2, not L1. On a Sapphire-Rapids-class Xeon (2026-11-23) prefetcht0 1 KiB ahead had made the
 * DRAM-resident GEMV 13.4 -> 14.9 GB/s; on Zen 4 every distance from 0.5 to 16 KiB was as fast
 * or 10-50 % slower than the hardware prefetchers alone, hence Intel only.
 * Prefetches never fault, so reading ahead past the end of the weights is harmless. */
#ifndef BITNET_X86_PREFETCH_H
#define BITNET_X86_PREFETCH_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h> /* __cpuid */
#else
#include <cpuid.h> /* __get_cpuid (GCC, Clang, MinGW) */
#endif

/* How far ahead, and into which level (both overridable with -D for A/B runs). */
#ifndef BITNET_PREFETCH_BYTES
#define BITNET_PREFETCH_BYTES 4096
#endif
#ifndef BITNET_PF_HINT
#define BITNET_PF_HINT _MM_HINT_T1
#endif

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

/* Prefetch the `lines` cache lines starting BITNET_PREFETCH_BYTES past p into L2 (pf = 0: none). */
#define BITNET_PREFETCH_AHEAD(pf, p, lines)                                                 \
    do {                                                                                    \
        if (pf)                                                                             \
            for (int l_ = 0; l_ < (lines); l_++)                                            \
                _mm_prefetch((const char *)(p) + BITNET_PREFETCH_BYTES + 64 * l_, BITNET_PF_HINT); \
    } while (0)

/* The 3-bit KV-cache kernels (kv3_*.c) read each KV head's code rows in one sequential pass,
 * a few rows at a time, with little work per byte: they prefetch the `bytes` bytes that start
 * BITNET_KV_PREFETCH_BYTES past p, one prefetch per 64 bytes (consecutive calls cover
 * consecutive ranges, so every line of the stream is prefetched once, whatever the row length).
 * prefetcht0 (into L1), 4 KiB ahead: measured in docs/performance.md (the KV section). */
#ifndef BITNET_KV_PREFETCH_BYTES
#define BITNET_KV_PREFETCH_BYTES 4096
#endif
#ifndef BITNET_KV_PF_HINT
#define BITNET_KV_PF_HINT _MM_HINT_T0
#endif
#define BITNET_KV_PREFETCH(pf, p, bytes)                                                    \
    do {                                                                                    \
        if (pf)                                                                             \
            for (size_t o_ = 0; o_ < (size_t)(bytes); o_ += 64)                             \
                _mm_prefetch((const char *)(p) + BITNET_KV_PREFETCH_BYTES + o_,            \
                             BITNET_KV_PF_HINT);                                            \
    } while (0)

/* The next stream: besides its own rows, a KV kernel is given the region (pf, pf_len) that
 * its caller reads next (attention: during the dot over K of a KV head, V of that head; during
 * the V sum, K of the next head), and prefetches every cache line of it into L2 (prefetcht1),
 * spread evenly over `steps` steps of its own work, so that the next stream's DRAM transfer
 * overlaps this kernel's (and the Rust passes') computation instead of starting when the next
 * kernel does. A hint only: the region is never read (its lines are rounded out to 64 bytes,
 * which a prefetch may touch without fault). Off (no prefetches) when on = 0, pf is null or
 * pf_len or steps is 0. Each step prefetches the same number of lines, ceil(lines / steps),
 * until none is left (a loop of constant trip count: a count that varied from step to step,
 * as an exact even spread needs, cost a branch miss a step, measurable in cache), so after
 * `steps` calls of bitnet_kv_next_step every line has been prefetched once. */
#ifndef BITNET_KV_NEXT_HINT
#define BITNET_KV_NEXT_HINT _MM_HINT_T1
#endif
typedef struct {
    const char *p; /* the next line to prefetch */
    size_t left;   /* lines left */
    size_t per;    /* lines a step */
} bitnet_kv_next;

static inline bitnet_kv_next bitnet_kv_next_new(int on, const uint8_t *pf, size_t pf_len,
                                                size_t steps) {
    bitnet_kv_next s = {0, 0, 0};
    if (on && pf && pf_len && steps) {
        const uintptr_t a = (uintptr_t)pf & ~(uintptr_t)63;
        const uintptr_t e = ((uintptr_t)pf + pf_len + 63) & ~(uintptr_t)63;
        s.p = (const char *)a;
        s.left = (size_t)(e - a) / 64;
        s.per = (s.left + steps - 1) / steps;
    }
    return s;
}

/* One step of the kernel's work: its lines. */
static inline void bitnet_kv_next_step(bitnet_kv_next *s) {
    if (s->left >= s->per) {
        for (size_t i = 0; i < s->per; i++) _mm_prefetch(s->p + 64 * i, BITNET_KV_NEXT_HINT);
        s->p += 64 * s->per;
        s->left -= s->per;
    } else {
        for (size_t i = 0; i < s->left; i++) _mm_prefetch(s->p + 64 * i, BITNET_KV_NEXT_HINT);
        s->p += 64 * s->left;
        s->left = 0;
    }
}

#endif
