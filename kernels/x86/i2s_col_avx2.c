/* I2_S_COL kernels for AVX2: sparse activations, only the non-zero columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): column c is rows_padded / 4 contiguous bytes;
 * its 64 bytes of block b (rows 256b..256b+255) hold rows 256b + 64k + i (byte i, bits
 * 2k..2k+1), code c = t + 1 in {0, 1, 2}.
 *
 * Order, as in i2s_col_avx512.c: row windows of up to ROW_BLOCKS blocks, column windows of
 * COL_WINDOW; the non-zero columns of a column window are listed once, then taken four at a
 * time (a last, partial group padded with x = 0), each group running down all blocks of the
 * row window (each column read as one sequential run), the group PREFETCH_GROUPS ahead
 * prefetched line by line. The accumulators (1 KiB a block) live on the stack, in L1.
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

#define TILE BITNET_I2S_COL_ROW_TILE
#define CHUNK BITNET_I2S_COL_CHUNK_BYTES
/* Blocks of one row window: 16 KiB of accumulators. */
#define ROW_BLOCKS 16
/* Columns listed at once: 10 KiB of list, and at most 2^9 groups between flushes. */
#define COL_WINDOW 2048
#define PREFETCH_GROUPS 2

/* Bit j set where x[j] != 0, for 64 activations. */
static inline uint64_t nonzero64(const int8_t *x) {
    __m256i z = _mm256_setzero_si256();
    uint32_t lo = (uint32_t)_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)x), z));
    uint32_t hi = (uint32_t)_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(x + 32)), z));
    return ~((uint64_t)hi << 32 | lo);
}

/* Lists the non-zero activations of x[0..n) (n a multiple of 64): their columns (plus c0)
 * and values; returns the count and sets *sum to their sum. */
static size_t nonzeros(const int8_t *x, size_t n, size_t c0, uint32_t *cols, int8_t *xs,
                       int32_t *sum) {
    size_t m = 0;
    int32_t s = 0;
    for (size_t c = 0; c < n; c += 64) {
        uint64_t nz = nonzero64(x + c);
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

/* One row window of nb blocks: w points at block 0 of column 0 of the window, columns
 * stride bytes apart; y[0..256 nb) receives the rows in order. */
static void rows_window(const uint8_t *w, size_t stride, size_t kp, const int8_t *x, size_t nb,
                        int32_t *y) {
    __m256i acc[ROW_BLOCKS * 32];
    uint32_t cols[COL_WINDOW + 4];
    int8_t xs[COL_WINDOW + 4];
    for (size_t i = 0; i < nb * 32; i++) acc[i] = _mm256_setzero_si256();
    for (size_t i = 0; i < nb * TILE; i++) y[i] = 0;
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
            __m256i xv = _mm256_set1_epi32((int)((uint32_t)(uint8_t)xs[g] |
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
                group4(p0 + o, p1 + o, p2 + o, p3 + o, xv, acc + 32 * b);
            }
        }
        /* y (lane order) += (acc >> 2k) - s; the accumulators reset. */
        __m256i sv = _mm256_set1_epi32(s);
        for (size_t i = 0; i < nb * 32; i++) {
            __m256i v = _mm256_sub_epi32(
                _mm256_sra_epi32(acc[i], _mm_cvtsi32_si128((int)(2 * (i % 4)))), sv);
            __m256i *yi = (__m256i *)(y + 8 * i);
            _mm256_storeu_si256(yi, _mm256_add_epi32(_mm256_loadu_si256(yi), v));
            acc[i] = _mm256_setzero_si256();
        }
    }
    /* Lane order to row order, block by block. */
    for (size_t b = 0; b < nb; b++) {
        int32_t t[TILE], *yb = y + b * TILE;
        for (int h = 0; h < 2; h++)
            for (int q = 0; q < 4; q++)
                for (int k = 0; k < 4; k++)
                    for (int j = 0; j < 8; j++)
                        t[64 * k + 32 * h + 16 * (j / 4) + 4 * q + j % 4] =
                            yb[8 * (16 * h + 4 * q + k) + j];
        for (int i = 0; i < TILE; i++) yb[i] = t[i];
    }
}

void bitnet_i2s_col_gemv_avx2(const uint8_t *w, size_t kp, size_t rows_padded, const int8_t *x,
                                size_t row_begin, size_t row_end, int32_t *y) {
    for (size_t r = row_begin; r < row_end; r += ROW_BLOCKS * TILE) {
        size_t nb = (row_end - r) / TILE < ROW_BLOCKS ? (row_end - r) / TILE : ROW_BLOCKS;
        rows_window(w + r / 4, rows_padded / 4, kp, x, nb, y + (r - row_begin));
    }
}

BITNET_I2S_COL_GEMM_FROM_GEMV(avx2)
