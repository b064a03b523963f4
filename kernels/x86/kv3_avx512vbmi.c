/* 3-bit KV-cache kernels for AVX-512 F/BW with VNNI and VBMI (docs/FORMATS.md section 8;
 * contract: RawKvDot and RawKvWsum in src/kernels/mod.rs).
 *
 * Codes are unpacked to bytes, 64 at a time (a chunk: 8 groups, 24 bytes): a masked load of
 * the chunk's bytes (a row's last chunk may have fewer groups; its missing codes read as 0,
 * and nothing past the row is read), a vpermb that gives 64-bit lane k the bytes of group k, a
 * vpmultishiftqb that moves code i of each lane's group (bits 3i..3i+2) to byte i, and a mask
 * of 7.
 *
 * Dot: vpdpbusd of the code bytes (0..7) by q as int8 (-128..127), four products per int32
 * lane: exact, |sum| <= 7 * 128 * 8 * groups < 2^31. The int16 q of the contract is narrowed
 * once per call into a stack buffer, for up to four heads and 512 channels at a time (longer
 * rows add the partial sums of their 512-channel slices). Four tokens by up to four heads per
 * pass: each chunk's q vectors are loaded once for the four tokens, each token's codes
 * unpacked once for the four heads, and the sixteen sums reduced together, four tokens of a
 * head landing next to each other (one 128-bit store into the head's run of sums).
 *
 * Weighted sum (int8 weights in blocks of 64 tokens, one f32 factor each): four tokens' codes
 * are unpacked per chunk and interleaved so that each int32 lane holds one channel's four
 * codes; a vpdpbusd by the four tokens' weights (one broadcast dword) per 16 channels and
 * head, up to four heads per unpack (16 int32 accumulators); at the block's end one FMA per
 * lane by the factor. Exact integers, so the result equals the scalar reference's.
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

/* The dot's unpacker: vpermt2b gives 64-bit lane i < 4 the bytes of group i of the first
 * table (token A's piece) and lane i >= 4 those of group i - 4 of the second (token B's). */
static inline unpacker pair_unpacker_new(void) {
    uint8_t p[64], c[64];
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 8; i++) {
            /* bytes 3..7 of a lane unused */
            p[8 * k + i] = (uint8_t)((k < 4 ? 0 : 64) + 3 * (k & 3) + (i < 3 ? i : 2));
            c[8 * k + i] = (uint8_t)(3 * i);
        }
    unpacker u = {_mm512_loadu_si512(p), _mm512_loadu_si512(c), _mm512_set1_epi8(7)};
    return u;
}

