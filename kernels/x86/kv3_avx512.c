/* 3-bit KV-cache kernels for AVX-512 F/BW (docs/FORMATS.md section 8; contract: RawKvDot and
 * RawKvWsum in src/kernels/mod.rs).
 *
 * Four groups (12 bytes, 32 codes) are unpacked at a time: one 16-byte load broadcast to the
 * four 128-bit lanes, a vpshufb that gives lane k group k's bytes (3k + (3i>>3), +1) in code
 * i's 16-bit lane, a per-lane variable shift right (vpsrlvw) by 3i & 7 and a mask of 7. The
 * last four may reach past the row's groups into the bytes after it (the contract keeps 16
 * readable); the q entries they meet are zero and the accumulator entries they feed scratch.
 *
 * Dot: vpmaddwd of codes by q into int32, exact (see kv3_avx2.c). Weighted sum: codes to f32,
 * one FMA per lane and query head, tokens in order.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

static inline __m512i unpack4(const uint8_t *p, __m512i shuf, __m512i shift) {
    __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p));
    __m512i w = _mm512_srlv_epi16(_mm512_shuffle_epi8(b, shuf), shift);
    return _mm512_and_si512(w, _mm512_set1_epi16(7));
}

static inline void consts(__m512i *shuf, __m512i *shift) {
    uint8_t s[64];
    int16_t m[32];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 8; i++) {
            int bit = 3 * i, lane = 8 * k + i;
            s[2 * lane] = (uint8_t)(3 * k + (bit >> 3));
            s[2 * lane + 1] = (uint8_t)(3 * k + (bit >> 3) + 1);
            m[lane] = (int16_t)(bit & 7);
        }
    *shuf = _mm512_loadu_si512(s);
    *shift = _mm512_loadu_si512(m);
}

/* The four sums of a[0..3] into one int32x4: halves added, then two rounds of vphaddd. */
static inline __m128i hsum4(const __m512i a[4]) {
    __m256i b[4];
    for (int h = 0; h < 4; h++)
        b[h] = _mm256_add_epi32(_mm512_castsi512_si256(a[h]), _mm512_extracti64x4_epi64(a[h], 1));
    __m256i c = _mm256_hadd_epi32(_mm256_hadd_epi32(b[0], b[1]), _mm256_hadd_epi32(b[2], b[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
}

/* One token, NH (1..4, a constant after inlining) query heads from h0. */
static BITNET_ALWAYS_INLINE void dot_row(const uint8_t *r, size_t quads,
                                                          const int16_t *q, size_t qs, int nh,
                                                          __m512i shuf, __m512i shift,
                                                          int32_t *out) {
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                      _mm512_setzero_si512()};
    for (size_t b = 0; b < quads; b++) {
        const __m512i c = unpack4(r + 12 * b, shuf, shift);
        for (int h = 0; h < nh; h++)
            acc[h] = _mm512_add_epi32(
                acc[h], _mm512_madd_epi16(c, _mm512_loadu_si512(q + h * qs + 32 * b)));
    }
    int32_t s[4];
    _mm_storeu_si128((__m128i *)s, hsum4(acc));
    for (int h = 0; h < nh; h++) out[h] = s[h];
}

void bitnet_kv3_dot_avx512(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                           const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    __m512i shuf, shift;
    consts(&shuf, &shift);
    const size_t quads = (groups + 3) / 4;
    for (size_t t = 0; t < n; t++) {
        const uint8_t *r = rows + t * stride;
        /* Up to four query heads share each unpacked vector. */
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const int16_t *qh = q + h0 * qs;
            int32_t *o = out + t * nq + h0;
            switch (nq - h0 < 4 ? nq - h0 : 4) {
            case 1: dot_row(r, quads, qh, qs, 1, shuf, shift, o); break;
            case 2: dot_row(r, quads, qh, qs, 2, shuf, shift, o); break;
            case 3: dot_row(r, quads, qh, qs, 3, shuf, shift, o); break;
            default: dot_row(r, quads, qh, qs, 4, shuf, shift, o); break;
            }
        }
    }
}

/* Tokens are taken in blocks of TB so that, per 32-code vector, the accumulators of up to four
 * heads stay in registers across the block while its rows stay in L1. Each accumulator still
 * receives its tokens in order. */
#define TB 64

static BITNET_ALWAYS_INLINE void wsum_block(
    const uint8_t *rows, size_t stride, size_t tn, size_t quads, const float *w, size_t nq,
    int nh, float *acc, size_t accs, __m512i shuf, __m512i shift) {
    for (size_t b = 0; b < quads; b++) {
        __m512 lo[4], hi[4];
        for (int h = 0; h < nh; h++) {
            lo[h] = _mm512_loadu_ps(acc + h * accs + 32 * b);
            hi[h] = _mm512_loadu_ps(acc + h * accs + 32 * b + 16);
        }
        for (size_t t = 0; t < tn; t++) {
            const __m512i c = unpack4(rows + t * stride + 12 * b, shuf, shift);
            const __m512 cl = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(c)));
            const __m512 ch =
                _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(c, 1)));
            for (int h = 0; h < nh; h++) {
                const __m512 wv = _mm512_set1_ps(w[t * nq + h]);
                lo[h] = _mm512_fmadd_ps(wv, cl, lo[h]);
                hi[h] = _mm512_fmadd_ps(wv, ch, hi[h]);
            }
        }
        for (int h = 0; h < nh; h++) {
            _mm512_storeu_ps(acc + h * accs + 32 * b, lo[h]);
            _mm512_storeu_ps(acc + h * accs + 32 * b + 16, hi[h]);
        }
    }
}

void bitnet_kv3_wsum_avx512(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                            const float *w, size_t nq, float *acc, size_t accs) {
    __m512i shuf, shift;
    consts(&shuf, &shift);
    const size_t quads = (groups + 3) / 4;
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const size_t tn = n - t0 < TB ? n - t0 : TB;
        const uint8_t *r = rows + t0 * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const float *wh = w + t0 * nq + h0;
            float *a = acc + h0 * accs;
            switch (nq - h0 < 4 ? nq - h0 : 4) {
            case 1: wsum_block(r, stride, tn, quads, wh, nq, 1, a, accs, shuf, shift); break;
            case 2: wsum_block(r, stride, tn, quads, wh, nq, 2, a, accs, shuf, shift); break;
            case 3: wsum_block(r, stride, tn, quads, wh, nq, 3, a, accs, shuf, shift); break;
            default: wsum_block(r, stride, tn, quads, wh, nq, 4, a, accs, shuf, shift); break;
            }
        }
    }
}
