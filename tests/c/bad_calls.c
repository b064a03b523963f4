/* A table of bad calls through the C API. Each row: the call, the status it must return, and
 * (for every row) a check that no output was touched and that bitnet_last_error() explains.
 * A failure is printed the way a C program should print one: the kind of failure
 * (bitnet_status_message) and the specifics (bitnet_last_error), joined by ": ".
 * Leaks are caught by LeakSanitizer when .ci/run builds this with -fsanitize=address.
 *
 * `bad_calls kernel-unavailable` is run with BITNET_KERNEL naming a kernel that does not
 * exist: every product must then fail with BITNET_STATUS_KERNEL_UNAVAILABLE.
 */
#define _POSIX_C_SOURCE 200809L
#include "bitnet_kernels.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROWS 5
#define COLS 300
#define R128 4
#define C128 128

static int failures = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                               \
        }                                                                             \
    } while (0)

/* Fixtures: valid matrices and inputs, and inputs with one flaw each. */
static BitnetMatrix *m;    /* ROWS x COLS, I2_S */
static BitnetMatrix *m128; /* R128 x C128, I2_S: exportable as a bitnet.cpp blob */
static BitnetMatrix *m128_rows; /* m128 with one scale per row */
static const float rs_ok[R128] = {0.5f, 1.0f, 2.0f, 4.0f};
static float rs_nan[R128] = {0.5f, 1.0f, NAN, 4.0f}, rs_inf[R128] = {INFINITY, 1.0f, 2.0f, 4.0f},
             rs_zero[R128] = {0.5f, 0.0f, 2.0f, 4.0f}, rs_neg[R128] = {0.5f, 1.0f, 2.0f, -4.0f};
static float w[ROWS * COLS], w_nan[ROWS * COLS], w_inf[ROWS * COLS];
static int8_t trits[ROWS * COLS], trits_2[ROWS * COLS], trits_m2[ROWS * COLS];
static float xf[2 * COLS], xf_nan[COLS], xf_inf[COLS], xf2_nan[2 * COLS];
static int8_t xi[2 * COLS];
/* Storage for pointers one byte past an aligned address: misaligned for any type wider than
 * a byte. They are made through uintptr_t and never dereferenced (the library rejects them
 * before any access). */
static float spare_f[2 * COLS + 1];
#define MISALIGNED(type, p) ((type *)(void *)((uintptr_t)(void *)(p) + 1))
static uint8_t *packed, *packed_bad; /* m's packed bytes; with one code 3 */
static size_t packed_len;
static uint8_t blob[R128 * C128 / 4 + 32], blob_code3[sizeof blob], blob_nan[sizeof blob];
/* ggml tensors of m512 (R128 x 512, scale 0.25 = fp16 0x3400): TQ2_0 and TQ1_0, and copies
 * with one flaw each; Hugging Face packed bytes (R128 x C128). */
#define C512 512
static BitnetMatrix *m512;
static int8_t trits512[R128 * C512];
static uint8_t tq2[R128 * 2 * 66], tq2_code3[sizeof tq2], tq2_mixed[sizeof tq2],
    tq2_rows[sizeof tq2], tq2_nan[sizeof tq2];
static uint8_t tq1[R128 * 2 * 54], tq1_bad[sizeof tq1];
static uint8_t hf[R128 / 4 * C128], hf_code3[sizeof hf];

/* Outputs: filled with a sentinel before each call and checked after it. */
static int32_t yi[4 * ROWS];
static float yf[4 * ROWS];
static int8_t q8[ROWS * COLS];
static uint8_t bytes_out[4096];
static BitnetMatrix *out_m;
static size_t out_size;
static float out_absmax;
static int sentinel_object;
#define SENTINEL_M ((BitnetMatrix *)(void *)&sentinel_object)
#define SENTINEL_SIZE ((size_t)0x5A5A5A5A)

static void reset_outputs(void) {
    memset(yi, 0xA5, sizeof yi);
    memset(yf, 0xA5, sizeof yf);
    memset(q8, 0xA5, sizeof q8);
    memset(bytes_out, 0xA5, sizeof bytes_out);
    out_m = SENTINEL_M;
    out_size = SENTINEL_SIZE;
    memset(&out_absmax, 0xA5, sizeof out_absmax);
}

static int all_bytes(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return 0;
    return 1;
}

static int outputs_untouched(void) {
    return all_bytes(yi, sizeof yi, 0xA5) && all_bytes(yf, sizeof yf, 0xA5) &&
           all_bytes(q8, sizeof q8, 0xA5) && all_bytes(bytes_out, sizeof bytes_out, 0xA5) &&
           out_m == SENTINEL_M && out_size == SENTINEL_SIZE &&
           all_bytes(&out_absmax, sizeof out_absmax, 0xA5);
}

