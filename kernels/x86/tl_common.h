/* Shared by the TL1 / TL2 C kernels (tl1_*.c, tl2_*.c): the pass structure of a GEMV and
 * the GEMM loop, and the accumulation helpers each ISA's files share.
 *
 * Two ways to run a GEMV:
 * - one pass (the caller's memory): bitnet_<fmt>_table_<isa> builds the tables of the whole
 *   row (bitnet_<fmt>_table_step_<isa> bytes a step, 64-byte aligned) once, and
 *   bitnet_<fmt>_gemv_table_<isa> walks rows [row_begin, row_end) over all K in one pass;
 *   the caller builds them once per activation row and shares them read-only between
 *   threads;
 * - bounded (no caller memory): bitnet_<fmt>_gemv_<isa> builds the tables of at most CHUNK
 *   steps at a time into a stack buffer and walks all its rows for them, accumulating into
 *   y; passes are balanced so that none is tiny.
 * A GEMM is one GEMV per activation row: the tables are per activation row, and the TL
 * formats are for the GEMV (fewer bytes to stream). */
#ifndef BITNET_TL_COMMON_H
#define BITNET_TL_COMMON_H

#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "x86/prefetch.h"

/* Defines bitnet_<fmt>_gemv_<isa> / _gemm_<isa> from
 *   build(const int8_t *x, size_t steps, vec_t *tab)
 *   rows(const uint8_t *w, size_t tile_bytes, size_t k0, size_t steps, const vec_t *tab,
 *        size_t rb, size_t re, int32_t *y, int first). */
#define BITNET_TL_ENTRY_POINTS(fmt, isa, vec_t, chunk, step_vecs, k_block, step_bytes, build, \
                               rows)                                                          \
    void bitnet_##fmt##_gemv_##isa(const uint8_t *w, size_t kp, const int8_t *x,             \
                                   size_t row_begin, size_t row_end, int32_t *y) {           \
        vec_t tab[(chunk) * (step_vecs)];                                                     \
        const size_t steps = kp / (k_block);                                                  \
        const size_t passes = (steps + (chunk) - 1) / (chunk);                                \
        const size_t per = (steps + passes - 1) / passes; /* <= chunk */                      \
        for (size_t k0 = 0; k0 < steps; k0 += per) {                                          \
            const size_t ks = steps - k0 < per ? steps - k0 : per;                            \
            build(x + k0 * (k_block), ks, tab);                                               \
            rows(w, steps * (step_bytes), k0, ks, tab, row_begin, row_end, y, k0 == 0);       \
        }                                                                                     \
    }                                                                                         \
    void bitnet_##fmt##_gemm_##isa(const uint8_t *w, size_t kp, const int8_t *x, size_t n,   \
                                   size_t row_begin, size_t row_end, int32_t *y) {           \
        for (size_t j = 0; j < n; j++)                                                        \
            bitnet_##fmt##_gemv_##isa(w, kp, x + j * kp, row_begin, row_end,                  \
                                      y + j * (row_end - row_begin));                         \
    }                                                                                         \
    const size_t bitnet_##fmt##_table_step_##isa = (step_vecs) * sizeof(vec_t);              \
    void bitnet_##fmt##_table_##isa(const int8_t *x, size_t kp, void *tab) {                 \
        build(x, kp / (k_block), (vec_t *)tab);                                               \
    }                                                                                         \
    void bitnet_##fmt##_gemv_table_##isa(const uint8_t *w, size_t kp, const void *tab,       \
                                         size_t row_begin, size_t row_end, int32_t *y) {     \
        const size_t steps = kp / (k_block);                                                  \
        rows(w, steps * (step_bytes), 0, steps, (const vec_t *)tab, row_begin, row_end, y, 1); \
    }

/* `n` bytes of constants from a generator expression of p (0 <= p < n). */
#define BITNET_TL_BYTES(dst, n, expr)                       \
    do {                                                    \
        uint8_t b_[n];                                      \
        for (int p = 0; p < (n); p++) b_[p] = (uint8_t)(expr); \
        memcpy(&(dst), b_, n);                              \
    } while (0)

/* The AVX-512 helpers, for the *_avx512vbmi.c files, which define BITNET_TL_AVX512VBMI
 * before including this header (MSVC's /arch:AVX512 does not define __AVX512VBMI__). */
