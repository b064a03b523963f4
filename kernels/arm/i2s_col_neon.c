/* I2_S_COL kernels for NEON (ARMv8-A): sparse activations, only the non-zero columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): column c is rows_padded / 4 contiguous bytes;
 * its 64 bytes of block b hold rows 256b + 64k + i (byte i, bits 2k..2k+1), code c = t + 1
 * in {0, 1, 2}.
 *
 * Order, as in the x86 files: row windows of up to ROW_BLOCKS blocks; the non-zero columns
 * are listed FLUSH at a time, and each runs down all blocks of the row window (one sequential
 * run of its bytes), the column PREFETCH_COLS ahead prefetched line by line. A block's 32
 * int16x8 accumulators (512 bytes; 16 bytes p of the chunk x bit pair k x low/high half)
 * live on the stack. For a non-zero x_j, t = c - 1 in {-1, 0, 1} as int8 and smlal / smlal2
 * add t * x_j (|t * x_j| <= 128) to the int16 lanes, which are widened into the int32
 * outputs after every FLUSH = 255 columns (255 * 128 < 2^15).
 */
#include <arm_neon.h>

#include "kernels.h"

#define TILE BITNET_I2S_COL_ROW_TILE
#define CHUNK BITNET_I2S_COL_CHUNK_BYTES
/* Blocks of one row window: 8 KiB of accumulators. */
#define ROW_BLOCKS 16
#define FLUSH 255
#define PREFETCH_COLS 8

/* acc[32] += t * x for the 64-byte chunk at p: acc[8q + 2k] lanes i are row 64k + 16q + i,
 * acc[8q + 2k + 1] row 64k + 16q + 8 + i. */
static inline void column(const uint8_t *p, int8x8_t xv, int16x8_t *acc) {
    const uint8x16_t three = vdupq_n_u8(3);
    const int8x16_t one = vdupq_n_s8(1);
    const int8x16_t xx = vcombine_s8(xv, xv);
    for (int q = 0; q < 4; q++) {
        uint8x16_t w = vld1q_u8(p + 16 * q);
        int16x8_t *a = acc + 8 * q;
/* vshrq_n_u8 needs a constant shift (and k = 0 none). */
#define STEP(k, wk)                                                                    \
    do {                                                                               \
        int8x16_t t = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(wk, three)), one);          \
        a[2 * k] = vmlal_s8(a[2 * k], vget_low_s8(t), xv);                             \
        a[2 * k + 1] = vmlal_high_s8(a[2 * k + 1], t, xx);                             \
    } while (0)
        STEP(0, w);
        STEP(1, vshrq_n_u8(w, 2));
        STEP(2, vshrq_n_u8(w, 4));
        STEP(3, vshrq_n_u8(w, 6));
#undef STEP
    }
}

/* One row window of nb blocks: w points at block 0 of column 0 of the window, columns
 * stride bytes apart; y[0..256 nb) receives the rows. */
static void rows_window(const uint8_t *w, size_t stride, size_t kp, const int8_t *x, size_t nb,
                        int32_t *y) {
    int16x8_t acc[ROW_BLOCKS * 32];
    uint32_t cols[FLUSH];
    int8_t xs[FLUSH];
    for (size_t i = 0; i < nb * TILE; i++) y[i] = 0;
    for (size_t i = 0; i < nb * 32; i++) acc[i] = vdupq_n_s16(0);
    size_t c = 0;
    while (c < kp) {
        size_t n = 0;
        for (; c < kp && n < FLUSH; c++)
            if (x[c] != 0) {
                cols[n] = (uint32_t)c;
                xs[n++] = x[c];
            }
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = w + cols[i] * stride;
            const uint8_t *pf = w + cols[i + PREFETCH_COLS < n ? i + PREFETCH_COLS : i] * stride;
            int8x8_t xv = vdup_n_s8(xs[i]);
            for (size_t b = 0; b < nb; b++) {
                __builtin_prefetch(pf + b * CHUNK);
                column(p + b * CHUNK, xv, acc + 32 * b);
            }
        }
        /* Widen into y and reset. */
        for (size_t b = 0; b < nb; b++)
            for (int q = 0; q < 4; q++)
                for (int k = 0; k < 4; k++)
                    for (int h = 0; h < 2; h++) {
                        int16x8_t *a = acc + 32 * b + 8 * q + 2 * k + h;
                        int32_t *r = y + b * TILE + 64 * k + 16 * q + 8 * h;
                        vst1q_s32(r, vaddq_s32(vld1q_s32(r), vmovl_s16(vget_low_s16(*a))));
                        vst1q_s32(r + 4, vaddq_s32(vld1q_s32(r + 4), vmovl_high_s16(*a)));
                        *a = vdupq_n_s16(0);
                    }
    }
}

void bitnet_i2s_col_gemv_neon(const uint8_t *w, size_t kp, size_t rows_padded, const int8_t *x,
                              size_t row_begin, size_t row_end, int32_t *y) {
    for (size_t r = row_begin; r < row_end; r += ROW_BLOCKS * TILE) {
        size_t nb = (row_end - r) / TILE < ROW_BLOCKS ? (row_end - r) / TILE : ROW_BLOCKS;
        rows_window(w + r / 4, rows_padded / 4, kp, x, nb, y + (r - row_begin));
    }
}

BITNET_I2S_COL_GEMM_FROM_GEMV(neon)
