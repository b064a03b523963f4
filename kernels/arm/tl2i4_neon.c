/* TL2 GEMV and GEMM for int4 activations (every value in -8..7), every AArch64 core.
 *
 * The same packed bytes and loop as tl2_neon.c (tables and indices: tl2_common.h), but
 * each table entry T of a group of 3 int4 activations fits one signed byte (|T| <= 24): a
 * group's table [+T, -T] is one 32-byte two-register `tbl` table (256 bytes a step, half of
 * tl2_neon.c's), one lookup per 16 rows where tl2_neon.c needs two, byte sums exact without
 * the lo / hi split (bounds: tl_common.h, TL_I4).
 *
 * The Rust side runs this file only when every activation of the call is in -8..7. */
#include <arm_neon.h>

#include "kernels.h"
#include "arm/tl2_common.h"

#define TL_I4 1
#define TL_FMT tl2i4
#define TL_K_BLOCK BITNET_TL2_K_BLOCK
#define TL_STEP_BYTES BITNET_TL2_STEP_BYTES
#define TL_TAB_STEP (BITNET_TL_STEP_GROUPS * 32) /* +T, -T: 16 bytes each */
#define TL_CHUNK_STEPS 64                        /* 1536 columns, 16 KiB of tables */

_Static_assert(BITNET_TL2_K_BLOCK == 3 * BITNET_TL_STEP_GROUPS, "8 groups of 3 a step");

static void tl_build(const int8_t *x, size_t steps, uint8_t *tab) {
    const tl2_digits dg = tl2_digits_init();
    for (size_t k = 0; k < steps; k++, x += BITNET_TL2_K_BLOCK, tab += TL_TAB_STEP) {
        int16x8_t ta[8], tb[8]; /* |T| <= 24: the low byte is T */
        tl2_words(&dg, x, ta, tb);
        for (int g = 0; g < 8; g++) {
            const int8x16_t t = vreinterpretq_s8_u8(
                vuzp1q_u8(vreinterpretq_u8_s16(ta[g]), vreinterpretq_u8_s16(tb[g])));
            vst1q_s8((int8_t *)tab + 32 * g, t);
            vst1q_s8((int8_t *)tab + 32 * g + 16, vnegq_s8(t));
        }
    }
}

/* Byte sums of one step per sub-tile: lo over the low-nibble groups 0-3, hi over the
 * high-nibble groups 4-7, each |.| <= 4 * 24 = 96. */
static inline void tl_step(const uint8_t *p, const uint8_t *tab, int8x16_t lo[4],
                           int8x16_t hi[4]) {
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        uint8x16_t ea, eb;
        tl2_sign_bits(p + BITNET_TL2_SIGNS_OFFSET + 16 * s, &ea, &eb);
        int8x16_t sa = vdupq_n_s8(0), sb = vdupq_n_s8(0);
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) {
            const uint8x16x2_t ta = vld1q_u8_x2(tab + 32 * l);
            const uint8x16x2_t tb = vld1q_u8_x2(tab + 32 * (l + 4));
            uint8x16_t ia, ib;
            tl2_indices(vld1q_u8(p + 64 * s + 16 * l), ea, eb, l, &ia, &ib);
            sa = vaddq_s8(sa, vreinterpretq_s8_u8(vqtbl2q_u8(ta, ia)));
            sb = vaddq_s8(sb, vreinterpretq_s8_u8(vqtbl2q_u8(tb, ib)));
        }
        lo[s] = sa;
        hi[s] = sb;
    }
}

#include "tl_common.h"