/* Digit k (most significant first) of the nd-digit base-3 number u, as a weight d' - 1 in
 * {-1, 0, 1}, for the table's first `valid` entries; 0 beyond (TL1: nd = 2, the 9 pairs; TL2:
 * nd = 3, the 14 triples whose sign is stored apart, u = 9 d0' + 3 d1' + d2'). */
static inline int16_t bitnet_tl_digit(int u, int k, int nd, int valid) {
    int div = 1;
    for (int j = k + 1; j < nd; j++) div *= 3;
    return (int16_t)(u < valid ? u / div % 3 - 1 : 0);
}

#if defined(BITNET_TL_AVX512VBMI)
#include "x86/vnni.h"

/* byte 4i + l <- byte 16l + i: one row's four groups into one dword. */
static inline __m512i bitnet_tl_transpose(void) {
    __m512i t;
    BITNET_TL_BYTES(t, 64, 16 * (p % 4) + p / 4);
    return t;
}

/* byte p: group (p % 4) << 4, the table slot of the transposed byte's group. */
static inline __m512i bitnet_tl_pos(void) {
    __m512i t;
    BITNET_TL_BYTES(t, 64, (p % 4) << 4);
    return t;
}

/* byte j <- byte 2j of a 128-byte pair (the low byte of each word). */
static inline __m512i bitnet_tl_even(void) {
    __m512i t;
    BITNET_TL_BYTES(t, 64, 2 * p);
    return t;
}

/* 64 sign bits -> a mask register, through a general register (a kmovq from memory was
 * the hottest instruction of the TL2 loop when the line missed the cache). */
static inline __mmask64 bitnet_tl_load_mask(const uint8_t *p) {
    uint64_t m;
    memcpy(&m, p, 8);
#if BITNET_INLINE_ASM
    __asm__("" : "+r"(m)); /* keeps GCC from folding the load into the kmovq */
#endif
    return _cvtu64_mask64(m);
}

/* The TL1 / TL2 block loop (T-MAC order): rows [rb, re) (whole tiles) over `steps` steps
 * from step k0 of each tile, with a step's 4 tables (A lo, A hi, B lo, B hi: 64-byte vpermb
 * tables of groups 0-3 and 4-7) in registers while its four 16-row sub-tiles stream
 * through; y receives (first) or accumulates the partial sums. `signs` (TL2, a constant
 * after inlining): each sub-tile's two sign words sit at step offset 256 + 16 s and negate
 * the lookups they mark.
 *
 * Per 64-byte block: one vpermb transposes it (byte 16l + i -> 4i + l) so one row's four
 * groups share a dword; indices = nibble | group << 4; two vpermb give lo and hi; two
 * vpdpbusd add 1 * lo and 64 * hi (signed bytes: |lo| <= 63, |hi| <= 6). After each whole
 * step an accumulator holds the exact partial sum (|.| <= 128 * K < 2^31); within a step
 * lo and hi parts may stray by < 2^12 and int32 wraps consistently, so totals are exact. */
static inline void bitnet_tl_rows_avx512(const uint8_t *w, size_t tile_bytes, size_t k0,
                                         size_t steps, const __m512i *tab, size_t rb,
                                         size_t re, int32_t *y, int first, size_t step_bytes,
                                         int signs) {
    const __m512i transpose = bitnet_tl_transpose(), pos = bitnet_tl_pos();
    const __m512i low4 = _mm512_set1_epi8(0x0F), ones = _mm512_set1_epi8(1);
    const __m512i c64 = _mm512_set1_epi8(64), z = _mm512_setzero_si512();
    const int pf = bitnet_x86_prefetch_on();
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *base = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * step_bytes;
        int32_t *yo = y + (r - rb);
        __m512i accA[4], accB[4]; /* dword i = row 16s + i */
        for (int s = 0; s < 4; s++) {
            accA[s] = first ? z : _mm512_loadu_si512(yo + 16 * s);
            accB[s] = z;
        }
        for (size_t k = 0; k < steps; k++) {
            const uint8_t *q = base + k * step_bytes;
            const __m512i *t = tab + 4 * k;
            BITNET_PREFETCH_AHEAD(pf, q, (int)(step_bytes / 64));
            const __m512i al = t[0], ah = t[1], bl = t[2], bh = t[3];
            for (int s = 0; s < 4; s++) {
                const __m512i v =
                    _mm512_permutexvar_epi8(transpose, _mm512_load_si512(q + 64 * s));
                const __m512i ia = _mm512_ternarylogic_epi32(v, low4, pos, 0xEA);
                const __m512i ib =
                    _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), low4, pos, 0xEA);
                __m512i la = _mm512_permutexvar_epi8(ia, al), ha = _mm512_permutexvar_epi8(ia, ah);
                __m512i lb = _mm512_permutexvar_epi8(ib, bl), hb = _mm512_permutexvar_epi8(ib, bh);
                if (signs) {
                    const uint8_t *sg = q + 4 * 64 + 16 * s;
                    const __mmask64 ka = bitnet_tl_load_mask(sg), kb = bitnet_tl_load_mask(sg + 8);
                    la = _mm512_mask_sub_epi8(la, ka, z, la);
                    ha = _mm512_mask_sub_epi8(ha, ka, z, ha);
                    lb = _mm512_mask_sub_epi8(lb, kb, z, lb);
                    hb = _mm512_mask_sub_epi8(hb, kb, z, hb);
                }
                DPBUSD(accA[s], ones, la);
                DPBUSD(accA[s], c64, ha);
                DPBUSD(accB[s], ones, lb);
                DPBUSD(accB[s], c64, hb);
            }
        }
        for (int s = 0; s < 4; s++)
            _mm512_storeu_si512(yo + 16 * s, _mm512_add_epi32(accA[s], accB[s]));
    }
}

