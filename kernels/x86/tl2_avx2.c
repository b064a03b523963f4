/* TL2 GEMV / GEMM, AVX2 (vpshufb).
 *
 * Layout: src/format/tl2.rs (kernels.h). Per activation row the kernel builds, for each
 * group of 3 activations, the 16-entry magnitude table T[u] = d0 q0 + d1 q1 + d2 q2
 * (|T| <= 384, entries 14, 15 unused), split exactly as T = 64 * hi + lo, lo = T & 63,
 * hi = T >> 6 (-6..6), as two 16-byte vpshufb tables; a ymm holds two groups' tables, one
 * a lane, matching the nibble lanes (a 16-byte lane = 16 rows of one group).
 *
 * Per 16-row sub-tile and step: 4 index vectors (low / high nibbles of the two 32-byte
 * halves), two vpshufb each (lo, hi), vpsignb with the sign (sign bits expanded to bytes
 * by a byte shuffle, an and and a compare), then lo and hi interleaved and vpmaddubsw with
 * [1, 64] gives the signed int16 value of each lookup, rows in order. int16 accumulators
 * take 4 lookups a step (|.| <= 4 * 384 = 1536), so they are widened into int32 every 16
 * steps (16 * 1536 = 24576 < 2^15).
 *
 * Loop order as tl2_avx512.c: one sequential weight stream, a step's tables shared by the
 * tile's four sub-tiles; tables for at most TL2_CHUNK_STEPS steps (56 KiB) on the stack,
 * longer rows in balanced passes accumulating into y. No allocation.
 */
#include "tl_common.h"

#define TL2_CHUNK_STEPS 224 /* 224 steps x 256 B of tables = 56 KiB */
#define TL2_STEP_VECS 8     /* lo, hi for groups (0,1), (2,3), (4,5), (6,7) */
#define FLUSH_STEPS 16

/* Builds the tables of `steps` steps from the 24 * steps activations at x. */
static void tl2_build(const int8_t *x, size_t steps, __m256i *tab) {
    __m256i D[3];
    for (int k = 0; k < 3; k++) {
        int16_t d[16];
        for (int u = 0; u < 16; u++) {
            const int div = k == 0 ? 9 : k == 1 ? 3 : 1;
            d[u] = (int16_t)(u < 14 ? u / div % 3 - 1 : 0);
        }
        memcpy(&D[k], d, 32);
    }
    for (size_t k = 0; k < steps; k++) {
        const int8_t *xs = x + 24 * k;
        __m256i t[8];
        for (int g = 0; g < 8; g++) { /* |v| <= 3 * 128: int16 */
            __m256i v = _mm256_mullo_epi16(_mm256_set1_epi16(xs[3 * g]), D[0]);
            v = _mm256_add_epi16(v, _mm256_mullo_epi16(_mm256_set1_epi16(xs[3 * g + 1]), D[1]));
            t[g] = _mm256_add_epi16(v, _mm256_mullo_epi16(_mm256_set1_epi16(xs[3 * g + 2]), D[2]));
        }
        __m256i *o = tab + TL2_STEP_VECS * k;
        for (int j = 0; j < 4; j++) { /* lane 0 = group 2j, lane 1 = group 2j + 1 */
            bitnet_tl_pack16(t[2 * j], t[2 * j + 1], &o[2 * j], &o[2 * j + 1]);
        }
    }
}

static void tl2_rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps,
                     const __m256i *tab, size_t rb, size_t re, int32_t *y, int first) {
    __m256i sel, bits0, bits1; /* sign bit of (lane L, row i): byte i/2, bit 4 (i%2) + L (+2) */
    {
        uint8_t s[32], b0[32], b1[32];
        for (int p = 0; p < 32; p++) {
            const int lane = p / 16, i = p % 16;
            s[p] = (uint8_t)(i / 2);
            b0[p] = (uint8_t)(1u << (4 * (i % 2) + lane));
            b1[p] = (uint8_t)(1u << (4 * (i % 2) + lane + 2));
        }
        memcpy(&sel, s, 32);
        memcpy(&bits0, b0, 32);
        memcpy(&bits1, b1, 32);
    }
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi8(1);
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *base = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * BITNET_TL2_STEP_BYTES;
        int32_t *yo = y + (r - rb);
        int32_t acc32[BITNET_TL_ROW_TILE]; /* exact: |.| <= 128 * K < 2^31 */
        for (int i = 0; i < BITNET_TL_ROW_TILE; i++) acc32[i] = first ? 0 : yo[i];
        __m256i acc16[8]; /* sub-tile s: [2s] rows 0-7, [2s + 1] rows 8-15 */
        for (int i = 0; i < 8; i++) acc16[i] = _mm256_setzero_si256();
        for (size_t k = 0; k < steps; k++) {
            const uint8_t *q = base + k * BITNET_TL2_STEP_BYTES;
            const __m256i *t = tab + TL2_STEP_VECS * k;
            for (int s = 0; s < 4; s++) {
                const __m256i n0 = _mm256_load_si256((const __m256i *)(q + 64 * s));
                const __m256i n1 = _mm256_load_si256((const __m256i *)(q + 64 * s + 32));
                const __m256i idx[4] = {
                    _mm256_and_si256(n0, low4), _mm256_and_si256(n1, low4),
                    _mm256_and_si256(_mm256_srli_epi16(n0, 4), low4),
                    _mm256_and_si256(_mm256_srli_epi16(n1, 4), low4)};
                uint64_t sw[2];
                memcpy(sw, q + BITNET_TL2_SIGNS_OFFSET + 16 * s, 16);
                for (int j = 0; j < 4; j++) {
                    /* signs of vector j: word j / 2, bits shifted by 2 for groups 2, 3 */
                    const __m256i sb = _mm256_shuffle_epi8(_mm256_set1_epi64x((long long)sw[j / 2]), sel);
                    const __m256i bits = (j % 2) ? bits1 : bits0;
                    const __m256i sg =
                        _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_and_si256(sb, bits), bits), one);
                    const __m256i lo = _mm256_sign_epi8(_mm256_shuffle_epi8(t[2 * j], idx[j]), sg);
                    const __m256i hi =
                        _mm256_sign_epi8(_mm256_shuffle_epi8(t[2 * j + 1], idx[j]), sg);
                    /* |lo + 64 hi| <= 447: no saturation in vpmaddubsw */
                    bitnet_tl_add16(&acc16[2 * s], lo, hi);
                }
            }
            if ((k + 1) % FLUSH_STEPS == 0 || k + 1 == steps)
                for (int i = 0; i < 8; i++) bitnet_tl_flush16(&acc16[i], acc32 + 8 * i);
        }
        memcpy(yo, acc32, sizeof acc32);
    }
}

BITNET_TL_ENTRY_POINTS(tl2, avx2, __m256i, TL2_CHUNK_STEPS, TL2_STEP_VECS,
                       BITNET_TL2_K_BLOCK, BITNET_TL2_STEP_BYTES, tl2_build, tl2_rows)
