/* 3-bit KV-cache kernels for AVX-512 F/BW with VNNI and VBMI (docs/FORMATS.md section 8;
 * contract: RawKvDot and RawKvWsum in src/kernels/mod.rs).
 *
 * Codes are unpacked to bytes, 64 at a time (a chunk: 8 groups, 24 bytes): a masked load of
 * the chunk's 24 bytes, a vpermb that puts a group's bytes in each 64-bit lane, a
 * vpmultishiftqb that moves code i of each lane's group (bits 3i..3i+2) to byte i, and a mask
 * of 7: byte b = code b of the chunk.
 *
 * Dot (K in blocks of 16 positions, docs/FORMATS.md section 8): a K chunk holds channels
 * 4j..4j+3 of the block's 16 positions, so after the unpack int32 lane s holds slot s's four
 * codes, and one vpdpbusd by q's four int8 values of those channels (an embedded broadcast)
 * adds slot s's partial dot into lane s: exact (|sum| <= 7 * 128 * 8 * groups < 2^31), and a
 * block's 16 dots per head come out as one vector with no horizontal reduction. The int16 q
 * of the contract is narrowed once per call into a stack buffer of int8 quads, for up to four
 * heads and 128 chunks (512 channels) at a time (longer rows add the partial sums of their
 * slices). Per block and chunk pair: two unpacks shared by up to four heads, two accumulators
 * per head (even and odd chunks: eight independent vpdpbusd chains).
 *
 * Weighted sum (V in blocks of 4 positions, int8 weights in blocks of 64 positions, one f32
 * factor each): a V chunk holds channels 16j..16j+15 of the block's 4 positions, code
 * 4 * channel + slot, so after the unpack int32 lane c holds channel 16j+c's four codes (no
 * interleave), and one vpdpbusd by the four positions' weights (one broadcast dword) adds
 * them, up to four heads per unpack and four chunks per pass (16 int32 accumulators); at the
 * weight block's end one FMA per lane by the factor. A range starting mid-block (slot s) makes
 * the V blocks at weight-block boundaries straddle two weight blocks: such a block is taken
 * once by each, its positions outside the weight block with weight 0. Exact integers, so the
 * result equals the scalar reference's.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "prefetch.h"
#include "vnni.h"

/* Channels per chunk (8 groups of 8) and bytes per chunk. */
#define CH 64
#define CB 24

typedef struct {
    __m512i perm, ctl, seven;
} unpacker;

/* The K unpacker: vpermb gives 64-bit lane k the bytes of group k (bytes 3..7 of a lane
 * repeat byte 2; vpmultishiftqb's byte 7 reaches bit 28, of which the mask keeps 21..23). */
static inline unpacker unpacker_new(void) {
    uint8_t p[64], c[64];
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 8; i++) {
            p[8 * k + i] = (uint8_t)(3 * k + (i < 3 ? i : 2));
            c[8 * k + i] = (uint8_t)(3 * i);
        }
    unpacker u = {_mm512_loadu_si512(p), _mm512_loadu_si512(c), _mm512_set1_epi8(7)};
    return u;
}

/* x & 7 in every byte. */
static inline __m512i and7(__m512i x, const unpacker *u) {
#if BITNET_INLINE_ASM
    /* The mask as a broadcast memory operand: from u->seven, GCC 12 rebuilt it (a mov and a
     * vpbroadcastd, on the port of vpermb) before every use in the weighted sum, short of
     * registers. */
    static const uint32_t seven = 0x07070707;
    __m512i r;
    (void)u;
    __asm__("vpandd %2%{1to16%}, %1, %0" : "=v"(r) : "v"(x), "m"(seven));
    return r;
#else
    return _mm512_and_si512(x, u->seven);
#endif
}

/* The 64 code bytes of the chunk at p, of which the bytes in m are read (the rest count as
 * code 0). */