#define I2S BITNET_FORMAT_I2S
/* One row per bad call: X(name, expected status without BITNET_STATUS_, the call). */
#define BAD_CALLS(X)                                                                            \
    /* building from f32 */                                                                     \
    X(f32_null_w, NULL_POINTER, bitnet_matrix_from_f32(NULL, ROWS, COLS, I2S, &out_m))          \
    X(f32_null_out, NULL_POINTER, bitnet_matrix_from_f32(w, ROWS, COLS, I2S, NULL))             \
    X(f32_zero_rows, INVALID_SHAPE, bitnet_matrix_from_f32(w, 0, COLS, I2S, &out_m))            \
    X(f32_zero_cols, INVALID_SHAPE, bitnet_matrix_from_f32(w, ROWS, 0, I2S, &out_m))            \
    X(f32_rows_x_cols_overflow, INVALID_SHAPE,                                                  \
      bitnet_matrix_from_f32(w, SIZE_MAX / 2, 3, I2S, &out_m))                                  \
    X(f32_misaligned_w, MISALIGNED_POINTER,                                                     \
      bitnet_matrix_from_f32(MISALIGNED(const float, spare_f), ROWS, COLS, I2S, &out_m))        \
    X(f32_misaligned_out, MISALIGNED_POINTER,                                                   \
      bitnet_matrix_from_f32(w, ROWS, COLS, I2S, MISALIGNED(BitnetMatrix *, spare_f)))          \
    X(f32_bytes_overflow, INVALID_SHAPE, bitnet_matrix_from_f32(w, SIZE_MAX / 4 + 1, 1, I2S, &out_m)) \
    X(f32_cols_2_24, INVALID_SHAPE, bitnet_matrix_from_f32(w, 1, (size_t)1 << 24, I2S, &out_m)) \
    X(f32_nan, NON_FINITE, bitnet_matrix_from_f32(w_nan, ROWS, COLS, I2S, &out_m))              \
    X(f32_inf, NON_FINITE, bitnet_matrix_from_f32(w_inf, ROWS, COLS, I2S, &out_m))              \
    X(f32_format_4, INVALID_FORMAT, bitnet_matrix_from_f32(w, ROWS, COLS, 4, &out_m))           \
    X(f32_format_neg, INVALID_FORMAT, bitnet_matrix_from_f32(w, ROWS, COLS, -1, &out_m))        \
    X(f32_format_max, INVALID_FORMAT, bitnet_matrix_from_f32(w, ROWS, COLS, INT_MAX, &out_m))   \
    /* building from trits */                                                                   \
    X(ternary_null, NULL_POINTER, bitnet_matrix_from_ternary(NULL, ROWS, COLS, 1.0f, I2S, &out_m)) \
    X(ternary_2, INVALID_DATA, bitnet_matrix_from_ternary(trits_2, ROWS, COLS, 1.0f, I2S, &out_m)) \
    X(ternary_m2, INVALID_DATA,                                                                 \
      bitnet_matrix_from_ternary(trits_m2, ROWS, COLS, 1.0f, I2S, &out_m))                      \
    X(ternary_scale_nan, NON_FINITE,                                                            \
      bitnet_matrix_from_ternary(trits, ROWS, COLS, NAN, I2S, &out_m))                          \
    X(ternary_scale_inf, NON_FINITE,                                                            \
      bitnet_matrix_from_ternary(trits, ROWS, COLS, INFINITY, I2S, &out_m))                     \
    X(ternary_scale_zero, INVALID_DATA,                                                         \
      bitnet_matrix_from_ternary(trits, ROWS, COLS, 0.0f, I2S, &out_m))                         \
    X(ternary_scale_neg, INVALID_DATA,                                                          \
      bitnet_matrix_from_ternary(trits, ROWS, COLS, -0.25f, I2S, &out_m))                       \
    X(ternary_format, INVALID_FORMAT, bitnet_matrix_from_ternary(trits, ROWS, COLS, 1.0f, 99, &out_m)) \
    X(ternary_zero_rows, INVALID_SHAPE, bitnet_matrix_from_ternary(trits, 0, COLS, 1.0f, I2S, &out_m)) \
    /* packed bytes */                                                                          \
    X(packed_null, NULL_POINTER,                                                                \
      bitnet_matrix_from_packed(NULL, packed_len, ROWS, COLS, 1.0f, I2S, &out_m))               \
    X(packed_short, LENGTH_MISMATCH,                                                            \
      bitnet_matrix_from_packed(packed, packed_len - 1, ROWS, COLS, 1.0f, I2S, &out_m))         \
    X(packed_shape_mismatch, LENGTH_MISMATCH,                                                   \
      bitnet_matrix_from_packed(packed, packed_len, ROWS + 4, COLS, 1.0f, I2S, &out_m))         \
    X(packed_code3, INVALID_DATA,                                                               \
      bitnet_matrix_from_packed(packed_bad, packed_len, ROWS, COLS, 1.0f, I2S, &out_m))         \
    X(packed_scale_nan, NON_FINITE,                                                             \
      bitnet_matrix_from_packed(packed, packed_len, ROWS, COLS, NAN, I2S, &out_m))              \
    X(packed_scale_neg, INVALID_DATA,                                                           \
      bitnet_matrix_from_packed(packed, packed_len, ROWS, COLS, -1.0f, I2S, &out_m))            \
    X(packed_format, INVALID_FORMAT,                                                            \
      bitnet_matrix_from_packed(packed, packed_len, ROWS, COLS, 1.0f, 7, &out_m))               \
    X(packed_zero_cols, INVALID_SHAPE,                                                          \
      bitnet_matrix_from_packed(packed, packed_len, ROWS, 0, 1.0f, I2S, &out_m))                \
    X(packed_bytes_short, LENGTH_MISMATCH, bitnet_matrix_packed_bytes(m, bytes_out, packed_len - 1)) \
    X(packed_bytes_null_out, NULL_POINTER, bitnet_matrix_packed_bytes(m, NULL, packed_len))     \
    X(packed_bytes_null_m, NULL_POINTER, bitnet_matrix_packed_bytes(NULL, bytes_out, packed_len)) \
    /* bitnet.cpp blobs */                                                                      \
    X(blob_size_cols, INVALID_SHAPE, bitnet_i2s_blob_size(ROWS, COLS, &out_size))               \
    X(blob_size_zero, INVALID_SHAPE, bitnet_i2s_blob_size(0, C128, &out_size))                  \
    X(blob_size_null, NULL_POINTER, bitnet_i2s_blob_size(R128, C128, NULL))                     \
    X(blob_in_null, NULL_POINTER, bitnet_matrix_from_bitnet_i2s(NULL, sizeof blob, R128, C128, &out_m)) \
    X(blob_in_null_out, NULL_POINTER,                                                           \
      bitnet_matrix_from_bitnet_i2s(blob, sizeof blob, R128, C128, NULL))                       \
    X(blob_in_cols, INVALID_SHAPE,                                                              \
      bitnet_matrix_from_bitnet_i2s(blob, sizeof blob, 2, 256 + 64, &out_m))                    \
    X(blob_in_short, LENGTH_MISMATCH,                                                           \
      bitnet_matrix_from_bitnet_i2s(blob, sizeof blob - 1, R128, C128, &out_m))                 \
    X(blob_in_code3, INVALID_DATA,                                                              \
      bitnet_matrix_from_bitnet_i2s(blob_code3, sizeof blob, R128, C128, &out_m))               \
    X(blob_in_scale_nan, NON_FINITE,                                                            \
      bitnet_matrix_from_bitnet_i2s(blob_nan, sizeof blob, R128, C128, &out_m))                 \
    X(blob_out_cols, INVALID_SHAPE, bitnet_matrix_to_bitnet_i2s(m, bytes_out, sizeof bytes_out)) \
    X(blob_out_short, LENGTH_MISMATCH, bitnet_matrix_to_bitnet_i2s(m128, bytes_out, sizeof blob - 1)) \
    X(blob_out_null, NULL_POINTER, bitnet_matrix_to_bitnet_i2s(m128, NULL, sizeof blob))        \
    X(blob_out_null_m, NULL_POINTER, bitnet_matrix_to_bitnet_i2s(NULL, bytes_out, sizeof blob)) \
    /* ggml tensors */                                                                          \
    X(ggml_in_null, NULL_POINTER,                                                               \
      bitnet_matrix_from_ggml(35, NULL, sizeof tq2, R128, C512, I2S, &out_m))                   \
    X(ggml_in_null_out, NULL_POINTER,                                                           \
      bitnet_matrix_from_ggml(35, tq2, sizeof tq2, R128, C512, I2S, NULL))                      \
    X(ggml_in_type_39, UNSUPPORTED,                                                             \
      bitnet_matrix_from_ggml(39, tq2, sizeof tq2, R128, C512, I2S, &out_m))                    \
    X(ggml_in_type_neg, UNSUPPORTED,                                                            \
      bitnet_matrix_from_ggml(-35, tq2, sizeof tq2, R128, C512, I2S, &out_m))                   \
    X(ggml_in_format, INVALID_FORMAT,                                                           \
      bitnet_matrix_from_ggml(35, tq2, sizeof tq2, R128, C512, 9, &out_m))                      \
    X(ggml_in_cols, INVALID_SHAPE,                                                              \
      bitnet_matrix_from_ggml(35, tq2, sizeof tq2, R128, 300, I2S, &out_m))                     \
    X(ggml_in_zero_rows, INVALID_SHAPE,                                                         \
      bitnet_matrix_from_ggml(35, tq2, sizeof tq2, 0, C512, I2S, &out_m))                       \
    X(ggml_in_short, LENGTH_MISMATCH,                                                           \
      bitnet_matrix_from_ggml(35, tq2, sizeof tq2 - 1, R128, C512, I2S, &out_m))                \
    X(ggml_in_wrong_type_size, LENGTH_MISMATCH,                                                 \
      bitnet_matrix_from_ggml(34, tq2, sizeof tq2, R128, C512, I2S, &out_m))                    \
    X(ggml_in_tq2_code3, INVALID_DATA,                                                          \
      bitnet_matrix_from_ggml(35, tq2_code3, sizeof tq2, R128, C512, I2S, &out_m))              \
    X(ggml_in_tq1_byte, INVALID_DATA,                                                           \
      bitnet_matrix_from_ggml(34, tq1_bad, sizeof tq1, R128, C512, I2S, &out_m))                \
    X(ggml_in_mixed_d, INVALID_DATA,                                                            \
      bitnet_matrix_from_ggml(35, tq2_mixed, sizeof tq2, R128, C512, I2S, &out_m))              \
    X(ggml_in_nan_d, NON_FINITE,                                                                \
      bitnet_matrix_from_ggml(35, tq2_nan, sizeof tq2, R128, C512, I2S, &out_m))                \
    X(ggml_in_i2s_short, LENGTH_MISMATCH,                                                       \
      bitnet_matrix_from_ggml(36, blob, sizeof blob - 1, R128, C128, I2S, &out_m))              \
    X(ggml_in_i2s_code3, INVALID_DATA,                                                          \
      bitnet_matrix_from_ggml(36, blob_code3, sizeof blob, R128, C128, I2S, &out_m))            \
    X(ggml_out_cols, INVALID_SHAPE, bitnet_matrix_to_ggml(m, 35, bytes_out, sizeof bytes_out))  \
    X(ggml_out_short, LENGTH_MISMATCH, bitnet_matrix_to_ggml(m512, 35, bytes_out, sizeof tq2 - 1)) \
    X(ggml_out_type, UNSUPPORTED, bitnet_matrix_to_ggml(m512, 39, bytes_out, sizeof tq2))       \
    X(ggml_out_null, NULL_POINTER, bitnet_matrix_to_ggml(m512, 35, NULL, sizeof tq2))           \
    X(ggml_out_null_m, NULL_POINTER, bitnet_matrix_to_ggml(NULL, 35, bytes_out, sizeof tq2))    \
    /* Hugging Face packed weights */                                                           \
    X(hf_null, NULL_POINTER, bitnet_matrix_from_hf_packed(NULL, R128, C128, 1.0f, 0, I2S, &out_m)) \
    X(hf_null_out, NULL_POINTER, bitnet_matrix_from_hf_packed(hf, R128, C128, 1.0f, 0, I2S, NULL)) \
    X(hf_rows_not_4, INVALID_SHAPE,                                                             \
      bitnet_matrix_from_hf_packed(hf, 3, C128, 1.0f, 0, I2S, &out_m))                          \
    X(hf_code3, INVALID_DATA,                                                                   \
      bitnet_matrix_from_hf_packed(hf_code3, R128, C128, 1.0f, 0, I2S, &out_m))                 \
    X(hf_scale_nan, NON_FINITE, bitnet_matrix_from_hf_packed(hf, R128, C128, NAN, 1, I2S, &out_m)) \
    X(hf_scale_zero, INVALID_DATA,                                                              \
      bitnet_matrix_from_hf_packed(hf, R128, C128, 0.0f, 1, I2S, &out_m))                       \
    X(hf_format, INVALID_FORMAT, bitnet_matrix_from_hf_packed(hf, R128, C128, 1.0f, 0, 5, &out_m)) \
    /* conversions */                                                                           \
    X(to_format_null_m, NULL_POINTER, bitnet_matrix_to_format(NULL, I2S, &out_m))               \
    X(to_format_misaligned_m, MISALIGNED_POINTER,                                               \
      bitnet_matrix_to_format(MISALIGNED(const BitnetMatrix, spare_f), I2S, &out_m))            \
    X(to_format_null_out, NULL_POINTER, bitnet_matrix_to_format(m, I2S, NULL))                  \
    X(to_format_bad, INVALID_FORMAT, bitnet_matrix_to_format(m, 4, &out_m))                     \
    X(to_ternary_short, LENGTH_MISMATCH, bitnet_matrix_to_ternary(m, q8, ROWS * COLS - 1))      \
    X(to_ternary_null, NULL_POINTER, bitnet_matrix_to_ternary(m, NULL, ROWS * COLS))            \
    /* per-row scales */                                                                        \
    X(row_scales_in_null_m, NULL_POINTER,                                                       \
      bitnet_matrix_with_row_scales(NULL, rs_ok, R128, &out_m))                                 \
    X(row_scales_in_null, NULL_POINTER, bitnet_matrix_with_row_scales(m128, NULL, R128, &out_m)) \
    X(row_scales_in_null_out, NULL_POINTER,                                                     \
      bitnet_matrix_with_row_scales(m128, rs_ok, R128, NULL))                                   \
    X(row_scales_in_short, LENGTH_MISMATCH,                                                     \
      bitnet_matrix_with_row_scales(m128, rs_ok, R128 - 1, &out_m))                             \
    X(row_scales_in_misaligned, MISALIGNED_POINTER,                                             \
      bitnet_matrix_with_row_scales(m128, MISALIGNED(const float, spare_f), R128, &out_m))      \
    X(row_scales_in_nan, NON_FINITE, bitnet_matrix_with_row_scales(m128, rs_nan, R128, &out_m)) \
    X(row_scales_in_inf, NON_FINITE, bitnet_matrix_with_row_scales(m128, rs_inf, R128, &out_m)) \
    X(row_scales_in_zero, INVALID_DATA,                                                         \
      bitnet_matrix_with_row_scales(m128, rs_zero, R128, &out_m))                               \
    X(row_scales_in_neg, INVALID_DATA, bitnet_matrix_with_row_scales(m128, rs_neg, R128, &out_m)) \
    X(row_scales_out_null_m, NULL_POINTER, bitnet_matrix_row_scales(NULL, yf, R128))            \
    X(row_scales_out_null, NULL_POINTER, bitnet_matrix_row_scales(m128_rows, NULL, R128))       \
    X(row_scales_out_long, LENGTH_MISMATCH, bitnet_matrix_row_scales(m128_rows, yf, R128 + 1))  \
    X(row_scales_out_short, LENGTH_MISMATCH, bitnet_matrix_row_scales(m128, yf, R128 - 1))      \
    X(row_scales_to_blob, UNSUPPORTED,                                                          \
      bitnet_matrix_to_bitnet_i2s(m128_rows, bytes_out, sizeof blob))                           \
    X(row_scales_to_ggml_i2s, UNSUPPORTED,                                                      \
      bitnet_matrix_to_ggml(m128_rows, 36, bytes_out, sizeof blob))                             \
    /* int8 products */                                                                         \
    X(gemv_i8_null_m, NULL_POINTER, bitnet_gemv_i8(NULL, xi, COLS, yi, ROWS))                   \
    X(gemv_i8_null_x, NULL_POINTER, bitnet_gemv_i8(m, NULL, COLS, yi, ROWS))                    \
    X(gemv_i8_null_y, NULL_POINTER, bitnet_gemv_i8(m, xi, COLS, NULL, ROWS))                    \
    X(gemv_i8_x_short, LENGTH_MISMATCH, bitnet_gemv_i8(m, xi, COLS - 1, yi, ROWS))              \
    X(gemv_i8_y_long, LENGTH_MISMATCH, bitnet_gemv_i8(m, xi, COLS, yi, ROWS + 1))               \
    X(gemv_i8_misaligned_y, MISALIGNED_POINTER,                                                 \
      bitnet_gemv_i8(m, xi, COLS, MISALIGNED(int32_t, spare_f), ROWS))                          \
    X(gemm_i8_n0, INVALID_SHAPE, bitnet_gemm_i8(m, xi, 0, 0, yi, 0))                            \
    X(gemm_i8_n_overflow, INVALID_SHAPE, bitnet_gemm_i8(m, xi, 2 * COLS, SIZE_MAX / 2, yi, 2))  \
    X(gemm_i8_null_x, NULL_POINTER, bitnet_gemm_i8(m, NULL, 2 * COLS, 2, yi, 2 * ROWS))         \
    X(gemm_i8_null_y, NULL_POINTER, bitnet_gemm_i8(m, xi, 2 * COLS, 2, NULL, 2 * ROWS))         \
    X(gemm_i8_x_short, LENGTH_MISMATCH, bitnet_gemm_i8(m, xi, 2 * COLS - 1, 2, yi, 2 * ROWS))   \
    X(gemm_i8_x_one_row, LENGTH_MISMATCH, bitnet_gemm_i8(m, xi, COLS, 2, yi, 2 * ROWS))         \
    X(gemm_i8_y_long, LENGTH_MISMATCH, bitnet_gemm_i8(m, xi, 2 * COLS, 2, yi, 2 * ROWS + 1))    \
    X(gemm_i8_misaligned_y, MISALIGNED_POINTER,                                                 \
      bitnet_gemm_i8(m, xi, 2 * COLS, 2, MISALIGNED(int32_t, spare_f), 2 * ROWS))               \
    /* f32 products */                                                                          \
    X(gemv_f32_nan, NON_FINITE, bitnet_gemv_f32(m, xf_nan, COLS, yf, ROWS))                     \
    X(gemv_f32_inf, NON_FINITE, bitnet_gemv_f32(m, xf_inf, COLS, yf, ROWS))                     \
    X(gemv_f32_x_long, LENGTH_MISMATCH, bitnet_gemv_f32(m, xf, COLS + 1, yf, ROWS))             \
    X(gemv_f32_y_short, LENGTH_MISMATCH, bitnet_gemv_f32(m, xf, COLS, yf, ROWS - 1))            \
    X(gemv_f32_null_y, NULL_POINTER, bitnet_gemv_f32(m, xf, COLS, NULL, ROWS))                  \
    X(gemv_f32_misaligned_x, MISALIGNED_POINTER,                                                \
      bitnet_gemv_f32(m, MISALIGNED(const float, spare_f), COLS, yf, ROWS))                     \
    X(gemv_f32_misaligned_m, MISALIGNED_POINTER,                                                \
      bitnet_gemv_f32(MISALIGNED(const BitnetMatrix, spare_f), xf, COLS, yf, ROWS))             \
    X(gemm_f32_n0, INVALID_SHAPE, bitnet_gemm_f32(m, xf, 0, 0, yf, 0))                          \
    X(gemm_f32_n_overflow, INVALID_SHAPE, bitnet_gemm_f32(m, xf, 2 * COLS, SIZE_MAX, yf, 2))    \
    X(gemm_f32_nan_row2, NON_FINITE, bitnet_gemm_f32(m, xf2_nan, 2 * COLS, 2, yf, 2 * ROWS))    \
    X(gemm_f32_null_x, NULL_POINTER, bitnet_gemm_f32(m, NULL, 2 * COLS, 2, yf, 2 * ROWS))       \
    X(gemm_f32_null_m, NULL_POINTER, bitnet_gemm_f32(NULL, xf, 2 * COLS, 2, yf, 2 * ROWS))      \
    X(gemm_f32_x_long, LENGTH_MISMATCH, bitnet_gemm_f32(m, xf, 2 * COLS + 1, 2, yf, 2 * ROWS))  \
    X(gemm_f32_y_short, LENGTH_MISMATCH, bitnet_gemm_f32(m, xf, 2 * COLS, 2, yf, 2 * ROWS - 1)) \
    X(gemm_f32_y_one_row, LENGTH_MISMATCH, bitnet_gemm_f32(m, xf, 2 * COLS, 2, yf, ROWS))       \
    X(gemm_f32_misaligned_x, MISALIGNED_POINTER,                                                \
      bitnet_gemm_f32(m, MISALIGNED(const float, spare_f), 2 * COLS, 2, yf, 2 * ROWS))          \
    /* row ranges */                                                                            \
    X(rows_empty, INVALID_SHAPE, bitnet_gemv_i8_rows(m, xi, COLS, 2, 2, yi, 0))                 \
    X(rows_reversed, INVALID_SHAPE, bitnet_gemv_i8_rows(m, xi, COLS, 3, 1, yi, 2))              \
    X(rows_past_end, INVALID_SHAPE, bitnet_gemv_i8_rows(m, xi, COLS, 0, ROWS + 1, yi, ROWS + 1)) \
    X(rows_y_len, LENGTH_MISMATCH, bitnet_gemv_i8_rows(m, xi, COLS, 1, 4, yi, 4))               \
    X(rows_x_len, LENGTH_MISMATCH, bitnet_gemv_i8_rows(m, xi, COLS - 1, 1, 4, yi, 3))           \
    X(rows_null_y, NULL_POINTER, bitnet_gemv_i8_rows(m, xi, COLS, 1, 4, NULL, 3))               \
    X(rows_f32_past_end, INVALID_SHAPE, bitnet_gemv_f32_rows(m, xf, COLS, 4, 6, yf, 2))         \
    X(rows_f32_nan, NON_FINITE, bitnet_gemv_f32_rows(m, xf_nan, COLS, 0, 2, yf, 2))             \
    X(rows_f32_y_len, LENGTH_MISMATCH, bitnet_gemv_f32_rows(m, xf, COLS, 0, 2, yf, 3))          \
    X(rows_f32_misaligned_y, MISALIGNED_POINTER,                                                \
      bitnet_gemv_f32_rows(m, xf, COLS, 0, 2, MISALIGNED(float, spare_f), 2))                   \
    X(rows_gemm_n0, INVALID_SHAPE, bitnet_gemm_i8_rows(m, xi, 0, 0, 0, 2, yi, 0))               \
    X(rows_gemm_range, INVALID_SHAPE, bitnet_gemm_i8_rows(m, xi, 2 * COLS, 2, 0, 0, yi, 0))     \
    X(rows_gemm_n_overflow, INVALID_SHAPE,                                                      \
      bitnet_gemm_i8_rows(m, xi, 2 * COLS, SIZE_MAX / 2, 0, 2, yi, 4))                          \
    X(rows_gemm_x_len, LENGTH_MISMATCH, bitnet_gemm_i8_rows(m, xi, COLS, 2, 1, 3, yi, 4))       \
    X(rows_gemm_y_len, LENGTH_MISMATCH, bitnet_gemm_i8_rows(m, xi, 2 * COLS, 2, 1, 3, yi, 2))   \
    X(rows_gemm_null_y, NULL_POINTER, bitnet_gemm_i8_rows(m, xi, 2 * COLS, 2, 1, 3, NULL, 4))   \
    X(rows_gemm_f32_n0, INVALID_SHAPE, bitnet_gemm_f32_rows(m, xf, 0, 0, 0, 2, yf, 0))          \
    X(rows_gemm_f32_past_end, INVALID_SHAPE,                                                    \
      bitnet_gemm_f32_rows(m, xf, 2 * COLS, 2, 3, ROWS + 1, yf, 2 * (ROWS - 2)))                \
    X(rows_gemm_f32_x_len, LENGTH_MISMATCH,                                                     \
      bitnet_gemm_f32_rows(m, xf, 2 * COLS - 1, 2, 1, 3, yf, 4))                                \
    X(rows_gemm_f32_y_len, LENGTH_MISMATCH,                                                     \
      bitnet_gemm_f32_rows(m, xf, 2 * COLS, 2, 1, 3, yf, 2))                                    \
    X(rows_gemm_f32_nan_row2, NON_FINITE,                                                       \
      bitnet_gemm_f32_rows(m, xf2_nan, 2 * COLS, 2, 1, 3, yf, 4))                               \
    X(rows_gemm_f32_null_x, NULL_POINTER, bitnet_gemm_f32_rows(m, NULL, 2 * COLS, 2, 1, 3, yf, 4)) \
    X(rows_gemm_f32_misaligned_y, MISALIGNED_POINTER,                                           \
      bitnet_gemm_f32_rows(m, xf, 2 * COLS, 2, 1, 3, MISALIGNED(float, spare_f), 4))            \
    /* the quantizer */                                                                         \
    X(quant_null_x, NULL_POINTER, bitnet_quantize_activations(NULL, COLS, q8, &out_absmax))     \
    X(quant_null_q, NULL_POINTER, bitnet_quantize_activations(xf, COLS, NULL, &out_absmax))     \
    X(quant_null_absmax, NULL_POINTER, bitnet_quantize_activations(xf, COLS, q8, NULL))         \
    X(quant_len0, INVALID_SHAPE, bitnet_quantize_activations(xf, 0, q8, &out_absmax))           \
    X(quant_nan, NON_FINITE, bitnet_quantize_activations(xf_nan, COLS, q8, &out_absmax))     \
    X(quant_misaligned_absmax, MISALIGNED_POINTER,                                              \
      bitnet_quantize_activations(xf, COLS, q8, MISALIGNED(float, spare_f)))                    \
    /* the a4.8 quantizers */                                                                   \
    X(i4_null_x, NULL_POINTER, bitnet_quantize_activations_i4(NULL, COLS, q8, &out_absmax, 0))  \
    X(i4_null_q, NULL_POINTER, bitnet_quantize_activations_i4(xf, COLS, NULL, &out_absmax, 0))  \
    X(i4_null_scale, NULL_POINTER, bitnet_quantize_activations_i4(xf, COLS, q8, NULL, 1))       \
    X(i4_len0, INVALID_SHAPE, bitnet_quantize_activations_i4(xf, 0, q8, &out_absmax, 0))        \
    X(i4_nan, NON_FINITE, bitnet_quantize_activations_i4(xf_nan, COLS, q8, &out_absmax, 0))     \
    X(i4_inf, NON_FINITE, bitnet_quantize_activations_i4(xf_inf, COLS, q8, &out_absmax, 1))     \
    X(i4_mode2, INVALID_DATA, bitnet_quantize_activations_i4(xf, COLS, q8, &out_absmax, 2))     \
    X(i4_mode_neg, INVALID_DATA, bitnet_quantize_activations_i4(xf, COLS, q8, &out_absmax, -1)) \
    X(i4_misaligned_scale, MISALIGNED_POINTER,                                                  \
      bitnet_quantize_activations_i4(xf, COLS, q8, MISALIGNED(float, spare_f), 0))              \
    X(topk_null_x, NULL_POINTER, bitnet_quantize_activations_topk(NULL, COLS, 0.5f, q8, &out_absmax)) \
    X(topk_null_q, NULL_POINTER, bitnet_quantize_activations_topk(xf, COLS, 0.5f, NULL, &out_absmax)) \
    X(topk_null_absmax, NULL_POINTER, bitnet_quantize_activations_topk(xf, COLS, 0.5f, q8, NULL)) \
    X(topk_len0, INVALID_SHAPE, bitnet_quantize_activations_topk(xf, 0, 0.5f, q8, &out_absmax)) \
    X(topk_nan, NON_FINITE, bitnet_quantize_activations_topk(xf_nan, COLS, 0.5f, q8, &out_absmax)) \
    X(topk_ratio_nan, NON_FINITE, bitnet_quantize_activations_topk(xf, COLS, NAN, q8, &out_absmax)) \
    X(topk_ratio_0, INVALID_DATA, bitnet_quantize_activations_topk(xf, COLS, 0.0f, q8, &out_absmax)) \
    X(topk_ratio_big, INVALID_DATA, bitnet_quantize_activations_topk(xf, COLS, 1.5f, q8, &out_absmax))

