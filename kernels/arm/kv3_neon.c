/* 3-bit KV-cache kernels for ARMv8-A Advanced SIMD (docs/FORMATS.md section 8; contract:
 * RawKvDot and RawKvWsum in src/kernels/mod.rs).
 *
 * One group (3 bytes, 8 codes) at a time: an 8-byte load (the contract keeps bytes after the
 * last row readable), a tbl that copies bytes (3i>>3, +1) into code i's 16-bit lane, a shift
 * right by 3i & 7 (ushl by a negative count) and a mask of 7.
 *
 * Dot: smlal of codes (0..7) by q (-128..127) into int32, exact (|sum| < 2^31 for
 * head_dim <= 65536). Weighted sum (int8 weights in blocks of 64 tokens, one f32 factor
 * each): smlal of codes by weights into exact int32 sums, then one FMA per block, equal to the
 * scalar reference's result.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

static const uint8_t SHUF[16] = {0, 1, 0, 1, 0, 1, 1, 2, 1, 2, 1, 2, 2, 3, 2, 3};
static const int16_t SHIFT[8] = {0, -3, -6, -1, -4, -7, -2, -5};

static inline int16x8_t unpack1(const uint8_t *p, uint8x16_t shuf, int16x8_t shift) {
    uint8x8_t x = vld1_u8(p);
    uint16x8_t w = vreinterpretq_u16_u8(vqtbl1q_u8(vcombine_u8(x, x), shuf));
    return vreinterpretq_s16_u16(vandq_u16(vshlq_u16(w, shift), vdupq_n_u16(7)));
}

void bitnet_kv3_dot_neon(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                         const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    const uint8x16_t shuf = vld1q_u8(SHUF);
    const int16x8_t shift = vld1q_s16(SHIFT);
    for (size_t t = 0; t < n; t++) {
        const uint8_t *r = rows + t * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const size_t hn = nq - h0 < 4 ? nq - h0 : 4;
            int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
            for (size_t g = 0; g < groups; g++) {
                const int16x8_t c = unpack1(r + 3 * g, shuf, shift);
                for (size_t h = 0; h < hn; h++) {
                    const int16x8_t qv = vld1q_s16(q + (h0 + h) * qs + 8 * g);
                    acc[h] = vmlal_s16(acc[h], vget_low_s16(c), vget_low_s16(qv));
                    acc[h] = vmlal_high_s16(acc[h], c, qv);
                }
            }
            for (size_t h = 0; h < hn; h++) out[(h0 + h) * n + t] = vaddvq_s32(acc[h]);
        }
    }
}

/* Tokens a weight block (BITNET_KV_WBLOCK, kernels.h). */
#define TB BITNET_KV_WBLOCK

void bitnet_kv3_wsum_neon(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                          const int8_t *w, const float *f, size_t nq, float *acc, size_t accs) {
    const uint8x16_t shuf = vld1q_u8(SHUF);
    const int16x8_t shift = vld1q_s16(SHIFT);
    const size_t nb = (n + TB - 1) / TB, ws = TB * nb;
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const size_t tn = n - t0 < TB ? n - t0 : TB;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const size_t hn = nq - h0 < 4 ? nq - h0 : 4;
            for (size_t g = 0; g < groups; g++) {
                int32x4_t lo[4], hi[4];
                for (size_t h = 0; h < hn; h++) lo[h] = hi[h] = vdupq_n_s32(0);
                /* Exact int32 sums: |sum| <= 64 * 7 * 127. */
                for (size_t t = t0; t < t0 + tn; t++) {
                    const int16x8_t c = unpack1(rows + t * stride + 3 * g, shuf, shift);
                    for (size_t h = 0; h < hn; h++) {
                        const int16_t wt = w[(h0 + h) * ws + t];
                        lo[h] = vmlal_n_s16(lo[h], vget_low_s16(c), wt);
                        hi[h] = vmlal_high_n_s16(hi[h], c, wt);
                    }
                }
                for (size_t h = 0; h < hn; h++) {
                    const float32x4_t fv = vdupq_n_f32(f[(h0 + h) * nb + t0 / TB]);
                    float *a = acc + (h0 + h) * accs + 8 * g;
                    vst1q_f32(a, vfmaq_f32(vld1q_f32(a), fv, vcvtq_f32_s32(lo[h])));
                    vst1q_f32(a + 4, vfmaq_f32(vld1q_f32(a + 4), fv, vcvtq_f32_s32(hi[h])));
                }
            }
        }
    }
}