static inline __m512i unpack64(const uint8_t *p, __mmask64 m, const unpacker *u) {
    const __m512i b = _mm512_maskz_loadu_epi8(m, p);
    return and7(_mm512_multishift_epi64_epi8(u->ctl, _mm512_permutexvar_epi8(u->perm, b)), u);
}

/* K chunks (4 channels of 16 positions) of q narrowed per pass: int8 quads, 4 heads. */
#define QSLICE 128

/* One K block (16 positions) by NH (1..4) heads over the chunks c0 .. c0 + cn - 1 (cn even):
 * res[h] lane s = slot s's partial dot. Two accumulators per head (even and odd chunks), so
 * eight independent vpdpbusd chains hide its latency; q's quad is an embedded broadcast
 * (a load, not a shuffle). NH is a constant after inlining. */
static BITNET_ALWAYS_INLINE void dot_kblock(const uint8_t *blk, size_t cn, const int32_t *qd,
                                            int nh, const unpacker *u, __m512i res[4]) {
    const __mmask64 m = (__mmask64)((1ULL << CB) - 1);
    __m512i acc[8];
    for (int i = 0; i < 2 * nh; i++) acc[i] = _mm512_setzero_si512();
    for (size_t j = 0; j < cn; j += 2) {
        const __m512i x0 = unpack64(blk + CB * j, m, u);
        const __m512i x1 = unpack64(blk + CB * (j + 1), m, u);
        for (int h = 0; h < nh; h++) {
            DPBUSD_BCAST(acc[2 * h], x0, qd + h * QSLICE + j);
            DPBUSD_BCAST(acc[2 * h + 1], x1, qd + h * QSLICE + j + 1);
        }
    }
    for (int h = 0; h < nh; h++) res[h] = _mm512_add_epi32(acc[2 * h], acc[2 * h + 1]);
}

/* The fused kernel's scores (bitnet_kv3_scores_avx512vbmi; NULL in the plain dot): the K
 * scales of the run's positions (fp16 (m, s) pairs, m the low half of each 32-bit pair), and
 * per head of the call's group of up to four, Σq̃ as f32, the factor, the lane maxima. */
typedef struct {
    const uint16_t *ks;
    __m512 sum[4], fac[4], mx[4];
} scoring;

/* The 16 (m, s) pairs in x as f32: a vpermw puts the 16 m halves in the low 256 bits and the
 * 16 s halves in the high ones, and vcvtph2ps (AVX-512F, exact for every finite fp16,
 * subnormals included) widens each. */
static inline void scales_f32(__m512i x, __m512 *m, __m512 *s) {
    static const uint16_t order[32] = {0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20,
                                       22, 24, 26, 28, 30, 1,  3,  5,  7,  9,  11,
                                       13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    const __m512i idx = _mm512_loadu_si512(order);
    const __m512i y = _mm512_permutexvar_epi16(idx, x);
    *m = _mm512_cvtph_ps(_mm512_castsi512_si256(y));
    *s = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(y, 1));
}

/* score = (m * Σq̃ + s * D) * factor per lane (docs/FORMATS.md §8), rounded after each
 * operation as the Rust reference (`score` in src/kv/mod.rs) is: the add has an explicit
 * round-to-nearest (embedded rounding: the value of a plain vaddps under the default MXCSR),
 * which no compiler can contract with a product into an FMA. A plain _mm512_add_ps after
 * _mm512_mul_ps is contracted by GCC under -ffp-contract=fast, its default in GNU C modes
 * (measured, GCC 12: every add of this function became a vfmadd; build.rs's -std=c11 turns
 * it off, a build with other flags might not), and an FMA rounds once instead of twice,
 * which kv::tests::fused_scores_match_dot_and_scores detects. The product by the factor has
 * no add after it. One form for every compiler, with or without inline assembly. */