/* The 16-bit tables of one step, shared by the int8 AVX-512 files (split into lo / hi bytes)
 * and the int4 ones (one byte each), for groups of nd activations (TL1: nd = 2, TL2: nd = 3).
 * p[m] word w = T[u] of group 2m + w / 16 with u = w % 16 (T[u] = sum_k d_k q_k over the
 * digits of u, bitnet_tl_digit); |T| <= nd * 128 for int8 q, <= nd * 8 for int4 q. */
typedef struct {
    __m512i digit[3]; /* word w: digit k of u = w % 16 (k < nd) */
    __m512i sel[3];   /* word w: activation nd (w / 16) + k of a pair of groups */
} bitnet_tl_words512;

static inline bitnet_tl_words512 bitnet_tl_words_init_avx512(int nd, int valid) {
    bitnet_tl_words512 c;
    memset(&c, 0, sizeof c);
    for (int k = 0; k < nd; k++) {
        int16_t d[32], e[32];
        for (int w = 0; w < 32; w++) {
            d[w] = bitnet_tl_digit(w % 16, k, nd, valid);
            e[w] = (int16_t)(nd * (w / 16) + k);
        }
        memcpy(&c.digit[k], d, 64);
        memcpy(&c.sel[k], e, 64);
    }
    return c;
}

/* The four pairs' word tables of the step whose 8 nd activations start at x (masked load:
 * never reads past the step). */
static inline void bitnet_tl_words_avx512(const bitnet_tl_words512 *c, int nd, const int8_t *x,
                                          __m512i p[4]) {
    const __m512i xw =
        _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8((__mmask32)((1ull << (8 * nd)) - 1), x));
    for (int m = 0; m < 4; m++) {
        const __m512i off = _mm512_set1_epi16((short)(2 * nd * m));
        __m512i v = _mm512_setzero_si512();
        for (int d = 0; d < nd; d++) {
            const __m512i xs = _mm512_permutexvar_epi16(_mm512_add_epi16(c->sel[d], off), xw);
            v = _mm512_add_epi16(v, _mm512_mullo_epi16(xs, c->digit[d]));
        }
        p[m] = v;
    }
}

/* The two formats' instances (tl1*_avx512vbmi.c, tl2*_avx512vbmi.c). */
static inline bitnet_tl_words512 bitnet_tl1_words_init_avx512(void) {
    return bitnet_tl_words_init_avx512(2, 9);
}
static inline void bitnet_tl1_words_avx512(const bitnet_tl_words512 *c, const int8_t *x,
                                           __m512i p[4]) {
    bitnet_tl_words_avx512(c, 2, x, p);
}
static inline bitnet_tl_words512 bitnet_tl2_words_init_avx512(void) {
    return bitnet_tl_words_init_avx512(3, 14);
}
static inline void bitnet_tl2_words_avx512(const bitnet_tl_words512 *c, const int8_t *x,
                                           __m512i p[4]) {
    bitnet_tl_words_avx512(c, 3, x, p);
}

