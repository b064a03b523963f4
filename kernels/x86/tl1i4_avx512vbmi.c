/* TL1 GEMV / GEMM for int4 activations (every value in -8..7), AVX-512 F/BW/VNNI + VBMI.
 *
 * The same packed bytes and loop as tl1_avx512vbmi.c, but each table entry
 * T[i] = d0 q0 + d1 q1 of a pair of int4 activations fits one signed byte (|T| <= 16): a
 * step's tables are 2 zmm (128 bytes), one vpermb per 64 lookups instead of two, and the
 * two halves' lookups share one vpdpbusd (bitnet_tl_rows_i4_avx512 in tl_common.h, with
 * its exactness bound). The Rust side runs this file only when every activation of the
 * call is in -8..7. Tables: whole K once per call, or TL1I4_CHUNK_STEPS steps on the stack.
 */
#define BITNET_TL_AVX512VBMI 1 /* tl_common.h: the AVX-512 VBMI helpers */
#include "tl_common.h"

#define TL1I4_CHUNK_STEPS 448 /* 448 steps x 128 B of tables = 56 KiB */
#define TL1I4_STEP_VECS 2     /* A (pairs 0-3), B (pairs 4-7) */

/* Byte 16 l + i of table A (B) = T[i] of pair l (4 + l), the low byte of the int16 value. */
static void tl1i4_build(const int8_t *x, size_t steps, __m512i *tab) {
    const bitnet_tl_words512 c = bitnet_tl1_words_init_avx512();
    const __m512i even = bitnet_tl_even();
    for (size_t k = 0; k < steps; k++) {
        __m512i p[4];
        bitnet_tl1_words_avx512(&c, x + 16 * k, p);
        tab[TL1I4_STEP_VECS * k] = _mm512_permutex2var_epi8(p[0], even, p[1]);
        tab[TL1I4_STEP_VECS * k + 1] = _mm512_permutex2var_epi8(p[2], even, p[3]);
    }
}

static void tl1i4_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                       const __m512i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_i4_avx512(w, tile_bytes, k0, steps, tab, rb, re, y, first,
                             BITNET_TL1_STEP_BYTES, 0);
}

BITNET_TL_ENTRY_POINTS(tl1i4, avx512vbmi, __m512i, TL1I4_CHUNK_STEPS, TL1I4_STEP_VECS,
                       BITNET_TL1_K_BLOCK, BITNET_TL1_STEP_BYTES, tl1i4_build, tl1i4_rows)
