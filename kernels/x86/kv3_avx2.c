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
 * groups < 2^31 for head_dim <= 65536. Weighted sum (V in blocks of 4 positions, int8 weights
 * in blocks of 64 positions, one f32 factor each): vpmaddubsw of a channel's four codes by
 * the four positions' weights, exact integer sums, one FMA per block (below); equal to the
 * scalar reference's result.
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
 * f32 factor. Per block, V chunk and up to four heads the sums stay in registers while the
 * block's codes stay in L1. */
#define TB BITNET_KV_WBLOCK
#define VB BITNET_KV_VBLOCK

/* One weight block (the call's positions lo .. hi - 1, also their weight indices) by NH (1..4)
 * heads, V chunk j (channels 16 j .. 16 j + 15) of every V block it meets (block k of vb holds
 * positions 4 k - s .. 4 k - s + 3): the chunk's codes as u8 (unpack32: a channel's four
 * slots in an int32 lane, lanes in the order 0, 1, 4, 5, 2, 3, 6, 7 per 8 channels), by the
 * four positions' weights (one broadcast dword, 0 outside the weight block: bitnet_kv_w4),
 * vpmaddubsw: two int16 pair sums per channel, |pair| <= 2 * 7 * 127, added in int16 (the
 * block's at most 64 positions make at most 32 pairs per lane: <= 28448), widened by a
 * vpmaddwd by 1 and put in order by a vpermq at the block's end, then one FMA per lane by the
 * factor. Exact integers, so the result equals the scalar reference's. w: the heads' weights
 * (ws apart); f: their factors (nb apart). */
static BITNET_ALWAYS_INLINE void wsum_block(const uint8_t *vb, size_t vbb, size_t j, ptrdiff_t lo,
                                            ptrdiff_t hi, ptrdiff_t s, const int8_t *w, size_t ws,
                                            const float *f, size_t nb, int nh, float *acc,
                                            __m256i shuf, __m256i mul, size_t accs, int pf) {
    __m256i s16[4][2];
    for (int h = 0; h < nh; h++) s16[h][0] = s16[h][1] = _mm256_setzero_si256();
    for (ptrdiff_t k = (lo + s) / VB; VB * k - s < hi; k++) {
        const uint8_t *blk = vb + (size_t)k * vbb;
        /* The block ahead (prefetch.h), in the first chunk's pass. */
        if (j == 0) BITNET_KV_PREFETCH(pf, blk, vbb);
        const __m256i c0 = unpack32(blk + 24 * j, shuf, mul);
        const __m256i c1 = unpack32(blk + 24 * j + 12, shuf, mul);
        for (int h = 0; h < nh; h++) {
            const __m256i wv = _mm256_set1_epi32(bitnet_kv_w4(w + h * ws, VB * k - s, lo, hi));
            s16[h][0] = _mm256_add_epi16(s16[h][0], _mm256_maddubs_epi16(c0, wv));
            s16[h][1] = _mm256_add_epi16(s16[h][1], _mm256_maddubs_epi16(c1, wv));
        }
    }
    const __m256i one = _mm256_set1_epi16(1);
    for (int h = 0; h < nh; h++) {
        const __m256 fv = _mm256_set1_ps(f[h * nb]);
        float *o = acc + h * accs + 16 * j;
        for (int i = 0; i < 2; i++) {
            const __m256i v = _mm256_permute4x64_epi64(_mm256_madd_epi16(s16[h][i], one),
                                                       _MM_SHUFFLE(3, 1, 2, 0));
            _mm256_storeu_ps(o + 8 * i, _mm256_fmadd_ps(fv, _mm256_cvtepi32_ps(v),
                                                        _mm256_loadu_ps(o + 8 * i)));
        }
    }
}

void bitnet_kv3_wsum_avx2(const uint8_t *blocks, size_t first, size_t n, size_t groups,
                          const int8_t *w, const float *f, size_t nq, float *acc, size_t accs,
                          const uint8_t *next, size_t next_len) {
    (void)next, (void)next_len; /* not prefetched: see bitnet_kv3_dot_avx2 */
    __m256i shuf, mul;
    consts(&shuf, &mul);
    const int pf = bitnet_x86_prefetch_on();
    const size_t chunks = (groups + 1) / 2, vbb = 24 * chunks, nb = (n + TB - 1) / TB,
                 ws = TB * nb;
    const ptrdiff_t s = (ptrdiff_t)(first % VB);
    const uint8_t *vb = blocks + first / VB * vbb;
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const ptrdiff_t lo = (ptrdiff_t)t0, hi = (ptrdiff_t)(n - t0 < TB ? n : t0 + TB);
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const int8_t *wh = w + h0 * ws;
            const float *fh = f + h0 * nb + t0 / TB;
            float *a = acc + h0 * accs;
            for (size_t j = 0; j < chunks; j++) {
                switch (nq - h0 < 4 ? nq - h0 : 4) {
                case 1: wsum_block(vb, vbb, j, lo, hi, s, wh, ws, fh, nb, 1, a, shuf, mul, accs, pf); break;
                case 2: wsum_block(vb, vbb, j, lo, hi, s, wh, ws, fh, nb, 2, a, shuf, mul, accs, pf); break;
                case 3: wsum_block(vb, vbb, j, lo, hi, s, wh, ws, fh, nb, 3, a, shuf, mul, accs, pf); break;
                default: wsum_block(vb, vbb, j, lo, hi, s, wh, ws, fh, nb, 4, a, shuf, mul, accs, pf); break;
                }
            }
        }
    }
}