#define DEFINE_CALL(name, status, call) \
    static int call_##name(void) { return (int)(call); }
BAD_CALLS(DEFINE_CALL)

struct bad_call {
    const char *name;
    int (*call)(void);
    int expected;
};
#define TABLE_ROW(name, status, call) {#name, call_##name, BITNET_STATUS_##status},
static const struct bad_call table[] = {BAD_CALLS(TABLE_ROW)};

/* Products that must fail when BITNET_KERNEL names a kernel that cannot run. */
#define KERNEL_CALLS(X)                                                                   \
    X(k_gemv_i8, KERNEL_UNAVAILABLE, bitnet_gemv_i8(m, xi, COLS, yi, ROWS))               \
    X(k_gemv_f32, KERNEL_UNAVAILABLE, bitnet_gemv_f32(m, xf, COLS, yf, ROWS))             \
    X(k_gemm_f32, KERNEL_UNAVAILABLE, bitnet_gemm_f32(m, xf, 2 * COLS, 2, yf, 2 * ROWS))  \
    X(k_gemm_i8, KERNEL_UNAVAILABLE, bitnet_gemm_i8(m, xi, 2 * COLS, 2, yi, 2 * ROWS))    \
    X(k_rows_i8, KERNEL_UNAVAILABLE, bitnet_gemv_i8_rows(m, xi, COLS, 1, 3, yi, 2))       \
    X(k_rows_f32, KERNEL_UNAVAILABLE, bitnet_gemv_f32_rows(m, xf, COLS, 1, 3, yf, 2))     \
    X(k_rows_gemm, KERNEL_UNAVAILABLE, bitnet_gemm_i8_rows(m, xi, 2 * COLS, 2, 1, 3, yi, 4)) \
    X(k_rows_gemm_f32, KERNEL_UNAVAILABLE,                                                \
      bitnet_gemm_f32_rows(m, xf, 2 * COLS, 2, 1, 3, yf, 4))
