/* I2_S kernels for AVX2 (+ FMA in the set's requirements), for CPUs without AVX-512 VNNI.
 *
 * Layout (src/format/i2s.rs): 4 rows interleaved; a row's 64-byte chunk b holds columns
 * 256b + 64k + j (k = 0..3) in bits 2k..2k+1 of byte j, code c = t + 1 in {0, 1, 2}.
 * Maths: sum t*q = sum c*q - sum q. vpmaddubsw multiplies unsigned codes by signed int8
 * activations (-128 included) and adds adjacent pairs into int16 *with saturation*;
 * bitnet.cpp's AVX2 kernel lets those int16 sums wrap. Here every int16 value is bounded
 * below 2^15 (bounds beside each accumulation), and widened with vpmaddwd long before.
 * Weights are 64-byte aligned (the packer guarantees it). Activations are loaded unaligned, so
 * any address is correct; the Rust side passes them on a cache line (src/matmul/pad.rs), since
 * a vector split across two lines costs two loads (GEMM 6912x2560 n = 128: 1.37x slower).
 *
 * GEMV: one 16-bit shift by 4 of a weight vector puts pairs 2 and 3 where pairs 0 and 1
 * were, so two masks (0x03, 0x0C) give c0, 4*c1, c2, 4*c3 (<= 8) for 5 ALU ops per 32 bytes.
 * The 4c*q products are summed separately and shifted back (exact) before joining the
 * row's int16 accumulator, which is widened to int32 every 8 chunks.
 * The 4 rows of a group share the activation vectors; the weights are one sequential stream.
 *
 * GEMM: per 4-row group and K block of at most 2048 columns, the codes are unpacked once
 * into a small L1 buffer (plain c in {0,1,2}), then tiles of 2 activation rows run over it
 * with 4 x 2 int16 accumulators, widened once per block.
 */
#include <immintrin.h>

#include "kernels.h"
#include "x86/prefetch.h"

#define CHUNK BITNET_I2S_CHUNK_BYTES
#define KBLK BITNET_I2S_K_BLOCK
#define TILE BITNET_I2S_ROW_TILE

/* GEMV int16 bounds. A vpmaddubsw pair sum of c*q is in [-512, 508] and of 4c*q in
 * [-2048, 2032]. Per 32 bytes, p = two c*q pair sums, [-1024, 1016]; p4 = two 4c*q pair
 * sums, [-4096, 4064], a multiple of 4, so p4 >> 2 is exact, [-1024, 1016]. An int16 lane of
 * A gains p + (p4 >> 2), [-2048, 2032], twice a chunk: 8 chunks stay in [-32768, 32512],
 * then A is widened to int32 with vpmaddwd. */
#define GEMV_FLUSH 8

/* vpmaddubsw with the signed (activation) operand read from memory, in inline asm: with
 * the 4 activation vectors held in registers, 8 accumulators + masks + temporaries exceed
 * the 16 ymm registers and GCC 12 spills accumulators inside the loop. (A statement
 * expression: GCC and Clang only, like the asm.) Elsewhere (MSVC, or -DBITNET_NO_INLINE_ASM;
 * kernels.h) the intrinsic with an unaligned load: the same instruction, the same result. */
#if BITNET_INLINE_ASM
#define MADDUBS_MEM(u, p)                                                            \
    ({                                                                               \
        __m256i r_;                                                                  \
        __asm__("vpmaddubsw %2, %1, %0" : "=x"(r_) : "x"(u), "m"(*(const __m256i *)(p))); \
        r_;                                                                          \
    })
#else
#define MADDUBS_MEM(u, p) _mm256_maddubs_epi16((u), _mm256_loadu_si256((const __m256i *)(p)))
#endif

/* [sum a, sum b, sum c, sum d] of four 8-lane vectors. */
static inline __m128i hsum4(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

/* Lane-wise sums of x over kp columns in the int32 lanes that vpmaddubsw + vpmaddwd use
 * (lane l of a 32-byte vector covers its bytes 4l..4l+3): |lane| <= 128 * kp / 8 <= 2^28. */
static inline __m256i lane_sums(const int8_t *x, size_t kp) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i s = _mm256_setzero_si256();
    for (size_t i = 0; i < kp; i += 32) {
        /* pairs of q: |.| <= 256, no saturation */
        __m256i p = _mm256_maddubs_epi16(ones8, _mm256_loadu_si256((const __m256i *)(x + i)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones16));
    }
    return s;
}