/* The mask of a chunk's bytes: 3 per group, up to 8 groups. */
static inline __mmask64 chunk_mask(size_t groups) {
    return (__mmask64)((1ULL << (3 * (groups < 8 ? groups : 8))) - 1);
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

/* The 32 codes of token A's piece at a and, when hasb, of token B's at b (else codes 0),
 * bytes in m read: A's in bytes 0..31, B's in 32..63 (the pair unpacker). */
static inline __m512i unpack_pair(const uint8_t *a, const uint8_t *b, int hasb, __mmask64 m,
                                  const unpacker *u) {
    const __m512i x = _mm512_maskz_loadu_epi8(m, a);
    const __m512i y = hasb ? _mm512_maskz_loadu_epi8(m, b) : _mm512_setzero_si512();
    return and7(_mm512_multishift_epi64_epi8(u->ctl, _mm512_permutex2var_epi8(x, u->perm, y)), u);
}

/* The sums of v[0..7] (v[2 h + p]: head h, tokens 2 p and 2 p + 1 in lanes 0..7 and 8..15)
 * as one vector, lane 4 h + t = head h, token t. Pairs are interleaved and added (32-bit,
 * then 64-bit unpacks), leaving per 128-bit block the partial sums of four accumulators; one
 * round of block shuffles adds blocks 0 + 1 and 2 + 3 (lanes 0..7, 8..15 of each); a vpermd
 * puts head h, token t at lane 4 h + t. */
static inline __m512i hsum_pairs(const __m512i v[8]) {
    __m512i b[4], c[2];
    for (int i = 0; i < 4; i++)
        b[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 2; i++)
        c[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(b[2 * i], b[2 * i + 1]),
                                _mm512_unpackhi_epi64(b[2 * i], b[2 * i + 1]));
    const __m512i d = _mm512_add_epi32(_mm512_shuffle_i32x4(c[0], c[1], 0x88),
                                       _mm512_shuffle_i32x4(c[0], c[1], 0xdd));
    /* d: block 2 (h / 2) + (t & 1), lane 2 (h & 1) + t / 2. */
    int32_t idx[16];
    for (int h = 0; h < 4; h++)
        for (int t = 0; t < 4; t++) idx[4 * h + t] = 4 * (2 * (h / 2) + (t & 1)) + 2 * (h & 1) + t / 2;
    return _mm512_permutexvar_epi32(_mm512_loadu_si512(idx), d);
}

/* TN (1..4) tokens from r by NH (1..4) heads over `chunks` chunks, the last of `last`
 * groups, as pieces of 4 groups (12 bytes, 32 codes): accumulator 2 * head + token pair, the pair's
 * tokens in the low and high 256 bits. q8: the heads' int8 q of the slice, `qstride` bytes
 * apart. The sums are stored at out[h * n + t], or added to it when `add` (a later slice).
 * TN and NH are constants after inlining. */
static BITNET_ALWAYS_INLINE void dot_block(const uint8_t *r, size_t stride, size_t chunks,
                                           size_t last, const int8_t *q8, size_t qstride,
                                           int tn, int nh, const unpacker *u, int32_t *out,
                                           size_t n, int add, int pf, const __m512i *qpre) {
    /* The tn rows ahead (prefetch.h), in the first slice's pass. */
    if (!add) BITNET_KV_PREFETCH(pf, r, tn * stride);
    __m512i acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_si512();
    /* Piece i: bytes 12 i.., q 32 i..; all of 4 groups but the last. */
    const size_t pieces = 2 * (chunks - 1) + (last + 3) / 4;
    for (size_t i = 0; i < pieces; i++) {
        const size_t gk = i + 1 < pieces ? 4 : last - 4 * ((last - 1) / 4);
        const __mmask64 m = (__mmask64)((1ULL << (3 * gk)) - 1);
        __m512i qv[4];
        for (int h = 0; h < nh; h++)
            qv[h] = qpre ? qpre[4 * h + i]
                         : _mm512_broadcast_i64x4(
                               _mm256_loadu_si256((const __m256i *)(q8 + h * qstride + 32 * i)));
        for (int p = 0; 2 * p < tn; p++) {
            const uint8_t *ra = r + 2 * p * stride + 12 * i;
            const __m512i c = unpack_pair(ra, ra + stride, 2 * p + 1 < tn, m, u);
            for (int h = 0; h < nh; h++)
                DPBUSD(acc[2 * h + p], c, qv[h]); /* vnni.h: GCC 12 copied acc around the intrinsic */
        }
    }
    int32_t sums[16];
    _mm512_storeu_si512(sums, hsum_pairs(acc));
    for (int h = 0; h < nh; h++) {
        int32_t *o = out + h * n;
        if (tn == 4 && !add) {
            _mm_storeu_si128((__m128i *)o, _mm_loadu_si128((const __m128i *)(sums + 4 * h)));
        } else {
            for (int t = 0; t < tn; t++) o[t] = add ? o[t] + sums[4 * h + t] : sums[4 * h + t];
        }
    }
}

/* Tokens of the slice by NH heads, four at a time. A slice of two whole chunks (head_dim 128)
 * keeps its 4 pieces x NH heads of q in registers across the tokens (with the 8 accumulators,
 * 24 of the 32), its piece loop unrolled and its masks constant. */
#define DOT_TOKENS(NH)                                                                          \
    {                                                                                           \
        size_t t = 0;                                                                           \
        if (cn == 2 && last == 8) {                                                             \
            __m512i qv[16];                                                                     \
            for (int h = 0; h < NH; h++)                                                        \
                for (int i = 0; i < 4; i++)                                                     \
                    qv[4 * h + i] = _mm512_broadcast_i64x4(                                     \
                        _mm256_loadu_si256((const __m256i *)(q8 + h * SLICE + 32 * i)));        \
            for (; t + 4 <= n; t += 4)                                                          \
                dot_block(rows + t * stride + CB * c0, stride, 2, 8, q8, SLICE, 4, NH, &u,      \
                          out + h0 * n + t, n, c0 > 0, pf, qv);                                 \
        }                                                                                       \
        for (; t < n; t += 4) {                                                                 \
            const uint8_t *r = rows + t * stride + CB * c0;                                     \
            int32_t *o = out + h0 * n + t;                                                      \
            switch (n - t < 4 ? n - t : 4) {                                                    \
            case 1: dot_block(r, stride, cn, last, q8, SLICE, 1, NH, &u, o, n, c0 > 0, pf, NULL); break; \
            case 2: dot_block(r, stride, cn, last, q8, SLICE, 2, NH, &u, o, n, c0 > 0, pf, NULL); break; \
            case 3: dot_block(r, stride, cn, last, q8, SLICE, 3, NH, &u, o, n, c0 > 0, pf, NULL); break; \
            default: dot_block(r, stride, cn, last, q8, SLICE, 4, NH, &u, o, n, c0 > 0, pf, NULL); break; \
            }                                                                                   \
        }                                                                                       \
    }

/* Channels of q narrowed to int8 per head at a time (the stack buffer: 4 heads x 512). */
#define SLICE 512

void bitnet_kv3_dot_avx512vbmi(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                               const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    const unpacker u = pair_unpacker_new();
    const int pf = bitnet_x86_prefetch_on();
    const size_t chunks = (groups + 7) / 8;
    int8_t q8[4 * SLICE];
    for (size_t h0 = 0; h0 < nq; h0 += 4) {
        const size_t nh = nq - h0 < 4 ? nq - h0 : 4;
        for (size_t c0 = 0; c0 < chunks; c0 += SLICE / CH) {
            const size_t cn = chunks - c0 < SLICE / CH ? chunks - c0 : SLICE / CH;
            /* q is zero past 8 * groups and holds qs >= 64 * chunks values per head. */
            for (size_t h = 0; h < nh; h++)
                for (size_t j = 0; j < CH * cn; j += 32)
                    _mm256_storeu_si256(
                        (__m256i *)(q8 + h * SLICE + j),
                        _mm512_cvtepi16_epi8(_mm512_loadu_si512(q + (h0 + h) * qs + CH * c0 + j)));
            /* Groups in the slice's last chunk: 8, or fewer in the row's last chunk. */
            const size_t rest = groups - 8 * (c0 + cn - 1), last = rest < 8 ? rest : 8;
            switch (nh) {
            case 1: DOT_TOKENS(1); break;
            case 2: DOT_TOKENS(2); break;
            case 3: DOT_TOKENS(3); break;
            default: DOT_TOKENS(4); break;
            }
        }
    }
}

/* Tokens a weight block (BITNET_KV_WBLOCK, kernels.h): the int8 weights of each block share one
 * f32 factor. Per block, chunk and up to four heads the integer sums stay in registers while
 * the block's rows stay in L1. */
#define TB BITNET_KV_WBLOCK

/* The V unpacker: the same three steps as unpack64, with bytes placed so that after the
 * interleave of four tokens in vwsum_block (unpacklo/hi_epi8, then _epi16, all within 128-bit
 * lanes) vector i holds channels 16 i .. 16 i + 15 in order, four tokens a channel. That
 * needs byte p = 16 L + 4 m + i (L, m, i < 4) to hold channel 16 m + 4 L + i: qword k holds
 * two runs of four channels, c0 = 32 (k & 1) + 4 (k >> 1) and c0 + 16, each 12 bits at bit
 * 0 or 12 of its group, which two bytes of the group (from byte 0 or 1) contain. */
static inline unpacker vunpacker_new(void) {
    uint8_t p[64], c[64];
    for (int k = 0; k < 8; k++) {
        const int c0 = 32 * (k & 1) + 4 * (k >> 1), g0 = c0 / 8, o = (c0 % 8) != 0;
        const int src[4] = {3 * g0 + o, 3 * g0 + o + 1, 3 * (g0 + 2) + o, 3 * (g0 + 2) + o + 1};
        for (int b = 0; b < 8; b++) {
            p[8 * k + b] = (uint8_t)(b < 4 ? src[b] : 0); /* bytes 4..7 of a lane unused */
            c[8 * k + b] = (uint8_t)((b < 4 ? 0 : 16) + 4 * o + 3 * (b & 3));
        }
    }
    unpacker u = {_mm512_loadu_si512(p), _mm512_loadu_si512(c), _mm512_set1_epi8(7)};
    return u;
}

/* Four tokens' codes from the rows r[0..nv-1] (tokens nv..3: past the block, code 0), one
 * chunk: x[i] = channels 16 i .. 16 i + 15, the four tokens' codes of a channel in its int32
 * lane, token order = byte order. */
static BITNET_ALWAYS_INLINE void unpack4x64(const uint8_t *const r[4], int nv, __mmask64 m,
                                            const unpacker *u, __m512i x[4]) {
    __m512i c[4];
    for (int i = 0; i < 4; i++) c[i] = i < nv ? unpack64(r[i], m, u) : _mm512_setzero_si512();
    const __m512i ab0 = _mm512_unpacklo_epi8(c[0], c[1]), ab1 = _mm512_unpackhi_epi8(c[0], c[1]);
    const __m512i cd0 = _mm512_unpacklo_epi8(c[2], c[3]), cd1 = _mm512_unpackhi_epi8(c[2], c[3]);
    x[0] = _mm512_unpacklo_epi16(ab0, cd0);
    x[1] = _mm512_unpackhi_epi16(ab0, cd0);
    x[2] = _mm512_unpacklo_epi16(ab1, cd1);
    x[3] = _mm512_unpackhi_epi16(ab1, cd1);
}

/* Four tokens (the first nv of rows r, the rest past the block) into the integer sums of up
 * to four heads. */
static BITNET_ALWAYS_INLINE void wsum_step(__m512i a[4][4], const uint8_t *const r[4], int nv,
                                           __mmask64 m, const unpacker *u, const int8_t *w,
                                           size_t ws, int nh) {
    __m512i x[4];
    unpack4x64(r, nv, m, u, x);
    for (int h = 0; h < nh; h++) {
        int32_t w4;
        memcpy(&w4, w + h * ws, 4);
        const __m512i wv = _mm512_set1_epi32(w4);
        for (int i = 0; i < 4; i++) DPBUSD(a[h][i], x[i], wv);
    }
}

/* One weight block (tn <= TB tokens from rows) by up to four heads, one chunk of 64 channels
 * (acc + 64 * b): the exact int32 sums of vpdpbusd (codes 0..7 as u8 by the weights as s8,
 * four tokens a lane: |sum| <= 64 * 7 * 127), then one FMA per lane by the block's factor.
 * w: the heads' int8 weights (ws apart, zero past the block's tokens, so whole dwords may be
 * read); f: the heads' factors (nb apart). */
static BITNET_ALWAYS_INLINE void wsum_block(const uint8_t *rows, size_t stride, size_t tn,
                                            size_t b, __mmask64 m, const int8_t *w, size_t ws,
                                            const float *f, size_t nb, int nh, float *acc,
                                            size_t accs, const unpacker *u, int pf) {
    __m512i a[4][4];
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < 4; i++) a[h][i] = _mm512_setzero_si512();
    size_t t = 0;
    for (; t + 4 <= tn; t += 4) {
        const uint8_t *r[4];
        for (int i = 0; i < 4; i++) {
            r[i] = rows + (t + i) * stride + CB * b;
        }
        /* The four rows ahead (prefetch.h), in the first chunk's pass. */
        if (b == 0) BITNET_KV_PREFETCH(pf, rows + t * stride, 4 * stride);
        wsum_step(a, r, 4, m, u, w + t, ws, nh);
    }
    if (t < tn) {
        const uint8_t *r[4];
        for (size_t i = 0; i < 4; i++) r[i] = rows + (t + i) * stride + CB * b; /* not read past tn */
        wsum_step(a, r, (int)(tn - t), m, u, w + t, ws, nh);
    }
    for (int h = 0; h < nh; h++) {
        const __m512 fv = _mm512_set1_ps(f[h * nb]);
        float *o = acc + h * accs + CH * b;
        for (int i = 0; i < 4; i++)
            _mm512_storeu_ps(o + 16 * i, _mm512_fmadd_ps(fv, _mm512_cvtepi32_ps(a[h][i]),
                                                        _mm512_loadu_ps(o + 16 * i)));
    }
}

