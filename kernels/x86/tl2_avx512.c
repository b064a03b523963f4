/* TL2 GEMV / GEMM, AVX-512 F/BW/VNNI + VBMI (vpermb, vpermi2b).
 *
 * Layout: src/format/tl2.rs (kernels.h). Per activation row the kernel builds, for each
 * group of 3 activations, the 32 signed values [T[0..15], -T[0..15]] (T[u] = d0 q0 + d1 q1 +
 * d2 q2, |T| <= 384, entries 14, 15 unused), split exactly as T = 64 * hi + lo with
 * lo = T & 63 (0..63, unsigned byte) and hi = T >> 6 (-6..6, signed byte). Four groups'
 * tables make one 128-byte vpermi2b table: byte 16 * l + u holds +T of group l, byte
 * 64 + 16 * l + u holds -T, so the index byte is u | l << 4 | s << 6 and the sign costs one
 * masked byte add, no negation.
 *
 * Loop (T-MAC order): the tables of a step (8 groups = 24 columns: 8 zmm) stay in registers
 * while the step's four 16-row sub-tiles stream through. Each 64-byte nibble block is
 * transposed by one vpermb (byte 16l + i -> 4i + l) so that the four groups of one row share
 * a dword; two vpermi2b give lo and hi for 64 lookups, and two vpdpbusd add lo * 1 and
 * 64 * hi into the row's int32 accumulator. The weights are read as one sequential
 * stream (a tile's steps in K order, tiles in order).
 *
 * Bounded memory: tables for at most TL2_CHUNK_STEPS steps (2688 columns, 56 KiB) on the
 * stack; longer rows are done in balanced passes of at most that many steps, each pass
 * walking all the rows and accumulating into y. No allocation. Measured on Zen 4
 * (6912 x 2560, one core, from DRAM): passes of 32 steps (tables in L1, but the stream cut
 * into 10 KiB pieces) ran 1.35x slower than one pass over K (tables in L2).
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"

#define TL2_CHUNK_STEPS 112 /* 112 steps x 512 B of tables = 56 KiB */
#define TL2_STEP_VECS 8    /* A lo+, A lo-, A hi+, A hi-, B lo+, B lo-, B hi+, B hi- */

_Static_assert(BITNET_TL2_K_BLOCK == 3 * BITNET_TL_STEP_GROUPS, "8 groups of 3 a step");

/* Builds the tables of `steps` steps from the 24 * steps activations at x. */
static void tl2_build(const int8_t *x, size_t steps, __m512i *tab) {
    /* D[k] word w: digit k of magnitude index u = w % 16 (v = u = 9 d0' + 3 d1' + d2',
     * digit = d' - 1); indices 14, 15 never occur and get 0. */
    __m512i D[3];
    for (int k = 0; k < 3; k++) {
        int16_t d[32];
        for (int w = 0; w < 32; w++) {
            const int u = w % 16, div = k == 0 ? 9 : k == 1 ? 3 : 1;
            d[w] = (int16_t)(u < 14 ? u / div % 3 - 1 : 0);
        }
        memcpy(&D[k], d, 64);
    }
    /* Word w of pair m (groups 2m, 2m+1) takes activation 3 * (2m + w/16) + k. */
    __m512i sel[3];
    for (int k = 0; k < 3; k++) {
        sel[k] = _mm512_add_epi16(
            _mm512_set1_epi16((short)k),
            _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_setzero_si512(), _mm512_set1_epi16(3)));
    }
    __m512i even = _mm512_setzero_si512(); /* byte j <- byte 2j of a 128-byte pair */
    {
        uint8_t e[64];
        for (int j = 0; j < 64; j++) e[j] = (uint8_t)(2 * j);
        memcpy(&even, e, 64);
    }
    const __m512i low6 = _mm512_set1_epi8(63);
    for (size_t k = 0; k < steps; k++) {
        /* 24 activations as words (masked load: never reads past the step). */
        const __m512i xw =
            _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(0xFFFFFFu, x + 24 * k));
        __m512i p[4], n[4];
        for (int m = 0; m < 4; m++) {
            const __m512i off = _mm512_set1_epi16((short)(6 * m));
            __m512i v = _mm512_setzero_si512(); /* |v| <= 3 * 128: int16 */
            for (int d = 0; d < 3; d++) {
                const __m512i xs = _mm512_permutexvar_epi16(_mm512_add_epi16(sel[d], off), xw);
                v = _mm512_add_epi16(v, _mm512_mullo_epi16(xs, D[d]));
            }
            p[m] = v;
            n[m] = _mm512_sub_epi16(_mm512_setzero_si512(), v);
        }
        __m512i *t = tab + TL2_STEP_VECS * k;
        for (int q = 0; q < 2; q++) { /* quad A = groups 0-3 (pairs 0, 1), B = groups 4-7 */
            const __m512i a = p[2 * q], b = p[2 * q + 1], na = n[2 * q], nb = n[2 * q + 1];
            t[4 * q + 0] = _mm512_and_si512(_mm512_permutex2var_epi8(a, even, b), low6);
            t[4 * q + 1] = _mm512_and_si512(_mm512_permutex2var_epi8(na, even, nb), low6);
            t[4 * q + 2] = _mm512_permutex2var_epi8(_mm512_srai_epi16(a, 6), even,
                                                    _mm512_srai_epi16(b, 6));
            t[4 * q + 3] = _mm512_permutex2var_epi8(_mm512_srai_epi16(na, 6), even,
                                                    _mm512_srai_epi16(nb, 6));
        }
    }
}