KERNEL_CALLS(DEFINE_CALL)
static const struct bad_call kernel_table[] = {KERNEL_CALLS(TABLE_ROW)};

static void run_table(const struct bad_call *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        reset_outputs();
        int st = t[i].call();
        const char *detail = bitnet_last_error();
        if (st != t[i].expected) {
            fprintf(stderr, "%s: expected status %d (%s), got %d: %s: %s\n", t[i].name,
                    t[i].expected, bitnet_status_message(t[i].expected), st,
                    bitnet_status_message(st), detail);
            failures++;
        }
        if (getenv("BAD_CALLS_VERBOSE")) /* how a C program prints a failure */
            printf("%-28s %s: %s\n", t[i].name, bitnet_status_message(st), detail);
        if (!outputs_untouched()) {
            fprintf(stderr, "%s: a failed call wrote to an output\n", t[i].name);
            failures++;
        }
        if (detail == NULL || detail[0] == '\0') {
            fprintf(stderr, "%s: bitnet_last_error() is empty after a failure\n", t[i].name);
            failures++;
        }
    }
}

static void make_fixtures(void) {
    uint32_t s = 12345;
    for (size_t i = 0; i < ROWS * COLS; i++) {
        s = s * 1103515245u + 12345u;
        w[i] = (float)((int)(s >> 16) % 200 - 100) / 50.0f;
        trits[i] = (int8_t)((int)(s >> 20) % 3 - 1);
    }
    memcpy(w_nan, w, sizeof w);
    memcpy(w_inf, w, sizeof w);
    w_nan[ROWS * COLS - 1] = NAN;
    w_inf[7] = -INFINITY;
    memcpy(trits_2, trits, sizeof trits);
    memcpy(trits_m2, trits, sizeof trits);
    trits_2[123] = 2;
    trits_m2[ROWS * COLS - 1] = -2;
    for (size_t i = 0; i < 2 * COLS; i++) {
        xf[i] = (float)i / 37.0f - 4.0f;
        xi[i] = (int8_t)(i * 7);
    }
    memcpy(xf_nan, xf, sizeof xf_nan);
    memcpy(xf_inf, xf, sizeof xf_inf);
    memcpy(xf2_nan, xf, sizeof xf2_nan);
    xf_nan[COLS / 2] = NAN;
    xf_inf[0] = INFINITY;
    xf2_nan[COLS + 3] = NAN; /* the second row only: nothing may be written for the first */

    if (bitnet_matrix_from_ternary(trits, ROWS, COLS, 0.25f, BITNET_FORMAT_I2S, &m) ||
        bitnet_matrix_from_ternary(trits, R128, C128, 0.25f, BITNET_FORMAT_I2S, &m128)) {
        fprintf(stderr, "fixtures: %s\n", bitnet_last_error());
        exit(1);
    }
    packed_len = bitnet_matrix_packed_size(m);
    packed = (uint8_t *)malloc(packed_len);
    packed_bad = (uint8_t *)malloc(packed_len);
    if (!packed || !packed_bad || packed_len > sizeof bytes_out ||
        bitnet_matrix_packed_bytes(m, packed, packed_len) ||
        bitnet_matrix_to_bitnet_i2s(m128, blob, sizeof blob)) {
        fprintf(stderr, "fixtures: %s\n", bitnet_last_error());
        exit(1);
    }
    memcpy(packed_bad, packed, packed_len);
    packed_bad[packed_len / 2] |= 0x30; /* one bit pair becomes code 3 */
    memcpy(blob_code3, blob, sizeof blob);
    memcpy(blob_nan, blob, sizeof blob);
    blob_code3[5] = 0xFF;
    float nan = NAN;
    memcpy(blob_nan + R128 * C128 / 4, &nan, sizeof nan);

    for (size_t i = 0; i < sizeof trits512; i++) trits512[i] = (int8_t)(i % 3) - 1;
    if (bitnet_matrix_from_ternary(trits512, R128, C512, 0.25f, BITNET_FORMAT_I2S, &m512) ||
        bitnet_matrix_to_ggml(m512, BITNET_GGML_TYPE_TQ2_0, tq2, sizeof tq2) ||
        bitnet_matrix_to_ggml(m512, BITNET_GGML_TYPE_TQ1_0, tq1, sizeof tq1) ||
        bitnet_matrix_with_row_scales(m128, rs_ok, R128, &m128_rows)) {
        fprintf(stderr, "fixtures: %s\n", bitnet_last_error());
        exit(1);
    }
    memcpy(tq2_code3, tq2, sizeof tq2);
    tq2_code3[66 + 3] = 0xFF; /* block 1 (row 0), byte 3 */
    memcpy(tq2_mixed, tq2, sizeof tq2);
    tq2_mixed[7 * 66 + 65] = 0x38; /* the last block's d: 0.5 instead of 0.25 */
    memcpy(tq2_rows, tq2, sizeof tq2);
    for (int b = 4; b < 8; b++) tq2_rows[b * 66 + 65] = 0x38; /* rows 2 and 3: d = 0.5 */
    memcpy(tq2_nan, tq2, sizeof tq2);
    tq2_nan[64] = 0x00, tq2_nan[65] = 0x7E;
    memcpy(tq1_bad, tq1, sizeof tq1);
    tq1_bad[54 + 10] = 1; /* never written by ggml: ceil(q * 256 / 243) skips 1 */
    memset(hf, 0x55, sizeof hf);
    memcpy(hf_code3, hf, sizeof hf);
    hf_code3[17] = 0xD5;
}