static inline __m512 score16(__m512i d, __m512 m, __m512 s, __m512 sum, __m512 fac) {
    const __m512 a = _mm512_mul_ps(m, sum), b = _mm512_mul_ps(s, _mm512_cvtepi32_ps(d));
    return _mm512_mul_ps(_mm512_add_round_ps(a, b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                         fac);
}

/* The blocks of positions first .. first + n - 1 by NH heads, chunks c0 .. c0 + cn - 1: each
 * head's 16 sums stored into its run (out + h * os; added when c0 > 0, a later slice); the
 * partial first and last blocks compress their lanes to the run's positions and store under a
 * mask. With sc (the fused kernel), the last slice (c0 + cn = all chunks) turns the sums into
 * scores in the register and stores those (f32, into the same run, which held the earlier
 * slices' int32 partial sums), each head's lane maximum kept in sc->mx. nx: the next streams
 * (two with sc, else one), a step per block of the first slice. */
static BITNET_ALWAYS_INLINE void dot_blocks(const uint8_t *blocks, size_t bb, size_t first,
                                            size_t n, size_t c0, size_t cn, int last,
                                            const int32_t *qd, int nh, const unpacker *u,
                                            int32_t *out, size_t os, int pf, bitnet_kv_next *nx,
                                            scoring *sc) {
    for (size_t b = first / 16; 16 * b < first + n; b++) {
        const uint8_t *blk = blocks + b * bb;
        /* The block ahead and a block's share of the next streams (prefetch.h), in the first
         * slice's pass. */
        if (c0 == 0) {
            BITNET_KV_PREFETCH(pf, blk, bb);
            if (nx) {
                bitnet_kv_next_step(nx);
                if (sc) bitnet_kv_next_step(nx + 1);
            }
        }
        __m512i res[4];
        dot_kblock(blk + CB * c0, cn, qd, nh, u, res);
        const size_t lo = 16 * b < first ? first - 16 * b : 0;
        const size_t hi = first + n - 16 * b < 16 ? first + n - 16 * b : 16;
        const size_t t = 16 * b + lo - first; /* the run's index of the first lane stored */
        int32_t *o = out + t;
        if (lo == 0 && hi == 16) {
            if (sc && last) {
                __m512 m, s;
                scales_f32(_mm512_loadu_si512(sc->ks + 2 * t), &m, &s);
                for (int h = 0; h < nh; h++) {
                    __m512i v = res[h];
                    if (c0) v = _mm512_add_epi32(v, _mm512_loadu_si512(o + h * os));
                    const __m512 x = score16(v, m, s, sc->sum[h], sc->fac[h]);
                    _mm512_storeu_ps((float *)(o + h * os), x);
                    sc->mx[h] = _mm512_max_ps(sc->mx[h], x);
                }
            } else {
                for (int h = 0; h < nh; h++) {
                    __m512i v = res[h];
                    if (c0) v = _mm512_add_epi32(v, _mm512_loadu_si512(o + h * os));
                    _mm512_storeu_si512(o + h * os, v);
                }
            }
        } else {
            const __mmask16 lanes = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
            const __mmask16 k = (__mmask16)((1u << (hi - lo)) - 1);
            __m512 m, s;
            if (sc && last) scales_f32(_mm512_maskz_loadu_epi32(k, sc->ks + 2 * t), &m, &s);
            for (int h = 0; h < nh; h++) {
                __m512i v = _mm512_maskz_compress_epi32(lanes, res[h]);
                if (c0) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(k, o + h * os));
                if (sc && last) {
                    const __m512 x = score16(v, m, s, sc->sum[h], sc->fac[h]);
                    _mm512_mask_storeu_ps((float *)(o + h * os), k, x);
                    sc->mx[h] = _mm512_mask_max_ps(sc->mx[h], k, sc->mx[h], x);
                } else {
                    _mm512_mask_storeu_epi32(o + h * os, k, v);
                }
            }
        }
    }
}

/* The dot (sc NULL: int32 sums into out, runs n apart) or the fused scores (sc: f32 scores
 * into out, runs os apart, maxima into mx); next: the next streams (prefetch.h), one for the
 * dot, two for the scores. */