void bitnet_kv3_wsum_avx512vbmi(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                                const int8_t *w, const float *f, size_t nq, float *acc,
                                size_t accs) {
    const unpacker u = vunpacker_new();
    const int pf = bitnet_x86_prefetch_on();
    const size_t chunks = (groups + 7) / 8, nb = (n + TB - 1) / TB, ws = TB * nb;
    for (size_t t0 = 0; t0 < n; t0 += TB) {
        const size_t tn = n - t0 < TB ? n - t0 : TB;
        const uint8_t *r = rows + t0 * stride;
        for (size_t h0 = 0; h0 < nq; h0 += 4) {
            const int8_t *wh = w + h0 * ws + t0;
            const float *fh = f + h0 * nb + t0 / TB;
            float *a = acc + h0 * accs;
            for (size_t b = 0; b < chunks; b++) {
                const __mmask64 m = chunk_mask(groups - 8 * b);
                switch (nq - h0 < 4 ? nq - h0 : 4) {
                case 1: wsum_block(r, stride, tn, b, m, wh, ws, fh, nb, 1, a, accs, &u, pf); break;
                case 2: wsum_block(r, stride, tn, b, m, wh, ws, fh, nb, 2, a, accs, &u, pf); break;
                case 3: wsum_block(r, stride, tn, b, m, wh, ws, fh, nb, 3, a, accs, &u, pf); break;
                default: wsum_block(r, stride, tn, b, m, wh, ws, fh, nb, 4, a, accs, &u, pf); break;
                }
            }
        }
    }
}
