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
/* Activation 3g + d is lane L(g, d) of vector V(g, d). Two macros, not one giving "vector,
 * lane": Clang's vmulq_laneq_s16 & co. are macros, which count their arguments before
 * expanding them. */
#define V(g, d) xv[(3 * (g) + (d)) / 8]
#define L(g, d) ((3 * (g) + (d)) % 8)
#define GROUP(g)                                                                              \
    do {                                                                                      \
        const int16x8_t ta = vmlaq_laneq_s16(                                                 \
            vmlaq_laneq_s16(vmulq_laneq_s16(da[0], V(g, 0), L(g, 0)), da[1], V(g, 1), L(g, 1)), \
            da[2], V(g, 2), L(g, 2));                                                         \
        const int16x8_t tb = vmlaq_laneq_s16(                                                 \
            vmlaq_laneq_s16(vmulq_laneq_s16(db[0], V(g, 0), L(g, 0)), db[1], V(g, 1), L(g, 1)), \
            db[2], V(g, 2), L(g, 2));                                                         \
        tl2_split(ta, tb, tab + 64 * (g));                                                    \
        tl2_split(vnegq_s16(ta), vnegq_s16(tb), tab + 64 * (g) + 16);                         \
    } while (0)
        GROUP(0); GROUP(1); GROUP(2); GROUP(3); GROUP(4); GROUP(5); GROUP(6); GROUP(7);
#undef GROUP
#undef V
#undef L
    }
}

/* Byte sums over the 8 groups of one step: lo <= 8 * 31 = 248, |hi| <= 8 * 12 = 96.
 * Sub-tile by sub-tile, so that its sign bits are expanded once; the tables are reloaded
 * from L1 for each (cheaper than the spills of keeping 32 tables and 4 sign sets live:
 * 352 instructions a step, none spilled, against 441 with 35 spill stores). */
static inline void tl_step(const uint8_t *p, const uint8_t *tab, uint8x16_t lo[4],
                           int8x16_t hi[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b4 = vdupq_n_u8(0x10);
    /* Shifts +4 (even bytes), 0 (odd bytes): see below. */
    const int8x16_t up = vreinterpretq_s8_u16(vdupq_n_u16(4));
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        /* Sign words of sub-tile s: bytes 0-7 for the low-nibble groups, 8-15 for the high.
         * Row i, group l (or 4 + l) is bit 4 (i % 2) + l of byte i / 2: repeat each byte for
         * its two rows, then move even rows' bits up by 4, so that for every row the sign
         * of group l sits at bit 4 + l. */
        const uint8x16_t sw = vld1q_u8(p + BITNET_TL2_SIGNS_OFFSET + 16 * s);
        const uint8x16_t ea = vshlq_u8(vzip1q_u8(sw, sw), up);
        const uint8x16_t eb = vshlq_u8(vzip2q_u8(sw, sw), up);
        uint8x16_t sl = vdupq_n_u8(0), sh = vdupq_n_u8(0);
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) {
            /* Lane l: low nibbles are group l, high nibbles group 4 + l. ld1 {vN, vN+1}:
             * tbl wants a two-register table in consecutive registers. */
            const uint8x16x2_t la = vld1q_u8_x2(tab + 64 * l);
            const uint8x16x2_t ha = vld1q_u8_x2(tab + 64 * l + 32);
            const uint8x16x2_t lb = vld1q_u8_x2(tab + 64 * (l + 4));
            const uint8x16x2_t hb = vld1q_u8_x2(tab + 64 * (l + 4) + 32);
            const uint8x16_t v = vld1q_u8(p + 64 * s + 16 * l);
            /* Index u | s << 4: bit 4 comes from the sign (bit insert), the rest from u. */
            const int8x16_t down = vdupq_n_s8((int8_t)-l);
            const uint8x16_t ia = vbslq_u8(b4, vshlq_u8(ea, down), vandq_u8(v, m4));
            const uint8x16_t ib = vbslq_u8(b4, vshlq_u8(eb, down), vshrq_n_u8(v, 4));
            sl = vaddq_u8(sl, vaddq_u8(vqtbl2q_u8(la, ia), vqtbl2q_u8(lb, ib)));
            sh = vaddq_u8(sh, vaddq_u8(vqtbl2q_u8(ha, ia), vqtbl2q_u8(hb, ib)));
        }
        lo[s] = sl;
        hi[s] = vreinterpretq_s8_u8(sh);
    }
}

#include "tl_common.h"
