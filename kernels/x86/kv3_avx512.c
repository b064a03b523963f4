/* 3-bit KV-cache kernels for AVX-512 F/BW (docs/FORMATS.md section 8; contract: RawKvDot and
 * RawKvWsum in src/kernels/mod.rs).
 *
 * Four groups (12 bytes, 32 codes) are unpacked at a time: one 16-byte load broadcast to the
 * four 128-bit lanes, a vpshufb that gives lane k group k's bytes (3k + (3i>>3), +1) in code
 * i's 16-bit lane, a per-lane variable shift right (vpsrlvw) by 3i & 7 and a mask of 7. The
 * last four may reach past the row's groups into the bytes after it (the contract keeps 16
 * readable); the q entries they meet are zero and the accumulator entries they feed scratch.
 *
 * Dot: vpdpwssd (VNNI) of codes by q into int32, exact (see kv3_avx2.c), four tokens by up to
 * four heads per pass, the sixteen sums reduced together. Weighted sum: codes to f32,
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

/* The 16 lane sums of a[0..15] as one vector: lane i = sum of a[i]'s lanes. Pairs are
 * interleaved and added (32-bit, then 64-bit unpacks), leaving per 128-bit block the partial
 * sums of four accumulators; two rounds of block shuffles add the blocks. */
static inline __m512i hsum16(const __m512i a[16]) {
    __m512i b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]),
                                _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(b[2 * i], b[2 * i + 1]),
                                _mm512_unpackhi_epi64(b[2 * i], b[2 * i + 1]));
    for (int i = 0; i < 2; i++)
        d[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], 0x88),
                                _mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], 0xdd));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(d[0], d[1], 0x88),
                            _mm512_shuffle_i32x4(d[0], d[1], 0xdd));
}

/* TN (1..4) tokens from r, NH (1..4) query heads: accumulator 4 * token + head, one vpdpwssd
 * (VNNI) per unpacked vector and head, the q vector loaded once per block for all tokens. TN
 * and NH are constants after inlining. */
static BITNET_ALWAYS_INLINE void dot_block(const uint8_t *r, size_t stride, size_t quads,
                                           const int16_t *q, size_t qs, int tn, int nh,
                                           __m512i shuf, __m512i shift, int32_t *out,
                                           size_t nq) {
    __m512i acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_si512();
    for (size_t b = 0; b < quads; b++) {
        __m512i qv[4];
        for (int h = 0; h < nh; h++) qv[h] = _mm512_loadu_si512(q + h * qs + 32 * b);
        for (int t = 0; t < tn; t++) {
            const __m512i c = unpack4(r + t * stride + 12 * b, shuf, shift);
            for (int h = 0; h < nh; h++)
                acc[4 * t + h] = _mm512_dpwssd_epi32(acc[4 * t + h], c, qv[h]);
        }
    }
    int32_t s[16];
    _mm512_storeu_si512(s, hsum16(acc));
    for (int t = 0; t < tn; t++)
        for (int h = 0; h < nh; h++) out[t * nq + h] = s[4 * t + h];
}

/* Four tokens at a time (a shorter last block), up to four heads at a time. */
#define DOT_HEADS(TN)                                                                           \
    switch (nq - h0 < 4 ? nq - h0 : 4) {                                                        \
    case 1: dot_block(r, stride, quads, qh, qs, TN, 1, shuf, shift, o, nq); break;              \
    case 2: dot_block(r, stride, quads, qh, qs, TN, 2, shuf, shift, o, nq); break;              \
    case 3: dot_block(r, stride, quads, qh, qs, TN, 3, shuf, shift, o, nq); break;              \
    default: dot_block(r, stride, quads, qh, qs, TN, 4, shuf, shift, o, nq); break;             \
    }

void bitnet_kv3_dot_avx512(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                           const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    __m512i shuf, shift;
    consts(&shuf, &shift);
    const size_t quads = (groups + 3) / 4;
    for (size_t t = 0; t < n; t += 4) {
        const uint8_t *r = rows + t * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const int16_t *qh = q + h0 * qs;
            int32_t *o = out + t * nq + h0;
            switch (n - t < 4 ? n - t : 4) {
            case 1: DOT_HEADS(1); break;
            case 2: DOT_HEADS(2); break;
            case 3: DOT_HEADS(3); break;
            default: DOT_HEADS(4); break;
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
