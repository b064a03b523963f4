/* TL1 GEMV / GEMM, AVX-512 F/BW/VNNI + VBMI (vpermb).
 *
 * Layout: src/format/tl1.rs (kernels.h). Per activation row the kernel builds, for each
 * pair of activations, the 16-entry table T[i] = d0 q0 + d1 q1 (i = 3 (d0 + 1) + (d1 + 1),
 * |T| <= 256, entries 9..15 unused), split exactly as T = 64 * hi + lo with lo = T & 63
 * (0..63, unsigned byte) and hi = T >> 6 (-4..4, signed byte). Four pairs' tables make one
 * 64-byte vpermb table (byte 16 * l + i), so the index byte is i | l << 4.
 *
 * Loop (T-MAC order, as tl2_avx512vbmi.c): a step's tables (8 pairs = 16 columns: 4 zmm) stay
 * in registers while its four 16-row sub-tiles stream through; one vpermb transposes each
 * 64-byte nibble block (byte 16l + i -> 4i + l) so one row's four pairs share a dword; two
 * vpermb give lo and hi for 64 lookups, two vpdpbusd add lo * 1 and 64 * hi into the
 * row's int32 accumulator. One sequential weight stream.
 *
 * Tables: built once per call for the whole K in the caller's memory and walked in one
 * pass (tl_common.h); without that memory, tables for at most TL1_CHUNK_STEPS steps (3584 columns, 56 KiB)
 * on the stack, longer rows done in balanced passes, each walking all the rows and
 * accumulating into y.
 */
#define BITNET_TL_AVX512VBMI 1 /* tl_common.h: the AVX-512 VBMI helpers */
#include "tl_common.h"

#define TL1_CHUNK_STEPS 224 /* 224 steps x 256 B of tables = 56 KiB */
#define TL1_STEP_VECS 4     /* A lo, A hi, B lo, B hi: what bitnet_tl_rows_avx512 reads */

_Static_assert(BITNET_TL1_K_BLOCK == 2 * BITNET_TL_STEP_GROUPS, "8 pairs a step");

/* Builds the tables of `steps` steps from the 16 * steps activations at x. */
static void tl1_build(const int8_t *x, size_t steps, __m512i *tab) {
    const bitnet_tl_words512 c = bitnet_tl1_words_init_avx512();
    const __m512i even = bitnet_tl_even();
    const __m512i low6 = _mm512_set1_epi8(63);
    for (size_t k = 0; k < steps; k++) {
        __m512i p[4]; /* |T| <= 2 * 128: int16 */
        bitnet_tl1_words_avx512(&c, x + 16 * k, p);
        __m512i *t = tab + TL1_STEP_VECS * k;
        for (int q = 0; q < 2; q++) { /* A = pairs 0-3, B = pairs 4-7 */
            const __m512i a = p[2 * q], b = p[2 * q + 1];
            t[2 * q + 0] = _mm512_and_si512(_mm512_permutex2var_epi8(a, even, b), low6);
            t[2 * q + 1] = _mm512_permutex2var_epi8(_mm512_srai_epi16(a, 6), even,
                                                    _mm512_srai_epi16(b, 6));
        }
    }
}

static void tl1_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                     const __m512i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_avx512(w, tile_bytes, k0, steps, tab, rb, re, y, first, BITNET_TL1_STEP_BYTES,
                          0);
}

BITNET_TL_ENTRY_POINTS(tl1, avx512vbmi, __m512i, TL1_CHUNK_STEPS, TL1_STEP_VECS,
                       BITNET_TL1_K_BLOCK, BITNET_TL1_STEP_BYTES, tl1_build, tl1_rows)
