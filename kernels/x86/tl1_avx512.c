/* TL1 GEMV / GEMM, AVX-512 F/BW/VNNI + VBMI (vpermb).
 *
 * Layout: src/format/tl1.rs (kernels.h). Per activation row the kernel builds, for each
 * pair of activations, the 16-entry table T[i] = d0 q0 + d1 q1 (i = 3 (d0 + 1) + (d1 + 1),
 * |T| <= 256, entries 9..15 unused), split exactly as T = 64 * hi + lo with lo = T & 63
 * (0..63, unsigned byte) and hi = T >> 6 (-4..4, signed byte). Four pairs' tables make one
 * 64-byte vpermb table (byte 16 * l + i), so the index byte is i | l << 4.
 *
 * Loop (T-MAC order, as tl2_avx512.c): a step's tables (8 pairs = 16 columns: 4 zmm) stay
 * in registers while its four 16-row sub-tiles stream through; one vpermb transposes each
 * 64-byte nibble block (byte 16l + i -> 4i + l) so one row's four pairs share a dword; two
 * vpermb give lo and hi for 64 lookups, two vpdpbusd add lo * 1 and 64 * hi into the
 * row's int32 accumulator. One sequential weight stream.
 *
 * Bounded memory: tables for at most TL1_CHUNK_STEPS steps (3584 columns, 56 KiB) on the
 * stack; longer rows are done in balanced passes, accumulating into y. No allocation.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"

#define TL1_CHUNK_STEPS 224 /* 224 steps x 256 B of tables = 56 KiB */
#define TL1_STEP_VECS 4     /* A lo, A hi, B lo, B hi */

_Static_assert(BITNET_TL1_K_BLOCK == 2 * BITNET_TL_STEP_GROUPS, "8 pairs a step");

/* acc += u8(a) . s8(b) per int32 lane (inline asm: see tl2_avx512.c). */
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))

/* Builds the tables of `steps` steps from the 16 * steps activations at x. */
static void tl1_build(const int8_t *x, size_t steps, __m512i *tab) {
    /* D[k] word w: digit k of index i = w % 16 (i = 3 d0' + d1', digit = d' - 1);
     * indices 9..15 never occur and get 0. */
    __m512i D[2], sel[2], even;
    for (int k = 0; k < 2; k++) {
        int16_t d[32], e[32];
        for (int w = 0; w < 32; w++) {
            const int i = w % 16;
            d[w] = (int16_t)(i < 9 ? (k == 0 ? i / 3 : i % 3) - 1 : 0);
            e[w] = (int16_t)(2 * (w / 16) + k); /* pair m: activation 2 (2m + w/16) + k */
        }
        memcpy(&D[k], d, 64);
        memcpy(&sel[k], e, 64);
    }
    {
        uint8_t e[64]; /* byte j <- byte 2j of a 128-byte pair: the low byte of each word */
        for (int j = 0; j < 64; j++) e[j] = (uint8_t)(2 * j);
        memcpy(&even, e, 64);
    }
    const __m512i low6 = _mm512_set1_epi8(63);
    for (size_t k = 0; k < steps; k++) {
        /* 16 activations as words (masked load: never reads past the step). */
        const __m512i xw = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(0xFFFFu, x + 16 * k));
        __m512i p[4];
        for (int m = 0; m < 4; m++) {
            const __m512i off = _mm512_set1_epi16((short)(4 * m));
            __m512i v = _mm512_setzero_si512(); /* |v| <= 2 * 128: int16 */
            for (int d = 0; d < 2; d++) {
                const __m512i xs = _mm512_permutexvar_epi16(_mm512_add_epi16(sel[d], off), xw);
                v = _mm512_add_epi16(v, _mm512_mullo_epi16(xs, D[d]));
            }
            p[m] = v;
        }
        __m512i *t = tab + TL1_STEP_VECS * k;
        for (int q = 0; q < 2; q++) { /* A = pairs 0-3, B = pairs 4-7 */
            const __m512i a = p[2 * q], b = p[2 * q + 1];
            t[2 * q + 0] = _mm512_and_si512(_mm512_permutex2var_epi8(a, even, b), low6);
            t[2 * q + 1] = _mm512_permutex2var_epi8(_mm512_srai_epi16(a, 6), even,
                                                    _mm512_srai_epi16(b, 6));
        }
    }
}

