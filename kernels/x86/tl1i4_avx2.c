/* TL1 GEMV / GEMM for int4 activations (every value in -8..7), AVX2 (vpshufb).
 *
 * The same packed bytes and loop order as tl1_avx2.c, but each table entry of a pair of
 * int4 activations fits one signed byte (|T| <= 16): a step's tables are 4 ymm (128 bytes,
 * one pair a lane), one vpshufb per index vector instead of two (bitnet_tl_rows_i4_avx2 in
 * tl_common.h, with its exactness and flush bounds). The Rust side runs this file only
 * when every activation of the call is in -8..7.
 */
#include "tl_common.h"

#define TL1I4_CHUNK_STEPS 448 /* 448 steps x 128 B of tables = 56 KiB */
#define TL1I4_STEP_VECS 4     /* pairs (0,1), (2,3), (4,5), (6,7) */

static void tl1i4_build(const int8_t *x, size_t steps, __m256i *tab) {
    __m256i digit[3]; /* two used (TL1: pairs) */
    bitnet_tl1_digits_avx2(digit);
    for (size_t k = 0; k < steps; k++) {
        __m256i t[8]; /* |T| <= 16 */
        bitnet_tl1_words_avx2(digit, x + 16 * k, t);
        for (int j = 0; j < 4; j++) tab[TL1I4_STEP_VECS * k + j] = bitnet_tl_pack8(t[2 * j], t[2 * j + 1]);
    }
}

static void tl1i4_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                       const __m256i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_i4_avx2(w, tile_bytes, k0, steps, tab, rb, re, y, first, BITNET_TL1_STEP_BYTES,
                           0);
}

BITNET_TL_ENTRY_POINTS(tl1i4, avx2, __m256i, TL1I4_CHUNK_STEPS, TL1I4_STEP_VECS,
                       BITNET_TL1_K_BLOCK, BITNET_TL1_STEP_BYTES, tl1i4_build, tl1i4_rows)
