/* Shared by the AArch64 TL2 kernels (tl2_neon.c: int8 activations, two-byte tables split
 * into lo / hi; tl2i4_neon.c: int4 activations, one-byte tables): the exact int16 table
 * entries of a step and the lookup indices u | s << 4 of a 16-row lane.
 *
 * Table of group (q0, q1, q2), magnitude index u in 0..13 (u = 9 (t0+1) + 3 (t1+1) +
 * (t2+1)): T[u] = t0 q0 + t1 q1 + t2 q2 (|T| <= 384 for int8 q, <= 24 for int4); entries
 * 14, 15 are 0 (validation rejects them). A group with sign bit s holds -T[u], so each
 * group's table is [+T[0..15], -T[0..15]], indexed by u | s << 4. */
#ifndef BITNET_ARM_TL2_COMMON_H
#define BITNET_ARM_TL2_COMMON_H

#include <arm_neon.h>

#include "kernels.h"

/* Digits of the 16 magnitude indices: entries 0..7 (a) and 8..15 (b) of digit d. */
typedef struct {
    int16x8_t a[3], b[3];
} tl2_digits;

static inline tl2_digits tl2_digits_init(void) {
    static const int16_t dg[3][16] = {
        {-1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0},
        {-1, -1, -1, 0, 0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 0},
        {-1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 0, 0},
    };
    tl2_digits d;
    for (int k = 0; k < 3; k++) {
        d.a[k] = vld1q_s16(dg[k]);
        d.b[k] = vld1q_s16(dg[k] + 8);
    }
    return d;
}

/* Group g's entries 0..7 (ta[g]) and 8..15 (tb[g]) of the step whose 24 activations start
 * at x (two loads: never reads past the step). */
static inline void tl2_words(const tl2_digits *dg, const int8_t *x, int16x8_t ta[8],
                             int16x8_t tb[8]) {
    const int8x16_t x16 = vld1q_s8(x);
    const int16x8_t xv[3] = {vmovl_s8(vget_low_s8(x16)), vmovl_high_s8(x16),
                             vmovl_s8(vld1_s8(x + 16))};
/* Activation 3g + d is lane L(g, d) of vector V(g, d). Two macros, not one giving "vector,
 * lane": Clang's vmulq_laneq_s16 & co. are macros, which count their arguments before
 * expanding them. */
#define V(g, d) xv[(3 * (g) + (d)) / 8]
#define L(g, d) ((3 * (g) + (d)) % 8)
#define GROUP(g)                                                                              \
    do {                                                                                      \
        ta[g] = vmlaq_laneq_s16(vmlaq_laneq_s16(vmulq_laneq_s16(dg->a[0], V(g, 0), L(g, 0)),   \
                                                dg->a[1], V(g, 1), L(g, 1)),                  \
                                dg->a[2], V(g, 2), L(g, 2));                                  \
        tb[g] = vmlaq_laneq_s16(vmlaq_laneq_s16(vmulq_laneq_s16(dg->b[0], V(g, 0), L(g, 0)),   \
                                                dg->b[1], V(g, 1), L(g, 1)),                  \
                                dg->b[2], V(g, 2), L(g, 2));                                  \
    } while (0)
    GROUP(0); GROUP(1); GROUP(2); GROUP(3); GROUP(4); GROUP(5); GROUP(6); GROUP(7);
#undef GROUP
#undef V
#undef L
}

/* The sign words of one 16-row sub-tile at sg (bytes 0-7: low-nibble groups, 8-15: high).
 * Row i, group l (or 4 + l) is bit 4 (i % 2) + l of byte i / 2: repeat each byte for its
 * two rows, then move even rows' bits up by 4, so that for every row the sign of group l
 * sits at bit 4 + l of byte i of *ea (low-nibble groups) or *eb (high). */
static inline void tl2_sign_bits(const uint8_t *sg, uint8x16_t *ea, uint8x16_t *eb) {
    const int8x16_t up = vreinterpretq_s8_u16(vdupq_n_u16(4)); /* +4 even bytes, 0 odd */
    const uint8x16_t sw = vld1q_u8(sg);
    *ea = vshlq_u8(vzip1q_u8(sw, sw), up);
    *eb = vshlq_u8(vzip2q_u8(sw, sw), up);
}

/* Lane l's indices u | s << 4 (low nibbles of v: group l, sign from ea; high nibbles:
 * group 4 + l, sign from eb): bit 4 comes from the sign (bit insert), the rest from u. */
static inline void tl2_indices(uint8x16_t v, uint8x16_t ea, uint8x16_t eb, int l,
                               uint8x16_t *ia, uint8x16_t *ib) {
    const uint8x16_t b4 = vdupq_n_u8(0x10);
    const int8x16_t down = vdupq_n_s8((int8_t)-l);
    *ia = vbslq_u8(b4, vshlq_u8(ea, down), vandq_u8(v, vdupq_n_u8(0x0F)));
    *ib = vbslq_u8(b4, vshlq_u8(eb, down), vshrq_n_u8(v, 4));
}

#endif
