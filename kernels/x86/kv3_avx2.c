/* 3-bit KV-cache kernels for AVX2 (docs/FORMATS.md section 8; contract: RawKvDot and
 * RawKvWsum in src/kernels/mod.rs).
 *
 * A row is groups of 8 codes in 3 bytes (code i = bits 3i..3i+2 of the little-endian 24-bit
 * word). Two groups (6 bytes) are unpacked at a time into 16 int16 lanes: one 8-byte load,
 * broadcast to both 128-bit lanes, a vpshufb that copies, for code i, bytes (3i>>3, +1) into
 * its 16-bit lane, a vpmullw by 2^(13 - (3i & 7)) that moves the code's bits to 13..15
 * (higher bits fall off), and a shift right by 13. An odd last group pairs with the bytes
 * after the row (the contract keeps them readable); the q entries it meets are zero, and the
 * accumulator entries it feeds are scratch.
 *
 * Dot: vpmaddwd of codes (0..7) by q (-128..127) into int32: exact, |sum| <= 7 * 128 * 8 *
 * groups < 2^31 for head_dim <= 65536. Weighted sum (int8 weights in blocks of 64 tokens,
 * one f32 factor each): vpmaddubsw of two tokens' codes by their weights, exact integer sums,
 * one FMA per block (below); equal to the scalar reference's result.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "prefetch.h"

static inline __m256i unpack2(const uint8_t *p, __m256i shuf, __m256i mul) {
    __m128i x = _mm_loadl_epi64((const __m128i *)p);
    __m256i w = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(x), shuf);
    return _mm256_srli_epi16(_mm256_mullo_epi16(w, mul), 13);
}

static inline void consts(__m256i *shuf, __m256i *mul) {
    uint8_t s[32];
    int16_t m[16];
    for (int i = 0; i < 16; i++) {
        int bit = 3 * i;
        s[2 * i] = (uint8_t)(bit >> 3);
        s[2 * i + 1] = (uint8_t)((bit >> 3) + 1);
        m[i] = (int16_t)(1 << (13 - (bit & 7)));
    }
    /* vpshufb indexes within each 128-bit lane, and both lanes hold the same 8 bytes. */
    *shuf = _mm256_loadu_si256((const __m256i *)s);
    *mul = _mm256_loadu_si256((const __m256i *)m);
}

/* The 8 lane sums of a[0..7] as one vector: lane i = sum of a[i]'s lanes (two rounds of
 * vphaddd, then the 128-bit halves added). */
static inline __m256i hsum8(const __m256i a[8]) {
    const __m256i t0 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    const __m256i t1 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]), _mm256_hadd_epi32(a[6], a[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x20),
                            _mm256_permute2x128_si256(t0, t1, 0x31));
}

/* TN (1..2) tokens from r, NH (1..4) query heads: accumulator 4 * token + head, the q vectors
 * loaded once per pair for both tokens (8 accumulators, 4 q vectors and the constants fill the
 * 16 registers). TN and NH are constants after inlining. */
static BITNET_ALWAYS_INLINE void dot_block(const uint8_t *r, size_t stride, size_t pairs,
                                           const int16_t *q, size_t qs, int tn, int nh,
                                           __m256i shuf, __m256i mul, int32_t *out, size_t n,
                                           int pf) {
    /* The tn rows ahead (prefetch.h). */
    BITNET_KV_PREFETCH(pf, r, tn * stride);
    __m256i acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_si256();
    for (size_t b = 0; b < pairs; b++) {
        __m256i qv[4];
        for (int h = 0; h < nh; h++)
            qv[h] = _mm256_loadu_si256((const __m256i *)(q + h * qs + 16 * b));
        for (int t = 0; t < tn; t++) {
            const __m256i c = unpack2(r + t * stride + 6 * b, shuf, mul);
            for (int h = 0; h < nh; h++)
                acc[4 * t + h] = _mm256_add_epi32(acc[4 * t + h], _mm256_madd_epi16(c, qv[h]));
        }
    }
    int32_t s[8];
    _mm256_storeu_si256((__m256i *)s, hsum8(acc));
    for (int t = 0; t < tn; t++)
        for (int h = 0; h < nh; h++) out[h * n + t] = s[4 * t + h];
}

#define DOT_HEADS(TN)                                                                           \
    switch (nq - h0 < 4 ? nq - h0 : 4) {                                                        \
    case 1: dot_block(r, stride, pairs, qh, qs, TN, 1, shuf, mul, o, n, pf && h0 == 0); break;     \
    case 2: dot_block(r, stride, pairs, qh, qs, TN, 2, shuf, mul, o, n, pf && h0 == 0); break;     \
    case 3: dot_block(r, stride, pairs, qh, qs, TN, 3, shuf, mul, o, n, pf && h0 == 0); break;     \
    default: dot_block(r, stride, pairs, qh, qs, TN, 4, shuf, mul, o, n, pf && h0 == 0); break;    \
    }

