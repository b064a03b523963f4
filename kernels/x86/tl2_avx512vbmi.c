/* TL2 GEMV / GEMM, AVX-512 F/BW/VNNI + VBMI (vpermb).
 *
 * Layout: src/format/tl2.rs (kernels.h). Per activation row the kernel builds, for each
 * group of 3 activations, the 16-entry magnitude table T[u] = d0 q0 + d1 q1 + d2 q2
 * (|T| <= 384, entries 14, 15 unused), split exactly as T = 64 * hi + lo with lo = T & 63
 * (0..63) and hi = T >> 6 (-6..6). Four groups' tables make one 64-byte vpermb table
 * (byte 16 * l + u), so the index byte is u | l << 4.
 *
 * Loop (T-MAC order): the tables of a step (8 groups = 24 columns: 4 zmm) stay in registers
 * while the step's four 16-row sub-tiles stream through. Each 64-byte nibble block is
 * transposed by one vpermb (byte 16l + i -> 4i + l) so that the four groups of one row share
 * a dword; two vpermb give lo and hi for 64 lookups, a masked subtract from zero negates
 * both where the sign bit is set (the sign words are stored in the transposed order), and
 * two vpdpbusd add 1 * lo and 64 * hi (lo, hi as the signed operand) into the row's int32
 * accumulator. The weights are read as one sequential stream (a tile's steps in K order,
 * tiles in order).
 *
 * Table footprint matters more than instruction count from DRAM (Zen 4, 6912 x 2560, one
 * core): tables holding +T and -T (128-entry vpermi2b, the sign a masked add on the index:
 * one instruction less per 64 lookups, but 512 B a step = 55 KiB) ran 330-340 us; these
 * magnitude tables (256 B a step, 27 KiB) 250-265 us; passes short enough for L1 (which
 * cut the weight stream into per-tile pieces) about 450 us.
 *
 * Tables: built once per call for the whole K in the caller's memory and walked in one
 * pass (tl_common.h); without that memory, tables for at most TL2_CHUNK_STEPS steps (5376 columns, 56 KiB)
 * on the stack, longer rows done in balanced passes, each walking all the rows and
 * accumulating into y.
 */
#define BITNET_TL_AVX512VBMI 1 /* tl_common.h: the AVX-512 VBMI helpers */
#include "tl_common.h"

#define TL2_CHUNK_STEPS 224 /* 224 steps x 256 B of tables = 56 KiB */
#define TL2_STEP_VECS 4     /* A lo, A hi, B lo, B hi (A = groups 0-3, B = groups 4-7) */
_Static_assert(BITNET_TL2_SIGNS_OFFSET == 4 * 64, "bitnet_tl_rows_avx512 reads signs there");

_Static_assert(BITNET_TL2_K_BLOCK == 3 * BITNET_TL_STEP_GROUPS, "8 groups of 3 a step");

/* Builds the tables of `steps` steps from the 24 * steps activations at x. */
static void tl2_build(const int8_t *x, size_t steps, __m512i *tab) {
    const bitnet_tl_words512 c = bitnet_tl2_words_init_avx512();
    const __m512i even = bitnet_tl_even(); /* the low byte of each word */
    const __m512i low6 = _mm512_set1_epi8(63);
    for (size_t k = 0; k < steps; k++) {
        __m512i p[4]; /* |T| <= 3 * 128: int16 */
        bitnet_tl2_words_avx512(&c, x + 24 * k, p);
        __m512i *t = tab + TL2_STEP_VECS * k;
        for (int q = 0; q < 2; q++) {
            const __m512i a = p[2 * q], b = p[2 * q + 1];
            t[2 * q] = _mm512_and_si512(_mm512_permutex2var_epi8(a, even, b), low6);
            t[2 * q + 1] = _mm512_permutex2var_epi8(_mm512_srai_epi16(a, 6), even, _mm512_srai_epi16(b, 6));
        }
    }
}

static void tl2_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                     const __m512i *tab, size_t rb, size_t re, int32_t *y, int first) {
    bitnet_tl_rows_avx512(w, tile_bytes, k0, steps, tab, rb, re, y, first, BITNET_TL2_STEP_BYTES,
                          1);
}

BITNET_TL_ENTRY_POINTS(tl2, avx512vbmi, __m512i, TL2_CHUNK_STEPS, TL2_STEP_VECS,
                       BITNET_TL2_K_BLOCK, BITNET_TL2_STEP_BYTES, tl2_build, tl2_rows)