/* The int4 block loop (tl1i4_avx512vbmi.c, tl2i4_avx512vbmi.c): bitnet_tl_rows_avx512 with one-byte
 * tables. A step's tables are 2 zmm (A: groups 0-3, B: groups 4-7; byte 16 l + u = T, a
 * signed byte: |T| <= 2 * 8 = 16 for TL1, 3 * 8 = 24 for TL2). Per 64-byte block: the
 * transposing vpermb, the two indices, one vpermb each (one where the int8 loop needs two),
 * for TL2 the masked negation of each, one byte add (|A + B| <= 48: no int8 overflow) and
 * one vpdpbusd by 1, which sums a row's four bytes into its int32 lane. Every int32 lane is
 * an exact partial sum after every block (|.| <= 8 * K < 2^31). */
static inline void bitnet_tl_rows_i4_avx512(const uint8_t *w, size_t tile_bytes, size_t k0,
                                            size_t steps, const __m512i *tab, size_t rb,
                                            size_t re, int32_t *y, int first,
                                            size_t step_bytes, int signs) {
    const __m512i transpose = bitnet_tl_transpose(), pos = bitnet_tl_pos();
    const __m512i low4 = _mm512_set1_epi8(0x0F), ones = _mm512_set1_epi8(1);
    const __m512i z = _mm512_setzero_si512();
    const int pf = bitnet_x86_prefetch_on();
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *base = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * step_bytes;
        int32_t *yo = y + (r - rb);
        __m512i acc[4]; /* dword i = row 16s + i */
        for (int s = 0; s < 4; s++) acc[s] = first ? z : _mm512_loadu_si512(yo + 16 * s);
        for (size_t k = 0; k < steps; k++) {
            const uint8_t *q = base + k * step_bytes;
            const __m512i ta = tab[2 * k], tb = tab[2 * k + 1];
            BITNET_PREFETCH_AHEAD(pf, q, (int)(step_bytes / 64));
            for (int s = 0; s < 4; s++) {
                const __m512i v =
                    _mm512_permutexvar_epi8(transpose, _mm512_load_si512(q + 64 * s));
                /* ib first: the ternlog that overwrites v then needs no copy of it. */
                const __m512i ib =
                    _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), low4, pos, 0xEA);
                const __m512i ia = _mm512_ternarylogic_epi32(v, low4, pos, 0xEA);
                __m512i la = _mm512_permutexvar_epi8(ia, ta);
                __m512i lb = _mm512_permutexvar_epi8(ib, tb);
                if (signs) {
                    const uint8_t *sg = q + 4 * 64 + 16 * s;
                    la = _mm512_mask_sub_epi8(la, bitnet_tl_load_mask(sg), z, la);
                    lb = _mm512_mask_sub_epi8(lb, bitnet_tl_load_mask(sg + 8), z, lb);
                }
                DPBUSD(acc[s], ones, _mm512_add_epi8(la, lb));
            }
        }
        for (int s = 0; s < 4; s++) _mm512_storeu_si512(yo + 16 * s, acc[s]);
    }
}
#endif

#if defined(__AVX2__)
/* Adds one lookup vector's lo / hi bytes (16 rows a lane) into int16 row accumulators:
 * acc[0] rows 0-7, acc[1] rows 8-15 (lanes hold separate partial sums). */
static inline void bitnet_tl_add16(__m256i *acc, __m256i lo, __m256i hi) {
    const __m256i c1_64 = _mm256_set1_epi16(64 << 8 | 1); /* bytes [1, 64]: lo + 64 hi */
    acc[0] = _mm256_add_epi16(acc[0], _mm256_maddubs_epi16(c1_64, _mm256_unpacklo_epi8(lo, hi)));
    acc[1] = _mm256_add_epi16(acc[1], _mm256_maddubs_epi16(c1_64, _mm256_unpackhi_epi8(lo, hi)));
}

/* Adds int16 accumulators (lane 0 and lane 1 hold partial sums of the same 8 rows) into
 * 8 int32 rows, and clears them. */
static inline void bitnet_tl_flush16(__m256i *acc16, int32_t *acc32) {
    const __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(*acc16));
    const __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(*acc16, 1));
    __m256i a = _mm256_loadu_si256((const __m256i *)acc32);
    a = _mm256_add_epi32(a, _mm256_add_epi32(lo, hi));
    _mm256_storeu_si256((__m256i *)acc32, a);
    *acc16 = _mm256_setzero_si256();
}

/* Packs two int16 tables (16 words each) into the lo (T & 63) and hi (T >> 6) vpshufb
 * tables, lane 0 = a, lane 1 = b. */
