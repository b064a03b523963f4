/* I2_S kernels for AVX-512 F/BW/VL + VNNI (vpdpbusd): Ice Lake, Sapphire Rapids, Zen 4.
 *
 * Layout (src/format/i2s.rs): 4 rows interleaved; a row's 64-byte chunk b holds columns
 * 256b + 64k + j (k = 0..3) in bits 2k..2k+1 of byte j, code c = t + 1 in {0, 1, 2}.
 * Maths: sum t*q = sum c*q - sum q. vpdpbusd multiplies unsigned codes by signed int8
 * activations (-128 included) and sums 4 products into an int32 lane.
 *
 * GEMV: per chunk, masking a weight byte with 0x03 << 2k gives c * 4^k (<= 128, a valid
 * unsigned byte) with no shift; one accumulator per (row, k) = 16, combined exactly as
 * acc_k >> 2k (acc_k is a sum of multiples of 4^k). The 4 activation vectors of a chunk
 * are loaded once and shared by the 4 rows of a group; the weights are one sequential stream.
 *
 * Weights are 64-byte aligned (the packer guarantees it). Activations are loaded unaligned, so
 * any address is correct; the Rust side passes them on a cache line (src/matmul/pad.rs), since
 * a vector split across two lines costs two loads (GEMM 6912x2560 n = 128: 1.37x slower).
 *
 * GEMM: per 4-row group and K block, the codes are unpacked once into a small L1 buffer
 * (plain c in {0,1,2}, column order), then tiles of up to 6 activation rows run over it
 * with 4 x 6 accumulators: each weight vector feeds 6 vpdpbusd, each activation vector 4.
 */
#include <immintrin.h>

#include "kernels.h"
#include "x86/prefetch.h"
#include "x86/vnni.h"

#define CHUNK BITNET_I2S_CHUNK_BYTES
#define KBLK BITNET_I2S_K_BLOCK
#define TILE BITNET_I2S_ROW_TILE

/* GEMV flush period in chunks. Bound: acc_3 lane gains at most 4 * (2*64) * 128 = 2^16 a
 * chunk, so 4096 chunks stay within 2^28 < 2^31; the combined total per lane is
 * sum over its kp/16 columns of |c*q| <= 256 * 2^24 / 16 = 2^28 (kp <= 2^24). */
#define GEMV_FLUSH_CHUNKS 4096

/* [sum a, sum b, sum c, sum d] of four 16-lane vectors (a 4 x 4 transpose folded into adds). */
static inline __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d) {
    __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Lane-wise sums of x over all kp columns, in the lanes vpdpbusd uses (lane l of every
 * 64-byte vector covers its bytes 4l..4l+3). |lane| <= 128 * kp / 16 <= 2^27. */
static inline __m512i lane_sums(const int8_t *x, size_t kp) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    for (size_t i = 0; i < kp; i += 2 * CHUNK) {
        DPBUSD(s0, ones, _mm512_loadu_si512(x + i));
        DPBUSD(s1, ones, _mm512_loadu_si512(x + i + CHUNK));
    }
    return _mm512_add_epi32(s0, s1);
}

