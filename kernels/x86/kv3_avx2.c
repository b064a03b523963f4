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

/* K chunks (4 channels of 16 positions) of q narrowed per pass: int8 quads, per head. */
#define QSLICE 128
/* Chunks whose int16 pair sums may be added before they are widened: |pair| <= 2 * 7 * 128
 * = 1792 and 16 * 1792 < 2^15. */
#define RUN16 16

/* The 32 codes of bytes p[0..11] (4 code quads, slots of 4 channels) as u8: lanes 0..3 of the
 * int32 view hold the quads of slots 0, 1, 4, 5 and lanes 4..7 those of 2, 3, 6, 7 (the
 * 128-bit interleave of vpackuswb; put in order once per block by a vpermd). */
static inline __m256i unpack32(const uint8_t *p, __m256i shuf, __m256i mul) {
    return _mm256_packus_epi16(unpack2(p, shuf, mul), unpack2(p + 6, shuf, mul));
}

/* One K block (16 positions) by NH (1..4) heads over cn chunks: acc[2 h + k] int32 lanes =
 * the partial dots of slots 8 k + (0, 1, 4, 5, 2, 3, 6, 7). vpmaddubsw of the codes by the
 * head's q quad (broadcast) gives two int16 pair sums per slot, added in int16 over up to
 * RUN16 chunks, then widened and paired by a vpmaddwd by ones. NH is a constant after
 * inlining. */
static BITNET_ALWAYS_INLINE void dot_kblock(const uint8_t *blk, size_t cn, const int32_t *qd,
                                            int nh, __m256i shuf, __m256i mul, __m256i acc[8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int i = 0; i < 2 * nh; i++) acc[i] = _mm256_setzero_si256();
    for (size_t j0 = 0; j0 < cn; j0 += RUN16) {
        const size_t je = cn - j0 < RUN16 ? cn : j0 + RUN16;
        __m256i s[8];
        for (int i = 0; i < 2 * nh; i++) s[i] = _mm256_setzero_si256();
        for (size_t j = j0; j < je; j++) {
            const __m256i c0 = unpack32(blk + 24 * j, shuf, mul);
            const __m256i c1 = unpack32(blk + 24 * j + 12, shuf, mul);
            for (int h = 0; h < nh; h++) {
                const __m256i qv = _mm256_set1_epi32(qd[h * QSLICE + j]);
                s[2 * h] = _mm256_add_epi16(s[2 * h], _mm256_maddubs_epi16(c0, qv));
                s[2 * h + 1] = _mm256_add_epi16(s[2 * h + 1], _mm256_maddubs_epi16(c1, qv));
            }
        }
        for (int i = 0; i < 2 * nh; i++)
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(s[i], ones));
    }
}

/* The blocks of positions first .. first + n - 1 by NH heads, chunks c0 .. c0 + cn - 1:
 * each head's sums stored into its run (added when c0 > 0, a later slice). */
static BITNET_ALWAYS_INLINE void dot_blocks(const uint8_t *blocks, size_t bb, size_t first,
                                            size_t n, size_t c0, size_t cn, const int32_t *qd,
                                            int nh, __m256i shuf, __m256i mul, int32_t *out,
                                            int pf) {
    /* Lane l of an accumulator holds slot order[l] of its 8 (the permutation is its own inverse). */
    const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    for (size_t b = first / 16; 16 * b < first + n; b++) {
        const uint8_t *blk = blocks + b * bb;
        /* The block ahead (prefetch.h), in the first slice's pass. */
        if (c0 == 0) BITNET_KV_PREFETCH(pf, blk, bb);
        __m256i acc[8];
        dot_kblock(blk + 24 * c0, cn, qd, nh, shuf, mul, acc);
        const size_t lo = 16 * b < first ? first - 16 * b : 0;
        const size_t hi = first + n - 16 * b < 16 ? first + n - 16 * b : 16;
        for (int h = 0; h < nh; h++) {
            int32_t v[16];
            for (int k = 0; k < 2; k++)
                _mm256_storeu_si256((__m256i *)(v + 8 * k),
                                    _mm256_permutevar8x32_epi32(acc[2 * h + k], order));
            int32_t *o = out + h * n + (16 * b + lo - first);
            for (size_t s = lo; s < hi; s++) o[s - lo] = c0 ? o[s - lo] + v[s] : v[s];
        }
    }
}

void bitnet_kv3_dot_avx2(const uint8_t *blocks, size_t first, size_t n, size_t groups,
                         const int16_t *q, size_t qs, size_t nq, int32_t *out,
                         const uint8_t *next, size_t next_len) {
    /* The next stream (prefetch.h) is not prefetched here: this kernel is slow enough for its
     * own prefetch to keep up from DRAM, and the extra prefetches made it slower in cache. */
    (void)next, (void)next_len;
    __m256i shuf, mul;
    consts(&shuf, &mul);
    const int pf = bitnet_x86_prefetch_on();
    const size_t chunks = 2 * groups, bb = 24 * chunks;
    int32_t qd[4 * QSLICE];
    for (size_t h0 = 0; h0 < nq; h0 += 4) {
        const size_t nh = nq - h0 < 4 ? nq - h0 : 4;
        for (size_t c0 = 0; c0 < chunks; c0 += QSLICE) {
            const size_t cn = chunks - c0 < QSLICE ? chunks - c0 : QSLICE;
            /* q as int8, 16 values (4 quads) at a time: q holds qs >= 8 * round_up(groups, 8)
             * values, zero from 8 * groups on. */
            for (size_t h = 0; h < nh; h++)
                for (size_t j = 0; j < cn; j += 4) {
                    const __m256i x = _mm256_loadu_si256((const __m256i *)(q + (h0 + h) * qs + 4 * (c0 + j)));
                    _mm_storeu_si128((__m128i *)(qd + h * QSLICE + j),
                                     _mm_packs_epi16(_mm256_castsi256_si128(x),
                                                     _mm256_extracti128_si256(x, 1)));
                }
            int32_t *o = out + h0 * n;
            switch (nh) {
            case 1: dot_blocks(blocks, bb, first, n, c0, cn, qd, 1, shuf, mul, o, pf && h0 == 0); break;
            case 2: dot_blocks(blocks, bb, first, n, c0, cn, qd, 2, shuf, mul, o, pf && h0 == 0); break;
            case 3: dot_blocks(blocks, bb, first, n, c0, cn, qd, 3, shuf, mul, o, pf && h0 == 0); break;
            default: dot_blocks(blocks, bb, first, n, c0, cn, qd, 4, shuf, mul, o, pf && h0 == 0); break;
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
                          const int8_t *w, const float *f, size_t nq, float *acc, size_t accs,
                          const uint8_t *next, size_t next_len) {
    (void)next, (void)next_len; /* not prefetched: see bitnet_kv3_dot_avx2 */
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
