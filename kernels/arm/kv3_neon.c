/* 3-bit KV-cache kernels for ARMv8-A Advanced SIMD (docs/FORMATS.md section 8; contract:
 * RawKvDot and RawKvWsum in src/kernels/mod.rs).
 *
 * One group (3 bytes, 8 codes) at a time: an 8-byte load (the contract keeps bytes after the
 * last row readable), a tbl that copies bytes (3i>>3, +1) into code i's 16-bit lane, a shift
 * right by 3i & 7 (ushl by a negative count) and a mask of 7.
 *
 * Dot (K in blocks of 16 positions, token-major): smlal of each slot's code quad (0..7) by
 * q's quad (-128..127) into one int32 accumulator per slot, exact (|sum| < 2^31 for
 * head_dim <= 65536). Weighted sum (V in blocks of 4 positions, int8 weights in blocks of 64
 * positions, one f32 factor each): smlal of a channel's four codes by the four positions'
 * weights into exact int32 sums, then one FMA per block, equal to the scalar reference's
 * result.
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
                         const int16_t *q, size_t qs, size_t nq, int32_t *out,
                         const uint8_t *next, size_t next_len) {
    (void)next, (void)next_len; /* a prefetch hint (RawKvDot), unused here */
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
#define VB BITNET_KV_VBLOCK

/* V: blocks of 4 positions, ceil(groups / 2) chunks of 24 bytes (16 channels by 4 slots), so
 * group g of a block (3 bytes at 3 g) holds the four slots of channels 2 g and 2 g + 1. Per
 * head, weight block and group: smlal of the group's codes by the four positions' weights (0
 * outside the weight block: bitnet_kv_w4) into one int32 accumulator per channel, whose four
 * lanes (the slots) are added at the block's end. */
void bitnet_kv3_wsum_neon(const uint8_t *blocks, size_t first, size_t n, size_t groups,
                          const int8_t *w, const float *f, size_t nq, float *acc, size_t accs,
                          const uint8_t *next, size_t next_len) {
    (void)next, (void)next_len; /* a prefetch hint (RawKvWsum), unused here */
    const uint8x16_t shuf = vld1q_u8(SHUF);
    const int16x8_t shift = vld1q_s16(SHIFT);
    const size_t vbb = 24 * ((groups + 1) / 2), nb = (n + TB - 1) / TB, ws = TB * nb;
    const ptrdiff_t s = (ptrdiff_t)(first % VB);
    const uint8_t *vb = blocks + first / VB * vbb;
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const ptrdiff_t lo = (ptrdiff_t)t0, hi = (ptrdiff_t)(n - t0 < TB ? n : t0 + TB);
        for (size_t h = 0; h < nq; h++) {
            const float fb = f[h * nb + t0 / TB];
            for (size_t g = 0; g < 4 * groups; g++) {
                int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0);
                /* Exact int32 sums: |sum| <= 64 * 7 * 127. */
                for (ptrdiff_t k = (lo + s) / VB; VB * k - s < hi; k++) {
                    const int16x8_t c = unpack1(vb + (size_t)k * vbb + 3 * g, shuf, shift);
                    const int32_t w4 = bitnet_kv_w4(w + h * ws, VB * k - s, lo, hi);
                    const int16x4_t wv = vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w4))));
                    a0 = vmlal_s16(a0, vget_low_s16(c), wv);
                    a1 = vmlal_s16(a1, vget_high_s16(c), wv);
                }
                /* One fused multiply-add per element (vfma_f32, not libm's fmaf: the kernels
                 * include no libc header but string.h, for builds without an SDK). */
                float *o = acc + h * accs + 2 * g;
                const int32x2_t sums = vset_lane_s32(vaddvq_s32(a1), vdup_n_s32(vaddvq_s32(a0)), 1);
                vst1_f32(o, vfma_f32(vld1_f32(o), vdup_n_f32(fb), vcvt_f32_s32(sums)));
            }
        }
    }
}
