/* Shared by the AArch64 TL1 / TL2 kernels (tl1_neon.c, tl2_neon.c): the loop over K chunks
 * (or the whole K in one pass, from tables the caller built) and row tiles, and the exact
 * widening of per-step byte sums.
 *
 * Layout (src/format/tl1.rs, tl2.rs; kernels.h): 64-row tiles, one sequential stream of
 * steps each; a step is 8 groups; its four 16-row sub-tiles hold 64 nibble bytes each, byte
 * 16l + i = row i, low nibble group l, high nibble group 4 + l. A 16-byte lane is 16 rows of
 * one group, so one `tbl` on that group's table looks up 16 rows at once.
 *
 * Exact tables in bytes: a group's table entry T (|T| <= 384) is split as T = 32 * hi + lo
 * with lo = T & 31 in 0..31 (unsigned) and hi = T >> 5 in -12..12 (signed). Over the 8 groups
 * of a step the byte sums stay exact: sum lo <= 8 * 31 = 248 (uint8), |sum hi| <= 8 * 12 = 96
 * (int8). Each step then adds S = 32 * sum hi + sum lo (|S| <= 8 * 384 = 3072) into int16
 * lanes (uaddw + smlal by 32), which are flushed into the int32 outputs every TL_FLUSH steps:
 * 8 * 3072 = 24576 < 2^15.
 *
 * With TL_I4 defined (tl2i4_neon.c: int4 activations, one-byte tables) tl_step's two byte
 * sums are both signed and exact as they are (bound below, at tl_widen).
 *
 * The includer defines TL_FMT (tl1, tl2, tl2i4), TL_STEP_BYTES, TL_K_BLOCK, TL_TAB_STEP (table
 * bytes a step), TL_CHUNK_STEPS (steps whose tables are kept on the stack at once) and
 *   static void tl_build(const int8_t *x, size_t steps, uint8_t *tab)
 *       tables of `steps` steps from the activations at x;
 *   static inline void tl_step(const uint8_t *p, const uint8_t *tab, tl_lo_t lo[4],
 *                              int8x16_t hi[4])
 *       the byte sums lo/hi of sub-tiles 0..3 over the step at p (tables at tab).
 */
#ifndef BITNET_ARM_TL_COMMON_H
#define BITNET_ARM_TL_COMMON_H

#include <arm_neon.h>
#include <string.h>

#include "kernels.h"

#define TL_CAT_(a, b, c) bitnet_##a##_##b##_##c
#define TL_CAT(a, b, c) TL_CAT_(a, b, c)

#if defined(TL_I4)
/* int4 activations (tl2i4_neon.c): tl_step gives per sub-tile the byte sums of the 4
 * low-nibble groups' lookups (lo) and of the 4 high-nibble groups' (hi), each one byte
 * exactly (|.| <= 4 * 24 = 96). They are added into the int16 lanes (|S| <= 192 a step)
 * and flushed every 128 steps: 128 * 192 = 24576 < 2^15. */
typedef int8x16_t tl_lo_t;
#define TL_FLUSH 128
static inline void tl_widen(int8x16_t lo, int8x16_t hi, int16x8_t acc[2]) {
    acc[0] = vaddq_s16(acc[0], vaddl_s8(vget_low_s8(lo), vget_low_s8(hi)));
    acc[1] = vaddq_s16(acc[1], vaddl_high_s8(lo, hi));
}
#else
typedef uint8x16_t tl_lo_t;
#define TL_FLUSH 8
/* lo + 32 * hi of the low / high 8 rows of a sub-tile into int16 lanes (modular 16-bit
 * adds; the true value stays within the bound above). */
static inline void tl_widen(uint8x16_t lo, int8x16_t hi, int16x8_t acc[2]) {
    const int8x8_t k32 = vdup_n_s8(32);
    acc[0] = vreinterpretq_s16_u16(vaddw_u8(vreinterpretq_u16_s16(acc[0]), vget_low_u8(lo)));
    acc[0] = vmlal_s8(acc[0], vget_low_s8(hi), k32);
    acc[1] = vreinterpretq_s16_u16(vaddw_high_u8(vreinterpretq_u16_s16(acc[1]), lo));
    acc[1] = vmlal_high_s8(acc[1], hi, vdupq_n_s8(32));
}
#endif

