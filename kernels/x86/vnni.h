/* DPBUSD(acc, a, b): acc += u8(a) . s8(b) per int32 lane (AVX-512 VNNI vpdpbusd, 512-bit),
 * the one definition used by i2s_avx512.c and the AVX-512 TL kernels (tl_common.h).
 *
 * Inline asm where available: from the intrinsic, GCC 12 copied every accumulator through a
 * second register around each vpdpbusd and folded the shared activation loads into every
 * use (re-reading each vector 4 times), which doubled the time of the I2_S GEMV loop. "v"
 * keeps both sources in registers. Elsewhere (MSVC, or -DBITNET_NO_INLINE_ASM) the
 * intrinsic, which is the same instruction and so the same result. */
#ifndef BITNET_X86_VNNI_H
#define BITNET_X86_VNNI_H

#include <immintrin.h>
#include <stdint.h>

#include "kernels.h"

#if BITNET_INLINE_ASM
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))
#else
#define DPBUSD(acc, a, b) ((acc) = _mm512_dpbusd_epi32((acc), (a), (b)))
#endif

/* DPBUSD_BCAST(acc, a, p): DPBUSD by the int32 at p broadcast to every lane, as an embedded
 * broadcast memory operand (a load, no shuffle port). */
#if BITNET_INLINE_ASM
#define DPBUSD_BCAST(acc, a, p)                                                                 \
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*(const int32_t *)(p)))
#else
#define DPBUSD_BCAST(acc, a, p) \
    ((acc) = _mm512_dpbusd_epi32((acc), (a), _mm512_set1_epi32(*(const int32_t *)(p))))
#endif

#endif
