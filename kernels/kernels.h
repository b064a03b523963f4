/* Shared declarations for every C kernel in kernels/.
 *
 * All kernels of one operation share one signature, so the Rust side is a table
 * (src/kernels/mod.rs, RawGemv / RawGemm), and the contract is the same for all:
 *   - w: the whole packed matrix, 64-byte aligned, in the format's layout; kp = padded cols;
 *   - [row_begin, row_end): whole row tiles inside the padded rows;
 *   - x: n activation rows of kp int8 each, consecutive, zero beyond the real columns;
 *   - y: n * (row_end - row_begin) int32, y[j * (row_end - row_begin) + (r - row_begin)],
 *     receiving the exact sum over k of t[r][k] * x[j][k] (t in {-1, 0, 1}).
 * Kernels never allocate, never read outside these extents, and keep every partial sum
 * exact (each file states its overflow bound beside the accumulation).
 */
#ifndef BITNET_KERNELS_INTERNAL_H
#define BITNET_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h> /* memcpy (bitnet_kv_w4) */

/* Portability. The kernels are C11 for GCC, Clang (Linux, macOS, MinGW) and MSVC (/std:c11).
 * BITNET_ALWAYS_INLINE: hot loops whose constant arguments must fold after inlining.
 * BITNET_INLINE_ASM: 1 where GCC-style inline assembly is available and wanted. A few x86
 * inner loops use it because GCC 12 compiled the intrinsic to worse code (each use says
 * why); MSVC has no GCC-style asm, and `-DBITNET_NO_INLINE_ASM` (build.rs sets it when the
 * environment has BITNET_NO_INLINE_ASM=1) forces the intrinsic fallback on GCC/Clang too,
 * so that path is tested. Both paths give the same int32 results bit for bit. */
#if defined(_MSC_VER) && !defined(__clang__)
#define BITNET_ALWAYS_INLINE __forceinline
#else
#define BITNET_ALWAYS_INLINE inline __attribute__((always_inline))
#endif
#if (defined(__GNUC__) || defined(__clang__)) && !defined(BITNET_NO_INLINE_ASM)
#define BITNET_INLINE_ASM 1
#else
#define BITNET_INLINE_ASM 0
#endif

/* I2_S (src/format/i2s.rs): 4 rows interleaved, K in chunks of 256 weights = 64 bytes a row;
 * in a row's chunk, byte j holds columns j, j+64, j+128, j+192 in bit pairs 0-1 .. 6-7. */
#define BITNET_I2S_ROW_TILE 4
#define BITNET_I2S_K_BLOCK 256
#define BITNET_I2S_CHUNK_BYTES 64

_Static_assert(BITNET_I2S_K_BLOCK == 4 * BITNET_I2S_CHUNK_BYTES, "4 codes a byte");

/* Offset of row r's chunk b (r a multiple of the tile for the first row of a group). */
static inline size_t bitnet_i2s_chunk_offset(size_t r, size_t b, size_t kp) {
    return ((r / BITNET_I2S_ROW_TILE * (kp / BITNET_I2S_K_BLOCK) + b) * BITNET_I2S_ROW_TILE +
            r % BITNET_I2S_ROW_TILE) * BITNET_I2S_CHUNK_BYTES;
}

/* TL1 / TL2 (src/format/tl1.rs, tl2.rs): 64-row tiles, one sequential stream each; a step is
 * 8 groups (TL1: 16 columns, 256 bytes a tile; TL2: 24 columns, 320 bytes a tile) made of
 * four 16-row sub-tiles of 64 nibble bytes (byte 16l + i: row i, low nibble group l, high
 * nibble group 4 + l); TL2 then has 4 x 16 bytes of sign bits (u64 word 0: bit 4i + l = sign
 * of row i, group l; word 1: group 4 + l). */
#define BITNET_TL_ROW_TILE 64
#define BITNET_TL_SUB_ROWS 16
#define BITNET_TL_STEP_GROUPS 8
#define BITNET_TL1_K_BLOCK 16
#define BITNET_TL1_STEP_BYTES 256
#define BITNET_TL2_K_BLOCK 24
#define BITNET_TL2_STEP_BYTES 320
#define BITNET_TL2_SIGNS_OFFSET 256