/* y[0..64) += the 64 int16 row sums, and clears them. |y| stays a partial sum of t*q over
 * real columns: <= 128 * cols < 2^31. */
static inline void tl_flush(int16x8_t acc[4][2], int32_t *y) {
    for (int s = 0; s < 4; s++)
        for (int h = 0; h < 2; h++) {
            int32_t *o = y + 16 * s + 8 * h;
            vst1q_s32(o, vaddw_s16(vld1q_s32(o), vget_low_s16(acc[s][h])));
            vst1q_s32(o + 4, vaddw_high_s16(vld1q_s32(o + 4), acc[s][h]));
            acc[s][h] = vdupq_n_s16(0);
        }
}

/* Rows [rb, re) over steps [k0, k0 + kn) with those steps' tables at tab, added into y. */
static void tl_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t kn,
                    const uint8_t *tab, size_t rb, size_t re, int32_t *y) {
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *p = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * TL_STEP_BYTES;
        int16x8_t acc[4][2];
        for (int s = 0; s < 4; s++) acc[s][0] = acc[s][1] = vdupq_n_s16(0);
        for (size_t k = 0; k < kn; k++, p += TL_STEP_BYTES) {
            tl_lo_t lo[4];
            int8x16_t hi[4];
            tl_step(p, tab + k * TL_TAB_STEP, lo, hi);
            for (int s = 0; s < 4; s++) tl_widen(lo[s], hi[s], acc[s]);
            if (k % TL_FLUSH == TL_FLUSH - 1) tl_flush(acc, y + (r - rb));
        }
        tl_flush(acc, y + (r - rb));
    }
}

/* Bounded form (no caller memory): tables of one chunk of steps at a time on the stack,
 * each chunk walking every tile of the range. */
void TL_CAT(TL_FMT, gemv, neon)(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                                size_t row_end, int32_t *y) {
    const size_t steps = kp / TL_K_BLOCK;
    _Alignas(16) uint8_t tab[TL_CHUNK_STEPS * TL_TAB_STEP];
    memset(y, 0, (row_end - row_begin) * sizeof *y);
    for (size_t k0 = 0; k0 < steps; k0 += TL_CHUNK_STEPS) {
        const size_t kn = steps - k0 < TL_CHUNK_STEPS ? steps - k0 : TL_CHUNK_STEPS;
        tl_build(x + k0 * TL_K_BLOCK, kn, tab);
        tl_rows(w, steps * TL_STEP_BYTES, k0, kn, tab, row_begin, row_end, y);
    }
}

/* One-pass form (kernels.h, BITNET_DECLARE_TABLE_KERNELS): the caller builds the tables of
 * the whole row once (TL_TAB_STEP bytes a step) and may share them between threads. */
const size_t TL_CAT(TL_FMT, table_step, neon) = TL_TAB_STEP;

void TL_CAT(TL_FMT, table, neon)(const int8_t *x, size_t kp, void *tab) {
    tl_build(x, kp / TL_K_BLOCK, (uint8_t *)tab);
}

void TL_CAT(TL_FMT, gemv_table, neon)(const uint8_t *w, size_t kp, const void *tab,
                                      size_t row_begin, size_t row_end, int32_t *y) {
    const size_t steps = kp / TL_K_BLOCK;
    memset(y, 0, (row_end - row_begin) * sizeof *y);
    tl_rows(w, steps * TL_STEP_BYTES, 0, steps, (const uint8_t *)tab, row_begin, row_end, y);
}

/* Tables depend on the activation row, so a GEMM is a GEMV per activation row. */
void TL_CAT(TL_FMT, gemm, neon)(const uint8_t *w, size_t kp, const int8_t *x, size_t n,
                                size_t row_begin, size_t row_end, int32_t *y) {
    const size_t rows = row_end - row_begin;
    for (size_t j = 0; j < n; j++)
        TL_CAT(TL_FMT, gemv, neon)(w, kp, x + j * kp, row_begin, row_end, y + j * rows);
}

#endif
