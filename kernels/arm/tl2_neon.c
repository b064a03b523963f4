/* TL2 GEMV and GEMM for every AArch64 core (ARMv8-A Advanced SIMD): one two-register `tbl`
 * looks up a signed 3-weight group for 16 rows. Layout: src/format/tl2.rs; loop and
 * exactness: tl_common.h; tables and indices: tl2_common.h.
 *
 * Each group's 32-entry table [+T, -T] (|T| <= 384) is split into lo = T & 31 and
 * hi = T >> 5 (-12..12) as two 32-byte tables. */
#include <arm_neon.h>

#include "kernels.h"
#include "arm/tl2_common.h"

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
    const tl2_digits dg = tl2_digits_init();
    for (size_t k = 0; k < steps; k++, x += BITNET_TL2_K_BLOCK, tab += TL_TAB_STEP) {
        int16x8_t ta[8], tb[8]; /* |T| <= 3 * 128: int16 */
        tl2_words(&dg, x, ta, tb);
        for (int g = 0; g < 8; g++) {
            tl2_split(ta[g], tb[g], tab + 64 * g);
            tl2_split(vnegq_s16(ta[g]), vnegq_s16(tb[g]), tab + 64 * g + 16);
        }
    }
}

/* Byte sums over the 8 groups of one step: lo <= 8 * 31 = 248, |hi| <= 8 * 12 = 96.
 * Sub-tile by sub-tile, so that its sign bits are expanded once; the tables are reloaded
 * from L1 for each (cheaper than the spills of keeping 32 tables and 4 sign sets live:
 * 352 instructions a step, none spilled, against 441 with 35 spill stores). */
static inline void tl_step(const uint8_t *p, const uint8_t *tab, uint8x16_t lo[4],
                           int8x16_t hi[4]) {
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        uint8x16_t ea, eb;
        tl2_sign_bits(p + BITNET_TL2_SIGNS_OFFSET + 16 * s, &ea, &eb);
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
            uint8x16_t ia, ib;
            tl2_indices(v, ea, eb, l, &ia, &ib);
            sl = vaddq_u8(sl, vaddq_u8(vqtbl2q_u8(la, ia), vqtbl2q_u8(lb, ib)));
            sh = vaddq_u8(sh, vaddq_u8(vqtbl2q_u8(ha, ia), vqtbl2q_u8(hb, ib)));
        }
        lo[s] = sl;
        hi[s] = vreinterpretq_s8_u8(sh);
    }
}

#include "tl_common.h"