static void check_messages(void) {
    const char *unknown = bitnet_status_message(-1);
    CHECK(unknown != NULL && strcmp(unknown, "unknown status code") == 0);
    CHECK(strcmp(bitnet_status_message(14), unknown) == 0);
    CHECK(strcmp(bitnet_status_message(INT_MAX), unknown) == 0);
    CHECK(strcmp(bitnet_status_message(INT_MIN), unknown) == 0);
    CHECK(BITNET_STATUS_INTERNAL == 10 && BITNET_STATUS_MISALIGNED_POINTER == 11); /* an ABI */
    CHECK(BITNET_STATUS_IO == 12 && BITNET_STATUS_NOT_FOUND == 13);
    for (int a = BITNET_STATUS_OK; a <= BITNET_STATUS_NOT_FOUND; a++) {
        const char *ma = bitnet_status_message(a);
        CHECK(ma != NULL && strlen(ma) > 5 && strcmp(ma, unknown) != 0);
        for (int b = BITNET_STATUS_OK; b < a; b++) CHECK(strcmp(ma, bitnet_status_message(b)) != 0);
    }
}

/* The detail names the C parameter, the index and the value at fault; joined with the
 * message it reads as one line that says each thing once. */
static void check_detail(int st, int expected, const char *want) {
    const char *detail = bitnet_last_error();
    if (st != expected || strcmp(detail, want) != 0) {
        fprintf(stderr, "expected %s: %s\n     got %s: %s\n", bitnet_status_message(expected),
                want, bitnet_status_message(st), detail);
        failures++;
    }
}