_Static_assert(BITNET_TL1_STEP_BYTES == BITNET_TL_ROW_TILE * BITNET_TL1_K_BLOCK / 4, "2 bits a weight");
_Static_assert(BITNET_TL2_STEP_BYTES * 24 == BITNET_TL_ROW_TILE * BITNET_TL2_K_BLOCK * 5, "5 bits a group of 3");

/* I2_S_COL (src/format/i2s_col.rs): the I2_S codes column by column; column c is
 * rows_padded / 4 contiguous bytes at c * rows_padded / 4, its block b (rows 256b..256b+255)
 * the 64 bytes at c * rows_padded / 4 + b * 64, byte i holding rows 256b + 64k + i in bits
 * 2k..2k+1. kp is a multiple of 64, rows_padded of 256. The kernels skip every column whose
 * activation is zero: their cost follows the number of non-zeros, not kp. */
#define BITNET_I2S_COL_ROW_TILE 256
#define BITNET_I2S_COL_CHUNK_BYTES 64

/* 3-bit KV cache, weighted V sum: tokens a weight block, whose int8 weights share one f32
 * factor (docs/FORMATS.md §8). Must equal WBLOCK in src/kv/mod.rs: the kv_vs_scalar tests,
 * which compare every kernel set with the scalar reference bit for bit, fail otherwise. */
#define BITNET_KV_WBLOCK 64

/* 3-bit KV cache, V: positions a block (docs/FORMATS.md §8), interleaved per channel. */
#define BITNET_KV_VBLOCK 4

/* The int8 weights of the four positions at weight index t .. t + 3 (t may be negative: a
 * range starting mid-block), as a little-endian dword, the bytes outside the weight block
 * [lo, hi) zero (so are never read): a V block's positions that belong to another weight
 * block, or to none, count with weight 0. */
static inline int32_t bitnet_kv_w4(const int8_t *w, ptrdiff_t t, ptrdiff_t lo, ptrdiff_t hi) {
    uint32_t x = 0;
    if (t >= lo && t + 4 <= hi) {
        memcpy(&x, w + t, 4);
        return (int32_t)x;
    }
    for (int j = 0; j < 4; j++)
        if (t + j >= lo && t + j < hi) x |= (uint32_t)(uint8_t)w[t + j] << (8 * j);
    return (int32_t)x;
}

/* The index of the lowest set bit of a non-zero mask (the next non-zero activation). */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline unsigned bitnet_ctz64(uint64_t m) {
    unsigned long i;
    _BitScanForward64(&i, m);
    return (unsigned)i;
}
#else
static inline unsigned bitnet_ctz64(uint64_t m) { return (unsigned)__builtin_ctzll(m); }
#endif

/* GEMM of the column format: per 256-row block, every activation row in turn, so the block's
 * columns (kp * 64 bytes) are read from memory once and then from cache. */
#define BITNET_I2S_COL_GEMM_FROM_GEMV(isa)                                                     \
    void bitnet_i2s_col_gemm_##isa(const uint8_t *w, size_t kp, size_t rows_padded,          \
                                   const int8_t *x, size_t n, size_t row_begin,              \
                                   size_t row_end, int32_t *y) {                             \
        size_t rows = row_end - row_begin;                                                   \
        for (size_t r = row_begin; r < row_end; r += BITNET_I2S_COL_ROW_TILE)                \
            for (size_t j = 0; j < n; j++)                                                   \
                bitnet_i2s_col_gemv_##isa(w, kp, rows_padded, x + j * kp, r,                 \
                                          r + BITNET_I2S_COL_ROW_TILE,                       \
                                          y + j * rows + (r - row_begin));                   \
    }

