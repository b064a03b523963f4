/* 3-bit KV-cache kernels for ARMv8-A Advanced SIMD (docs/FORMATS.md section 8; contract:
 * RawKvDot and RawKvWsum in src/kernels/mod.rs).
 *
 * One group (3 bytes, 8 codes) at a time: an 8-byte load (the contract keeps bytes after the
 * last row readable), a tbl that copies bytes (3i>>3, +1) into code i's 16-bit lane, a shift
 * right by 3i & 7 (ushl by a negative count) and a mask of 7.
 *
 * Dot (K in blocks of 16 positions, token-major): smlal of each slot's code quad (0..7) by
 * q's quad (-128..127) into one int32 accumulator per slot, exact (|sum| < 2^31 for
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

/* K: blocks of 16 positions, 2 * groups chunks of 24 bytes (4 channels by 16 slots). Per
 * head and block, group k of chunk j holds the code quads of slots 2k and 2k + 1: smlal by
 * the head's q quad into slot accumulators, which are added pairwise at the block's end. */
void bitnet_kv3_dot_neon(const uint8_t *blocks, size_t first, size_t n, size_t groups,
                         const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    const uint8x16_t shuf = vld1q_u8(SHUF);
    const int16x8_t shift = vld1q_s16(SHIFT);
    const size_t chunks = 2 * groups, bb = 24 * chunks;
    for (size_t h = 0; h < nq; h++) {
        for (size_t b = first / 16; 16 * b < first + n; b++) {
            const uint8_t *blk = blocks + b * bb;
            int32x4_t acc[16];
            for (int s = 0; s < 16; s++) acc[s] = vdupq_n_s32(0);
            for (size_t j = 0; j < chunks; j++) {
                const int16x4_t qv = vld1_s16(q + h * qs + 4 * j);
                for (int k = 0; k < 8; k++) {
                    const int16x8_t c = unpack1(blk + 24 * j + 3 * k, shuf, shift);
                    acc[2 * k] = vmlal_s16(acc[2 * k], vget_low_s16(c), qv);
                    acc[2 * k + 1] = vmlal_s16(acc[2 * k + 1], vget_high_s16(c), qv);
                }
            }
            int32_t v[16];
            for (int s = 0; s < 16; s += 4)
                vst1q_s32(v + s, vpaddq_s32(vpaddq_s32(acc[s], acc[s + 1]),
                                            vpaddq_s32(acc[s + 2], acc[s + 3])));
            const size_t lo = 16 * b < first ? first - 16 * b : 0;
            const size_t hi = first + n - 16 * b < 16 ? first + n - 16 * b : 16;
            for (size_t s = lo; s < hi; s++) out[h * n + 16 * b + s - first] = v[s];
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