static BITNET_ALWAYS_INLINE void dot_or_scores(const uint8_t *blocks, size_t first, size_t n,
                                               size_t groups, const int16_t *q, size_t qs,
                                               size_t nq, int32_t *out, size_t os,
                                               const uint16_t *ks, const int32_t *sum,
                                               const float *fac, float *mx,
                                               const uint8_t *const next[2],
                                               const size_t next_len[2], int fused) {
    const unpacker u = unpacker_new();
    const int pf = bitnet_x86_prefetch_on();
    const size_t chunks = 2 * groups, bb = CB * chunks;
    /* The next streams, a step per block of the first pass (h0 = 0, c0 = 0). */
    const size_t steps = (first + n - 1) / 16 - first / 16 + 1;
    bitnet_kv_next nx[2];
    for (int i = 0; i < 1 + fused; i++) nx[i] = bitnet_kv_next_new(pf, next[i], next_len[i], steps);
    int32_t qd[4 * QSLICE];
    for (size_t h0 = 0; h0 < nq; h0 += 4) {
        const size_t nh = nq - h0 < 4 ? nq - h0 : 4;
        scoring scb, *sc = NULL;
        if (fused) {
            sc = &scb;
            sc->ks = ks;
            for (size_t h = 0; h < nh; h++) {
                sc->sum[h] = _mm512_set1_ps((float)sum[h0 + h]);
                sc->fac[h] = _mm512_set1_ps(fac[h0 + h]);
                sc->mx[h] = _mm512_castsi512_ps(_mm512_set1_epi32((int)0xff800000)); /* -inf */
            }
        }
        for (size_t c0 = 0; c0 < chunks; c0 += QSLICE) {
            const size_t cn = chunks - c0 < QSLICE ? chunks - c0 : QSLICE;
            const int last = c0 + cn == chunks;
            /* q as int8, 32 values (8 quads) at a time: q holds qs >= 8 * round_up(groups, 8)
             * values, zero from 8 * groups on, and QSLICE is a multiple of 8. */
            for (size_t h = 0; h < nh; h++)
                for (size_t j = 0; j < cn; j += 8)
                    _mm256_storeu_si256(
                        (__m256i *)(qd + h * QSLICE + j),
                        _mm512_cvtepi16_epi8(_mm512_loadu_si512(q + (h0 + h) * qs + 4 * (c0 + j))));
            int32_t *o = out + h0 * os;
            bitnet_kv_next *x = h0 ? NULL : nx;
            const int p = pf && h0 == 0;
            switch (nh) {
            case 1: dot_blocks(blocks, bb, first, n, c0, cn, last, qd, 1, &u, o, os, p, x, sc); break;
            case 2: dot_blocks(blocks, bb, first, n, c0, cn, last, qd, 2, &u, o, os, p, x, sc); break;
            case 3: dot_blocks(blocks, bb, first, n, c0, cn, last, qd, 3, &u, o, os, p, x, sc); break;
            default: dot_blocks(blocks, bb, first, n, c0, cn, last, qd, 4, &u, o, os, p, x, sc); break;
            }
        }
        /* Each head's maximum: its lanes', then the caller's. vmaxps returns its second
         * operand when both are zeros, so a maximum of 0 may come out as -0 where the order of
         * the scalar reference (order keys, -0 below +0) gives +0, or the reverse. That cannot
         * change a result: the maximum M only enters attention as E(x - M) over the head's
         * scores x (docs/FORMATS.md §8), where x - (+0) and x - (-0) are the same value for
         * every x but a zero, and for a zero both are zeros, whose E is 1 either way
         * (n = 0, r = fma(-0, C2, fma(-0, C1, ±0)) = ±0, each Horner step fma(p, ±0, c) = c,
         * no sign reaches a non-zero value); `scores` returns no maximum. Scores are never NaN
         * (finite scales, factor and integers). */
        if (fused)
            for (size_t h = 0; h < nh; h++) {
                float l[16];
                _mm512_storeu_ps(l, sc->mx[h]);
                float v = mx[h0 + h];
                for (int i = 0; i < 16; i++) v = l[i] > v ? l[i] : v;
                mx[h0 + h] = v;
            }
    }
}

