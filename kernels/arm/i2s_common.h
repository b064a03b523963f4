/* Shared by the two AArch64 I2_S files (i2s_neon.c, i2s_dotprod.c): the GEMM loop nest and
 * the activation sums. The includer first defines
 *   I2S_ISA                      the symbol suffix (neon, dotprod), and
 *   static inline int32x4_t i2s_dot64(int32x4_t acc, const int8x16_t c[4], const int8_t *x)
 *                                acc + the products of 4 decoded code vectors c[k] (codes
 *                                0..2, one 16-byte slice of a row chunk) with the activations
 *                                x[64k .. 64k+15], each int32 lane growing by at most
 *                                16 * 2 * 128 = 2^12 in magnitude.
 *
 * Decoding (docs/FORMATS.md section 2): byte j of a row's 64-byte chunk holds the codes of columns
 * j, j+64, j+128, j+192 in bit pairs 0-1 .. 6-7; c = t + 1 in {0, 1, 2}, so
 * sum t*q = sum c*q - sum q, with sum q taken once per activation row. Codes 0..2 are valid
 * signed bytes, so signed x signed multiplies (sdot, smull) are exact on them. */
#ifndef BITNET_ARM_I2S_COMMON_H
#define BITNET_ARM_I2S_COMMON_H

#include <arm_neon.h>

#include "kernels.h"

#define I2S_CAT_(a, b) a##b
#define I2S_CAT(a, b) I2S_CAT_(a, b)
#define I2S_FN(op) I2S_CAT(bitnet_i2s_##op##_, I2S_ISA)

/* Activation rows handled together by one GEMM tile, and activation rows whose sums are kept
 * on the stack at once (the outer GEMM block: its x stays in L2 while every row group of the
 * range is run over it). */
#define I2S_ACT_TILE 4
#define I2S_ACT_BLOCK 64

/* sum of x[0..kp) exactly: int16 lanes add 2 bytes (<= 256), int32 lanes add 4 bytes per
 * step, at most 128 * kp/4 <= 2^29 for kp <= 2^24; the int64 total cannot overflow. */
static inline int64_t i2s_sum_i8(const int8_t *x, size_t kp) {
    int32x4_t s = vdupq_n_s32(0);
    for (size_t i = 0; i < kp; i += 16) s = vpadalq_s16(s, vpaddlq_s8(vld1q_s8(x + i)));
    return vaddlvq_s32(s);
}

/* The four codes of each byte of one 16-byte slice, as exact values 0..2. */
static inline void i2s_decode(uint8x16_t v, int8x16_t c[4]) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    c[0] = vreinterpretq_s8_u8(vandq_u8(v, m3));
    c[1] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 2), m3));
    c[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 4), m3));
    c[3] = vreinterpretq_s8_u8(vshrq_n_u8(v, 6));
}

/* Rows r, r+1 (two consecutive 64-byte chunks from g, the row group's first chunk, plus
 * 64*half) times `na` activation rows (na <= I2S_ACT_TILE, a constant after inlining).
 * Each weight slice is loaded and decoded once and used for every activation row; each
 * activation slice once and used for both rows. */
static BITNET_ALWAYS_INLINE void i2s_gemm_tile(
    const uint8_t *g, size_t kp, const int8_t *x, size_t na, const int64_t *qsum, int32_t *y,
    size_t ystride) {
    const size_t nb = kp / BITNET_I2S_K_BLOCK;
    for (size_t half = 0; half < BITNET_I2S_ROW_TILE; half += 2) {
        /* Lane bound: 2^12 per slice (i2s_dot64), 4 slices a chunk, <= 2^16 chunks:
         * 2^30 < 2^31. */
        int32x4_t acc[2][I2S_ACT_TILE];
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < na; j++) acc[i][j] = vdupq_n_s32(0);
        const uint8_t *p = g + half * BITNET_I2S_CHUNK_BYTES;
        for (size_t b = 0; b < nb; b++, p += BITNET_I2S_ROW_TILE * BITNET_I2S_CHUNK_BYTES) {
            /* Not unrolled: unrolled, gcc hoists every load of the chunk and runs out of
             * registers. */
#pragma GCC unroll 1
            for (size_t s = 0; s < BITNET_I2S_CHUNK_BYTES; s += 16) {
                int8x16_t c0[4], c1[4];
                i2s_decode(vld1q_u8(p + s), c0);
                i2s_decode(vld1q_u8(p + BITNET_I2S_CHUNK_BYTES + s), c1);
                for (size_t j = 0; j < na; j++) {
                    const int8_t *xs = x + j * kp + b * BITNET_I2S_K_BLOCK + s;
                    acc[0][j] = i2s_dot64(acc[0][j], c0, xs);
                    acc[1][j] = i2s_dot64(acc[1][j], c1, xs);
                }
            }
        }
        for (size_t j = 0; j < na; j++)
            for (size_t i = 0; i < 2; i++) /* |result| <= 128 * cols < 2^31 */
                y[j * ystride + half + i] = (int32_t)(vaddlvq_s32(acc[i][j]) - qsum[j]);
    }
}

void I2S_FN(gemm)(const uint8_t *w, size_t kp, const int8_t *x, size_t n, size_t row_begin,
                  size_t row_end, int32_t *y) {
    const size_t rows = row_end - row_begin;
    int64_t qsum[I2S_ACT_BLOCK];
    for (size_t j0 = 0; j0 < n; j0 += I2S_ACT_BLOCK) {
        const size_t jn = n - j0 < I2S_ACT_BLOCK ? n - j0 : I2S_ACT_BLOCK;
        for (size_t j = 0; j < jn; j++) qsum[j] = i2s_sum_i8(x + (j0 + j) * kp, kp);
        for (size_t r = row_begin; r < row_end; r += BITNET_I2S_ROW_TILE) {
            const uint8_t *g = w + bitnet_i2s_chunk_offset(r, 0, kp);
            for (size_t j = 0; j < jn; j += I2S_ACT_TILE) {
                const int8_t *xj = x + (j0 + j) * kp;
                int32_t *yj = y + (j0 + j) * rows + (r - row_begin);
                /* Constant tile widths, so each call is unrolled with its accumulators in
                 * registers. */
                switch (jn - j < I2S_ACT_TILE ? jn - j : I2S_ACT_TILE) {
                case 4: i2s_gemm_tile(g, kp, xj, 4, qsum + j, yj, rows); break;
                case 3: i2s_gemm_tile(g, kp, xj, 3, qsum + j, yj, rows); break;
                case 2: i2s_gemm_tile(g, kp, xj, 2, qsum + j, yj, rows); break;
                default: i2s_gemm_tile(g, kp, xj, 1, qsum + j, yj, rows); break;
                }
            }
        }
    }
}

#endif
