/* I2_S_COL kernels for AVX2: sparse activations, only the non-zero columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): column c is rows_padded / 4 contiguous bytes;
 * its 64 bytes of block b hold rows 256b + 64k + i (byte i, bits 2k..2k+1), code c = t + 1
 * in {0, 1, 2}.
 *
 * Maths: sum t*x = sum c*x - sum x. Each 256-row block is done in two halves of 128 rows
 * (bytes 0..31, then 32..63 of every column): eight ymm accumulators, no spills. For a
 * non-zero x_j, vpmaddubsw of the codes (unsigned, shifted down by 2k and masked) with
 * (x_j, 0, x_j, 0, ...) gives the even bytes' c * x_j in int16 lanes and with
 * (0, x_j, 0, x_j, ...) the odd bytes'. |c * x| <= 256, so the int16 lanes are widened
 * into the int32 outputs (less the sum of x) every 127 columns (127 * 256 < 2^15).
 */
#include <immintrin.h>

#include "kernels.h"

#define TILE BITNET_I2S_COL_ROW_TILE
#define CHUNK BITNET_I2S_COL_CHUNK_BYTES
#define FLUSH 127

/* Bit j set where x[j] != 0, for 64 activations. */
static inline uint64_t nonzero64(const int8_t *x) {
    __m256i z = _mm256_setzero_si256();
    uint32_t lo = (uint32_t)_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)x), z));
    uint32_t hi = (uint32_t)_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(x + 32)), z));
    return ~((uint64_t)hi << 32 | lo);
}

/* y[row] += acc - s for the 128 rows of half h: E[k] lane l is row 64k + 32h + 2l, O[k] the
 * row after it. */
static inline void flush(__m256i e[4], __m256i o[4], int32_t s, int h, int32_t *y) {
    for (int k = 0; k < 4; k++) {
        int16_t ev[16], ov[16];
        _mm256_storeu_si256((__m256i *)ev, e[k]);
        _mm256_storeu_si256((__m256i *)ov, o[k]);
        int32_t *r = y + 64 * k + 32 * h;
        for (int l = 0; l < 16; l++) {
            r[2 * l] += ev[l] - s;
            r[2 * l + 1] += ov[l] - s;
        }
        e[k] = o[k] = _mm256_setzero_si256();
    }
}

/* One 256-row block: y[0..256) = sum over non-zero x_j of t[., j] * x_j; column c's chunk
 * of the block is at blk + c * stride. The second half prefetches each column's next chunk
 * (the next line of the same column, the next block's). */
static void block(const uint8_t *blk, size_t stride, size_t kp, const int8_t *x, int32_t *y) {
    for (int r = 0; r < TILE; r++) y[r] = 0;
    const __m256i three = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; h++) {
        __m256i e[4], o[4];
        for (int k = 0; k < 4; k++) e[k] = o[k] = _mm256_setzero_si256();
        int pending = 0;
        int32_t s = 0;
        for (size_t c0 = 0; c0 < kp; c0 += 64) {
            uint64_t nz = nonzero64(x + c0);
            while (nz) {
                size_t c = c0 + bitnet_ctz64(nz);
                nz &= nz - 1;
                uint8_t xb = (uint8_t)x[c];
                __m256i xe = _mm256_set1_epi16((short)xb);
                __m256i xo = _mm256_set1_epi16((short)(xb << 8));
                const uint8_t *p = blk + c * stride;
                if (h) _mm_prefetch((const char *)(p + CHUNK), _MM_HINT_T0);
                __m256i w = _mm256_load_si256((const __m256i *)(p + 32 * h));
                for (int k = 0; k < 4; k++) {
                    __m256i ck = _mm256_and_si256(_mm256_srli_epi16(w, 2 * k), three);
                    e[k] = _mm256_add_epi16(e[k], _mm256_maddubs_epi16(ck, xe));
                    o[k] = _mm256_add_epi16(o[k], _mm256_maddubs_epi16(ck, xo));
                }
                s += x[c];
                if (++pending == FLUSH) {
                    flush(e, o, s, h, y);
                    pending = 0;
                    s = 0;
                }
            }
        }
        flush(e, o, s, h, y);
    }
}

void bitnet_i2s_col_gemv_avx2(const uint8_t *w, size_t kp, size_t rows_padded, const int8_t *x,
                              size_t row_begin, size_t row_end, int32_t *y) {
    for (size_t r = row_begin; r < row_end; r += TILE)
        block(w + r / 4, rows_padded / 4, kp, x, y + (r - row_begin));
}

BITNET_I2S_COL_GEMM_FROM_GEMV(avx2)
