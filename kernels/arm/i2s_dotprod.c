/* I2_S GEMV and GEMM for AArch64 with the dot-product extension (ARMv8.2-A DotProd, `sdot`),
 * selected at run time (is_aarch64_feature_detected!("dotprod")). Same packed bytes as every
 * other kernel: src/format/i2s.rs, kernels.h.
 *
 * sdot multiplies signed by signed bytes. The codes c in {0,1,2} are valid signed bytes, so
 * sum t*q = sum c*q - sum q needs no unsigned x signed product (usdot would need i8mm).
 * The GEMV skips most shifts: masking byte v with 0x03, 0x0C, 0x30 gives c0, 4*c1, 16*c2
 * (all <= 32, still signed bytes), and v >> 6 gives c3. Codes of equal scale share an
 * accumulator (c0 and c3; 4*c1; 16*c2), recombined exactly with arithmetic shifts
 * (each accumulator is a multiple of its scale). */
#include <arm_neon.h>

#include "kernels.h"

#define I2S_ISA dotprod

/* For the GEMM tile (i2s_common.h): 4 sdot, each adding 4 products |c*q| <= 256 to a lane. */
static inline int32x4_t i2s_dot64(int32x4_t acc, const int8x16_t c[4], const int8_t *x) {
    acc = vdotq_s32(acc, c[0], vld1q_s8(x));
    acc = vdotq_s32(acc, c[1], vld1q_s8(x + 64));
    acc = vdotq_s32(acc, c[2], vld1q_s8(x + 128));
    return vdotq_s32(acc, c[3], vld1q_s8(x + 192));
}

#include "i2s_common.h"

/* The 16*c2 accumulator grows by <= 16 products * 32 * 128 = 2^16 per lane a chunk, so it is
 * folded into the scale-1 accumulator every FLUSH_CHUNKS chunks: 2^13 * 2^16 = 2^29. */
#define FLUSH_CHUNKS 8192

void bitnet_i2s_gemv_dotprod(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                             size_t row_end, int32_t *y) {
    const size_t nb = kp / BITNET_I2S_K_BLOCK;
    const int64_t qsum = i2s_sum_i8(x, kp);
    const uint8x16_t m03 = vdupq_n_u8(0x03), m0c = vdupq_n_u8(0x0c), m30 = vdupq_n_u8(0x30);
    for (size_t r = row_begin; r < row_end; r += BITNET_I2S_ROW_TILE) {
        /* One sequential stream: the group's chunks follow each other, 4 rows of 64 bytes. */
        const uint8_t *p = w + bitnet_i2s_chunk_offset(r, 0, kp);
        /* Lane bounds over <= 2^16 chunks (kp <= 2^24):
         *   a1:  c0*q and c3*q, 32 products <= 256 a chunk (2^13), plus the folded
         *        a16 >> 4 (16 products <= 256, 2^12): 3 * 2^12 * 2^16 < 2^30;
         *   a4:  4*c1*q, 16 products <= 1024 a chunk: 2^14 * 2^16 = 2^30;
         *   a16: see FLUSH_CHUNKS. */
        int32x4_t a1[4], a4[4], a16[4];
        for (int i = 0; i < 4; i++) a1[i] = a4[i] = a16[i] = vdupq_n_s32(0);
        for (size_t b0 = 0; b0 < nb; b0 += FLUSH_CHUNKS) {
            const size_t b1 = nb - b0 < FLUSH_CHUNKS ? nb : b0 + FLUSH_CHUNKS;
            for (size_t b = b0; b < b1; b++, p += BITNET_I2S_ROW_TILE * BITNET_I2S_CHUNK_BYTES) {
                const int8_t *xb = x + b * BITNET_I2S_K_BLOCK;
                /* Not unrolled: unrolled, gcc hoists all 16 weight loads of the chunk and
                 * spills the accumulators to the stack. */
#pragma GCC unroll 1
                for (size_t s = 0; s < BITNET_I2S_CHUNK_BYTES; s += 16) {
                    /* Activations of the 4 code positions, shared by the 4 rows. */
                    const int8x16_t x0 = vld1q_s8(xb + s), x1 = vld1q_s8(xb + 64 + s);
                    const int8x16_t x2 = vld1q_s8(xb + 128 + s), x3 = vld1q_s8(xb + 192 + s);
                    for (int i = 0; i < 4; i++) {
                        const uint8x16_t v = vld1q_u8(p + i * BITNET_I2S_CHUNK_BYTES + s);
                        a1[i] = vdotq_s32(a1[i], vreinterpretq_s8_u8(vandq_u8(v, m03)), x0);
                        a4[i] = vdotq_s32(a4[i], vreinterpretq_s8_u8(vandq_u8(v, m0c)), x1);
                        a16[i] = vdotq_s32(a16[i], vreinterpretq_s8_u8(vandq_u8(v, m30)), x2);
                        a1[i] = vdotq_s32(a1[i], vreinterpretq_s8_u8(vshrq_n_u8(v, 6)), x3);
                    }
                }
            }
            for (int i = 0; i < 4; i++) {
                a1[i] = vsraq_n_s32(a1[i], a16[i], 4); /* exact: a16 is a multiple of 16 */
                a16[i] = vdupq_n_s32(0);
            }
        }
        for (int i = 0; i < 4; i++) /* a1 + a4/4 < 2^30 per lane; int64 total; |result| < 2^31 */
            y[r - row_begin + i] = (int32_t)(vaddlvq_s32(vsraq_n_s32(a1[i], a4[i], 2)) - qsum);
    }
}