void bitnet_kv3_dot_avx2(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                         const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    __m256i shuf, mul;
    consts(&shuf, &mul);
    const int pf = bitnet_x86_prefetch_on();
    const size_t pairs = (groups + 1) / 2;
    /* Two tokens by up to four query heads per pass, their eight sums reduced together. */
    for (size_t t = 0; t < n; t += 2) {
        const uint8_t *r = rows + t * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const int16_t *qh = q + h0 * qs;
            int32_t *o = out + h0 * n + t;
            if (n - t >= 2) {
                DOT_HEADS(2);
            } else {
                DOT_HEADS(1);
            }
        }
    }
}

/* Tokens a weight block (BITNET_KV_WBLOCK, kernels.h): the int8 weights of each block share one
 * f32 factor. Per block, code pair and up to four heads the sums stay in registers while the
 * block's rows stay in L1. */
#define TB BITNET_KV_WBLOCK

/* One weight block (tn <= TB tokens) by up to four heads, for every 16-code vector: two
 * tokens' codes (0..7) as the two bytes of each int16 lane, by the two tokens' int8 weights
 * (one broadcast int16), vpmaddubsw: |lane| <= 2 * 7 * 127, added in int16 over 16 pairs
 * (<= 28448), widened to int32 every 32 tokens; at the block's end one FMA per lane by the
 * factor. Exact integers, so the result equals the scalar reference's. w: the heads' weights
 * (ws apart, zero past the block's tokens); f: their factors (nb apart). */
static BITNET_ALWAYS_INLINE void wsum_block(const uint8_t *rows, size_t stride, size_t tn,
                                            size_t pairs, const int8_t *w, size_t ws,
                                            const float *f, size_t nb, int nh, float *acc,
                                            size_t accs, __m256i shuf, __m256i mul, int pf) {
    for (size_t b = 0; b < pairs; b++) {
        __m256i s32[4][2];
        for (int h = 0; h < nh; h++) s32[h][0] = s32[h][1] = _mm256_setzero_si256();
        for (size_t t0 = 0; t0 < tn; t0 += 32) {
            const size_t te = tn - t0 < 32 ? tn : t0 + 32;
            __m256i s16[4];
            for (int h = 0; h < nh; h++) s16[h] = _mm256_setzero_si256();
            for (size_t t = t0; t < te; t += 2) {
                /* The two rows ahead (prefetch.h), in the first pair's pass. */
                if (b == 0) BITNET_KV_PREFETCH(pf, rows + t * stride, (te - t < 2 ? 1 : 2) * stride);
                const __m256i ca = unpack2(rows + t * stride + 6 * b, shuf, mul);
                __m256i c = ca;
                if (t + 1 < te) {
                    const __m256i cb = unpack2(rows + (t + 1) * stride + 6 * b, shuf, mul);
                    c = _mm256_or_si256(ca, _mm256_slli_epi16(cb, 8));
                }
                for (int h = 0; h < nh; h++) {
                    int16_t w2;
                    memcpy(&w2, w + h * ws + t, 2);
                    s16[h] = _mm256_add_epi16(
                        s16[h], _mm256_maddubs_epi16(c, _mm256_set1_epi16(w2)));
                }
            }
            for (int h = 0; h < nh; h++) {
                s32[h][0] = _mm256_add_epi32(
                    s32[h][0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16[h])));
                s32[h][1] = _mm256_add_epi32(
                    s32[h][1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16[h], 1)));
            }
        }
        for (int h = 0; h < nh; h++) {
            const __m256 fv = _mm256_set1_ps(f[h * nb]);
            float *o = acc + h * accs + 16 * b;
            for (int i = 0; i < 2; i++)
                _mm256_storeu_ps(o + 8 * i, _mm256_fmadd_ps(fv, _mm256_cvtepi32_ps(s32[h][i]),
                                                            _mm256_loadu_ps(o + 8 * i)));
        }
    }
}

void bitnet_kv3_wsum_avx2(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                          const int8_t *w, const float *f, size_t nq, float *acc, size_t accs) {
    __m256i shuf, mul;
    consts(&shuf, &mul);
    const int pf = bitnet_x86_prefetch_on();
    const size_t pairs = (groups + 1) / 2, nb = (n + TB - 1) / TB, ws = TB * nb;
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const size_t tn = n - t0 < TB ? n - t0 : TB;
        const uint8_t *r = rows + t0 * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const int8_t *wh = w + h0 * ws + t0;
            const float *fh = f + h0 * nb + t0 / TB;
            float *a = acc + h0 * accs;
            switch (nq - h0 < 4 ? nq - h0 : 4) {
            case 1: wsum_block(r, stride, tn, pairs, wh, ws, fh, nb, 1, a, accs, shuf, mul, pf); break;
            case 2: wsum_block(r, stride, tn, pairs, wh, ws, fh, nb, 2, a, accs, shuf, mul, pf); break;
            case 3: wsum_block(r, stride, tn, pairs, wh, ws, fh, nb, 3, a, accs, shuf, mul, pf); break;
            default: wsum_block(r, stride, tn, pairs, wh, ws, fh, nb, 4, a, accs, shuf, mul, pf); break;
            }
        }
    }
}