static inline void bitnet_tl_pack16(__m256i a, __m256i b, __m256i *lo, __m256i *hi) {
    const __m256i low6 = _mm256_set1_epi16(63);
    *lo = _mm256_permute4x64_epi64(
        _mm256_packus_epi16(_mm256_and_si256(a, low6), _mm256_and_si256(b, low6)), 0xD8);
    *hi = _mm256_permute4x64_epi64(
        _mm256_packs_epi16(_mm256_srai_epi16(a, 6), _mm256_srai_epi16(b, 6)), 0xD8);
}
/* The TL1 / TL2 AVX2 block loop: rows [rb, re) (whole tiles) over `steps` steps from step
 * k0 of each tile; a step's 8 tables (lo, hi for groups (0,1), (2,3), (4,5), (6,7), one
 * group a lane) serve its four 16-row sub-tiles; y receives (first) or accumulates.
 * Per sub-tile: 4 index vectors (low / high nibbles of the two 32-byte halves), two
 * vpshufb each, for TL2 (`signs`, a constant after inlining) vpsignb with the sign bits
 * expanded to bytes (sign of lane L, row i: byte i/2 of the sub-tile's sign word, bit
 * 4 (i%2) + L, + 2 for groups 2, 3 of the word), then bitnet_tl_add16 (|lo + 64 hi| <= 447:
 * no saturation). int16 accumulators take 4 lookups a step (<= 4 * 384 = 1536) and are
 * widened every 16 steps (16 * 1536 = 24576 < 2^15); the int32 totals are exact. */
#define BITNET_TL_FLUSH_STEPS 16
static inline void bitnet_tl_rows_avx2(const uint8_t *w, size_t tile_bytes, size_t k0,
                                       size_t steps, const __m256i *tab, size_t rb, size_t re,
                                       int32_t *y, int first, size_t step_bytes, int signs) {
    __m256i sel, bits0, bits1;
    BITNET_TL_BYTES(sel, 32, (p % 16) / 2);
    BITNET_TL_BYTES(bits0, 32, 1u << (4 * (p % 2) + p / 16));
    BITNET_TL_BYTES(bits1, 32, 1u << (4 * (p % 2) + p / 16 + 2));
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const int pf = bitnet_x86_prefetch_on();
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *base = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * step_bytes;
        int32_t *yo = y + (r - rb);
        int32_t acc32[BITNET_TL_ROW_TILE]; /* exact: |.| <= 128 * K < 2^31 */
        for (int i = 0; i < BITNET_TL_ROW_TILE; i++) acc32[i] = first ? 0 : yo[i];
        __m256i acc16[8]; /* sub-tile s: [2s] rows 0-7, [2s + 1] rows 8-15 */
        for (int i = 0; i < 8; i++) acc16[i] = _mm256_setzero_si256();
        for (size_t k = 0; k < steps; k++) {
            const uint8_t *q = base + k * step_bytes;
            const __m256i *t = tab + 8 * k;
            BITNET_PREFETCH_AHEAD(pf, q, (int)(step_bytes / 64));
            for (int s = 0; s < 4; s++) {
                const __m256i n0 = _mm256_load_si256((const __m256i *)(q + 64 * s));
                const __m256i n1 = _mm256_load_si256((const __m256i *)(q + 64 * s + 32));
                const __m256i idx[4] = {
                    _mm256_and_si256(n0, low4), _mm256_and_si256(n1, low4),
                    _mm256_and_si256(_mm256_srli_epi16(n0, 4), low4),
                    _mm256_and_si256(_mm256_srli_epi16(n1, 4), low4)};
                uint64_t sw[2] = {0, 0};
                if (signs) memcpy(sw, q + 4 * 64 + 16 * s, 16);
                for (int j = 0; j < 4; j++) {
                    __m256i lo = _mm256_shuffle_epi8(t[2 * j], idx[j]);
                    __m256i hi = _mm256_shuffle_epi8(t[2 * j + 1], idx[j]);
                    if (signs) {
                        const __m256i sb =
                            _mm256_shuffle_epi8(_mm256_set1_epi64x((long long)sw[j / 2]), sel);
                        const __m256i bits = (j % 2) ? bits1 : bits0;
                        const __m256i sg = _mm256_or_si256(
                            _mm256_cmpeq_epi8(_mm256_and_si256(sb, bits), bits), one);
                        lo = _mm256_sign_epi8(lo, sg);
                        hi = _mm256_sign_epi8(hi, sg);
                    }
                    bitnet_tl_add16(&acc16[2 * s], lo, hi);
                }
            }
            if ((k + 1) % BITNET_TL_FLUSH_STEPS == 0 || k + 1 == steps)
                for (int i = 0; i < 8; i++) bitnet_tl_flush16(&acc16[i], acc32 + 8 * i);
        }
        memcpy(yo, acc32, sizeof acc32);
    }
}