/* acc += u8(a) . s8(b) per int32 lane; inline asm because GCC 12 otherwise copies the
 * accumulator through another register around every vpdpbusd. */
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))

/* 64 sign bits -> a mask register, through a general register (a kmovq from memory was
 * the hottest instruction of the loop when the line missed the cache). */
static inline __mmask64 load_mask(const uint8_t *p) {
    uint64_t m;
    memcpy(&m, p, 8);
    __asm__("" : "+r"(m));
    return _cvtu64_mask64(m);
}

/* Rows [rb, re) (whole tiles) over `steps` steps starting at step k0 of each tile;
 * y receives (first) or accumulates the partial sums. */
static void tl2_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                     const __m512i *tab, size_t rb, size_t re, int32_t *y, int first) {
    __m512i transpose; /* byte 4i + l <- byte 16l + i */
    __m512i pos;       /* byte p: group (p % 4) << 4 */
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
    const __m512i neg = _mm512_set1_epi8(0x40);
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512i c64 = _mm512_set1_epi8(64);
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *base = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * BITNET_TL2_STEP_BYTES;
        int32_t *yo = y + (r - rb);
        /* accA/accB[s] dword i = row 16s + i. After each whole step an accumulator holds the
         * exact partial sum (|.| <= 128 * K < 2^31); within a step lo and hi parts may stray
         * by < 2^12, and int32 wraps consistently, so the final sum is exact. */
        __m512i accA[4], accB[4];
        for (int s = 0; s < 4; s++) {
            accA[s] = first ? _mm512_setzero_si512() : _mm512_loadu_si512(yo + 16 * s);
            accB[s] = _mm512_setzero_si512();
        }
        for (size_t k = 0; k < steps; k++) {
            const uint8_t *q = base + k * BITNET_TL2_STEP_BYTES;
            const __m512i *t = tab + TL2_STEP_VECS * k;
            const __m512i alp = t[0], aln = t[1], ahp = t[2], ahn = t[3];
            const __m512i blp = t[4], bln = t[5], bhp = t[6], bhn = t[7];
            for (int s = 0; s < 4; s++) {
                const __m512i v =
                    _mm512_permutexvar_epi8(transpose, _mm512_load_si512(q + 64 * s));
                /* index = nibble | group << 4, then + 64 where the sign bit is set */
                __m512i ia = _mm512_ternarylogic_epi32(v, low4, pos, 0xEA);
                __m512i ib = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), low4, pos, 0xEA);
                const uint8_t *sg = q + BITNET_TL2_SIGNS_OFFSET + 16 * s;
                ia = _mm512_mask_add_epi8(ia, load_mask(sg), ia, neg);
                ib = _mm512_mask_add_epi8(ib, load_mask(sg + 8), ib, neg);
                DPBUSD(accA[s], _mm512_permutex2var_epi8(alp, ia, aln), ones);
                DPBUSD(accA[s], c64, _mm512_permutex2var_epi8(ahp, ia, ahn));
                DPBUSD(accB[s], _mm512_permutex2var_epi8(blp, ib, bln), ones);
                DPBUSD(accB[s], c64, _mm512_permutex2var_epi8(bhp, ib, bhn));
            }
        }
        for (int s = 0; s < 4; s++)
            _mm512_storeu_si512(yo + 16 * s, _mm512_add_epi32(accA[s], accB[s]));
    }
}

void bitnet_tl2_gemv_avx512(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                            size_t row_end, int32_t *y) {
    __m512i tab[TL2_CHUNK_STEPS * TL2_STEP_VECS];
    const size_t steps = kp / BITNET_TL2_K_BLOCK;
    const size_t tile_bytes = steps * BITNET_TL2_STEP_BYTES;
    const size_t passes = (steps + TL2_CHUNK_STEPS - 1) / TL2_CHUNK_STEPS;
    const size_t per = (steps + passes - 1) / passes; /* <= TL2_CHUNK_STEPS */
    for (size_t k0 = 0; k0 < steps; k0 += per) {
        const size_t ks = steps - k0 < per ? steps - k0 : per;
        tl2_build(x + k0 * BITNET_TL2_K_BLOCK, ks, tab);
        tl2_rows(w, tile_bytes, k0, ks, tab, row_begin, row_end, y, k0 == 0);
    }
}

/* One activation row at a time: the tables are per activation row. The TL formats are
 * for the GEMV (fewer bytes to stream); for batches I2_S's GEMM is the faster kernel. */
void bitnet_tl2_gemm_avx512(const uint8_t *w, size_t kp, const int8_t *x, size_t n,
                            size_t row_begin, size_t row_end, int32_t *y) {
    for (size_t j = 0; j < n; j++)
        bitnet_tl2_gemv_avx512(w, kp, x + j * kp, row_begin, row_end,
                               y + j * (row_end - row_begin));
}
