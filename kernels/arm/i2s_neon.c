/* I2_S GEMV and GEMM for every AArch64 core (ARMv8-A Advanced SIMD, no dot product): for
 * cores without `sdot` (Cortex-A53/A57/A72, ...). Same packed bytes as every other kernel:
 * src/format/i2s.rs, kernels.h.
 *
 * Products c*q (c in {0,1,2} decoded exactly, q signed) come from smull/smlal into int16
 * lanes, which are widened into int32 with sadalp; sum t*q = sum c*q - sum q. */
#include <arm_neon.h>

#include "kernels.h"

#define I2S_ISA neon

/* For the GEMM tile (i2s_common.h): int16 lanes take 4 products |c*q| <= 256 (<= 1024), and
 * sadalp adds 2 such lanes to each int32 lane, twice: <= 4096 = 2^12 per lane. */
static inline int32x4_t i2s_dot64(int32x4_t acc, const int8x16_t c[4], const int8_t *x) {
    const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 64);
    const int8x16_t x2 = vld1q_s8(x + 128), x3 = vld1q_s8(x + 192);
    int16x8_t lo = vmull_s8(vget_low_s8(c[0]), vget_low_s8(x0));
    int16x8_t hi = vmull_high_s8(c[0], x0);
    lo = vmlal_s8(lo, vget_low_s8(c[1]), vget_low_s8(x1));
    hi = vmlal_high_s8(hi, c[1], x1);
    lo = vmlal_s8(lo, vget_low_s8(c[2]), vget_low_s8(x2));
    hi = vmlal_high_s8(hi, c[2], x2);
    lo = vmlal_s8(lo, vget_low_s8(c[3]), vget_low_s8(x3));
    hi = vmlal_high_s8(hi, c[3], x3);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
}

#include "i2s_common.h"

void bitnet_i2s_gemv_neon(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                          size_t row_end, int32_t *y) {
    const size_t nb = kp / BITNET_I2S_K_BLOCK;
    const int64_t qsum = i2s_sum_i8(x, kp);
    for (size_t r = row_begin; r < row_end; r += BITNET_I2S_ROW_TILE) {
        /* One sequential stream: the group's chunks follow each other, 4 rows of 64 bytes. */
        const uint8_t *p = w + bitnet_i2s_chunk_offset(r, 0, kp);
        /* int32 lanes: sadalp of 2 int16 lanes, twice a chunk (<= 4 * 4096 = 2^14), over
         * <= 2^16 chunks: 2^30. */
        int32x4_t acc[4];
        for (int i = 0; i < 4; i++) acc[i] = vdupq_n_s32(0);
        for (size_t b = 0; b < nb; b++, p += BITNET_I2S_ROW_TILE * BITNET_I2S_CHUNK_BYTES) {
            const int8_t *xb = x + b * BITNET_I2S_K_BLOCK;
            /* int16 lanes: 4 slices x 4 products |c*q| <= 256 a chunk: 4096, far from 2^15;
             * widened once a chunk, so the widening costs 2 sadalp per 256 weights. */
            int16x8_t lo[4], hi[4];
            for (int i = 0; i < 4; i++) lo[i] = hi[i] = vdupq_n_s16(0);
            for (size_t s = 0; s < BITNET_I2S_CHUNK_BYTES; s += 16) {
                /* Activations of the 4 code positions, shared by the 4 rows. */
                int8x16_t xs[4];
                for (int k = 0; k < 4; k++) xs[k] = vld1q_s8(xb + 64 * k + s);
                for (int i = 0; i < 4; i++) {
                    int8x16_t c[4];
                    i2s_decode(vld1q_u8(p + i * BITNET_I2S_CHUNK_BYTES + s), c);
                    for (int k = 0; k < 4; k++) {
                        lo[i] = vmlal_s8(lo[i], vget_low_s8(c[k]), vget_low_s8(xs[k]));
                        hi[i] = vmlal_high_s8(hi[i], c[k], xs[k]);
                    }
                }
            }
            for (int i = 0; i < 4; i++) acc[i] = vpadalq_s16(vpadalq_s16(acc[i], lo[i]), hi[i]);
        }
        for (int i = 0; i < 4; i++) /* int64 total; |result| <= 128 * cols < 2^31 */
            y[r - row_begin + i] = (int32_t)(vaddlvq_s32(acc[i]) - qsum);
    }
}
