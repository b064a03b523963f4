/* Shared by the AArch64 TL1 kernels (tl1_neon.c: int8 activations, two-byte tables split
 * into lo / hi; tl1i4_neon.c: int4 activations, one-byte tables): the exact int16 table
 * entries of a step.
 *
 * Table of group (q0, q1), index i = 3 (t0 + 1) + (t1 + 1) in 0..8:
 * T[i] = t0 * q0 + t1 * q1 (|T| <= 256 for int8 q, <= 16 for int4); entries 9..15 are 0
 * (validation rejects those indices). */
#ifndef BITNET_ARM_TL1_COMMON_H
#define BITNET_ARM_TL1_COMMON_H

#include <arm_neon.h>

#include "kernels.h"

/* Group g's entries 0..7 (ta[g]) and 8..15 (tb[g]) of the step whose 16 activations start
 * at x. */
static inline void tl1_words(const int8_t *x, int16x8_t ta[8], int16x8_t tb[8]) {
    static const int16_t d0[16] = {-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    static const int16_t d1[16] = {-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    const int16x8_t a0 = vld1q_s16(d0), b0 = vld1q_s16(d0 + 8);
    const int16x8_t a1 = vld1q_s16(d1), b1 = vld1q_s16(d1 + 8);
    const int8x16_t xb = vld1q_s8(x);
    const int16x8_t xv[2] = {vmovl_s8(vget_low_s8(xb)), vmovl_high_s8(xb)};
    /* Group g: activations 2g, 2g + 1 (lanes of xv[g / 4]). */
#define GROUP(g)                                                                           \
    do {                                                                                   \
        const int16x8_t q = xv[(g) / 4];                                                   \
        ta[g] = vmlaq_laneq_s16(vmulq_laneq_s16(a0, q, 2 * (g) % 8), a1, q, (2 * (g) + 1) % 8); \
        tb[g] = vmlaq_laneq_s16(vmulq_laneq_s16(b0, q, 2 * (g) % 8), b1, q, (2 * (g) + 1) % 8); \
    } while (0)
    GROUP(0); GROUP(1); GROUP(2); GROUP(3); GROUP(4); GROUP(5); GROUP(6); GROUP(7);
#undef GROUP
}

#endif
