/* TL1 GEMV and GEMM for int4 activations (every value in -8..7), every AArch64 core.
 *
 * The same packed bytes and loop as tl1_neon.c (table entries: tl1_common.h), but each
 * entry of a pair of int4 activations fits one signed byte (|T| <= 16): one 16-byte `tbl`
 * table a group (128 bytes a step, half of tl1_neon.c's), one lookup per 16 rows where
 * tl1_neon.c needs two. The byte sums are kept per nibble half (4 groups: |.| <= 64; all 8
 * could reach 128, one past int8) and widened as tl_common.h's TL_I4 says. The Rust side
 * runs this file only when every activation of the call is in -8..7. */
#include <arm_neon.h>

#include "kernels.h"
#include "arm/tl1_common.h"

#define TL_I4 1
#define TL_FMT tl1i4
#define TL_K_BLOCK BITNET_TL1_K_BLOCK
#define TL_STEP_BYTES BITNET_TL1_STEP_BYTES
#define TL_TAB_STEP (BITNET_TL_STEP_GROUPS * 16) /* T: 16 bytes a group */
#define TL_CHUNK_STEPS 128                       /* 2048 columns, 16 KiB of tables */

_Static_assert(BITNET_TL1_K_BLOCK == 2 * BITNET_TL_STEP_GROUPS, "8 groups of 2 a step");

static void tl_build(const int8_t *x, size_t steps, uint8_t *tab) {
    for (size_t k = 0; k < steps; k++, x += BITNET_TL1_K_BLOCK, tab += TL_TAB_STEP) {
        int16x8_t ta[8], tb[8]; /* |T| <= 16: the low byte is T */
        tl1_words(x, ta, tb);
        for (int g = 0; g < 8; g++)
            vst1q_u8(tab + 16 * g,
                     vuzp1q_u8(vreinterpretq_u8_s16(ta[g]), vreinterpretq_u8_s16(tb[g])));
    }
}

/* Byte sums of one step per sub-tile: lo over groups 0-3 (low nibbles), hi over groups
 * 4-7 (high nibbles), each |.| <= 4 * 16 = 64. */
static inline void tl_step(const uint8_t *p, const uint8_t *tab, int8x16_t lo[4],
                           int8x16_t hi[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int s = 0; s < 4; s++) lo[s] = hi[s] = vdupq_n_s8(0);
#pragma GCC unroll 4
    for (int l = 0; l < 4; l++) {
        const uint8x16_t ta = vld1q_u8(tab + 16 * l), tb = vld1q_u8(tab + 16 * (l + 4));
        for (int s = 0; s < 4; s++) {
            const uint8x16_t v = vld1q_u8(p + 64 * s + 16 * l);
            lo[s] = vaddq_s8(lo[s], vreinterpretq_s8_u8(vqtbl1q_u8(ta, vandq_u8(v, m4))));
            hi[s] = vaddq_s8(hi[s], vreinterpretq_s8_u8(vqtbl1q_u8(tb, vshrq_n_u8(v, 4))));
        }
    }
}

#include "tl_common.h"