#define BITNET_DECLARE_KERNELS(fmt, isa)                                                    \
    void bitnet_##fmt##_gemv_##isa(const uint8_t *w, size_t kp, const int8_t *x,           \
                                   size_t row_begin, size_t row_end, int32_t *y);          \
    void bitnet_##fmt##_gemm_##isa(const uint8_t *w, size_t kp, const int8_t *x, size_t n, \
                                   size_t row_begin, size_t row_end, int32_t *y);

/* The TL files' one-pass entry points (x86/tl_common.h, arm/tl_common.h): table bytes per
 * step, the tables of a whole activation row (kp int8 at x, into tab: aligned to 64 bytes,
 * kp / K_BLOCK * table_step bytes), and a GEMV of rows [row_begin, row_end) from them. */
#define BITNET_DECLARE_TABLE_KERNELS(fmt, isa)                                              \
    extern const size_t bitnet_##fmt##_table_step_##isa;                                    \
    void bitnet_##fmt##_table_##isa(const int8_t *x, size_t kp, void *tab);                 \
    void bitnet_##fmt##_gemv_table_##isa(const uint8_t *w, size_t kp, const void *tab,      \
                                         size_t row_begin, size_t row_end, int32_t *y);

BITNET_DECLARE_KERNELS(i2s, avx2)
BITNET_DECLARE_KERNELS(i2s, avx512)
BITNET_DECLARE_KERNELS(i2s, neon)
BITNET_DECLARE_KERNELS(tl1, avx2)
BITNET_DECLARE_KERNELS(tl1, avx512vbmi)
BITNET_DECLARE_KERNELS(tl1, neon)
BITNET_DECLARE_KERNELS(tl2, avx2)
BITNET_DECLARE_KERNELS(tl2, avx512vbmi)
BITNET_DECLARE_KERNELS(tl2, neon)
BITNET_DECLARE_KERNELS(i2s, dotprod)
BITNET_DECLARE_TABLE_KERNELS(tl1, avx2)
BITNET_DECLARE_TABLE_KERNELS(tl1, avx512vbmi)
BITNET_DECLARE_TABLE_KERNELS(tl1, neon)
BITNET_DECLARE_TABLE_KERNELS(tl2, avx2)
BITNET_DECLARE_TABLE_KERNELS(tl2, avx512vbmi)
BITNET_DECLARE_TABLE_KERNELS(tl2, neon)
/* TL1 / TL2 for int4 activations (-8..7 only): the same layouts, one-byte tables. */
BITNET_DECLARE_KERNELS(tl1i4, avx2)
BITNET_DECLARE_KERNELS(tl1i4, avx512vbmi)
BITNET_DECLARE_KERNELS(tl1i4, neon)
BITNET_DECLARE_TABLE_KERNELS(tl1i4, avx2)
BITNET_DECLARE_TABLE_KERNELS(tl1i4, avx512vbmi)
BITNET_DECLARE_TABLE_KERNELS(tl1i4, neon)
BITNET_DECLARE_KERNELS(tl2i4, avx2)
BITNET_DECLARE_KERNELS(tl2i4, avx512vbmi)
BITNET_DECLARE_KERNELS(tl2i4, neon)
BITNET_DECLARE_TABLE_KERNELS(tl2i4, avx2)
BITNET_DECLARE_TABLE_KERNELS(tl2i4, avx512vbmi)
BITNET_DECLARE_TABLE_KERNELS(tl2i4, neon)
/* I2_S_COL's entry points also take the padded row count: the column stride follows from it. */
#define BITNET_DECLARE_COL_KERNELS(isa)                                                        \
    void bitnet_i2s_col_gemv_##isa(const uint8_t *w, size_t kp, size_t rows_padded,          \
                                   const int8_t *x, size_t row_begin, size_t row_end,        \
                                   int32_t *y);                                              \
    void bitnet_i2s_col_gemm_##isa(const uint8_t *w, size_t kp, size_t rows_padded,          \
                                   const int8_t *x, size_t n, size_t row_begin,              \
                                   size_t row_end, int32_t *y);

BITNET_DECLARE_COL_KERNELS(avx2)
BITNET_DECLARE_COL_KERNELS(avx512)
BITNET_DECLARE_COL_KERNELS(neon)

#endif
