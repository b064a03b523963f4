/* TL2 GEMV / GEMM, AVX2 (vpshufb).
 *
 * Layout: src/format/tl2.rs (kernels.h). Per activation row the kernel builds, for each
 * group of 3 activations, the 16-entry magnitude table T[u] = d0 q0 + d1 q1 + d2 q2
 * (|T| <= 384, entries 14, 15 unused), split exactly as T = 64 * hi + lo, lo = T & 63,
 * hi = T >> 6 (-6..6), as two 16-byte vpshufb tables; a ymm holds two groups' tables, one
 * a lane, matching the nibble lanes (a 16-byte lane = 16 rows of one group).
 *
 * Per 16-row sub-tile and step: 4 index vectors (low / high nibbles of the two 32-byte
 * halves), two vpshufb each (lo, hi), vpsignb with the sign (sign bits expanded to bytes
 * by a byte shuffle, an and and a compare), then lo and hi interleaved and vpmaddubsw with
 * [1, 64] gives the signed int16 value of each lookup, rows in order. int16 accumulators
 * take 4 lookups a step (|.| <= 4 * 384 = 1536), so they are widened into int32 every 16
 * steps (16 * 1536 = 24576 < 2^15).
 *
 * Loop order as tl2_avx512vbmi.c: one sequential weight stream, a step's tables shared by the
 * tile's four sub-tiles; tables of the whole K built once
 * per call in the caller's memory, one pass (tl_common.h); without it, tables for at most
 * TL2_CHUNK_STEPS steps (56 KiB) on the stack, longer rows in balanced passes into y.
 */
#include "tl_common.h"

#define TL2_CHUNK_STEPS 224 /* 224 steps x 256 B of tables = 56 KiB */
#define TL2_STEP_VECS 8     /* lo, hi for groups (0,1), (2,3), (4,5), (6,7) */

/* Builds the tables of `steps` steps from the 24 * steps activations at x. */
static void tl2_build(const int8_t *x, size_t steps, __m256i *tab) {
    __m256i digit[3];
    bitnet_tl2_digits_avx2(digit);
    for (size_t k = 0; k < steps; k++) {
        __m256i t[8]; /* |T| <= 3 * 128: int16 */
        bitnet_tl2_words_avx2(digit, x + 24 * k, t);
        __m256i *o = tab + TL2_STEP_VECS * k;
        for (int j = 0; j < 4; j++) { /* lane 0 = group 2j, lane 1 = group 2j + 1 */
            bitnet_tl_pack16(t[2 * j], t[2 * j + 1], &o[2 * j], &o[2 * j + 1]);
        }
    }
}

static void tl2_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                     const __m256i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_avx2(w, tile_bytes, k0, steps, tab, rb, re, y, first, BITNET_TL2_STEP_BYTES,
                        1);
}

BITNET_TL_ENTRY_POINTS(tl2, avx2, __m256i, TL2_CHUNK_STEPS, TL2_STEP_VECS,
                       BITNET_TL2_K_BLOCK, BITNET_TL2_STEP_BYTES, tl2_build, tl2_rows)
