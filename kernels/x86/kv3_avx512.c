/* 3-bit KV-cache kernels for AVX-512 F/BW (docs/FORMATS.md section 7; contract: RawKvDot and
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

void bitnet_kv3_dot_avx512(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                           const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    __m512i shuf, shift;
    consts(&shuf, &shift);
    const size_t quads = (groups + 3) / 4;
    for (size_t t = 0; t < n; t++) {
        const uint8_t *r = rows + t * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const size_t hn = nq - h0 < 4 ? nq - h0 : 4;
            __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(),
                              _mm512_setzero_si512(), _mm512_setzero_si512()};
            for (size_t b = 0; b < quads; b++) {
                const __m512i c = unpack4(r + 12 * b, shuf, shift);
                for (size_t h = 0; h < hn; h++) {
                    const __m512i qv = _mm512_loadu_si512(q + (h0 + h) * qs + 32 * b);
                    acc[h] = _mm512_add_epi32(acc[h], _mm512_madd_epi16(c, qv));
                }
            }
            for (size_t h = 0; h < hn; h++) out[t * nq + h0 + h] = _mm512_reduce_add_epi32(acc[h]);
        }
    }
}

void bitnet_kv3_wsum_avx512(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                            const float *w, size_t nq, float *acc, size_t accs) {
    __m512i shuf, shift;
    consts(&shuf, &shift);
    const size_t quads = (groups + 3) / 4;
    for (size_t t = 0; t < n; t++) {
        const uint8_t *r = rows + t * stride;
        for (size_t b = 0; b < quads; b++) {
            const __m512i c = unpack4(r + 12 * b, shuf, shift);
            const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(c)));
            const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(c, 1)));
            for (size_t h = 0; h < nq; h++) {
                const __m512 wv = _mm512_set1_ps(w[t * nq + h]);
                float *a = acc + h * accs + 32 * b;
                _mm512_storeu_ps(a, _mm512_fmadd_ps(wv, lo, _mm512_loadu_ps(a)));
                _mm512_storeu_ps(a + 16, _mm512_fmadd_ps(wv, hi, _mm512_loadu_ps(a + 16)));
            }
        }
    }
}
