/* TL2 GEMV / GEMM for int4 activations (every value in -8..7), AVX2 (vpshufb).
 *
 * The same packed bytes and loop order as tl2_avx2.c, but each table entry T[u] of a group
 * of 3 int4 activations fits one signed byte (|T| <= 24): a step's tables are 4 ymm (128
 * bytes, one group a lane), one vpshufb per index vector instead of two, and the signs are
 * looked up from nibbles (bitnet_tl_rows_i4_avx2 in tl_common.h, with its exactness and
 * flush bounds).
 *
 * The Rust side runs this file only when every activation of the call is in -8..7.
 * Tables: whole K once per call, or TL2I4_CHUNK_STEPS steps on the stack.
 */
#include "tl_common.h"

#define TL2I4_CHUNK_STEPS 448 /* 448 steps x 128 B of tables = 56 KiB */
#define TL2I4_STEP_VECS 4     /* groups (0,1), (2,3), (4,5), (6,7) */

static void tl2i4_build(const int8_t *x, size_t steps, __m256i *tab) {
    __m256i digit[3];
    bitnet_tl2_digits_avx2(digit);
    for (size_t k = 0; k < steps; k++) {
        __m256i t[8]; /* |T| <= 24 */
        bitnet_tl2_words_avx2(digit, x + 24 * k, t);
        for (int j = 0; j < 4; j++) tab[TL2I4_STEP_VECS * k + j] = bitnet_tl_pack8(t[2 * j], t[2 * j + 1]);
    }
}

static void tl2i4_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                       const __m256i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_i4_avx2(w, tile_bytes, k0, steps, tab, rb, re, y, first, BITNET_TL2_STEP_BYTES,
                           1);
}

BITNET_TL_ENTRY_POINTS(tl2i4, avx2, __m256i, TL2I4_CHUNK_STEPS, TL2I4_STEP_VECS,
                       BITNET_TL2_K_BLOCK, BITNET_TL2_STEP_BYTES, tl2i4_build, tl2i4_rows)