void bitnet_kv3_dot_avx512vbmi(const uint8_t *blocks, size_t first, size_t n, size_t groups,
                               const int16_t *q, size_t qs, size_t nq, int32_t *out,
                               const uint8_t *next, size_t next_len) {
    const uint8_t *const nx[2] = {next, NULL};
    const size_t nl[2] = {next_len, 0};
    dot_or_scores(blocks, first, n, groups, q, qs, nq, out, n, NULL, NULL, NULL, NULL, nx, nl, 0);
}

void bitnet_kv3_scores_avx512vbmi(const uint8_t *blocks, size_t first, size_t n, size_t groups,
                                  const int16_t *q, size_t qs, size_t nq, const uint16_t *ks,
                                  const int32_t *sum, const float *fac, float *out, size_t os,
                                  float *mx, const uint8_t *next, size_t next_len,
                                  const uint8_t *next2, size_t next2_len) {
    const uint8_t *const nx[2] = {next, next2};
    const size_t nl[2] = {next_len, next2_len};
    /* The run's int32 partial sums (d > 512: several slices) live in out until the last slice
     * makes them scores: same size, and the intrinsics' loads and stores may alias. */
    dot_or_scores(blocks, first, n, groups, q, qs, nq, (int32_t *)out, os, ks, sum, fac, mx, nx,
                  nl, 1);
}

/* Tokens a weight block (BITNET_KV_WBLOCK, kernels.h): the int8 weights of each block share one
 * f32 factor. Per block, up to four chunks and up to four heads the integer sums stay in
 * registers while the block's V codes stay in L1. */
#define TB BITNET_KV_WBLOCK
#define VB BITNET_KV_VBLOCK
/* V chunks (16 channels each) a pass: with four heads, 16 accumulators. */
#define VPASS 4

/* One V block (blk) into the sums a of NH (1..4) heads, CN (1..VPASS) chunks from blk: per
 * chunk one unpack, then per head one vpdpbusd by the four positions' weights, the int32 at
 * wp + h * wst as an embedded broadcast (a load, not a shuffle). NH and CN are constants
 * after inlining. */
static BITNET_ALWAYS_INLINE void wsum_vblock(__m512i a[4][VPASS], const uint8_t *blk,
                                             const int8_t *wp, size_t wst, int nh, int cn,
                                             const unpacker *u) {
    const __mmask64 m = (__mmask64)((1ULL << CB) - 1);
    for (int i = 0; i < cn; i++) {
        const __m512i x = unpack64(blk + CB * i, m, u);
        for (int h = 0; h < nh; h++) DPBUSD_BCAST(a[h][i], x, wp + h * wst);
    }
}

/* One weight block (the call's positions lo .. hi - 1, which are also its weight indices) by
 * NH heads, the V chunks c0 .. c0 + CN - 1: V block k of `vb` (the one of the call's first
 * position) holds the positions 4 k - s .. 4 k - s + 3; after the unpack, int32 lane c of a
 * chunk holds its channel c's four codes, and one vpdpbusd by the four positions' weights
 * adds them: exact int32 sums (|sum| <= 64 * 7 * 127), then one FMA per lane by the block's
 * factor. The V blocks at the weight block's ends may hold positions outside it (a range
 * starting mid-block, or its end): their weights are built with those positions 0
 * (bitnet_kv_w4); the others are read in place. w: the heads' int8 weights (ws apart); f:
 * the heads' factors (nb apart). */
