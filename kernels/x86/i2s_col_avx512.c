/* I2_S_COL kernels for AVX-512 (F/BW/VL): sparse activations, only the non-zero columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): per 256-row block, column c's 64 bytes hold rows
 * 64k + i (byte i, bits 2k..2k+1), code c = t + 1 in {0, 1, 2}.
 *
 * Per 256-row block: the activations are scanned 64 at a time (vptestmb gives a bit per
 * non-zero), and for each non-zero x_j its column is added to 256 int16 accumulators (eight
 * zmm, lane l of accumulator 2k + h = row 64k + 32h + l): a byte test against 2 << 2k gives
 * the rows with t = +1 and a test-not against 3 << 2k the rows with t = -1, and x_j is
 * added / subtracted under those masks. Exact: each column moves a lane by at most 128, so
 * the int16 lanes are widened into the int32 outputs every 255 columns (255 * 128 < 2^15).
 */
#include <immintrin.h>

#include "kernels.h"

#define TILE BITNET_I2S_COL_ROW_TILE
#define CHUNK BITNET_I2S_COL_CHUNK_BYTES
#define FLUSH 255

/* y[0..256) += the 256 int16 lanes of acc (lane order above). */
static inline void flush(__m512i acc[8], int32_t *y) {
    for (int a = 0; a < 8; a++) {
        int32_t *o = y + 32 * a; /* accumulator 2k + h covers rows 64k + 32h .. + 31 */
        __m512i lo = _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc[a]));
        __m512i hi = _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc[a], 1));
        _mm512_storeu_si512(o, _mm512_add_epi32(_mm512_loadu_si512(o), lo));
        _mm512_storeu_si512(o + 16, _mm512_add_epi32(_mm512_loadu_si512(o + 16), hi));
        acc[a] = _mm512_setzero_si512();
    }
}

/* Software prefetch of the non-zero columns PREFETCH_GROUPS groups of 64 columns ahead (in
 * this block, or past its end in the next one; prefetches never fault). The columns a sparse
 * GEMV reads are scattered lines the hardware prefetchers do not follow: without this, the
 * DRAM-resident GEMV at 84 % zeros was no faster than the dense one (2560x6912). */
#define PREFETCH_GROUPS 2
static inline void prefetch_ahead(const uint8_t *blk, size_t kp, const int8_t *x, size_t c0) {
    size_t c = c0 + 64 * PREFETCH_GROUPS;
    if (c >= kp) {
        c -= kp;
        blk += kp * CHUNK;
        if (c >= kp) return;
    }
    __m512i xv = _mm512_loadu_si512(x + c);
    uint64_t nz = _mm512_test_epi8_mask(xv, xv);
    while (nz) {
        _mm_prefetch((const char *)(blk + (c + bitnet_ctz64(nz)) * CHUNK), _MM_HINT_T0);
        nz &= nz - 1;
    }
}

/* One 256-row block: y[0..256) = sum over non-zero x_j of t[., j] * x_j. */
static void block(const uint8_t *blk, size_t kp, const int8_t *x, int32_t *y) {
    __m512i acc[8];
    for (int a = 0; a < 8; a++) acc[a] = _mm512_setzero_si512();
    for (int r = 0; r < TILE; r += 16) _mm512_storeu_si512(y + r, _mm512_setzero_si512());
    int pending = 0;
    for (size_t c0 = 0; c0 < kp; c0 += 64) {
        __m512i xv = _mm512_loadu_si512(x + c0);
        uint64_t nz = _mm512_test_epi8_mask(xv, xv);
        prefetch_ahead(blk, kp, x, c0);
        while (nz) {
            size_t c = c0 + bitnet_ctz64(nz);
            nz &= nz - 1;
            const uint8_t *col = blk + c * CHUNK;
            __m512i v = _mm512_set1_epi16(x[c]);
            __m256i w0 = _mm256_load_si256((const __m256i *)col);
            __m256i w1 = _mm256_load_si256((const __m256i *)(col + 32));
#define STEP(k)                                                                               \
    do {                                                                                      \
        __m256i plus = _mm256_set1_epi8((char)(2 << (2 * k)));                                \
        __m256i any = _mm256_set1_epi8((char)(3 << (2 * k)));                                 \
        __mmask32 p0 = _mm256_test_epi8_mask(w0, plus), m0 = _mm256_testn_epi8_mask(w0, any); \
        __mmask32 p1 = _mm256_test_epi8_mask(w1, plus), m1 = _mm256_testn_epi8_mask(w1, any); \
        /* the +1 and -1 masks are disjoint: both ops read the old accumulator */          \
        acc[2 * k] = _mm512_mask_sub_epi16(_mm512_mask_add_epi16(acc[2 * k], p0, acc[2 * k], v), \
                                           m0, acc[2 * k], v);                                \
        acc[2 * k + 1] = _mm512_mask_sub_epi16(                                               \
            _mm512_mask_add_epi16(acc[2 * k + 1], p1, acc[2 * k + 1], v), m1, acc[2 * k + 1], v); \
    } while (0)
            STEP(0);
            STEP(1);
            STEP(2);
            STEP(3);
#undef STEP
            if (++pending == FLUSH) {
                flush(acc, y);
                pending = 0;
            }
        }
    }
    flush(acc, y);
}

void bitnet_i2s_col_gemv_avx512(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                                size_t row_end, int32_t *y) {
    for (size_t r = row_begin; r < row_end; r += TILE)
        block(w + r / TILE * kp * CHUNK, kp, x, y + (r - row_begin));
}

BITNET_I2S_COL_GEMM_FROM_GEMV(avx512)