static void check_details(void) {
    check_detail(bitnet_gemv_f32(m, xf_nan, COLS, yf, ROWS), BITNET_STATUS_NON_FINITE,
                 "x[150] is NaN or infinity");
    check_detail(bitnet_gemm_f32(m, xf2_nan, 2 * COLS, 2, yf, 2 * ROWS),
                 BITNET_STATUS_NON_FINITE, "x[303] is NaN or infinity");
    check_detail(bitnet_matrix_from_f32(w_inf, ROWS, COLS, I2S, &out_m),
                 BITNET_STATUS_NON_FINITE, "w[7] is NaN or infinity");
    check_detail(bitnet_matrix_from_ternary(trits_2, ROWS, COLS, 1.0f, I2S, &out_m),
                 BITNET_STATUS_INVALID_DATA, "trits[123] = 2 is not -1, 0 or 1");
    check_detail(bitnet_matrix_from_ternary(trits, ROWS, COLS, 0.0f, I2S, &out_m),
                 BITNET_STATUS_INVALID_DATA, "scale = 0 is not positive");
    check_detail(bitnet_gemm_i8(m, xi, COLS, 2, yi, 2 * ROWS), BITNET_STATUS_LENGTH_MISMATCH,
                 "x_len is 300, expected 600 (n * cols)");
    check_detail(bitnet_gemv_i8(m, xi, COLS, NULL, ROWS), BITNET_STATUS_NULL_POINTER,
                 "y is NULL");
    check_detail(bitnet_matrix_from_f32(w, ROWS, COLS, 4, &out_m), BITNET_STATUS_INVALID_FORMAT,
                 "format = 4 is not a BITNET_FORMAT_* value (0, 1, 2 or 3)");

    /* Printed as "<message>: <detail>". */
    char line[256];
    int st = bitnet_gemv_i8(m, xi, COLS - 1, yi, ROWS);
    snprintf(line, sizeof line, "%s: %s", bitnet_status_message(st), bitnet_last_error());
    CHECK(strcmp(line, "length mismatch: x_len is 299, expected 300 (cols)") == 0);
    st = bitnet_gemv_f32(m, MISALIGNED(const float, spare_f), COLS, yf, ROWS);
    snprintf(line, sizeof line, "%s: %s", bitnet_status_message(st), bitnet_last_error());
    CHECK(strncmp(line, "misaligned pointer: x = 0x", 26) == 0);
    CHECK(strstr(line, " is not a multiple of 4 bytes") != NULL);
}

/* ggml sizes: 0, with a reason, for a type or shape this library does not take; and the
 * block a scale mismatch names. */
static void check_ggml(void) {
    CHECK(bitnet_ggml_size(35, R128, C512) == sizeof tq2);
    CHECK(bitnet_ggml_size(34, R128, C512) == sizeof tq1);
    CHECK(bitnet_ggml_size(36, R128, C128) == sizeof blob);
    CHECK(bitnet_ggml_size(39, R128, C512) == 0);
    CHECK(strstr(bitnet_last_error(), "TL2") && strstr(bitnet_last_error(), "MXFP4"));
    CHECK(bitnet_ggml_size(2, R128, C512) == 0 && strstr(bitnet_last_error(), "type 2"));
    CHECK(bitnet_ggml_size(35, R128, 300) == 0 && strstr(bitnet_last_error(), "256"));
    CHECK(bitnet_ggml_size(36, R128, 64) == 0 && strstr(bitnet_last_error(), "128"));
    CHECK(bitnet_ggml_size(35, 0, C512) == 0);
    CHECK(bitnet_ggml_size(35, SIZE_MAX / 2, C512) == 0);
    CHECK(bitnet_matrix_from_ggml(35, tq2_mixed, sizeof tq2, R128, C512, I2S, &out_m) ==
          BITNET_STATUS_INVALID_DATA);
    CHECK(strstr(bitnet_last_error(), "row 3, block 1 has |d| = 0.5") &&
          strstr(bitnet_last_error(), "(row 3, block 0) has |d| = 0.25"));
    /* Blocks that agree within each row: per-row scales. */
    BitnetMatrix *pr = NULL;
    float s[R128];
    CHECK(bitnet_matrix_from_ggml(35, tq2_rows, sizeof tq2, R128, C512, I2S, &pr) ==
          BITNET_STATUS_OK);
    CHECK(bitnet_matrix_has_row_scales(pr) == 1 && bitnet_matrix_has_row_scales(m512) == 0);
    CHECK(bitnet_matrix_row_scales(pr, s, R128) == BITNET_STATUS_OK);
    CHECK(s[0] == 0.25f && s[1] == 0.25f && s[2] == 0.5f && s[3] == 0.5f);
    /* scale() of a per-row matrix: NaN, and the detail says where the scales are. */
    CHECK(isnan(bitnet_matrix_scale(pr)));
    CHECK(strstr(bitnet_last_error(), "bitnet_matrix_row_scales"));
    bitnet_matrix_free(pr);
    CHECK(bitnet_matrix_from_hf_packed(hf, 6, C128, 1.0f, 0, I2S, &out_m) ==
          BITNET_STATUS_INVALID_SHAPE);
    CHECK(strstr(bitnet_last_error(), "multiple of 4"));
}

