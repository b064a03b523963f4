/* TL1 GEMV / GEMM, AVX2 (vpshufb).
 *
 * Layout: src/format/tl1.rs (kernels.h). Per activation row the kernel builds, for each
 * pair of activations, the 16-entry table T[i] = d0 q0 + d1 q1 (|T| <= 256, entries 9..15
 * unused), split exactly as T = 64 * hi + lo, lo = T & 63, hi = T >> 6 (-4..4), as two
 * 16-byte vpshufb tables; a ymm holds two pairs' tables, one a lane, matching the nibble
 * lanes (a 16-byte lane = 16 rows of one pair).
 *
 * Per 16-row sub-tile and step: 4 index vectors, two vpshufb each (lo, hi), lo and hi
 * interleaved and vpmaddubsw with [1, 64] gives the int16 value of each lookup, rows in
 * order. int16 accumulators take 4 lookups a step (|.| <= 4 * 256 = 1024) and are widened
 * into int32 every 16 steps (16 * 1024 = 16384 < 2^15).
 *
 * Loop order as tl1_avx512vbmi.c: one sequential weight stream; tables of the whole K
 * built once per call in the caller's memory, one pass (tl_common.h); without it, tables for
 * at most TL1_CHUNK_STEPS steps (56 KiB) on the stack, longer rows in balanced passes into y.
 */
#include "tl_common.h"

#define TL1_CHUNK_STEPS 224 /* 224 steps x 256 B of tables = 56 KiB */
#define TL1_STEP_VECS 8     /* lo, hi for pairs (0,1), (2,3), (4,5), (6,7) */

/* Builds the tables of `steps` steps from the 16 * steps activations at x. */
static void tl1_build(const int8_t *x, size_t steps, __m256i *tab) {
    __m256i digit[3]; /* two used (TL1: pairs) */
    bitnet_tl1_digits_avx2(digit);
    for (size_t k = 0; k < steps; k++) {
        __m256i t[8]; /* |T| <= 2 * 128: int16 */
        bitnet_tl1_words_avx2(digit, x + 16 * k, t);
        __m256i *o = tab + TL1_STEP_VECS * k;
        for (int j = 0; j < 4; j++) { /* lane 0 = pair 2j, lane 1 = pair 2j + 1 */
            bitnet_tl_pack16(t[2 * j], t[2 * j + 1], &o[2 * j], &o[2 * j + 1]);
        }
    }
}

static void tl1_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                     const __m256i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_avx2(w, tile_bytes, k0, steps, tab, rb, re, y, first, BITNET_TL1_STEP_BYTES,
                        0);
}

BITNET_TL_ENTRY_POINTS(tl1, avx2, __m256i, TL1_CHUNK_STEPS, TL1_STEP_VECS,
                       BITNET_TL1_K_BLOCK, BITNET_TL1_STEP_BYTES, tl1_build, tl1_rows)
