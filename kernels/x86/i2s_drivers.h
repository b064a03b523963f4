/* The I2_S GEMV and GEMM drivers shared by i2s_avx2.c and i2s_avx512.c (included once by
 * each, after it has defined, for its own vector width):
 *   GEMM_KB, GEMM_ACTS            the K block (columns) and the activation rows of a tile;
 *   unpack_group(g, b0, b1, u)    chunks [b0, b1) of the 4-row group at g into u[4][GEMM_KB],
 *                                 plain codes c in {0, 1, 2}, column order;
 *   tile_acts(u, x, kp, len, A, y, ys)
 *                                 y[j * ys + 0..3] += the group's sums of c*q over len columns
 *                                 for activation rows j = 0..A-1 (1 <= A <= GEMM_ACTS);
 *   sum_q(x, kp)                  sum of one activation row, exact (|.| <= 128 * (2^24 - 1));
 *   GEMM_SMALL_N, lanes_t, lane_sums(x, kp), gemv_group(g, nb, x, qs, pf)
 *                                 the GEMV loop for one 4-row group and one activation row
 *                                 (lane_sums gives its qs; pf: prefetch the weights ahead,
 *                                 x86/prefetch.h), used for at most GEMM_SMALL_N rows.
 *
 * y starts at -sum q and gains each K block's sum c*q, so every value it holds is
 * sum_{done} t*q - sum_{not done} q: |.| <= 128 * (2^24 - 1) < 2^31.
 */
#ifndef BITNET_I2S_DRIVERS_H
#define BITNET_I2S_DRIVERS_H

/* Activation bytes a GEMM walks per group of rows before moving on (half a 1 MiB L2).
 * Without it, 512 rows of 6912 int8 (3.5 MiB) came from L3 for every 4-row group: the
 * 2560x6912 GEMM ran at 105 G MAC/s against 231 for 6912x2560 (Xeon guest, one run). */
#define GEMM_X_BYTES (512 * 1024)

/* Rows [row_begin, row_end) times one activation row, group by group. */
static BITNET_ALWAYS_INLINE void i2s_gemv_rows(const uint8_t *w, size_t kp,
                                               const int8_t *x,
                                               size_t row_begin,
                                               size_t row_end, int32_t *y,
                                               int pf) {
    const lanes_t qs = lane_sums(x, kp);
    for (size_t r = row_begin; r < row_end; r += BITNET_I2S_ROW_TILE) {
        const __m128i s = gemv_group(w + bitnet_i2s_chunk_offset(r, 0, kp),
                                     kp / BITNET_I2S_K_BLOCK, x, qs, pf);
        _mm_storeu_si128((__m128i *)(y + (r - row_begin)), s);
    }
}

/* The GEMV, compiled twice so that the hot loop has no prefetch test (x86/prefetch.h). */
static inline void i2s_gemv(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                            size_t row_end, int32_t *y) {
    if (bitnet_x86_prefetch_on())
        i2s_gemv_rows(w, kp, x, row_begin, row_end, y, 1);
    else
        i2s_gemv_rows(w, kp, x, row_begin, row_end, y, 0);
}

/* Few activation rows: the GEMV loop for each, group by group, so the weights stream from
 * memory once (prefetched ahead for the first row only) and sit in L1 for the rows after it; below a few rows, unpacking the
 * codes costs more than it saves (each file measures its own GEMM_SMALL_N). */
static inline void i2s_gemm_small(const uint8_t *w, size_t kp, const int8_t *x, size_t n,
                                  size_t row_begin, size_t row_end, int32_t *y) {
    lanes_t qs[GEMM_SMALL_N];
    const size_t rows = row_end - row_begin;
    const int pf = bitnet_x86_prefetch_on();
    for (size_t j = 0; j < n; j++) qs[j] = lane_sums(x + j * kp, kp);
    for (size_t r = row_begin; r < row_end; r += BITNET_I2S_ROW_TILE) {
        const uint8_t *g = w + bitnet_i2s_chunk_offset(r, 0, kp);
        for (size_t j = 0; j < n; j++)
            _mm_storeu_si128((__m128i *)(y + j * rows + (r - row_begin)),
                             gemv_group(g, kp / BITNET_I2S_K_BLOCK, x + j * kp, qs[j], pf && j == 0));
    }
}

static inline void i2s_gemm(const uint8_t *w, size_t kp, const int8_t *x, size_t n,
                            size_t row_begin, size_t row_end, int32_t *y) {
    if (n <= GEMM_SMALL_N) {
        i2s_gemm_small(w, kp, x, n, row_begin, row_end, y);
        return;
    }
    const size_t nb = kp / BITNET_I2S_K_BLOCK, rows = row_end - row_begin;
    _Alignas(64) uint8_t u[BITNET_I2S_ROW_TILE * GEMM_KB];
    for (size_t j = 0; j < n; j++) {
        const int32_t s = -sum_q(x + j * kp, kp);
        for (size_t r = 0; r < rows; r++) y[j * rows + r] = s;
    }
    /* Even K blocks of at most GEMM_KB columns. */
    const size_t nblk = (kp + GEMM_KB - 1) / GEMM_KB;
    const size_t per = (nb + nblk - 1) / nblk;
    /* Activation rows in blocks of at most GEMM_X_BYTES, so that a block stays in L2 while
     * every group of rows walks it (the codes are unpacked again for each block). */
    size_t nx = GEMM_X_BYTES / kp / GEMM_ACTS * GEMM_ACTS;
    if (nx < GEMM_ACTS) nx = GEMM_ACTS;
    for (size_t j0 = 0; j0 < n; j0 += nx) {
        const size_t j1 = n - j0 < nx ? n : j0 + nx;
        for (size_t r = row_begin; r < row_end; r += BITNET_I2S_ROW_TILE) {
            const uint8_t *g = w + bitnet_i2s_chunk_offset(r, 0, kp);
            int32_t *yr = y + (r - row_begin);
            for (size_t b0 = 0; b0 < nb; b0 += per) {
                const size_t b1 = nb - b0 < per ? nb : b0 + per;
                const size_t len = (b1 - b0) * BITNET_I2S_K_BLOCK;
                unpack_group(g, b0, b1, u);
                const int8_t *xb = x + b0 * BITNET_I2S_K_BLOCK;
                for (size_t j = j0; j < j1; j += GEMM_ACTS) {
                    const int a = j1 - j < GEMM_ACTS ? (int)(j1 - j) : GEMM_ACTS;
                    tile_acts(u, xb + j * kp, kp, len, a, yr + j * rows, rows);
                }
            }
        }
    }
}

#endif
