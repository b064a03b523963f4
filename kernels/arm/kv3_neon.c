/* 3-bit KV-cache kernels for ARMv8-A Advanced SIMD (docs/FORMATS.md section 8; contract:
 * RawKvDot and RawKvWsum in src/kernels/mod.rs).
 *
 * One group (3 bytes, 8 codes) at a time: an 8-byte load (the contract keeps bytes after the
 * last row readable), a tbl that copies bytes (3i>>3, +1) into code i's 16-bit lane, a shift
 * right by 3i & 7 (ushl by a negative count) and a mask of 7.
 *
 * Dot: smlal of codes (0..7) by q (-128..127) into int32, exact (|sum| < 2^31 for
 * head_dim <= 65536). Weighted sum: codes to f32, one FMA per lane and query head, tokens in
 * order.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

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

void bitnet_kv3_wsum_neon(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                          const float *w, size_t nq, float *acc, size_t accs) {
    const uint8x16_t shuf = vld1q_u8(SHUF);
    const int16x8_t shift = vld1q_s16(SHIFT);
    for (size_t t = 0; t < n; t++) {
        const uint8_t *r = rows + t * stride;
        for (size_t g = 0; g < groups; g++) {
            const uint16x8_t c = vreinterpretq_u16_s16(unpack1(r + 3 * g, shuf, shift));
            const float32x4_t lo = vcvtq_f32_u32(vmovl_u16(vget_low_u16(c)));
            const float32x4_t hi = vcvtq_f32_u32(vmovl_high_u16(c));
            for (size_t h = 0; h < nq; h++) {
                const float32x4_t wv = vdupq_n_f32(w[h * n + t]);
                float *a = acc + h * accs + 8 * g;
                vst1q_f32(a, vfmaq_f32(vld1q_f32(a), wv, lo));
                vst1q_f32(a + 4, vfmaq_f32(vld1q_f32(a + 4), wv, hi));
            }
        }
    }
}