/* The 16-bit tables of one step for AVX2, shared by the int8 and int4 files: t[g] word u =
 * T[u] of group g (bitnet_tl_words_avx512), from the 8 nd activations at xs. */
static inline void bitnet_tl_digits_avx2(__m256i digit[3], int nd, int valid) {
    for (int k = 0; k < nd; k++) {
        int16_t d[16];
        for (int u = 0; u < 16; u++) d[u] = bitnet_tl_digit(u, k, nd, valid);
        memcpy(&digit[k], d, 32);
    }
}

static inline void bitnet_tl_words_avx2(const __m256i digit[3], int nd, const int8_t *xs,
                                        __m256i t[8]) {
    for (int g = 0; g < 8; g++) {
        __m256i v = _mm256_mullo_epi16(_mm256_set1_epi16(xs[nd * g]), digit[0]);
        for (int k = 1; k < nd; k++)
            v = _mm256_add_epi16(v, _mm256_mullo_epi16(_mm256_set1_epi16(xs[nd * g + k]), digit[k]));
        t[g] = v;
    }
}

/* The two formats' instances (tl1*_avx2.c, tl2*_avx2.c). */
static inline void bitnet_tl1_digits_avx2(__m256i digit[3]) { bitnet_tl_digits_avx2(digit, 2, 9); }
static inline void bitnet_tl1_words_avx2(const __m256i digit[3], const int8_t *xs, __m256i t[8]) {
    bitnet_tl_words_avx2(digit, 2, xs, t);
}
static inline void bitnet_tl2_digits_avx2(__m256i digit[3]) { bitnet_tl_digits_avx2(digit, 3, 14); }
static inline void bitnet_tl2_words_avx2(const __m256i digit[3], const int8_t *xs, __m256i t[8]) {
    bitnet_tl_words_avx2(digit, 3, xs, t);
}

/* Two groups' int16 tables (|T| <= 127) as one vpshufb table: lane 0 = a, lane 1 = b. */
static inline __m256i bitnet_tl_pack8(__m256i a, __m256i b) {
    return _mm256_permute4x64_epi64(_mm256_packs_epi16(a, b), 0xD8);
}

/* The int4 AVX2 block loop (tl1i4_avx2.c, tl2i4_avx2.c): a step's 4 tables (one byte an
 * entry: groups (0,1), (2,3), (4,5), (6,7), one group a lane) serve its four 16-row
 * sub-tiles; one vpshufb per index vector where the int8 loop needs two. For TL2 (`signs`)
 * the sub-tile's 16 sign bytes are split into nibbles and interleaved (row i's 4 sign bits
 * of the low-nibble groups in byte i of `r0`, of the high-nibble groups in `r1`, both
 * lanes), and a vpshufb on a sign table (lane 0: bit 0 or 2, lane 1: bit 1 or 3 -> -1 or
 * +1) gives vpsignb's operand. The four lookups of a sub-tile are summed in bytes
 * (|.| <= 4 * 24 = 96 < 128); vpmaddubsw by [1, 0] and [0, 1] sign-extends the even and
 * the odd rows into int16 lanes (lane 0: even groups, lane 1: odd groups), which take
 * <= 96 a step and are widened into int32 every BITNET_TL_I4_FLUSH_STEPS = 256 steps
 * (256 * 96 = 24576 < 2^15); int32 totals are exact. */
