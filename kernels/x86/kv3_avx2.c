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
 * groups < 2^31 for head_dim <= 65536. Weighted sum: codes to f32, one FMA per lane and
 * query head, tokens in order (the scalar reference's order, with fused rounding).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

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
    /* The 2 rows (96 bytes at head_dim 128) of the next blocks: prefetch.h. */
    BITNET_PREFETCH_AHEAD(pf, r, 2);
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
    case 1: dot_block(r, stride, pairs, qh, qs, TN, 1, shuf, mul, o, n, pf); break;                 \
    case 2: dot_block(r, stride, pairs, qh, qs, TN, 2, shuf, mul, o, n, pf); break;                 \
    case 3: dot_block(r, stride, pairs, qh, qs, TN, 3, shuf, mul, o, n, pf); break;                 \
    default: dot_block(r, stride, pairs, qh, qs, TN, 4, shuf, mul, o, n, pf); break;                \
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

/* Tokens are taken in blocks of TB so that, per 16-code vector, the accumulators of up to four
 * heads stay in registers across the block while its rows stay in L1. Each accumulator still
 * receives its tokens in order. */
#define TB 64

static BITNET_ALWAYS_INLINE void wsum_block(
    const uint8_t *rows, size_t stride, size_t tn, size_t pairs, const float *w, size_t n,
    int nh, float *acc, size_t accs, __m256i shuf, __m256i mul, int pf) {
    for (size_t b = 0; b < pairs; b++) {
        __m256 lo[4], hi[4];
        for (int h = 0; h < nh; h++) {
            lo[h] = _mm256_loadu_ps(acc + h * accs + 16 * b);
            hi[h] = _mm256_loadu_ps(acc + h * accs + 16 * b + 8);
        }
        for (size_t t = 0; t < tn; t++) {
            /* One prefetch a row (48 bytes at head_dim 128) in the first pair's pass. */
            if (b == 0) BITNET_PREFETCH_AHEAD(pf, rows + t * stride, 1);
            const __m256i c = unpack2(rows + t * stride + 6 * b, shuf, mul);
            const __m256 cl = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(c)));
            const __m256 ch =
                _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(c, 1)));
            for (int h = 0; h < nh; h++) {
                const __m256 wv = _mm256_set1_ps(w[h * n + t]);
                lo[h] = _mm256_fmadd_ps(wv, cl, lo[h]);
                hi[h] = _mm256_fmadd_ps(wv, ch, hi[h]);
            }
        }
        for (int h = 0; h < nh; h++) {
            _mm256_storeu_ps(acc + h * accs + 16 * b, lo[h]);
            _mm256_storeu_ps(acc + h * accs + 16 * b + 8, hi[h]);
        }
    }
}

void bitnet_kv3_wsum_avx2(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                          const float *w, size_t nq, float *acc, size_t accs) {
    __m256i shuf, mul;
    consts(&shuf, &mul);
    const int pf = bitnet_x86_prefetch_on();
    const size_t pairs = (groups + 1) / 2;
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const size_t tn = n - t0 < TB ? n - t0 : TB;
        const uint8_t *r = rows + t0 * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const float *wh = w + h0 * n + t0;
            float *a = acc + h0 * accs;
            switch (nq - h0 < 4 ? nq - h0 : 4) {
            case 1: wsum_block(r, stride, tn, pairs, wh, n, 1, a, accs, shuf, mul, pf); break;
            case 2: wsum_block(r, stride, tn, pairs, wh, n, 2, a, accs, shuf, mul, pf); break;
            case 3: wsum_block(r, stride, tn, pairs, wh, n, 3, a, accs, shuf, mul, pf); break;
            default: wsum_block(r, stride, tn, pairs, wh, n, 4, a, accs, shuf, mul, pf); break;
            }
        }
    }
}
