/* TL1 GEMV and GEMM for every AArch64 core (ARMv8-A Advanced SIMD): one `tbl` looks up a
 * 2-weight group for 16 rows. Layout: src/format/tl1.rs; loop and exactness: tl_common.h;
 * table entries: tl1_common.h (|T| <= 256), stored as two 16-byte tables lo = T & 31 and
 * hi = T >> 5 (-8..8). */
#include <arm_neon.h>

#include "kernels.h"
#include "arm/tl1_common.h"

#define TL_FMT tl1
#define TL_K_BLOCK BITNET_TL1_K_BLOCK
#define TL_STEP_BYTES BITNET_TL1_STEP_BYTES
#define TL_TAB_STEP (BITNET_TL_STEP_GROUPS * 32) /* lo, hi: 16 bytes each per group */
#define TL_CHUNK_STEPS 64                        /* 1024 columns, 16 KiB of tables */

_Static_assert(BITNET_TL1_K_BLOCK == 2 * BITNET_TL_STEP_GROUPS, "8 groups of 2 a step");

static void tl_build(const int8_t *x, size_t steps, uint8_t *tab) {
    const int16x8_t m31 = vdupq_n_s16(31);
    for (size_t k = 0; k < steps; k++, x += BITNET_TL1_K_BLOCK, tab += TL_TAB_STEP) {
        int16x8_t ta[8], tb[8]; /* |T| <= 2 * 128 in int16 */
        tl1_words(x, ta, tb);
        for (int g = 0; g < 8; g++) {
            vst1q_u8(tab + 32 * g, vuzp1q_u8(vreinterpretq_u8_s16(vandq_s16(ta[g], m31)),
                                             vreinterpretq_u8_s16(vandq_s16(tb[g], m31))));
            vst1q_u8(tab + 32 * g + 16, vuzp1q_u8(vreinterpretq_u8_s16(vshrq_n_s16(ta[g], 5)),
                                                  vreinterpretq_u8_s16(vshrq_n_s16(tb[g], 5))));
        }
    }
}

/* Byte sums over the 8 groups of one step: lo <= 8 * 31 = 248, |hi| <= 8 * 8 = 64. */
static inline void tl_step(const uint8_t *p, const uint8_t *tab, uint8x16_t lo[4],
                           int8x16_t hi[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int s = 0; s < 4; s++) {
        lo[s] = vdupq_n_u8(0);
        hi[s] = vdupq_n_s8(0);
    }
#pragma GCC unroll 4
    for (int l = 0; l < 4; l++) {
        /* Lane l: low nibbles are group l, high nibbles group 4 + l. */
        const uint8x16_t la = vld1q_u8(tab + 32 * l), ha = vld1q_u8(tab + 32 * l + 16);
        const uint8x16_t lb = vld1q_u8(tab + 32 * (l + 4));
        const uint8x16_t hb = vld1q_u8(tab + 32 * (l + 4) + 16);
        for (int s = 0; s < 4; s++) {
            const uint8x16_t v = vld1q_u8(p + 64 * s + 16 * l);
            const uint8x16_t ia = vandq_u8(v, m4), ib = vshrq_n_u8(v, 4);
            const uint8x16_t vl = vaddq_u8(vqtbl1q_u8(la, ia), vqtbl1q_u8(lb, ib));
            const int8x16_t vh =
                vreinterpretq_s8_u8(vaddq_u8(vqtbl1q_u8(ha, ia), vqtbl1q_u8(hb, ib)));
            lo[s] = vaddq_u8(lo[s], vl);
            hi[s] = vaddq_s8(hi[s], vh);
        }
    }
}

#include "tl_common.h"