/* Rows 0..3 of the group at g times one activation row x (lane sums qs): the GEMV loop. */
static BITNET_ALWAYS_INLINE __m128i gemv_group(const uint8_t *g, size_t nb,
                                               const int8_t *x, __m256i qs, int pf) {
    const __m256i m0 = _mm256_set1_epi8(0x03), m1 = _mm256_set1_epi8(0x0C);
    const __m256i ones16 = _mm256_set1_epi16(1);
    /* int32 totals per row: sum of c*q over the lane's kp/8 columns, <= 2^29. */
    __m256i t0 = _mm256_setzero_si256(), t1 = t0, t2 = t0, t3 = t0;
    for (size_t b0 = 0; b0 < nb; b0 += GEMV_FLUSH) {
        const size_t b1 = nb - b0 < GEMV_FLUSH ? nb : b0 + GEMV_FLUSH;
        __m256i A0 = _mm256_setzero_si256(), A1 = A0, A2 = A0, A3 = A0;
        for (size_t b = b0; b < b1; b++) {
            BITNET_PREFETCH_AHEAD(pf, g + b * TILE * CHUNK, TILE);
            for (int h = 0; h < 2; h++) {
                const uint8_t *wb = g + b * TILE * CHUNK + h * 32;
                const int8_t *xb = x + b * KBLK + h * 32;
#define ROW(i)                                                                                    \
    {                                                                                             \
        const __m256i v = _mm256_load_si256((const __m256i *)(wb + (i) * CHUNK));                 \
        const __m256i v4 = _mm256_srli_epi16(v, 4);                                               \
        const __m256i p = _mm256_add_epi16(MADDUBS_MEM(_mm256_and_si256(v, m0), xb),              \
                                           MADDUBS_MEM(_mm256_and_si256(v4, m0), xb + 2 * CHUNK)); \
        const __m256i p4 = _mm256_add_epi16(MADDUBS_MEM(_mm256_and_si256(v, m1), xb + CHUNK),     \
                                            MADDUBS_MEM(_mm256_and_si256(v4, m1), xb + 3 * CHUNK)); \
        A##i = _mm256_add_epi16(A##i, _mm256_add_epi16(p, _mm256_srai_epi16(p4, 2)));            \
    }
                ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
            }
        }
#define WIDEN(i) t##i = _mm256_add_epi32(t##i, _mm256_madd_epi16(A##i, ones16));
        WIDEN(0) WIDEN(1) WIDEN(2) WIDEN(3)
#undef WIDEN
    }
    /* Lane-wise subtraction: every partial sum of the final reduction is a sum of t*q over
     * a subset of the real columns, |.| <= 128 * (2^24 - 1) < 2^31. */
    return hsum4(_mm256_sub_epi32(t0, qs), _mm256_sub_epi32(t1, qs), _mm256_sub_epi32(t2, qs),
                 _mm256_sub_epi32(t3, qs));
}

/* GEMM K block: an int16 lane gains one vpmaddubsw pair sum of c*q, in [-512, 508], per
 * 32 columns, so 2048 columns (64 vectors) stay in [-32768, 32512]. The unpacked codes
 * (4 x 2048 bytes) and 2 activation rows (4 KiB) sit in L1. */
#define GEMM_KB 2048

/* acc += vpmaddubsw(u, s) in inline asm: from intrinsics GCC 12 loaded each weight vector
 * twice, copied every accumulator through another register and spilled one. The fallback
 * (kernels.h) is the same two instructions from intrinsics. */
#if BITNET_INLINE_ASM
#define MADDUBS_ADD(acc, u, s)                                                      \
    {                                                                               \
        __m256i t_;                                                                 \
        __asm__("vpmaddubsw %3, %2, %1\n\tvpaddw %1, %0, %0"                        \
                : "+x"(acc), "=&x"(t_)                                              \
                : "x"(u), "x"(s));                                                  \
    }
#else
#define MADDUBS_ADD(acc, u, s) ((acc) = _mm256_add_epi16((acc), _mm256_maddubs_epi16((u), (s))))
#endif
#define GEMM_ACTS 2
/* Up to 3 activation rows take the GEMV loop (i2s_drivers.h); measured on Zen 4: n = 2 ran
 * 10% faster that way, n = 4 and 8 10-25% slower. */
#define GEMM_SMALL_N 3