/* Rows 0..3 of the group at g times one activation row x (lane sums qs): the GEMV loop. */
static BITNET_ALWAYS_INLINE __m128i gemv_group(const uint8_t *g, size_t nb,
                                               const int8_t *x, __m512i qs, int pf) {
    const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C);
    const __m512i m2 = _mm512_set1_epi8(0x30), m3 = _mm512_set1_epi8((char)0xC0);
    __m512i tot[TILE];
    for (int i = 0; i < TILE; i++) tot[i] = _mm512_setzero_si512();
    for (size_t b0 = 0; b0 < nb; b0 += GEMV_FLUSH_CHUNKS) {
        const size_t b1 = nb - b0 < GEMV_FLUSH_CHUNKS ? nb : b0 + GEMV_FLUSH_CHUNKS;
        /* a[i][k]: row i, bit pair k; 16 independent chains hide vpdpbusd's latency. */
        __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00;
        __m512i a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        __m512i a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        __m512i a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (size_t b = b0; b < b1; b++) {
            const uint8_t *wb = g + b * TILE * CHUNK;
            const int8_t *xb = x + b * KBLK;
            BITNET_PREFETCH_AHEAD(pf, wb, TILE);
            const __m512i x0 = _mm512_loadu_si512(xb), x1 = _mm512_loadu_si512(xb + CHUNK);
            const __m512i x2 = _mm512_loadu_si512(xb + 2 * CHUNK);
            const __m512i x3 = _mm512_loadu_si512(xb + 3 * CHUNK);
            __m512i v;
#define ROW(i)                                                                  \
    v = _mm512_load_si512(wb + (i) * CHUNK);                                    \
    DPBUSD(a##i##0, _mm512_and_si512(v, m0), x0);                               \
    DPBUSD(a##i##1, _mm512_and_si512(v, m1), x1);                               \
    DPBUSD(a##i##2, _mm512_and_si512(v, m2), x2);                               \
    DPBUSD(a##i##3, _mm512_and_si512(v, m3), x3);
            ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
        }
        /* acc_k is a sum of multiples of 4^k, so >> 2k is exact. */
#define COMBINE(i)                                                                             \
    tot[i] = _mm512_add_epi32(                                                                 \
        tot[i], _mm512_add_epi32(_mm512_add_epi32(a##i##0, _mm512_srai_epi32(a##i##1, 2)),    \
                                 _mm512_add_epi32(_mm512_srai_epi32(a##i##2, 4),               \
                                                  _mm512_srai_epi32(a##i##3, 6))));
        COMBINE(0) COMBINE(1) COMBINE(2) COMBINE(3)
#undef COMBINE
    }
    /* Lane-wise subtraction keeps every partial sum of the final reduction a sum of t*q
     * over a subset of the real columns: |.| <= 128 * (2^24 - 1) < 2^31. */
    return hsum4(_mm512_sub_epi32(tot[0], qs), _mm512_sub_epi32(tot[1], qs),
                 _mm512_sub_epi32(tot[2], qs), _mm512_sub_epi32(tot[3], qs));
}

/* GEMM K block: columns of one group unpacked at a time (4 rows x GEMM_KB bytes = 10 KiB),
 * small enough that the codes and a tile of 6 activation rows (15 KiB) share the L1. */
#define GEMM_KB 2560
#define GEMM_ACTS 6
/* Up to 8 activation rows take the GEMV loop (i2s_drivers.h); measured on Zen 4 6912x2560:
 * ~185 G MAC/s for n = 2..8 against 110-175 for the unpacked tiles, a tie at 8-12. */
#define GEMM_SMALL_N 8

/* Unpacks chunks [b0, b1) of a 4-row group into u[i][(b - b0) * 256 + 64k + j] = c. */
static inline void unpack_group(const uint8_t *g, size_t b0, size_t b1, uint8_t *u) {
    const __m512i m = _mm512_set1_epi8(0x03);
    for (size_t b = b0; b < b1; b++) {
        for (int i = 0; i < TILE; i++) {
            const __m512i v = _mm512_load_si512(g + (b * TILE + i) * CHUNK);
            uint8_t *d = u + i * GEMM_KB + (b - b0) * KBLK;
            /* 16-bit shifts move bits across bytes; the mask keeps only this byte's pair. */
            _mm512_store_si512(d, _mm512_and_si512(v, m));
            _mm512_store_si512(d + CHUNK, _mm512_and_si512(_mm512_srli_epi16(v, 2), m));
            _mm512_store_si512(d + 2 * CHUNK, _mm512_and_si512(_mm512_srli_epi16(v, 4), m));
            _mm512_store_si512(d + 3 * CHUNK, _mm512_and_si512(_mm512_srli_epi16(v, 6), m));
        }
    }
}

/* y[j * ys + 0..3] += the 4 rows' sums of c*q over the block for activation rows 0..A-1.
 * Bound per lane: len / 16 columns of c*q, |.| <= 256 * GEMM_KB / 16 = 40960; the y entries
 * start at -sum q and each block adds sum c*q over its columns, so y stays
 * sum_{done} t*q - sum_{not done} q, |.| <= 128 * (2^24 - 1) < 2^31. */
static BITNET_ALWAYS_INLINE void tile(const uint8_t *u, const int8_t *x,
                                      size_t kp, size_t len, int A,
                                      int32_t *y, size_t ys) {
    __m512i acc[GEMM_ACTS][TILE];
    for (int j = 0; j < A; j++)
        for (int i = 0; i < TILE; i++) acc[j][i] = _mm512_setzero_si512();
    for (size_t c = 0; c < len; c += CHUNK) {
        const __m512i w0 = _mm512_load_si512(u + c), w1 = _mm512_load_si512(u + GEMM_KB + c);
        const __m512i w2 = _mm512_load_si512(u + 2 * GEMM_KB + c);
        const __m512i w3 = _mm512_load_si512(u + 3 * GEMM_KB + c);
        for (int j = 0; j < A; j++) {
            const __m512i xv = _mm512_loadu_si512(x + j * kp + c);
            DPBUSD(acc[j][0], w0, xv);
            DPBUSD(acc[j][1], w1, xv);
            DPBUSD(acc[j][2], w2, xv);
            DPBUSD(acc[j][3], w3, xv);
        }
    }
    for (int j = 0; j < A; j++) {
        __m128i *yp = (__m128i *)(y + j * ys);
        __m128i s = hsum4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        _mm_storeu_si128(yp, _mm_add_epi32(_mm_loadu_si128(yp), s));
    }
}

/* Tiles with a constant activation count, so the accumulators stay in registers. */
static inline void tile_acts(const uint8_t *u, const int8_t *x, size_t kp, size_t len, int A,
                             int32_t *y, size_t ys) {
    switch (A) {
    case 6: tile(u, x, kp, len, 6, y, ys); break;
    case 5: tile(u, x, kp, len, 5, y, ys); break;
    case 4: tile(u, x, kp, len, 4, y, ys); break;
    case 3: tile(u, x, kp, len, 3, y, ys); break;
    case 2: tile(u, x, kp, len, 2, y, ys); break;
    default: tile(u, x, kp, len, 1, y, ys); break;
    }
}

typedef __m512i lanes_t;

/* The reduction written out: _mm512_reduce_add_epi32 is a sequence each compiler's headers
 * provide (or not), not an instruction; these are plain instruction intrinsics, which any
 * AVX-512 compiler has. Exact: every partial sum is <= 128 * (2^24 - 1) < 2^31. */
static inline int32_t sum_q(const int8_t *x, size_t kp) {
    const __m512i s = lane_sums(x, kp);
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4E));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xB1));
    return _mm_cvtsi128_si32(q);
}

#include "x86/i2s_drivers.h"

void bitnet_i2s_gemv_avx512(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                            size_t row_end, int32_t *y) {
    i2s_gemv(w, kp, x, row_begin, row_end, y);
}

void bitnet_i2s_gemm_avx512(const uint8_t *w, size_t kp, const int8_t *x, size_t n,
                            size_t row_begin, size_t row_end, int32_t *y) {
    i2s_gemm(w, kp, x, n, row_begin, row_end, y);
}
