/* I2_S_COL kernels for AVX2: sparse activations, only the non-zero columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): column c is rows_padded / 4 contiguous bytes;
 * its 64 bytes of block b (rows 256b..256b+255) hold rows 256b + 64k + i (byte i, bits
 * 2k..2k+1), code c = t + 1 in {0, 1, 2}.
 *
 * Order (i2s_col_drivers.h): row windows of blocks, column windows whose non-zero columns
 * are listed once and taken four at a time down every block of the row window.
 *
 * Maths: sum t*x = sum c*x - sum x. Each 32-byte half h of the four chunks is interleaved by
 * byte (two rounds of unpacks) so that each dword holds one row's codes of the four columns;
 * vpmaddubsw of the codes masked with 3 << 2k (unsigned, c * 4^k <= 128) with the four
 * activations (signed, broadcast) gives two int16 pair sums in [-32768, 32512] (exact, no
 * saturation), and vpmaddwd with ones adds them into the row's int32 lane: 4^k * sum c*x.
 * 32 accumulators a block (2 halves h x 4 unpack outputs q x 4 bit pairs k); dword j of
 * accumulator (h, q, k) is row 64k + 32h + 16(j / 4) + 4q + j % 4. Exact: one group moves a
 * lane by at most 2^16 and a column window holds at most 2^9 groups; after each column
 * window the lanes are shifted back (exact), less the window's sum of x, into y kept in lane
 * order, which is put in row order at the end.
 */
#include <immintrin.h>

#include "kernels.h"

#define VEC __m256i
#define ACCS 32

/* Bit j set where x[j] != 0, for 64 activations. */
static inline uint64_t nonzero64(const int8_t *x) {
    __m256i z = _mm256_setzero_si256();
    uint32_t lo = (uint32_t)_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)x), z));
    uint32_t hi = (uint32_t)_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(x + 32)), z));
    return ~((uint64_t)hi << 32 | lo);
}

static inline __m256i broadcast4(uint32_t u) { return _mm256_set1_epi32((int)u); }

/* acc[32] += the chunks at p0..p3 times the activations packed in xv (one byte each). */
static inline void group4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                          const uint8_t *p3, __m256i xv, __m256i *acc) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; h++) {
        __m256i a = _mm256_load_si256((const __m256i *)(p0 + 32 * h));
        __m256i b = _mm256_load_si256((const __m256i *)(p1 + 32 * h));
        __m256i c = _mm256_load_si256((const __m256i *)(p2 + 32 * h));
        __m256i d = _mm256_load_si256((const __m256i *)(p3 + 32 * h));
        __m256i ablo = _mm256_unpacklo_epi8(a, b), abhi = _mm256_unpackhi_epi8(a, b);
        __m256i cdlo = _mm256_unpacklo_epi8(c, d), cdhi = _mm256_unpackhi_epi8(c, d);
        __m256i w[4] = {_mm256_unpacklo_epi16(ablo, cdlo), _mm256_unpackhi_epi16(ablo, cdlo),
                        _mm256_unpacklo_epi16(abhi, cdhi), _mm256_unpackhi_epi16(abhi, cdhi)};
        for (int q = 0; q < 4; q++)
            for (int k = 0; k < 4; k++) {
                __m256i m = _mm256_and_si256(w[q], _mm256_set1_epi8((char)(3 << (2 * k))));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(m, xv), ones);
                acc[16 * h + 4 * q + k] = _mm256_add_epi32(acc[16 * h + 4 * q + k], p);
            }
    }
}

/* y (lane order) += (acc >> 2k) - s for acc[0..n); the accumulators reset. */
static inline void add_window(__m256i *acc, size_t n, int32_t s, int32_t *y) {
    const __m256i sv = _mm256_set1_epi32(s);
    for (size_t i = 0; i < n; i++) {
        __m256i v = _mm256_sub_epi32(
            _mm256_sra_epi32(acc[i], _mm_cvtsi32_si128((int)(2 * (i % 4)))), sv);
        __m256i *yi = (__m256i *)(y + 8 * i);
        _mm256_storeu_si256(yi, _mm256_add_epi32(_mm256_loadu_si256(yi), v));
        acc[i] = _mm256_setzero_si256();
    }
}

/* One block's outputs, dword j of accumulator (h, q, k) = row 64k + 32h + 16(j / 4) + 4q +
 * j % 4, to rows. */
static inline void to_row_order(int32_t *yb) {
    int32_t t[BITNET_I2S_COL_ROW_TILE];
    for (int h = 0; h < 2; h++)
        for (int q = 0; q < 4; q++)
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 8; j++)
                    t[64 * k + 32 * h + 16 * (j / 4) + 4 * q + j % 4] =
                        yb[8 * (16 * h + 4 * q + k) + j];
    for (int i = 0; i < BITNET_I2S_COL_ROW_TILE; i++) yb[i] = t[i];
}

#include "x86/i2s_col_drivers.h"

void bitnet_i2s_col_gemv_avx2(const uint8_t *w, size_t kp, size_t rows_padded, const int8_t *x,
                              size_t row_begin, size_t row_end, int32_t *y) {
    i2s_col_gemv(w, kp, rows_padded, x, row_begin, row_end, y);
}

BITNET_I2S_COL_GEMM_FROM_GEMV(avx2)
