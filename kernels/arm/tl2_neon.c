/* TL2 GEMV and GEMM for every AArch64 core (ARMv8-A Advanced SIMD): one two-register `tbl`
 * looks up a signed 3-weight group for 16 rows. Layout: src/format/tl2.rs; loop and
 * exactness: tl_common.h.
 *
 * Table of group (q0, q1, q2), magnitude index u in 0..13 (v = u = 9 (t0+1) + 3 (t1+1) +
 * (t2+1)): T[u] = t0 q0 + t1 q1 + t2 q2, |T| <= 384. A group with sign bit s holds -T[u],
 * so each group gets a 32-entry table [+T[0..15], -T[0..15]] indexed by u | s << 4, split
 * into lo = T & 31 and hi = T >> 5 (-12..12) as two 32-byte tables (entries 14, 15 are 0;
 * validation rejects them). */
#include <arm_neon.h>

#include "kernels.h"

#define TL_FMT tl2
#define TL_K_BLOCK BITNET_TL2_K_BLOCK
#define TL_STEP_BYTES BITNET_TL2_STEP_BYTES
#define TL_TAB_STEP (BITNET_TL_STEP_GROUPS * 64) /* +lo, -lo, +hi, -hi: 16 bytes each */
#define TL_CHUNK_STEPS 32                        /* 768 columns, 16 KiB of tables */

_Static_assert(BITNET_TL2_K_BLOCK == 3 * BITNET_TL_STEP_GROUPS, "8 groups of 3 a step");

/* lo and hi bytes of 16 int16 entries (two halves), stored at o and o + 32. */
static inline void tl2_split(int16x8_t a, int16x8_t b, uint8_t *o) {
    const int16x8_t m31 = vdupq_n_s16(31);
    vst1q_u8(o, vuzp1q_u8(vreinterpretq_u8_s16(vandq_s16(a, m31)),
                          vreinterpretq_u8_s16(vandq_s16(b, m31))));
    vst1q_u8(o + 32, vuzp1q_u8(vreinterpretq_u8_s16(vshrq_n_s16(a, 5)),
                               vreinterpretq_u8_s16(vshrq_n_s16(b, 5))));
}

static void tl_build(const int8_t *x, size_t steps, uint8_t *tab) {
    /* Digits of the 16 magnitude indices (14, 15 unused: 0), entries 0..7 and 8..15. */
    static const int16_t dg[3][16] = {
        {-1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0},
        {-1, -1, -1, 0, 0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 0},
        {-1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 0, 0},
    };
    int16x8_t da[3], db[3];
    for (int d = 0; d < 3; d++) {
        da[d] = vld1q_s16(dg[d]);
        db[d] = vld1q_s16(dg[d] + 8);
    }
    for (size_t k = 0; k < steps; k++, x += BITNET_TL2_K_BLOCK, tab += TL_TAB_STEP) {
        /* 24 activations as int16 (two loads: never reads past the step). */
        const int8x16_t x16 = vld1q_s8(x);
        const int16x8_t xv[3] = {vmovl_s8(vget_low_s8(x16)), vmovl_high_s8(x16),
                                 vmovl_s8(vld1_s8(x + 16))};
        /* Group g: activations 3g, 3g + 1, 3g + 2; |T| <= 3 * 128 in int16. */
#define Q(g, d) xv[(3 * (g) + (d)) / 8], (3 * (g) + (d)) % 8
#define GROUP(g)                                                                           \
    do {                                                                                   \
        const int16x8_t ta = vmlaq_laneq_s16(                                              \
            vmlaq_laneq_s16(vmulq_laneq_s16(da[0], Q(g, 0)), da[1], Q(g, 1)), da[2], Q(g, 2)); \
        const int16x8_t tb = vmlaq_laneq_s16(                                              \
            vmlaq_laneq_s16(vmulq_laneq_s16(db[0], Q(g, 0)), db[1], Q(g, 1)), db[2], Q(g, 2)); \
        tl2_split(ta, tb, tab + 64 * (g));                                                 \
        tl2_split(vnegq_s16(ta), vnegq_s16(tb), tab + 64 * (g) + 16);                      \
    } while (0)
        GROUP(0); GROUP(1); GROUP(2); GROUP(3); GROUP(4); GROUP(5); GROUP(6); GROUP(7);
#undef GROUP
#undef Q
    }
}

/* Byte sums over the 8 groups of one step: lo <= 8 * 31 = 248, |hi| <= 8 * 12 = 96. */
static inline void tl_step(const uint8_t *p, const uint8_t *tab, uint8x16_t lo[4],
                           int8x16_t hi[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), s4 = vdupq_n_u8(0x10);
    for (int l = 0; l < 4; l++) {
        /* Sign bit of row i, group l (or 4 + l) is bit 4 (i % 2) + l of sign byte i / 2. */
        const uint8x16_t bit = vreinterpretq_u8_u16(vdupq_n_u16((uint16_t)(0x1001u << l)));
        /* Lane l: low nibbles are group l, high nibbles group 4 + l. */
        const uint8x16x2_t la = {{vld1q_u8(tab + 64 * l), vld1q_u8(tab + 64 * l + 16)}};
        const uint8x16x2_t ha = {{vld1q_u8(tab + 64 * l + 32), vld1q_u8(tab + 64 * l + 48)}};
        const uint8_t *tb = tab + 64 * (l + 4);
        const uint8x16x2_t lb = {{vld1q_u8(tb), vld1q_u8(tb + 16)}};
        const uint8x16x2_t hb = {{vld1q_u8(tb + 32), vld1q_u8(tb + 48)}};
        for (int s = 0; s < 4; s++) {
            const uint8x16_t v = vld1q_u8(p + 64 * s + 16 * l);
            /* Sign words of sub-tile s: bytes 0-7 low-nibble groups, 8-15 high; each byte
             * repeated for the two rows it covers. */
            const uint8x16_t sw = vld1q_u8(p + BITNET_TL2_SIGNS_OFFSET + 16 * s);
            const uint8x16_t sa = vandq_u8(vtstq_u8(vzip1q_u8(sw, sw), bit), s4);
            const uint8x16_t sb = vandq_u8(vtstq_u8(vzip2q_u8(sw, sw), bit), s4);
            const uint8x16_t ia = vorrq_u8(vandq_u8(v, m4), sa);
            const uint8x16_t ib = vorrq_u8(vshrq_n_u8(v, 4), sb);
            const uint8x16_t vl = vaddq_u8(vqtbl2q_u8(la, ia), vqtbl2q_u8(lb, ib));
            const int8x16_t vh =
                vreinterpretq_s8_u8(vaddq_u8(vqtbl2q_u8(ha, ia), vqtbl2q_u8(hb, ib)));
            lo[s] = l ? vaddq_u8(lo[s], vl) : vl;
            hi[s] = l ? vaddq_s8(hi[s], vh) : vh;
        }
    }
}

#include "tl_common.h"