#define BITNET_TL_I4_FLUSH_STEPS 256
static inline void bitnet_tl_rows_i4_avx2(const uint8_t *w, size_t tile_bytes, size_t k0,
                                          size_t steps, const __m256i *tab, size_t rb,
                                          size_t re, int32_t *y, int first, size_t step_bytes,
                                          int signs) {
    __m256i sgn_lo, sgn_hi; /* idx 0, 2 (groups 4j, 4j+1 of a word) and 1, 3 (+2, +3) */
    BITNET_TL_BYTES(sgn_lo, 32, (((p % 16) >> (p / 16)) & 1) ? 0xFF : 1);
    BITNET_TL_BYTES(sgn_hi, 32, (((p % 16) >> (p / 16 + 2)) & 1) ? 0xFF : 1);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i even = _mm256_set1_epi16(1), odd = _mm256_set1_epi16(1 << 8);
    const int pf = bitnet_x86_prefetch_on();
    for (size_t r = rb; r < re; r += BITNET_TL_ROW_TILE) {
        const uint8_t *base = w + r / BITNET_TL_ROW_TILE * tile_bytes + k0 * step_bytes;
        int32_t *yo = y + (r - rb);
        /* acc32[s][0]: rows 16s + 0, 2, .., 14; [s][1]: rows 16s + 1, 3, .., 15. */
        __m256i acc32[4][2], acc16[4][2];
        for (int s = 0; s < 4; s++)
            for (int h = 0; h < 2; h++) acc32[s][h] = acc16[s][h] = _mm256_setzero_si256();
        for (size_t k = 0; k < steps; k++) {
            const uint8_t *q = base + k * step_bytes;
            const __m256i *t = tab + 4 * k;
            BITNET_PREFETCH_AHEAD(pf, q, (int)(step_bytes / 64));
            for (int s = 0; s < 4; s++) {
                const __m256i n0 = _mm256_load_si256((const __m256i *)(q + 64 * s));
                const __m256i n1 = _mm256_load_si256((const __m256i *)(q + 64 * s + 32));
                __m256i l[4] = {
                    _mm256_shuffle_epi8(t[0], _mm256_and_si256(n0, low4)),
                    _mm256_shuffle_epi8(t[1], _mm256_and_si256(n1, low4)),
                    _mm256_shuffle_epi8(t[2], _mm256_and_si256(_mm256_srli_epi16(n0, 4), low4)),
                    _mm256_shuffle_epi8(t[3], _mm256_and_si256(_mm256_srli_epi16(n1, 4), low4))};
                if (signs) {
                    const __m256i sw = _mm256_broadcastsi128_si256(
                        _mm_loadu_si128((const __m128i *)(q + 4 * 64 + 16 * s)));
                    const __m256i lo = _mm256_and_si256(sw, low4);
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(sw, 4), low4);
                    const __m256i r0 = _mm256_unpacklo_epi8(lo, hi);
                    const __m256i r1 = _mm256_unpackhi_epi8(lo, hi);
                    l[0] = _mm256_sign_epi8(l[0], _mm256_shuffle_epi8(sgn_lo, r0));
                    l[1] = _mm256_sign_epi8(l[1], _mm256_shuffle_epi8(sgn_hi, r0));
                    l[2] = _mm256_sign_epi8(l[2], _mm256_shuffle_epi8(sgn_lo, r1));
                    l[3] = _mm256_sign_epi8(l[3], _mm256_shuffle_epi8(sgn_hi, r1));
                }
                const __m256i sum = _mm256_add_epi8(_mm256_add_epi8(l[0], l[1]),
                                                    _mm256_add_epi8(l[2], l[3]));
                acc16[s][0] = _mm256_add_epi16(acc16[s][0], _mm256_maddubs_epi16(even, sum));
                acc16[s][1] = _mm256_add_epi16(acc16[s][1], _mm256_maddubs_epi16(odd, sum));
            }
            if ((k + 1) % BITNET_TL_I4_FLUSH_STEPS == 0 || k + 1 == steps)
                for (int s = 0; s < 4; s++)
                    for (int h = 0; h < 2; h++) {
                        const __m256i a = acc16[s][h];
                        acc32[s][h] = _mm256_add_epi32(
                            acc32[s][h],
                            _mm256_add_epi32(
                                _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a)),
                                _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a, 1))));
                        acc16[s][h] = _mm256_setzero_si256();
                    }
        }
        for (int s = 0; s < 4; s++) {
            int32_t e[8], o[8];
            _mm256_storeu_si256((__m256i *)e, acc32[s][0]);
            _mm256_storeu_si256((__m256i *)o, acc32[s][1]);
            for (int i = 0; i < 8; i++) {
                yo[16 * s + 2 * i] = (first ? 0 : yo[16 * s + 2 * i]) + e[i];
                yo[16 * s + 2 * i + 1] = (first ? 0 : yo[16 * s + 2 * i + 1]) + o[i];
            }
        }
    }
}
#endif

#endif