/* Rows [rb, re) (whole tiles) over `steps` steps starting at step k0 of each tile;
 * y receives (first) or accumulates the partial sums. */
static void tl1_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                     const __m512i *tab, size_t rb, size_t re, int32_t *y, int first) {
    __m512i transpose; /* byte 4i + l <- byte 16l + i */
    __m512i pos;       /* byte p: pair (p % 4) << 4 */
    {
        uint8_t tr[64], ps[64];
        for (int p = 0; p < 64; p++) {
            tr[p] = (uint8_t)(16 * (p % 4) + p / 4);
            ps[p] = (uint8_t)((p % 4) << 4);
        }
        memcpy(&transpose, tr, 64);
        memcpy(&pos, ps, 64);
    }
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512i c64 = _mm512_set1_epi8(64);
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *base = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * BITNET_TL1_STEP_BYTES;
        int32_t *yo = y + (r - rb);
        /* accA/accB[s] dword i = row 16s + i. After each whole step an accumulator holds the
         * exact partial sum (|.| <= 128 * K < 2^31); within a step lo and hi parts may stray
         * by < 2^11, and int32 wraps consistently, so the final sum is exact. */
        __m512i accA[4], accB[4];
        for (int s = 0; s < 4; s++) {
            accA[s] = first ? _mm512_setzero_si512() : _mm512_loadu_si512(yo + 16 * s);
            accB[s] = _mm512_setzero_si512();
        }
        for (size_t k = 0; k < steps; k++) {
            const uint8_t *q = base + k * BITNET_TL1_STEP_BYTES;
            const __m512i *t = tab + TL1_STEP_VECS * k;
            const __m512i al = t[0], ah = t[1], bl = t[2], bh = t[3];
            for (int s = 0; s < 4; s++) {
                const __m512i v =
                    _mm512_permutexvar_epi8(transpose, _mm512_load_si512(q + 64 * s));
                const __m512i ia = _mm512_ternarylogic_epi32(v, low4, pos, 0xEA);
                const __m512i ib =
                    _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), low4, pos, 0xEA);
                DPBUSD(accA[s], _mm512_permutexvar_epi8(ia, al), ones);
                DPBUSD(accA[s], c64, _mm512_permutexvar_epi8(ia, ah));
                DPBUSD(accB[s], _mm512_permutexvar_epi8(ib, bl), ones);
                DPBUSD(accB[s], c64, _mm512_permutexvar_epi8(ib, bh));
            }
        }
        for (int s = 0; s < 4; s++)
            _mm512_storeu_si512(yo + 16 * s, _mm512_add_epi32(accA[s], accB[s]));
    }
}

void bitnet_tl1_gemv_avx512(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                            size_t row_end, int32_t *y) {
    __m512i tab[TL1_CHUNK_STEPS * TL1_STEP_VECS];
    const size_t steps = kp / BITNET_TL1_K_BLOCK;
    const size_t tile_bytes = steps * BITNET_TL1_STEP_BYTES;
    const size_t passes = (steps + TL1_CHUNK_STEPS - 1) / TL1_CHUNK_STEPS;
    const size_t per = (steps + passes - 1) / passes; /* <= TL1_CHUNK_STEPS */
    for (size_t k0 = 0; k0 < steps; k0 += per) {
        const size_t ks = steps - k0 < per ? steps - k0 : per;
        tl1_build(x + k0 * BITNET_TL1_K_BLOCK, ks, tab);
        tl1_rows(w, tile_bytes, k0, ks, tab, row_begin, row_end, y, k0 == 0);
    }
}

/* One activation row at a time (see tl2_avx512.c). */
void bitnet_tl1_gemm_avx512(const uint8_t *w, size_t kp, const int8_t *x, size_t n,
                            size_t row_begin, size_t row_end, int32_t *y) {
    for (size_t j = 0; j < n; j++)
        bitnet_tl1_gemv_avx512(w, kp, x + j * kp, row_begin, row_end,
                               y + j * (row_end - row_begin));
}
