/* Shared by the TL1 / TL2 C kernels (tl1_*.c, tl2_*.c): the pass structure of a GEMV and
 * the GEMM loop, and the accumulation helpers each ISA's files share.
 *
 * A GEMV builds the tables of at most CHUNK steps at a time into a stack buffer (bounded:
 * no allocation, whatever K) and walks all its rows for them, accumulating into y; passes
 * are balanced so that none is tiny. A GEMM is one GEMV per activation row: the tables are
 * per activation row, and the TL formats are for the GEMV (fewer bytes to stream). */
#ifndef BITNET_TL_COMMON_H
#define BITNET_TL_COMMON_H

#include <immintrin.h>
#include <string.h>

#include "kernels.h"

/* Defines bitnet_<fmt>_gemv_<isa> / _gemm_<isa> from
 *   build(const int8_t *x, size_t steps, vec_t *tab)
 *   rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps, const vec_t *tab,
 *        size_t rb, size_t re, int32_t *y, int first). */
#define BITNET_TL_ENTRY_POINTS(fmt, isa, vec_t, chunk, step_vecs, k_block, step_bytes, build, \
                               rows)                                                          \
    void bitnet_##fmt##_gemv_##isa(const uint8_t *w, size_t kp, const int8_t *x,             \
                                   size_t row_begin, size_t row_end, int32_t *y) {           \
        vec_t tab[(chunk) * (step_vecs)];                                                     \
        const size_t steps = kp / (k_block);                                                  \
        const size_t passes = (steps + (chunk) - 1) / (chunk);                                \
        const size_t per = (steps + passes - 1) / passes; /* <= chunk */                      \
        for (size_t k0 = 0; k0 < steps; k0 += per) {                                          \
            const size_t ks = steps - k0 < per ? steps - k0 : per;                            \
            build(x + k0 * (k_block), ks, tab);                                               \
            rows(w, steps * (step_bytes), k0, ks, tab, row_begin, row_end, y, k0 == 0);       \
        }                                                                                     \
    }                                                                                         \
    void bitnet_##fmt##_gemm_##isa(const uint8_t *w, size_t kp, const int8_t *x, size_t n,   \
                                   size_t row_begin, size_t row_end, int32_t *y) {           \
        for (size_t j = 0; j < n; j++)                                                        \
            bitnet_##fmt##_gemv_##isa(w, kp, x + j * kp, row_begin, row_end,                  \
                                      y + j * (row_end - row_begin));                         \
    }

/* `n` bytes of constants from a generator expression of p (0 <= p < n). */
#define BITNET_TL_BYTES(dst, n, expr)                       \
    do {                                                    \
        uint8_t b_[n];                                      \
        for (int p = 0; p < (n); p++) b_[p] = (uint8_t)(expr); \
        memcpy(&(dst), b_, n);                              \
    } while (0)

#if defined(__AVX512VBMI__)
/* acc += u8(a) . s8(b) per int32 lane; inline asm because GCC 12 otherwise copies the
 * accumulator through another register around every vpdpbusd. */
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))

/* byte 4i + l <- byte 16l + i: one row's four groups into one dword. */
static inline __m512i bitnet_tl_transpose(void) {
    __m512i t;
    BITNET_TL_BYTES(t, 64, 16 * (p % 4) + p / 4);
    return t;
}

/* byte p: group (p % 4) << 4, the table slot of the transposed byte's group. */
static inline __m512i bitnet_tl_pos(void) {
    __m512i t;
    BITNET_TL_BYTES(t, 64, (p % 4) << 4);
    return t;
}

/* byte j <- byte 2j of a 128-byte pair (the low byte of each word). */
static inline __m512i bitnet_tl_even(void) {
    __m512i t;
    BITNET_TL_BYTES(t, 64, 2 * p);
    return t;
}
#endif

#if defined(__AVX2__)
/* Adds one lookup vector's lo / hi bytes (16 rows a lane) into int16 row accumulators:
 * acc[0] rows 0-7, acc[1] rows 8-15 (lanes hold separate partial sums). */
static inline void bitnet_tl_add16(__m256i *acc, __m256i lo, __m256i hi) {
    const __m256i c1_64 = _mm256_set1_epi16(64 << 8 | 1); /* bytes [1, 64]: lo + 64 hi */
    acc[0] = _mm256_add_epi16(acc[0], _mm256_maddubs_epi16(c1_64, _mm256_unpacklo_epi8(lo, hi)));
    acc[1] = _mm256_add_epi16(acc[1], _mm256_maddubs_epi16(c1_64, _mm256_unpackhi_epi8(lo, hi)));
}

/* Adds int16 accumulators (lane 0 and lane 1 hold partial sums of the same 8 rows) into
 * 8 int32 rows, and clears them. */
static inline void bitnet_tl_flush16(__m256i *acc16, int32_t *acc32) {
    const __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(*acc16));
    const __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(*acc16, 1));
    __m256i a = _mm256_loadu_si256((const __m256i *)acc32);
    a = _mm256_add_epi32(a, _mm256_add_epi32(lo, hi));
    _mm256_storeu_si256((__m256i *)acc32, a);
    *acc16 = _mm256_setzero_si256();
}

/* Packs two int16 tables (16 words each) into the lo (T & 63) and hi (T >> 6) vpshufb
 * tables, lane 0 = a, lane 1 = b. */
static inline void bitnet_tl_pack16(__m256i a, __m256i b, __m256i *lo, __m256i *hi) {
    const __m256i low6 = _mm256_set1_epi16(63);
    *lo = _mm256_permute4x64_epi64(
        _mm256_packus_epi16(_mm256_and_si256(a, low6), _mm256_and_si256(b, low6)), 0xD8);
    *hi = _mm256_permute4x64_epi64(
        _mm256_packs_epi16(_mm256_srai_epi16(a, 6), _mm256_srai_epi16(b, 6)), 0xD8);
}
#endif

#endif