static void check_null_handles(void) {
    bitnet_matrix_free(NULL);
    CHECK(bitnet_matrix_rows(NULL) == 0);
    CHECK(bitnet_matrix_cols(NULL) == 0);
    CHECK(isnan(bitnet_matrix_scale(NULL)));
    CHECK(bitnet_matrix_format(NULL) == -1);
    CHECK(bitnet_matrix_has_row_scales(NULL) == -1);
    CHECK(bitnet_matrix_row_tile(NULL) == 0);
    CHECK(bitnet_matrix_packed_size(NULL) == 0);
}

/* The KV cache's failures: each leaves the cache as it was and names its cause. */
static void check_kv_bad_calls(void) {
    enum { H = 2, D = 16 };
    float k[2 * H * D], v[2 * H * D], q[3 * D], out[4 * D], kv1[H * D], kv2[H * D];
    for (size_t i = 0; i < 2 * H * D; i++) k[i] = v[i] = (float)i / 7.0f;
    for (size_t i = 0; i < 3 * D; i++) q[i] = 0.25f;
    BitnetKvCache *c = NULL;
    CHECK(bitnet_kv_new(H, D, 3, 1, NULL) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_kv_new(0, D, 3, 1, &c) == BITNET_STATUS_INVALID_SHAPE && c == NULL);
    CHECK(bitnet_kv_new(H, 0, 3, 1, &c) == BITNET_STATUS_INVALID_SHAPE && c == NULL);
    CHECK(bitnet_kv_new(H, 65537, 3, 1, &c) == BITNET_STATUS_INVALID_SHAPE && c == NULL);
    CHECK(bitnet_kv_new(H, D, SIZE_MAX, 1, &c) == BITNET_STATUS_INVALID_SHAPE && c == NULL);
    CHECK(bitnet_kv_new(H, D, 3, 1, &c) == BITNET_STATUS_OK && c != NULL);
    CHECK(bitnet_kv_attend(c, q, H, out) == BITNET_STATUS_INVALID_SHAPE); /* empty */
    CHECK(bitnet_kv_append(NULL, k, v, 1) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_kv_append(c, NULL, v, 1) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_kv_append(c, k, MISALIGNED(float, v), 1) == BITNET_STATUS_MISALIGNED_POINTER);
    k[H * D + 3] = NAN;
    CHECK(bitnet_kv_append(c, k, v, 2) == BITNET_STATUS_NON_FINITE);
    CHECK(strstr(bitnet_last_error(), "35") != NULL);
    k[H * D + 3] = 1e9f; /* divided by its channel factor and rotated, beyond the fp16 range */
    CHECK(bitnet_kv_append(c, k, v, 2) == BITNET_STATUS_INVALID_DATA);
    k[H * D + 3] = 0.5f;
    CHECK(bitnet_kv_len(c) == 0 && bitnet_kv_bytes(c) == 0);
    CHECK(bitnet_kv_append(c, k, v, SIZE_MAX / 4) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_kv_append(c, k, v, 2) == BITNET_STATUS_OK);
    CHECK(bitnet_kv_append(c, k, v, 2) == BITNET_STATUS_INVALID_SHAPE); /* capacity 3 */
    CHECK(bitnet_kv_len(c) == 2);
    CHECK(bitnet_kv_attend(c, q, 3, out) == BITNET_STATUS_INVALID_SHAPE); /* 3 % 2 */
    CHECK(bitnet_kv_attend(c, q, 0, out) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_kv_attend(c, q, H, NULL) == BITNET_STATUS_NULL_POINTER);
    q[1] = INFINITY;
    out[0] = 42.0f;
    CHECK(bitnet_kv_attend(c, q, H, out) == BITNET_STATUS_NON_FINITE && out[0] == 42.0f);
    q[1] = 0.25f;
    CHECK(bitnet_kv_dequantize(c, 2, kv1, kv2) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_kv_dequantize(c, 0, NULL, kv2) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_kv_scores(c, q, H, 1, 3, out) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_kv_scores(c, q, H, 2, 1, out) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_kv_weighted_v(c, q, H, 0, 3, out) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_kv_len(NULL) == 0 && bitnet_kv_bytes(NULL) == 0);
    CHECK(bitnet_kv_attend(NULL, q, H, out) == BITNET_STATUS_NULL_POINTER);
    bitnet_kv_free(c);
    bitnet_kv_free(NULL);
}

/* The container's failures: NULLs, missing files, corrupt and truncated bytes, unknown
 * names; no handle comes out of a failed call. */
static void check_container_bad_calls(void) {
    BitnetContainer *c = NULL;
    const BitnetMatrix *ms[2] = {m, m128};
    const char *names[2] = {"a", "a"};
    const char *one[1] = {NULL};
    CHECK(bitnet_container_save(NULL, ms, names, 1) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_container_save("/tmp/x.bnk", NULL, names, 1) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_container_save("/tmp/x.bnk", ms, one, 1) == BITNET_STATUS_NULL_POINTER);
    CHECK(strstr(bitnet_last_error(), "names[0]") != NULL);
    CHECK(bitnet_container_save("/tmp/x.bnk", ms, names, 2) == BITNET_STATUS_INVALID_DATA);
    CHECK(strstr(bitnet_last_error(), "twice") != NULL);
    CHECK(bitnet_container_save("/nonexistent-dir/x.bnk", ms, names, 1) == BITNET_STATUS_IO);
    CHECK(bitnet_container_open(NULL, &c) == BITNET_STATUS_NULL_POINTER && c == NULL);
    CHECK(bitnet_container_open("/tmp/x.bnk", NULL) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_container_open("/nonexistent-dir/x.bnk", &c) == BITNET_STATUS_IO && c == NULL);
    static const unsigned char junk[64] = "BITNETKC\001"; /* version 1, lengths 0 */
    CHECK(bitnet_container_from_memory(junk, sizeof junk, &c) == BITNET_STATUS_INVALID_DATA);
    CHECK(bitnet_container_from_memory(junk, 3, &c) == BITNET_STATUS_INVALID_DATA && c == NULL);
    CHECK(bitnet_container_from_memory(NULL, 3, &c) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_container_len(NULL) == 0);
    CHECK(bitnet_container_name(NULL, 0) == NULL);
    out_m = SENTINEL_M;
    CHECK(bitnet_container_get(NULL, "a", &out_m) == BITNET_STATUS_NULL_POINTER);
    /* A valid empty container: every name is missing. */
    char path[] = "/tmp/bitnet_bad_calls_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK(bitnet_container_save(path, NULL, NULL, 0) == BITNET_STATUS_OK);
    CHECK(bitnet_container_open(path, &c) == BITNET_STATUS_OK && bitnet_container_len(c) == 0);
    CHECK(bitnet_container_get(c, "a", &out_m) == BITNET_STATUS_NOT_FOUND && out_m == SENTINEL_M);
    CHECK(bitnet_container_get(c, NULL, &out_m) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_container_get(c, "a", NULL) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_container_name(c, 0) == NULL);
    bitnet_container_free(c);
    remove(path);
    remove("/tmp/x.bnk");
}

