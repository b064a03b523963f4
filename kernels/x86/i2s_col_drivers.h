/* The I2_S_COL GEMV driver shared by i2s_col_avx2.c and i2s_col_avx512.c (included once by
 * each, after it has defined, for its own vector width):
 *   VEC, ACCS                     the vector type and the accumulators a 256-row block;
 *   nonzero64(x)                  bit j set where x[j] != 0, for 64 activations;
 *   broadcast4(u)                 u (four activations, one byte each) in every dword;
 *   group4(p0, p1, p2, p3, xv, acc)
 *                                 acc[0..ACCS) += one block's chunks of four columns times xv;
 *   add_window(acc, n, s, y)      y (lane order) += (acc >> 2k) - s for n accumulators, which
 *                                 are reset;
 *   to_row_order(yb)              one block's 256 outputs from lane order to row order.
 *
 * Order: the rows are taken in windows of up to ROW_BLOCKS blocks and the columns in windows
 * of COL_WINDOW. The non-zero columns of a column window are listed once; then four at a
 * time (a last, partial group padded with x = 0), each group runs down all blocks of the row
 * window, so every column is read as one sequential run of lines (what the hardware
 * prefetchers follow and DRAM serves best), and the group PREFETCH_GROUPS ahead is prefetched
 * line by line alongside (1 or 4 groups ahead, or prefetcht1 into L2, measured no better).
 * The accumulators of a row window (1 KiB a block) live on the stack and stay in L1.
 * Exact: one group moves a lane by at most 4 * 128 * 128 = 2^16 and a column window holds at
 * most COL_WINDOW / 4 = 2^9 groups, so the lanes stay below 2^25 before add_window.
 */
#ifndef BITNET_I2S_COL_DRIVERS_H
#define BITNET_I2S_COL_DRIVERS_H

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

/* One row window of nb blocks: w points at block 0 of column 0 of the window, columns
 * stride bytes apart; y[0..256 nb) receives the rows in order. */
static void rows_window(const uint8_t *w, size_t stride, size_t kp, const int8_t *x, size_t nb,
                        int32_t *y) {
    VEC acc[ROW_BLOCKS * ACCS];
    uint32_t cols[COL_WINDOW + 4];
    int8_t xs[COL_WINDOW + 4];
    /* Zero accumulators: add_window leaves them so after each column window. */
    for (size_t i = 0; i < nb * ACCS; i++) acc[i] = broadcast4(0);
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
            const VEC xv = broadcast4((uint32_t)(uint8_t)xs[g] | (uint32_t)(uint8_t)xs[g + 1] << 8 |
                                      (uint32_t)(uint8_t)xs[g + 2] << 16 |
                                      (uint32_t)(uint8_t)xs[g + 3] << 24);
            size_t gp = g + 4 * PREFETCH_GROUPS < n ? g + 4 * PREFETCH_GROUPS : g;
            const uint8_t *q0 = w + cols[gp] * stride, *q1 = w + cols[gp + 1] * stride;
            const uint8_t *q2 = w + cols[gp + 2] * stride, *q3 = w + cols[gp + 3] * stride;
            for (size_t b = 0; b < nb; b++) {
                size_t o = b * CHUNK;
                _mm_prefetch((const char *)(q0 + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(q1 + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(q2 + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(q3 + o), _MM_HINT_T0);
                group4(p0 + o, p1 + o, p2 + o, p3 + o, xv, acc + ACCS * b);
            }
        }
        add_window(acc, nb * ACCS, s, y);
    }
    for (size_t b = 0; b < nb; b++) to_row_order(y + b * TILE);
}

/* Rows [row_begin, row_end) (whole blocks) times one activation row, a row window at a time. */
static inline void i2s_col_gemv(const uint8_t *w, size_t kp, size_t rows_padded,
                                const int8_t *x, size_t row_begin, size_t row_end,
                                int32_t *y) {
    for (size_t r = row_begin; r < row_end; r += ROW_BLOCKS * TILE) {
        size_t nb = (row_end - r) / TILE < ROW_BLOCKS ? (row_end - r) / TILE : ROW_BLOCKS;
        rows_window(w + r / 4, rows_padded / 4, kp, x, nb, y + (r - row_begin));
    }
}

#endif
