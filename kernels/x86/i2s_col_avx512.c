/* I2_S_COL kernels for AVX-512 (F/BW/VL + VNNI): sparse activations, only the non-zero
 * columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): column c is rows_padded / 4 contiguous bytes;
 * its 64 bytes of block b (rows 256b..256b+255) hold rows 256b + 64k + i (byte i, bits
 * 2k..2k+1), code c = t + 1 in {0, 1, 2}.
 *
 * Order (i2s_col_drivers.h): row windows of blocks, column windows whose non-zero columns
 * are listed once and taken four at a time down every block of the row window.
 *
 * Maths: sum t*x = sum c*x - sum x. The four 64-byte chunks of a group are interleaved by
 * byte (two rounds of unpacks) so that each dword holds one row's codes of the four columns:
 * then vpdpbusd of the codes masked with 3 << 2k (unsigned, c * 4^k <= 128) with the four
 * activations (signed, broadcast) adds 4^k * sum c*x to that row's int32 lane. Sixteen
 * accumulators a block (4 unpack outputs q x 4 bit pairs k); lane (L, d) of accumulator
 * (q, k) is row 64k + 16L + 4q + d. Exact: one group moves a lane by at most
 * 4 * 128 * 128 = 2^16 and a column window holds at most COL_WINDOW / 4 = 2^9 groups, so the
 * lanes stay below 2^25; after each column window they are shifted back (exact: multiples of
 * 4^k), less the window's sum of x, into y kept in lane order, which is put in row order at
 * the end.
 */
#include <immintrin.h>

#include "kernels.h"

#define VEC __m512i
#define ACCS 16

/* Bit j set where x[j] != 0, for 64 activations. */
static inline uint64_t nonzero64(const int8_t *x) {
    __m512i xv = _mm512_loadu_si512(x);
    return _mm512_test_epi8_mask(xv, xv);
}

static inline __m512i broadcast4(uint32_t u) { return _mm512_set1_epi32((int)u); }

/* acc[16] += the chunks at p[0..4) times the activations packed in xv (one byte each). */
static inline void group4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                          const uint8_t *p3, __m512i xv, __m512i *acc) {
    __m512i a = _mm512_load_si512(p0), b = _mm512_load_si512(p1);
    __m512i c = _mm512_load_si512(p2), d = _mm512_load_si512(p3);
    __m512i ablo = _mm512_unpacklo_epi8(a, b), abhi = _mm512_unpackhi_epi8(a, b);
    __m512i cdlo = _mm512_unpacklo_epi8(c, d), cdhi = _mm512_unpackhi_epi8(c, d);
    __m512i w[4] = {_mm512_unpacklo_epi16(ablo, cdlo), _mm512_unpackhi_epi16(ablo, cdlo),
                    _mm512_unpacklo_epi16(abhi, cdhi), _mm512_unpackhi_epi16(abhi, cdhi)};
    for (int q = 0; q < 4; q++)
        for (int k = 0; k < 4; k++)
            acc[4 * q + k] = _mm512_dpbusd_epi32(
                acc[4 * q + k], _mm512_and_si512(w[q], _mm512_set1_epi8((char)(3 << (2 * k)))), xv);
}

/* y (lane order) += (acc >> 2k) - s for acc[0..n); the accumulators reset. */
static inline void add_window(__m512i *acc, size_t n, int32_t s, int32_t *y) {
    const __m512i sv = _mm512_set1_epi32(s);
    for (size_t i = 0; i < n; i++) {
        __m512i v = _mm512_sub_epi32(_mm512_srai_epi32(acc[i], (unsigned)(2 * (i % 4))), sv);
        _mm512_storeu_si512(y + 16 * i, _mm512_add_epi32(_mm512_loadu_si512(y + 16 * i), v));
        acc[i] = _mm512_setzero_si512();
    }
}

/* One block's outputs, lane (L, d) of accumulator (q, k) = row 64k + 16L + 4q + d, to rows. */
static inline void to_row_order(int32_t *yb) {
    int32_t t[BITNET_I2S_COL_ROW_TILE];
    for (int q = 0; q < 4; q++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 16; l++)
                t[64 * k + 16 * (l / 4) + 4 * q + l % 4] = yb[16 * (4 * q + k) + l];
    for (int i = 0; i < BITNET_I2S_COL_ROW_TILE; i++) yb[i] = t[i];
}

#include "x86/i2s_col_drivers.h"

void bitnet_i2s_col_gemv_avx512(const uint8_t *w, size_t kp, size_t rows_padded, const int8_t *x,
                                size_t row_begin, size_t row_end, int32_t *y) {
    i2s_col_gemv(w, kp, rows_padded, x, row_begin, row_end, y);
}

BITNET_I2S_COL_GEMM_FROM_GEMV(avx512)
