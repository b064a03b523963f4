/* I2_S_COL kernels for NEON (ARMv8-A): sparse activations, only the non-zero columns read.
 *
 * Layout (src/format/i2s_col.rs, kernels.h): column c is rows_padded / 4 contiguous bytes;
 * its 64 bytes of block b hold rows 256b + 64k + i (byte i, bits 2k..2k+1), code c = t + 1
 * in {0, 1, 2}.
 *
 * Each 256-row block is done in four passes of 64 rows (bytes 16p..16p+15 of every column,
 * rows 64k + 16p + i): eight int16x8 accumulators. For a non-zero x_j, t = c - 1 in
 * {-1, 0, 1} as int8 and smlal / smlal2 add t * x_j (|t * x_j| <= 128) to the int16 lanes,
 * which are widened into the int32 outputs every 255 columns (255 * 128 < 2^15).
 */
#include <arm_neon.h>

#include "kernels.h"

#define TILE BITNET_I2S_COL_ROW_TILE
#define CHUNK BITNET_I2S_COL_CHUNK_BYTES
#define FLUSH 255

/* y[64k + 16p + i] += lane i of acc[2k] (i < 8) or acc[2k + 1] (i >= 8). */
static inline void flush(int16x8_t acc[8], int p, int32_t *y) {
    for (int k = 0; k < 4; k++) {
        int32_t *r = y + 64 * k + 16 * p;
        int16x8_t a = acc[2 * k], b = acc[2 * k + 1];
        vst1q_s32(r, vaddq_s32(vld1q_s32(r), vmovl_s16(vget_low_s16(a))));
        vst1q_s32(r + 4, vaddq_s32(vld1q_s32(r + 4), vmovl_high_s16(a)));
        vst1q_s32(r + 8, vaddq_s32(vld1q_s32(r + 8), vmovl_s16(vget_low_s16(b))));
        vst1q_s32(r + 12, vaddq_s32(vld1q_s32(r + 12), vmovl_high_s16(b)));
        acc[2 * k] = acc[2 * k + 1] = vdupq_n_s16(0);
    }
}

/* One 256-row block; column c's chunk of it is at blk + c * stride. */
static void block(const uint8_t *blk, size_t stride, size_t kp, const int8_t *x, int32_t *y) {
    for (int r = 0; r < TILE; r++) y[r] = 0;
    const uint8x16_t three = vdupq_n_u8(3);
    const int8x16_t one = vdupq_n_s8(1);
    for (int p = 0; p < 4; p++) {
        int16x8_t acc[8];
        for (int a = 0; a < 8; a++) acc[a] = vdupq_n_s16(0);
        int pending = 0;
        for (size_t c = 0; c < kp; c++) {
            if (x[c] == 0) continue;
            int8x8_t xv = vdup_n_s8(x[c]);
            uint8x16_t w = vld1q_u8(blk + c * stride + 16 * p);
#define STEP(k)                                                                           \
    do {                                                                                  \
        int8x16_t t = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(w, 2 * k), three)), one); \
        acc[2 * k] = vmlal_s8(acc[2 * k], vget_low_s8(t), xv);                           \
        acc[2 * k + 1] = vmlal_high_s8(acc[2 * k + 1], t, vcombine_s8(xv, xv));           \
    } while (0)
            /* vshrq_n_u8 needs a constant shift: k = 0 is a plain mask. */
            {
                int8x16_t t = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(w, three)), one);
                acc[0] = vmlal_s8(acc[0], vget_low_s8(t), xv);
                acc[1] = vmlal_high_s8(acc[1], t, vcombine_s8(xv, xv));
            }
            STEP(1);
            STEP(2);
            STEP(3);
#undef STEP
            if (++pending == FLUSH) {
                flush(acc, p, y);
                pending = 0;
            }
        }
        flush(acc, p, y);
    }
}

void bitnet_i2s_col_gemv_neon(const uint8_t *w, size_t kp, size_t rows_padded, const int8_t *x,
                              size_t row_begin, size_t row_end, int32_t *y) {
    for (size_t r = row_begin; r < row_end; r += TILE)
        block(w + r / 4, rows_padded / 4, kp, x, y + (r - row_begin));
}

BITNET_I2S_COL_GEMM_FROM_GEMV(neon)
