/* TL2 GEMV / GEMM for int4 activations (every value in -8..7), AVX-512 F/BW/VNNI + VBMI.
 *
 * The same packed bytes as tl2_avx512vbmi.c (src/format/tl2.rs), the same loop (T-MAC
 * order, one sequential weight stream, the transposing vpermb, signs as masks), but each
 * table entry T[u] = d0 q0 + d1 q1 + d2 q2 of a group of 3 int4 activations fits one
 * signed byte exactly (|T| <= 3 * 8 = 24), so a step's tables are 2 zmm (128 bytes, half
 * of the int8 kernel's) and each 64 lookups take one vpermb instead of two, one masked
 * negation instead of two, and the two groups' lookups share one vpdpbusd
 * (bitnet_tl_rows_i4_avx512 in tl_common.h, with its exactness bound).
 *
 * The Rust side runs this file only when every activation of the call is in -8..7
 * (src/kernels/mod.rs, FormatKernels::for_activations); for other int8 values the tables
 * would wrap. Tables: whole K once per call (one pass), or TL2I4_CHUNK_STEPS steps on the
 * stack (bounded form), as in tl2_avx512vbmi.c.
 */
#define BITNET_TL_AVX512VBMI 1 /* tl_common.h: the AVX-512 VBMI helpers */
#include "tl_common.h"

#define TL2I4_CHUNK_STEPS 448 /* 448 steps x 128 B of tables = 56 KiB */
#define TL2I4_STEP_VECS 2     /* A (groups 0-3), B (groups 4-7) */
_Static_assert(BITNET_TL2_SIGNS_OFFSET == 4 * 64, "bitnet_tl_rows_i4_avx512 reads signs there");

/* Builds the tables of `steps` steps from the 24 * steps activations at x: byte 16 l + u of
 * table A (B) = T[u] of group l (4 + l), the low byte of the exact int16 value. */
static void tl2i4_build(const int8_t *x, size_t steps, __m512i *tab) {
    const bitnet_tl_words512 c = bitnet_tl2_words_init_avx512();
    const __m512i even = bitnet_tl_even();
    for (size_t k = 0; k < steps; k++) {
        __m512i p[4];
        bitnet_tl2_words_avx512(&c, x + 24 * k, p);
        tab[TL2I4_STEP_VECS * k] = _mm512_permutex2var_epi8(p[0], even, p[1]);
        tab[TL2I4_STEP_VECS * k + 1] = _mm512_permutex2var_epi8(p[2], even, p[3]);
    }
}

static void tl2i4_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                       const __m512i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_i4_avx512(w, tile_bytes, k0, steps, tab, rb, re, y, first,
                             BITNET_TL2_STEP_BYTES, 1);
}

BITNET_TL_ENTRY_POINTS(tl2i4, avx512vbmi, __m512i, TL2I4_CHUNK_STEPS, TL2I4_STEP_VECS,
                       BITNET_TL2_K_BLOCK, BITNET_TL2_STEP_BYTES, tl2i4_build, tl2i4_rows)