static BITNET_ALWAYS_INLINE void wsum_block(const uint8_t *vb, size_t vbb, size_t c0, int cn,
                                            ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t s,
                                            const int8_t *w, size_t ws, const float *f,
                                            size_t nb, int nh, float *acc, size_t accs,
                                            const unpacker *u, int pf, bitnet_kv_next *nx) {
    __m512i a[4][VPASS];
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < cn; i++) a[h][i] = _mm512_setzero_si512();
    for (ptrdiff_t k = (lo + s) / VB; VB * k - s < hi; k++) {
        const uint8_t *blk = vb + (size_t)k * vbb;
        const ptrdiff_t t = VB * k - s;
        /* The block ahead and a block's share of the next stream (prefetch.h), in the first
         * chunks' pass. */
        if (c0 == 0) {
            BITNET_KV_PREFETCH(pf, blk, vbb);
            if (nx) bitnet_kv_next_step(nx);
        }
        if (t >= lo && t + VB <= hi) {
            wsum_vblock(a, blk + CB * c0, w + t, ws, nh, cn, u);
        } else {
            int32_t e[4];
            for (int h = 0; h < nh; h++) e[h] = bitnet_kv_w4(w + h * ws, t, lo, hi);
            wsum_vblock(a, blk + CB * c0, (const int8_t *)e, 4, nh, cn, u);
        }
    }
    for (int h = 0; h < nh; h++) {
        const __m512 fv = _mm512_set1_ps(f[h * nb]);
        float *o = acc + h * accs + 16 * c0;
        for (int i = 0; i < cn; i++)
            _mm512_storeu_ps(o + 16 * i, _mm512_fmadd_ps(fv, _mm512_cvtepi32_ps(a[h][i]),
                                                        _mm512_loadu_ps(o + 16 * i)));
    }
}

/* wsum_block with NH and CN constants (CN = VPASS but for a last pass of fewer chunks). */
#define WSUM_NH(nh)                                                                            \
    do {                                                                                       \
        if (cn == VPASS)                                                                       \
            wsum_block(vb, vbb, c0, VPASS, lo, hi, s, wh, ws, fh, nb, nh, a, accs, &u, pf, x); \
        else if (cn == 3)                                                                      \
            wsum_block(vb, vbb, c0, 3, lo, hi, s, wh, ws, fh, nb, nh, a, accs, &u, pf, x);     \
        else if (cn == 2)                                                                      \
            wsum_block(vb, vbb, c0, 2, lo, hi, s, wh, ws, fh, nb, nh, a, accs, &u, pf, x);     \
        else                                                                                   \
            wsum_block(vb, vbb, c0, 1, lo, hi, s, wh, ws, fh, nb, nh, a, accs, &u, pf, x);     \
    } while (0)

void bitnet_kv3_wsum_avx512vbmi(const uint8_t *blocks, size_t first, size_t n, size_t groups,
                                const int8_t *w, const float *f, size_t nq, float *acc,
                                size_t accs, const uint8_t *next, size_t next_len) {
    const unpacker u = unpacker_new();
    const int pf = bitnet_x86_prefetch_on();
    const size_t chunks = (groups + 1) / 2, vbb = CB * chunks, nb = (n + TB - 1) / TB,
                 ws = TB * nb;
    const ptrdiff_t s = (ptrdiff_t)(first % VB);
    const uint8_t *vb = blocks + first / VB * vbb;
    /* The next stream, a step per V block of the first heads' first pass: (n + s + 3) / 4
     * blocks, those that straddle two weight blocks (s > 0) visited twice. */
    bitnet_kv_next nx =
        bitnet_kv_next_new(pf, next, next_len, (n + s + 3) / VB + (s ? nb - 1 : 0));
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const ptrdiff_t lo = (ptrdiff_t)t0, hi = (ptrdiff_t)(n - t0 < TB ? n : t0 + TB);
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const int8_t *wh = w + h0 * ws;
            const float *fh = f + h0 * nb + t0 / TB;
            float *a = acc + h0 * accs;
            for (size_t c0 = 0; c0 < chunks; c0 += VPASS) {
                const int cn = chunks - c0 < VPASS ? (int)(chunks - c0) : VPASS;
                bitnet_kv_next *x = h0 ? NULL : &nx;
                switch (nq - h0 < 4 ? nq - h0 : 4) {
                case 1: WSUM_NH(1); break;
                case 2: WSUM_NH(2); break;
                case 3: WSUM_NH(3); break;
                default: WSUM_NH(4); break;
                }
            }
        }
    }
}
