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

static inline unpacker unpacker_new(void) {
    uint8_t p[64], c[64];
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 8; i++) {
            p[8 * k + i] = (uint8_t)(3 * k + (i < 3 ? i : 2)); /* bytes 3..7 of a lane unused */
            c[8 * k + i] = (uint8_t)(3 * i);
        }
    unpacker u = {_mm512_loadu_si512(p), _mm512_loadu_si512(c), _mm512_set1_epi8(7)};
    return u;
}

/* The mask of a chunk's bytes: 3 per group, up to 8 groups. */
static inline __mmask64 chunk_mask(size_t groups) {
    return (__mmask64)((1ULL << (3 * (groups < 8 ? groups : 8))) - 1);
}

/* The 64 code bytes of the chunk at p, of which the bytes in m are read (the rest count as
 * code 0). */
static inline __m512i unpack64(const uint8_t *p, __mmask64 m, const unpacker *u) {
    const __m512i b = _mm512_maskz_loadu_epi8(m, p);
    return _mm512_and_si512(
        _mm512_multishift_epi64_epi8(u->ctl, _mm512_permutexvar_epi8(u->perm, b)), u->seven);
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

/* TN (1..4) tokens from r by NH (1..4) heads over `chunks` chunks, the last of
 * `last` groups: accumulator 4 * head + token. q8: the heads' int8 q of the slice, `qstride`
 * bytes apart. The sums are stored at out[h * n + t], or added to it when `add` (a later
 * slice). TN and NH are constants after inlining. */
static BITNET_ALWAYS_INLINE void dot_block(const uint8_t *r, size_t stride, size_t chunks,
                                           size_t last, const int8_t *q8, size_t qstride,
                                           int tn, int nh, const unpacker *u, int32_t *out,
                                           size_t n, int add, int pf) {
    /* The 4 rows (192 bytes at head_dim 128) of the next blocks: prefetch.h. */
    BITNET_PREFETCH_AHEAD(pf, r, 3);
    __m512i acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_si512();
    for (size_t b = 0; b < chunks; b++) {
        const __mmask64 m = chunk_mask(b + 1 < chunks ? 8 : last);
        __m512i qv[4];
        for (int h = 0; h < nh; h++) qv[h] = _mm512_loadu_si512(q8 + h * qstride + CH * b);
        for (int t = 0; t < tn; t++) {
            const __m512i c = unpack64(r + t * stride + CB * b, m, u);
            for (int h = 0; h < nh; h++)
                DPBUSD(acc[4 * h + t], c, qv[h]); /* vnni.h: GCC 12 copied acc around the intrinsic */
        }
    }
    int32_t sums[16];
    _mm512_storeu_si512(sums, hsum16(acc));
    for (int h = 0; h < nh; h++) {
        int32_t *o = out + h * n;
        if (tn == 4 && !add) {
            _mm_storeu_si128((__m128i *)o, _mm_loadu_si128((const __m128i *)(sums + 4 * h)));
        } else {
            for (int t = 0; t < tn; t++) o[t] = add ? o[t] + sums[4 * h + t] : sums[4 * h + t];
        }
    }
}

#define DOT_TOKENS(NH)                                                                          \
    for (size_t t = 0; t < n; t += 4) {                                                         \
        const uint8_t *r = rows + t * stride + CB * c0;                                         \
        int32_t *o = out + h0 * n + t;                                                          \
        switch (n - t < 4 ? n - t : 4) {                                                        \
        case 1: dot_block(r, stride, cn, last, q8, SLICE, 1, NH, &u, o, n, c0 > 0, pf); break;     \
        case 2: dot_block(r, stride, cn, last, q8, SLICE, 2, NH, &u, o, n, c0 > 0, pf); break;     \
        case 3: dot_block(r, stride, cn, last, q8, SLICE, 3, NH, &u, o, n, c0 > 0, pf); break;     \
        default: dot_block(r, stride, cn, last, q8, SLICE, 4, NH, &u, o, n, c0 > 0, pf); break;    \
        }                                                                                       \
    }

/* Channels of q narrowed to int8 per head at a time (the stack buffer: 4 heads x 512). */
#define SLICE 512

void bitnet_kv3_dot_avx512vbmi(const uint8_t *rows, size_t stride, size_t n, size_t groups,
                               const int16_t *q, size_t qs, size_t nq, int32_t *out) {
    const unpacker u = unpacker_new();
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
            const size_t last = groups - 8 * (c0 + cn - 1);
            switch (nh) {
            case 1: DOT_TOKENS(1); break;
            case 2: DOT_TOKENS(2); break;
            case 3: DOT_TOKENS(3); break;
            default: DOT_TOKENS(4); break;
            }
        }
    }
}

/* Tokens a weight block (WBLOCK in src/kv/mod.rs): the int8 weights of each block share one
 * f32 factor. Per block, chunk and up to four heads the integer sums stay in registers while
 * the block's rows stay in L1. */
#define TB 64

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

/* Four tokens' codes from the rows r[0..3] (NULL: a token past the block, code 0), one
 * chunk: x[i] = channels 16 i .. 16 i + 15, the four tokens' codes of a channel in its int32
 * lane, token order = byte order. */
static BITNET_ALWAYS_INLINE void unpack4x64(const uint8_t *const r[4], __mmask64 m,
                                            const unpacker *u, __m512i x[4]) {
    __m512i c[4];
    for (int i = 0; i < 4; i++) c[i] = r[i] ? unpack64(r[i], m, u) : _mm512_setzero_si512();
    const __m512i ab0 = _mm512_unpacklo_epi8(c[0], c[1]), ab1 = _mm512_unpackhi_epi8(c[0], c[1]);
    const __m512i cd0 = _mm512_unpacklo_epi8(c[2], c[3]), cd1 = _mm512_unpackhi_epi8(c[2], c[3]);
    x[0] = _mm512_unpacklo_epi16(ab0, cd0);
    x[1] = _mm512_unpackhi_epi16(ab0, cd0);
    x[2] = _mm512_unpacklo_epi16(ab1, cd1);
    x[3] = _mm512_unpackhi_epi16(ab1, cd1);
}

/* Four tokens (rows r, NULL past the block) into the integer sums of up to four heads. */
static BITNET_ALWAYS_INLINE void wsum_step(__m512i a[4][4], const uint8_t *const r[4],
                                           __mmask64 m, const unpacker *u, const int8_t *w,
                                           size_t ws, int nh) {
    __m512i x[4];
    unpack4x64(r, m, u, x);
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
            /* One prefetch a row (48 bytes at head_dim 128) in the first chunk's pass. */
            if (b == 0) BITNET_PREFETCH_AHEAD(pf, rows + (t + i) * stride, 1);
        }
        wsum_step(a, r, m, u, w + t, ws, nh);
    }
    if (t < tn) {
        const uint8_t *r[4];
        for (size_t i = 0; i < 4; i++) r[i] = t + i < tn ? rows + (t + i) * stride + CB * b : NULL;
        wsum_step(a, r, m, u, w + t, ws, nh);
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