/* The engine's calls (issue 13): each bad call returns its status and touches no output. */
static void check_engine_bad_calls(void) {
    BitnetActivations *qa = NULL;
    CHECK(bitnet_quantize_once(NULL, COLS, 1, COLS, &qa) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_quantize_once(xf, COLS, 0, COLS, &qa) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_quantize_once(xf, COLS - 1, 1, COLS, &qa) == BITNET_STATUS_LENGTH_MISMATCH);
    CHECK(bitnet_quantize_once(xf_nan, COLS, 1, COLS, &qa) == BITNET_STATUS_NON_FINITE);
    CHECK(bitnet_quantize_once(xf, COLS, 1, COLS, NULL) == BITNET_STATUS_NULL_POINTER);
    CHECK(qa == NULL);
    CHECK(bitnet_quantize_once(xf, 2 * COLS, 2, COLS, &qa) == BITNET_STATUS_OK);
    reset_outputs();
    CHECK(bitnet_gemm_f32_quantized(m, qa, yf, ROWS) == BITNET_STATUS_LENGTH_MISMATCH);
    CHECK(bitnet_gemm_f32_quantized(m128, qa, yf, 2 * R128) == BITNET_STATUS_LENGTH_MISMATCH);
    CHECK(bitnet_gemm_f32_quantized(m, NULL, yf, 2 * ROWS) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_gemm_i8_quantized(m, qa, NULL, 2 * ROWS) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_gemm_i8_quantized(m, qa, yi, 2 * ROWS + 1) == BITNET_STATUS_LENGTH_MISMATCH);
    bitnet_activations_free(qa);
    bitnet_activations_free(NULL);

    const BitnetMatrix *ms[2] = {m, m}, *mixed[2] = {m, m128}, *with_null[2] = {m, NULL};
    float y2[2 * ROWS];
    float *ys[2] = {yf, y2}, *ys_null[2] = {yf, NULL}, *ys_same[2] = {yf, yf};
    size_t lens[2] = {ROWS, ROWS}, lens_bad[2] = {ROWS, ROWS + 1};
    size_t bytes = 0;
    CHECK(bitnet_workspace_size(ms, 2, 1, &bytes) == BITNET_STATUS_OK);
    CHECK(bitnet_workspace_size(ms, 0, 1, &bytes) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_workspace_size(ms, 17, 1, &bytes) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_workspace_size(mixed, 2, 1, &bytes) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_workspace_size(ms, 2, 1, NULL) == BITNET_STATUS_NULL_POINTER);
    unsigned char *ws = (unsigned char *)malloc(bytes);
    CHECK(ws != NULL);
    reset_outputs();
    memset(y2, 0xA5, sizeof y2);
    CHECK(bitnet_gemv_multi_f32(NULL, 2, xf, COLS, ys, lens, NULL, 0) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_gemv_multi_f32(ms, 0, xf, COLS, ys, lens, NULL, 0) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_gemv_multi_f32(ms, 17, xf, COLS, ys, lens, NULL, 0) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_gemv_multi_f32(with_null, 2, xf, COLS, ys, lens, NULL, 0) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_gemv_multi_f32(mixed, 2, xf, COLS, ys, lens, NULL, 0) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf, COLS - 1, ys, lens, NULL, 0) == BITNET_STATUS_LENGTH_MISMATCH);
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf, COLS, ys_null, lens, NULL, 0) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf, COLS, ys, lens_bad, NULL, 0) == BITNET_STATUS_LENGTH_MISMATCH);
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf, COLS, ys, NULL, NULL, 0) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf_nan, COLS, ys, lens, NULL, 0) == BITNET_STATUS_NON_FINITE);
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf_nan, COLS, ys, lens, ws, bytes) == BITNET_STATUS_NON_FINITE);
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf, COLS, ys, lens, ws, bytes - 1) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_gemm_multi_f32(ms, 2, xf, COLS, 0, ys, lens, ws, bytes) == BITNET_STATUS_INVALID_SHAPE);
    /* With caller memory, outputs may not overlap each other, x or the workspace. */
    CHECK(bitnet_gemv_multi_f32(ms, 2, xf, COLS, ys_same, lens, ws, bytes) == BITNET_STATUS_INVALID_DATA);
    {
        float *ys_ws[2] = {yf, (float *)(void *)ws};
        CHECK(bitnet_gemv_multi_f32(ms, 2, xf, COLS, ys_ws, lens, ws, bytes) == BITNET_STATUS_INVALID_DATA);
    }
    unsigned char sentinel[sizeof y2];
    memset(sentinel, 0xA5, sizeof sentinel);
    CHECK(memcmp(y2, sentinel, sizeof y2) == 0);
    for (size_t i = 0; i < 4 * ROWS; i++) CHECK(memcmp(&yf[i], sentinel, sizeof(float)) == 0);
    free(ws);

    size_t list[3] = {0, ROWS, 1}, good[2] = {4, 0};
    CHECK(bitnet_gemv_f32_row_list(m, xf, COLS, list, 3, yf, 3) == BITNET_STATUS_INVALID_SHAPE);
    CHECK(bitnet_gemv_f32_row_list(m, xf, COLS, good, 2, yf, 3) == BITNET_STATUS_LENGTH_MISMATCH);
    CHECK(bitnet_gemv_f32_row_list(m, xf, COLS, NULL, 2, yf, 2) == BITNET_STATUS_NULL_POINTER);
    CHECK(bitnet_gemv_f32_row_list(m, xf_nan, COLS, good, 2, yf, 2) == BITNET_STATUS_NON_FINITE);
    CHECK(bitnet_gemv_f32_row_list(m, xf, COLS + 1, good, 2, yf, 2) == BITNET_STATUS_LENGTH_MISMATCH);
    for (size_t i = 0; i < 4 * ROWS; i++) CHECK(memcmp(&yf[i], sentinel, sizeof(float)) == 0);
}

int main(int argc, char **argv) {
    make_fixtures();
    size_t rows = 0;
    if (argc > 1 && strcmp(argv[1], "kernel-unavailable") == 0) {
        /* BITNET_KERNEL names a kernel this build or CPU lacks: no silent fallback. */
        const char *name = bitnet_kernel_name();
        CHECK(name != NULL && strncmp(name, "unavailable: ", 13) == 0);
        CHECK(name != NULL && strstr(name, "no-such-kernel") != NULL);
        run_table(kernel_table, sizeof kernel_table / sizeof kernel_table[0]);
        rows = sizeof kernel_table / sizeof kernel_table[0];
    } else {
        const char *name = bitnet_kernel_name();
        CHECK(name != NULL && strncmp(name, "unavailable", 11) != 0);
        run_table(table, sizeof table / sizeof table[0]);
        rows = sizeof table / sizeof table[0];
        check_details();
        check_ggml();
        check_kv_bad_calls();
        check_container_bad_calls();
        check_engine_bad_calls();
        /* A failure's detail names the problem, and survives a later successful call. */
        CHECK(bitnet_gemv_i8(m, xi, COLS - 1, yi, ROWS) == BITNET_STATUS_LENGTH_MISMATCH);
        CHECK(strstr(bitnet_last_error(), "299") != NULL);
        CHECK(bitnet_gemv_i8(m, xi, COLS, yi, ROWS) == BITNET_STATUS_OK);
        CHECK(strstr(bitnet_last_error(), "299") != NULL);
    }
    check_messages();
    check_null_handles();
    bitnet_matrix_free(m);
    bitnet_matrix_free(m128);
    bitnet_matrix_free(m128_rows);
    bitnet_matrix_free(m512);
    free(packed);
    free(packed_bad);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("bad calls: %zu rows, each with its status, outputs untouched\n", rows);
    return 0;
}