/* Unpacks chunks [b0, b1) of a 4-row group into u[i][(b - b0) * 256 + 64k + j] = c. */
static inline void unpack_group(const uint8_t *g, size_t b0, size_t b1, uint8_t *u) {
    const __m256i m = _mm256_set1_epi8(0x03);
    for (size_t b = b0; b < b1; b++) {
        for (int i = 0; i < TILE; i++) {
            for (int h = 0; h < 2; h++) {
                const __m256i v = _mm256_load_si256((const __m256i *)(g + (b * TILE + i) * CHUNK + h * 32));
                uint8_t *d = u + i * GEMM_KB + (b - b0) * KBLK + h * 32;
                /* 16-bit shifts move bits across bytes; the mask keeps only this byte's pair. */
                _mm256_store_si256((__m256i *)d, _mm256_and_si256(v, m));
                _mm256_store_si256((__m256i *)(d + CHUNK), _mm256_and_si256(_mm256_srli_epi16(v, 2), m));
                _mm256_store_si256((__m256i *)(d + 2 * CHUNK), _mm256_and_si256(_mm256_srli_epi16(v, 4), m));
                _mm256_store_si256((__m256i *)(d + 3 * CHUNK), _mm256_and_si256(_mm256_srli_epi16(v, 6), m));
            }
        }
    }
}

/* y[j * ys + 0..3] += the 4 rows' sums of c*q over the block (len <= GEMM_KB columns), for
 * activation rows 0..A-1. Each int32 partial is <= 256 * GEMM_KB; y starts at -sum q and
 * each block adds sum c*q over its columns, so y stays sum_{done} t*q - sum_{not done} q,
 * |.| <= 128 * (2^24 - 1) < 2^31. */
static BITNET_ALWAYS_INLINE void tile(const uint8_t *u, const int8_t *x,
                                      size_t kp, size_t len, int A,
                                      int32_t *y, size_t ys) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i acc[GEMM_ACTS][TILE];
    for (int j = 0; j < A; j++)
        for (int i = 0; i < TILE; i++) acc[j][i] = _mm256_setzero_si256();
    for (size_t c = 0; c < len; c += 32) {
        const __m256i w0 = _mm256_load_si256((const __m256i *)(u + c));
        const __m256i w1 = _mm256_load_si256((const __m256i *)(u + GEMM_KB + c));
        const __m256i w2 = _mm256_load_si256((const __m256i *)(u + 2 * GEMM_KB + c));
        const __m256i w3 = _mm256_load_si256((const __m256i *)(u + 3 * GEMM_KB + c));
        for (int j = 0; j < A; j++) {
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(x + j * kp + c));
            MADDUBS_ADD(acc[j][0], w0, xv);
            MADDUBS_ADD(acc[j][1], w1, xv);
            MADDUBS_ADD(acc[j][2], w2, xv);
            MADDUBS_ADD(acc[j][3], w3, xv);
        }
    }
    for (int j = 0; j < A; j++) {
        __m128i *yp = (__m128i *)(y + j * ys);
        __m128i s = hsum4(_mm256_madd_epi16(acc[j][0], ones16), _mm256_madd_epi16(acc[j][1], ones16),
                          _mm256_madd_epi16(acc[j][2], ones16), _mm256_madd_epi16(acc[j][3], ones16));
        _mm_storeu_si128(yp, _mm_add_epi32(_mm_loadu_si128(yp), s));
    }
}

/* Tiles with a constant activation count, so the accumulators stay in registers. */
static inline void tile_acts(const uint8_t *u, const int8_t *x, size_t kp, size_t len, int A,
                             int32_t *y, size_t ys) {
    if (A == 2)
        tile(u, x, kp, len, 2, y, ys);
    else
        tile(u, x, kp, len, 1, y, ys);
}

typedef __m256i lanes_t;

static inline int32_t sum_q(const int8_t *x, size_t kp) {
    const __m256i qs = lane_sums(x, kp);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(qs), _mm256_extracti128_si256(qs, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    return _mm_cvtsi128_si32(h);
}

#include "x86/i2s_drivers.h"

void bitnet_i2s_gemv_avx2(const uint8_t *w, size_t kp, const int8_t *x, size_t row_begin,
                          size_t row_end, int32_t *y) {
    i2s_gemv(w, kp, x, row_begin, row_end, y);
}

void bitnet_i2s_gemm_avx2(const uint8_t *w, size_t kp, const int8_t *x, size_t n,
                          size_t row_begin, size_t row_end, int32_t *y) {
    i2s_gemm(w, kp, x, n, row_begin, row_end, y);
}
