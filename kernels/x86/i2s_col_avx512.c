/* I2_S_COL kernels for AVX-512 (F/BW/VL + VNNI): sparse activations, only the non-zero
 * columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): column c is rows_padded / 4 contiguous bytes;
 * its 64 bytes of block b (rows 256b..256b+255) hold rows 256b + 64k + i (byte i, bits
 * 2k..2k+1), code c = t + 1 in {0, 1, 2}.
 *
 * Order: the rows are taken in windows of up to ROW_BLOCKS blocks and the columns in windows
 * of COL_WINDOW. The non-zero columns of a column window are listed once; then four at a time
 * (a last, partial group padded with x = 0), each group runs down all blocks of the row
 * window, so every column is read as one sequential run of lines (what the hardware
 * prefetchers follow and DRAM serves best), and the group PREFETCH_GROUPS ahead is
 * prefetched line by line alongside. The accumulators of the row window (1 KiB a block) live
 * on the stack and stay in L1.
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

#define TILE BITNET_I2S_COL_ROW_TILE
#define CHUNK BITNET_I2S_COL_CHUNK_BYTES
/* Blocks of one row window: 16 KiB of accumulators. */
#define ROW_BLOCKS 16
/* Columns listed at once: 10 KiB of list, and at most 2^9 groups between flushes. */
#define COL_WINDOW 2048
#define PREFETCH_GROUPS 2

/* Lists the non-zero activations of x[0..n) (n a multiple of 64): their columns (plus c0)
 * and values; returns the count and sets *sum to their sum. */
static size_t nonzeros(const int8_t *x, size_t n, size_t c0, uint32_t *cols, int8_t *xs,
                       int32_t *sum) {
    size_t m = 0;
    int32_t s = 0;
    for (size_t c = 0; c < n; c += 64) {
        __m512i xv = _mm512_loadu_si512(x + c);
        uint64_t nz = _mm512_test_epi8_mask(xv, xv);
        while (nz) {
            size_t j = c + bitnet_ctz64(nz);
            nz &= nz - 1;
            cols[m] = (uint32_t)(c0 + j);
            xs[m++] = x[j];
            s += x[j];
        }
    }
    *sum = s;
    return m;
}

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

/* One row window of nb blocks: w points at block 0 of column 0 of the window, columns
 * stride bytes apart; y[0..256 nb) receives the rows in order. */
static void rows_window(const uint8_t *w, size_t stride, size_t kp, const int8_t *x, size_t nb,
                        int32_t *y) {
    __m512i acc[ROW_BLOCKS * 16];
    uint32_t cols[COL_WINDOW + 4];
    int8_t xs[COL_WINDOW + 4];
    for (size_t i = 0; i < nb * 16; i++) acc[i] = _mm512_setzero_si512();
    for (size_t i = 0; i < nb * TILE; i += 16) _mm512_storeu_si512(y + i, _mm512_setzero_si512());
    for (size_t c0 = 0; c0 < kp; c0 += COL_WINDOW) {
        int32_t s;
        size_t n = nonzeros(x + c0, kp - c0 < COL_WINDOW ? kp - c0 : COL_WINDOW, c0, cols, xs, &s);
        if (n == 0) continue;
        for (size_t i = n; i % 4; i++) {
            cols[i] = cols[0];
            xs[i] = 0;
            n++;
        }
        for (size_t g = 0; g < n; g += 4) {
            const uint8_t *p0 = w + cols[g] * stride, *p1 = w + cols[g + 1] * stride;
            const uint8_t *p2 = w + cols[g + 2] * stride, *p3 = w + cols[g + 3] * stride;
            __m512i xv = _mm512_set1_epi32((int)((uint32_t)(uint8_t)xs[g] |
                                                 (uint32_t)(uint8_t)xs[g + 1] << 8 |
                                                 (uint32_t)(uint8_t)xs[g + 2] << 16 |
                                                 (uint32_t)(uint8_t)xs[g + 3] << 24));
            size_t gp = g + 4 * PREFETCH_GROUPS < n ? g + 4 * PREFETCH_GROUPS : g;
            const uint8_t *q0 = w + cols[gp] * stride, *q1 = w + cols[gp + 1] * stride;
            const uint8_t *q2 = w + cols[gp + 2] * stride, *q3 = w + cols[gp + 3] * stride;
            for (size_t b = 0; b < nb; b++) {
                size_t o = b * CHUNK;
                _mm_prefetch((const char *)(q0 + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(q1 + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(q2 + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(q3 + o), _MM_HINT_T0);
                group4(p0 + o, p1 + o, p2 + o, p3 + o, xv, acc + 16 * b);
            }
        }
        /* y (lane order) += (acc >> 2k) - s; the accumulators reset. */
        __m512i sv = _mm512_set1_epi32(s);
        for (size_t i = 0; i < nb * 16; i++) {
            __m512i v = _mm512_sub_epi32(_mm512_srai_epi32(acc[i], (unsigned)(2 * (i % 4))), sv);
            _mm512_storeu_si512(y + 16 * i, _mm512_add_epi32(_mm512_loadu_si512(y + 16 * i), v));
            acc[i] = _mm512_setzero_si512();
        }
    }
    /* Lane order to row order, block by block. */
    for (size_t b = 0; b < nb; b++) {
        int32_t t[TILE], *yb = y + b * TILE;
        for (int q = 0; q < 4; q++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 16; l++)
                    t[64 * k + 16 * (l / 4) + 4 * q + l % 4] = yb[16 * (4 * q + k) + l];
        for (int i = 0; i < TILE; i++) yb[i] = t[i];
    }
}

void bitnet_i2s_col_gemv_avx512(const uint8_t *w, size_t kp, size_t rows_padded, const int8_t *x,
                                size_t row_begin, size_t row_end, int32_t *y) {
    for (size_t r = row_begin; r < row_end; r += ROW_BLOCKS * TILE) {
        size_t nb = (row_end - r) / TILE < ROW_BLOCKS ? (row_end - r) / TILE : ROW_BLOCKS;
        rows_window(w + r / 4, rows_padded / 4, kp, x, nb, y + (r - row_begin));
    }
}

BITNET_I2S_COL_GEMM_FROM_GEMV(avx512)
