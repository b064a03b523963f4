/* The C API's happy path, checked against plain C loops that follow docs/FORMATS.md to the letter:
 * absmean ternarization, absmax int8 quantization, the exact int32 product and the rescale,
 * and bitnet.cpp's I2_S blob layout. Every float result is compared bit for bit.
 *
 * Valid C11 and C++17 (tests/capi.rs compiles it both ways, -Wall -Wextra -Werror -pedantic),
 * linked against the static and the shared library. Exit status 0 means every check held.
 */
#define _POSIX_C_SOURCE 200809L
#include "bitnet_kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(BITNET_KERNELS_VERSION_MAJOR) || !defined(BITNET_KERNELS_VERSION_MINOR) || \
    !defined(BITNET_KERNELS_VERSION_PATCH)
#error "the header must define the version macros"
#endif

static int checks = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define OK(call)                                                                       \
    do {                                                                               \
        int st_ = (int)(call);                                                         \
        checks++;                                                                      \
        if (st_ != BITNET_STATUS_OK) {                                                 \
            fprintf(stderr, "%s:%d: %s returned %d (%s): %s\n", __FILE__, __LINE__,    \
                    #call, st_, bitnet_status_message(st_), bitnet_last_error());      \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}
/* Uniform in [-2, 2) with steps of 1/64, so exact ties (|w| == m/2, x*s == k + 0.5) occur. */
static float next_f32(void) { return (float)((int)(next_u32() % 256) - 128) / 64.0f; }
static int8_t next_i8(void) { return (int8_t)(next_u32() & 0xFF); }

/* docs/FORMATS.md §1, weights: m = mean|W| summed in double, rounded to float, floored at 1e-5;
 * t = clamp(round_half_even(w * (1/m)), -1, 1) in float. rintf rounds half to even under
 * the default rounding mode. */
static float ref_ternarize(const float *w, size_t n, int8_t *t) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)fabsf(w[i]);
    float m = (float)(sum / (double)n);
    if (m < 1e-5f) m = 1e-5f;
    float inv = 1.0f / m;
    for (size_t i = 0; i < n; i++) {
        float v = rintf(w[i] * inv);
        t[i] = (int8_t)(v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v);
    }
    return m;
}

/* docs/FORMATS.md §1, activations: a = max(max|x|, 1e-5); q = clamp(round_half_even(x * (127/a))). */
static float ref_quantize(const float *x, size_t n, int8_t *q) {
    float a = 0.0f;
    for (size_t i = 0; i < n; i++) a = fabsf(x[i]) > a ? fabsf(x[i]) : a;
    if (a < 1e-5f) a = 1e-5f;
    float s = 127.0f / a;
    for (size_t i = 0; i < n; i++) {
        float v = rintf(x[i] * s);
        q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v);
    }
    return a;
}

/* acc[r] = sum_c t[r][c] * x[c]: |acc| <= 128 * cols, exact in int32 for cols < 2^24. */
static void ref_gemv_i8(const int8_t *t, size_t rows, size_t cols, const int8_t *x, int32_t *acc) {
    for (size_t r = 0; r < rows; r++) {
        int32_t s = 0;
        for (size_t c = 0; c < cols; c++) s += (int32_t)t[r * cols + c] * (int32_t)x[c];
        acc[r] = s;
    }
}

/* The BitLinear forward pass: y = (float)acc * (m * (a / 127)). */
static void ref_gemv_f32(const int8_t *t, float m, size_t rows, size_t cols, const float *x,
                         float *y) {
    int8_t *q = (int8_t *)xmalloc(cols);
    int32_t *acc = (int32_t *)xmalloc(rows * sizeof *acc);
    float a = ref_quantize(x, cols, q);
    ref_gemv_i8(t, rows, cols, q, acc);
    float f = m * (a / 127.0f);
    for (size_t r = 0; r < rows; r++) y[r] = (float)acc[r] * f;
    free(q);
    free(acc);
}

/* bitnet.cpp's I2_S blob (docs/FORMATS.md §2): over the flattened row-major weights, blocks of 128
 * in 32 bytes; byte j of a block holds weight j in bits 7-6, j+32 in 5-4, j+64 in 3-2, j+96 in
 * 1-0, as code t + 1; then a 32-byte tail starting with the f32 scale (little-endian x86/ARM). */
static uint8_t *ref_bitnet_blob(const int8_t *t, size_t n, float scale, size_t *len) {
    *len = n / 4 + 32;
    uint8_t *b = (uint8_t *)xmalloc(*len);
    memset(b, 0, *len);
    for (size_t i = 0; i < n; i++) {
        size_t blk = i / 128, j = i % 128;
        b[blk * 32 + j % 32] |= (uint8_t)((t[i] + 1) << (6 - 2 * (j / 32)));
    }
    memcpy(b + n / 4, &scale, sizeof scale);
    return b;
}

/* Checks one matrix (any format) against the reference trits and scale. */
static void check_products(const BitnetMatrix *m, const int8_t *t, float scale, size_t rows,
                           size_t cols) {
    const size_t n = 3;
    int8_t *xi = (int8_t *)xmalloc(n * cols);
    float *xf = (float *)xmalloc(n * cols * sizeof(float));
    int32_t *yi = (int32_t *)xmalloc(n * rows * sizeof(int32_t));
    int32_t *ri = (int32_t *)xmalloc(n * rows * sizeof(int32_t));
    float *yf = (float *)xmalloc(n * rows * sizeof(float));
    float *rf = (float *)xmalloc(n * rows * sizeof(float));

    for (size_t i = 0; i < n * cols; i++) xi[i] = next_i8();
    xi[0] = -128; /* the extremes of int8, as the raw entry points allow */
    xi[cols - 1] = 127;
    for (size_t i = 0; i < n * cols; i++) xf[i] = next_f32();
    /* Row 1 holds 127 and then only ties: with a = 127 the factor 127/a is exactly 1, so
     * q = round_half_even(x) is tested where it differs from rounding half away from zero. */
    xf[cols] = 127.0f;
    for (size_t i = 1; i < cols; i++)
        xf[cols + i] = (i & 1 ? -1.0f : 1.0f) * ((float)(i % 126) + 0.5f);
    for (size_t i = 0; i < cols; i++) xf[2 * cols + i] = 0.0f; /* an all-zero row */

    /* int8 GEMV and GEMM: exact accumulators. */
    for (size_t j = 0; j < n; j++) ref_gemv_i8(t, rows, cols, xi + j * cols, ri + j * rows);
    OK(bitnet_gemv_i8(m, xi, cols, yi, rows));
    CHECK(memcmp(yi, ri, rows * sizeof(int32_t)) == 0);
    OK(bitnet_gemm_i8(m, xi, n * cols, n, yi, n * rows));
    CHECK(memcmp(yi, ri, n * rows * sizeof(int32_t)) == 0);

    /* int4 activations (-8..7, both ends included) through the same calls: for TL1 / TL2 the
     * library takes its one-byte-table kernels (docs/FORMATS.md §13), with the same results. */
    {
        int8_t *x4 = (int8_t *)xmalloc(n * cols);
        int32_t *r4 = (int32_t *)xmalloc(n * rows * sizeof(int32_t));
        for (size_t i = 0; i < n * cols; i++) x4[i] = (int8_t)((uint8_t)next_i8() % 16) - 8;
        x4[0] = -8;
        x4[cols - 1] = 7;
        for (size_t j = 0; j < n; j++) ref_gemv_i8(t, rows, cols, x4 + j * cols, r4 + j * rows);
        OK(bitnet_gemv_i8(m, x4, cols, yi, rows));
        CHECK(memcmp(yi, r4, rows * sizeof(int32_t)) == 0);
        OK(bitnet_gemm_i8(m, x4, n * cols, n, yi, n * rows));
        CHECK(memcmp(yi, r4, n * rows * sizeof(int32_t)) == 0);
        free(x4);
        free(r4);
    }

    /* f32 GEMV and GEMM: quantize, multiply, rescale, bit for bit. */
    for (size_t j = 0; j < n; j++) ref_gemv_f32(t, scale, rows, cols, xf + j * cols, rf + j * rows);
    OK(bitnet_gemv_f32(m, xf, cols, yf, rows));
    CHECK(memcmp(yf, rf, rows * sizeof(float)) == 0);
    OK(bitnet_gemm_f32(m, xf, n * cols, n, yf, n * rows));
    CHECK(memcmp(yf, rf, n * rows * sizeof(float)) == 0);

    /* Row ranges: two pieces split at an odd row equal the whole. */
    size_t a = rows / 2 | 1;
    if (a >= rows) a = rows;
    OK(bitnet_gemv_i8_rows(m, xi, cols, 0, a, yi, a));
    if (a < rows) OK(bitnet_gemv_i8_rows(m, xi, cols, a, rows, yi + a, rows - a));
    CHECK(memcmp(yi, ri, rows * sizeof(int32_t)) == 0);
    OK(bitnet_gemv_f32_rows(m, xf, cols, 0, a, yf, a));
    if (a < rows) OK(bitnet_gemv_f32_rows(m, xf, cols, a, rows, yf + a, rows - a));
    CHECK(memcmp(yf, rf, rows * sizeof(float)) == 0);
    if (rows > 1) {
        /* n rows of x times rows [1, rows): y is n x (rows - 1). */
        OK(bitnet_gemm_i8_rows(m, xi, n * cols, n, 1, rows, yi, n * (rows - 1)));
        for (size_t j = 0; j < n; j++)
            CHECK(memcmp(yi + j * (rows - 1), ri + j * rows + 1, (rows - 1) * sizeof(int32_t)) == 0);
        OK(bitnet_gemm_f32_rows(m, xf, n * cols, n, 1, rows, yf, n * (rows - 1)));
        for (size_t j = 0; j < n; j++)
            CHECK(memcmp(yf + j * (rows - 1), rf + j * rows + 1, (rows - 1) * sizeof(float)) == 0);
    }

    /* The exported quantizer + int8 product + documented rescale == bitnet_gemv_f32. */
    {
        int8_t *q = (int8_t *)xmalloc(cols);
        int8_t *rq = (int8_t *)xmalloc(cols);
        float amax = 0.0f;
        OK(bitnet_quantize_activations(xf, cols, q, &amax));
        CHECK(amax == ref_quantize(xf, cols, rq));
        CHECK(memcmp(q, rq, cols) == 0);
        OK(bitnet_gemv_i8_rows(m, q, cols, 0, rows, yi, rows));
        float f = bitnet_matrix_scale(m) * (amax / 127.0f);
        for (size_t r = 0; r < rows; r++) CHECK((float)yi[r] * f == rf[r]);
        free(q);
        free(rq);
    }

    /* The engine's calls: activations quantized once, a fused call of two matrices (with and
     * without caller memory as workspace), a row list in reverse order with a repeat. */
    {
        BitnetActivations *qa = NULL;
        OK(bitnet_quantize_once(xf, n * cols, n, cols, &qa));
        memset(yf, 0, n * rows * sizeof(float));
        OK(bitnet_gemm_f32_quantized(m, qa, yf, n * rows));
        CHECK(memcmp(yf, rf, n * rows * sizeof(float)) == 0);
        OK(bitnet_gemm_i8_quantized(m, qa, yi, n * rows));
        bitnet_activations_free(qa);
        int8_t *q = (int8_t *)xmalloc(cols);
        float amax = 0.0f;
        OK(bitnet_quantize_activations(xf, cols, q, &amax));
        float f = bitnet_matrix_scale(m) * (amax / 127.0f);
        for (size_t r = 0; r < rows; r++) CHECK((float)yi[r] * f == rf[r]);
        free(q);

        const BitnetMatrix *ms[2] = {m, m};
        float *y2 = (float *)xmalloc((n * rows + 1) * sizeof(float));
        float *ys[2] = {yf, y2};
        size_t lens[2] = {n * rows, n * rows}, lens1[2] = {rows, rows};
        memset(yf, 0, n * rows * sizeof(float));
        OK(bitnet_gemm_multi_f32(ms, 2, xf, n * cols, n, ys, lens, NULL, 0));
        CHECK(memcmp(yf, rf, n * rows * sizeof(float)) == 0);
        CHECK(memcmp(y2, rf, n * rows * sizeof(float)) == 0);
        size_t bytes = 0;
        OK(bitnet_workspace_size(ms, 2, n, &bytes));
        CHECK(bytes > 0);
        unsigned char *ws = (unsigned char *)xmalloc(bytes + 1);
        memset(yf, 0, n * rows * sizeof(float));
        memset(y2, 0, n * rows * sizeof(float));
        /* Any alignment of the caller's memory works. */
        OK(bitnet_gemm_multi_f32(ms, 2, xf, n * cols, n, ys, lens, ws + 1, bytes));
        CHECK(memcmp(yf, rf, n * rows * sizeof(float)) == 0);
        CHECK(memcmp(y2, rf, n * rows * sizeof(float)) == 0);
        memset(y2, 0, n * rows * sizeof(float));
        OK(bitnet_gemv_multi_f32(ms, 2, xf, cols, ys, lens1, ws, bytes));
        CHECK(memcmp(y2, rf, rows * sizeof(float)) == 0);
        free(ws);
        /* Without caller memory the outputs may overlap x and each other (written through
         * temporaries, in order): here both are x itself, for a square matrix. */
        if (rows == cols) {
            float *xin = (float *)xmalloc(n * cols * sizeof(float));
            memcpy(xin, xf, n * cols * sizeof(float));
            float *ys_in[2] = {xin, xin};
            OK(bitnet_gemm_multi_f32(ms, 2, xin, n * cols, n, ys_in, lens, NULL, 0));
            CHECK(memcmp(xin, rf, n * rows * sizeof(float)) == 0);
            free(xin);
        }

        size_t *list = (size_t *)xmalloc((rows + 1) * sizeof(size_t));
        for (size_t i = 0; i < rows; i++) list[i] = rows - 1 - i;
        list[rows] = 0;
        OK(bitnet_gemv_f32_row_list(m, xf, cols, list, rows + 1, y2, rows + 1));
        for (size_t i = 0; i <= rows; i++) CHECK(memcmp(&y2[i], &rf[list[i]], sizeof(float)) == 0);
        free(list);
        free(y2);

        /* The thread count: 2, then 1, then the default, all with the same results. */
        for (int t = 0; t < 3; t++) {
            CHECK(bitnet_set_num_threads(t == 0 ? 2 : t == 1 ? 1 : 0) == BITNET_STATUS_OK);
            OK(bitnet_gemv_f32(m, xf, cols, yf, rows));
            CHECK(memcmp(yf, rf, rows * sizeof(float)) == 0);
        }
    }

    /* In place: y may overlap x (square matrices only). */
    if (rows == cols) {
        memcpy(yf, xf, cols * sizeof(float));
        OK(bitnet_gemv_f32(m, yf, cols, yf, rows));
        CHECK(memcmp(yf, rf, rows * sizeof(float)) == 0);
    }

    free(xi);
    free(xf);
    free(yi);
    free(ri);
    free(yf);
    free(rf);
}

/* Every other format: built the same way, it must give the same results, or be reported as
 * unsupported by this build (the TL formats land in their own issue). */
static void check_other_formats(const BitnetMatrix *m, const float *w, const int8_t *t,
                                float scale, size_t rows, size_t cols) {
    int8_t *t2 = (int8_t *)xmalloc(rows * cols);
    for (int f = BITNET_FORMAT_TL1; f <= BITNET_FORMAT_I2S_COL; f++) {
        BitnetMatrix *a = NULL, *b = NULL;
        int st = bitnet_matrix_from_f32(w, rows, cols, f, &a);
        CHECK(st == BITNET_STATUS_OK || st == BITNET_STATUS_UNSUPPORTED);
        if (st == BITNET_STATUS_UNSUPPORTED) {
            CHECK(a == NULL);
            CHECK(bitnet_matrix_to_format(m, f, &b) == BITNET_STATUS_UNSUPPORTED);
            CHECK(b == NULL);
            continue;
        }
        OK(bitnet_matrix_to_format(m, f, &b));
        CHECK(bitnet_matrix_format(a) == f && bitnet_matrix_format(b) == f);
        OK(bitnet_matrix_to_ternary(a, t2, rows * cols));
        CHECK(memcmp(t2, t, rows * cols) == 0);
        CHECK(bitnet_matrix_scale(a) == scale);
        check_products(a, t, scale, rows, cols);
        check_products(b, t, scale, rows, cols);
        bitnet_matrix_free(a);
        bitnet_matrix_free(b);
    }
    free(t2);
}

/* ties != 0: weights cycle through 0.5, -0.5, 1.5, -1.5, so mean|w| is exactly 1 and half
 * of them are ties (|w| == m/2), which round half to even sends to 0. */
static void check_shape(size_t rows, size_t cols, int ties) {
    static const float tie_pattern[4] = {0.5f, -0.5f, 1.5f, -1.5f};
    size_t n = rows * cols;
    float *w = (float *)xmalloc(n * sizeof(float));
    int8_t *t = (int8_t *)xmalloc(n);
    int8_t *t2 = (int8_t *)xmalloc(n);
    for (size_t i = 0; i < n; i++) w[i] = ties ? tie_pattern[i % 4] : next_f32();
    float scale = ref_ternarize(w, n, t);
    if (ties) CHECK(scale == 1.0f && t[0] == 0 && t[1] == 0 && t[2] == 1 && t[3] == -1);

    BitnetMatrix *m = NULL;
    OK(bitnet_matrix_from_f32(w, rows, cols, BITNET_FORMAT_I2S, &m));
    CHECK(m != NULL);
    CHECK(bitnet_matrix_rows(m) == rows && bitnet_matrix_cols(m) == cols);
    CHECK(bitnet_matrix_format(m) == BITNET_FORMAT_I2S);
    CHECK(bitnet_matrix_scale(m) == scale);
    CHECK(bitnet_matrix_row_tile(m) >= 1);
    OK(bitnet_matrix_to_ternary(m, t2, n));
    CHECK(memcmp(t2, t, n) == 0);
    check_products(m, t, scale, rows, cols);

    /* Packed bytes out and back in; from trits gives the same bytes. */
    size_t plen = bitnet_matrix_packed_size(m);
    CHECK(plen >= (n + 3) / 4);
    uint8_t *p = (uint8_t *)xmalloc(plen);
    uint8_t *p2 = (uint8_t *)xmalloc(plen);
    OK(bitnet_matrix_packed_bytes(m, p, plen));
    BitnetMatrix *m2 = NULL, *m3 = NULL;
    OK(bitnet_matrix_from_packed(p, plen, rows, cols, scale, BITNET_FORMAT_I2S, &m2));
    OK(bitnet_matrix_to_ternary(m2, t2, n));
    CHECK(memcmp(t2, t, n) == 0);
    OK(bitnet_matrix_from_ternary(t, rows, cols, scale, BITNET_FORMAT_I2S, &m3));
    OK(bitnet_matrix_packed_bytes(m3, p2, plen));
    CHECK(memcmp(p, p2, plen) == 0);
    CHECK(bitnet_matrix_scale(m3) == scale);
    check_products(m2, t, scale, rows, cols);

    /* bitnet.cpp's blob: export equals the layout built here, and imports back exactly. */
    size_t blen = 0;
    int st = bitnet_i2s_blob_size(rows, cols, &blen);
    if (cols % 128 == 0) {
        size_t rlen = 0;
        uint8_t *ref = ref_bitnet_blob(t, n, scale, &rlen);
        CHECK(st == BITNET_STATUS_OK && blen == rlen);
        uint8_t *blob = (uint8_t *)xmalloc(blen);
        OK(bitnet_matrix_to_bitnet_i2s(m, blob, blen));
        CHECK(memcmp(blob, ref, blen) == 0);
        BitnetMatrix *m4 = NULL;
        OK(bitnet_matrix_from_bitnet_i2s(ref, rlen, rows, cols, &m4));
        OK(bitnet_matrix_packed_bytes(m4, p2, plen));
        CHECK(memcmp(p, p2, plen) == 0);
        CHECK(bitnet_matrix_scale(m4) == scale);
        bitnet_matrix_free(m4);
        free(blob);
        free(ref);
    } else {
        CHECK(st == BITNET_STATUS_INVALID_SHAPE && blen == 0);
    }

    check_other_formats(m, w, t, scale, rows, cols);
    bitnet_matrix_free(m);
    bitnet_matrix_free(m2);
    bitnet_matrix_free(m3);
    free(w);
    free(t);
    free(t2);
    free(p);
    free(p2);
}

/* An engine's own thread pool: 4 threads share one matrix and each computes its row range. */
enum { T_ROWS = 70, T_COLS = 600, T_THREADS = 4 };
struct job {
    const BitnetMatrix *m;
    const float *x;
    size_t begin, end;
    float *y;
    int status;
};

static void *run_job(void *arg) {
    struct job *j = (struct job *)arg;
    j->status = (int)bitnet_gemv_f32_rows(j->m, j->x, T_COLS, j->begin, j->end, j->y + j->begin,
                                          j->end - j->begin);
    return NULL;
}

static void check_threads(void) {
    float *w = (float *)xmalloc(T_ROWS * T_COLS * sizeof(float));
    float *x = (float *)xmalloc(T_COLS * sizeof(float));
    float whole[T_ROWS], parts[T_ROWS];
    for (size_t i = 0; i < (size_t)T_ROWS * T_COLS; i++) w[i] = next_f32();
    for (size_t i = 0; i < T_COLS; i++) x[i] = next_f32();
    BitnetMatrix *m = NULL;
    OK(bitnet_matrix_from_f32(w, T_ROWS, T_COLS, BITNET_FORMAT_I2S, &m));
    OK(bitnet_gemv_f32(m, x, T_COLS, whole, T_ROWS));
    size_t tile = bitnet_matrix_row_tile(m), tiles = (T_ROWS + tile - 1) / tile;
    pthread_t th[T_THREADS];
    struct job jobs[T_THREADS];
    for (size_t i = 0; i < T_THREADS; i++) {
        size_t b = tiles * i / T_THREADS * tile, e = tiles * (i + 1) / T_THREADS * tile;
        jobs[i].m = m;
        jobs[i].x = x;
        jobs[i].begin = b;
        jobs[i].end = e < (size_t)T_ROWS ? e : (size_t)T_ROWS;
        jobs[i].y = parts;
        jobs[i].status = -1;
        CHECK(pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0);
    }
    for (size_t i = 0; i < T_THREADS; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        CHECK(jobs[i].status == BITNET_STATUS_OK);
    }
    CHECK(memcmp(whole, parts, sizeof whole) == 0);
    bitnet_matrix_free(m);
    free(w);
    free(x);
}

/* ggml TQ2_0 and TQ1_0 and the Hugging Face packed layout, written from the byte rules of
 * docs/FORMATS.md §7. `t` is rows x cols trits; `d` the fp16 bits of the scale. */
static void ref_tq2(const int8_t *t, size_t rows, size_t cols, uint16_t d, uint8_t *out) {
    for (size_t b = 0; b < rows * cols / 256; b++) {
        const int8_t *w = t + 256 * b;
        uint8_t *o = out + 66 * b;
        int zero = 1;
        for (size_t e = 0; e < 256; e++) zero &= w[e] == 0;
        for (size_t j = 0; j < 64; j++) {
            size_t h = j / 32, m = j % 32;
            o[j] = 0;
            for (size_t l = 0; l < 4; l++)
                o[j] = (uint8_t)(o[j] | (uint8_t)(w[128 * h + 32 * l + m] + 1) << (2 * l));
        }
        o[64] = zero ? 0 : (uint8_t)(d & 0xFF);
        o[65] = zero ? 0 : (uint8_t)(d >> 8);
    }
}

static void ref_tq1(const int8_t *t, size_t rows, size_t cols, uint16_t d, uint8_t *out) {
    static const unsigned pow3[5] = {81, 27, 9, 3, 1};
    for (size_t b = 0; b < rows * cols / 256; b++) {
        const int8_t *w = t + 256 * b;
        uint8_t *o = out + 54 * b;
        int zero = 1;
        for (size_t e = 0; e < 256; e++) zero &= w[e] == 0;
        for (size_t j = 0; j < 52; j++) {
            unsigned q = 0;
            for (size_t n = 0; n < 5; n++) {
                size_t e;
                if (j < 32)
                    e = 32 * n + j;
                else if (j < 48)
                    e = 160 + 16 * n + (j - 32);
                else if (n < 4)
                    e = 240 + 4 * n + (j - 48);
                else
                    continue;
                q += (unsigned)(w[e] + 1) * pow3[n];
            }
            o[j] = (uint8_t)((q * 256 + 242) / 243); /* ceil(q * 256 / 243) */
        }
        o[52] = zero ? 0 : (uint8_t)(d & 0xFF);
        o[53] = zero ? 0 : (uint8_t)(d >> 8);
    }
}

static void ref_hf(const int8_t *t, size_t rows, size_t cols, uint8_t *out) {
    size_t q = rows / 4;
    memset(out, 0, q * cols);
    for (size_t p = 0; p < q; p++)
        for (size_t k = 0; k < cols; k++)
            for (size_t i = 0; i < 4; i++)
                out[p * cols + k] =
                    (uint8_t)(out[p * cols + k] | (uint8_t)(t[(p + i * q) * cols + k] + 1) << (2 * i));
}

/* One scale per output row: the scales come back, products are acc[i] * (s[i] * (a / 127))
 * on the whole matrix and a row range, and TQ2_0 / TQ1_0 export and import them, row by
 * row as ggml's quantizer writes them. */
static void check_row_scales(size_t rows, size_t cols) {
    size_t n = rows * cols;
    int8_t *t = (int8_t *)xmalloc(n), *q = (int8_t *)xmalloc(cols);
    float *s = (float *)xmalloc(rows * sizeof(float)), *s2 = (float *)xmalloc(rows * sizeof(float));
    float *x = (float *)xmalloc(cols * sizeof(float));
    float *y = (float *)xmalloc(rows * sizeof(float)), *yr = (float *)xmalloc(rows * sizeof(float));
    int32_t *acc = (int32_t *)xmalloc(rows * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) t[i] = (int8_t)(next_u32() % 3) - 1;
    /* fp16 values (exact through ggml), each row its own. */
    for (size_t r = 0; r < rows; r++) s[r] = (float)(r + 1) * 0.125f;
    for (size_t j = 0; j < cols; j++) x[j] = next_f32();
    BitnetMatrix *one = NULL, *m = NULL;
    OK(bitnet_matrix_from_ternary(t, rows, cols, 1.0f, BITNET_FORMAT_I2S, &one));
    CHECK(bitnet_matrix_has_row_scales(one) == 0);
    OK(bitnet_matrix_row_scales(one, s2, rows));
    for (size_t r = 0; r < rows; r++) CHECK(s2[r] == 1.0f);
    OK(bitnet_matrix_with_row_scales(one, s, rows, &m));
    CHECK(bitnet_matrix_has_row_scales(m) == 1);
    OK(bitnet_matrix_row_scales(m, s2, rows));
    CHECK(memcmp(s, s2, rows * sizeof(float)) == 0);
    CHECK(isnan(bitnet_matrix_scale(m)));
    float a = 0.0f;
    OK(bitnet_quantize_activations(x, cols, q, &a));
    OK(bitnet_gemv_i8(m, q, cols, acc, rows));
    OK(bitnet_gemv_f32(m, x, cols, y, rows));
    float act = a / 127.0f;
    for (size_t r = 0; r < rows; r++) CHECK(y[r] == (float)acc[r] * (s[r] * act));
    OK(bitnet_gemv_f32_rows(m, x, cols, 1, rows, yr, rows - 1));
    CHECK(memcmp(yr, y + 1, (rows - 1) * sizeof(float)) == 0);
    for (int f = BITNET_FORMAT_TL1; f <= BITNET_FORMAT_TL2; f++) {
        BitnetMatrix *b = NULL;
        OK(bitnet_matrix_to_format(m, f, &b));
        OK(bitnet_matrix_row_scales(b, s2, rows));
        CHECK(memcmp(s, s2, rows * sizeof(float)) == 0);
        OK(bitnet_gemv_f32(b, x, cols, yr, rows));
        CHECK(memcmp(yr, y, rows * sizeof(float)) == 0);
        bitnet_matrix_free(b);
    }
    for (int k = 0; k < 2; k++) {
        int type = k ? BITNET_GGML_TYPE_TQ1_0 : BITNET_GGML_TYPE_TQ2_0;
        size_t size = bitnet_ggml_size(type, rows, cols), row = size / rows;
        uint8_t *ref = (uint8_t *)xmalloc(size), *got = (uint8_t *)xmalloc(size);
        for (size_t r = 0; r < rows; r++) {
            /* fp16 of (r + 1) / 8: exponent and mantissa by hand. */
            float v = s[r];
            int e = 0;
            while (v >= 2.0f) v /= 2.0f, e++;
            while (v < 1.0f) v *= 2.0f, e--;
            uint16_t d = (uint16_t)(((e + 15) << 10) | (uint16_t)((v - 1.0f) * 1024.0f));
            if (k)
                ref_tq1(t + r * cols, 1, cols, d, ref + r * row);
            else
                ref_tq2(t + r * cols, 1, cols, d, ref + r * row);
        }
        OK(bitnet_matrix_to_ggml(m, type, got, size));
        CHECK(memcmp(got, ref, size) == 0);
        BitnetMatrix *back = NULL;
        OK(bitnet_matrix_from_ggml(type, ref, size, rows, cols, BITNET_FORMAT_TL2, &back));
        OK(bitnet_matrix_row_scales(back, s2, rows));
        CHECK(bitnet_matrix_has_row_scales(back) == 1);
        CHECK(memcmp(s, s2, rows * sizeof(float)) == 0);
        bitnet_matrix_free(back);
        free(ref);
        free(got);
    }
    bitnet_matrix_free(one);
    bitnet_matrix_free(m);
    free(t), free(q), free(s), free(s2), free(x), free(y), free(yr), free(acc);
}

/* Export to ggml equals the reference bytes; import gives back the trits and fp16(scale) in
 * every format. An all-zero block (row 1, block 0) and an all-zero row (the last) included. */
static void check_ggml(size_t rows, size_t cols, float scale, uint16_t d, float d_value) {
    size_t n = rows * cols;
    int8_t *t = (int8_t *)xmalloc(n), *t2 = (int8_t *)xmalloc(n);
    for (size_t i = 0; i < n; i++) t[i] = (int8_t)(next_u32() % 3) - 1;
    if (rows > 1) memset(t + cols, 0, 256);
    memset(t + (rows - 1) * cols, 0, cols);
    BitnetMatrix *m = NULL;
    OK(bitnet_matrix_from_ternary(t, rows, cols, scale, BITNET_FORMAT_I2S, &m));
    for (int k = 0; k < 2; k++) {
        int type = k ? BITNET_GGML_TYPE_TQ1_0 : BITNET_GGML_TYPE_TQ2_0;
        size_t size = bitnet_ggml_size(type, rows, cols);
        CHECK(size == n / 256 * (k ? 54 : 66));
        uint8_t *ref = (uint8_t *)xmalloc(size), *got = (uint8_t *)xmalloc(size);
        if (k)
            ref_tq1(t, rows, cols, d, ref);
        else
            ref_tq2(t, rows, cols, d, ref);
        OK(bitnet_matrix_to_ggml(m, type, got, size));
        CHECK(memcmp(got, ref, size) == 0);
        for (int f = BITNET_FORMAT_I2S; f <= BITNET_FORMAT_I2S_COL; f++) {
            BitnetMatrix *m2 = NULL;
            OK(bitnet_matrix_from_ggml(type, ref, size, rows, cols, f, &m2));
            OK(bitnet_matrix_to_ternary(m2, t2, n));
            CHECK(memcmp(t2, t, n) == 0);
            CHECK(bitnet_matrix_scale(m2) == d_value);
            CHECK(bitnet_matrix_format(m2) == f);
            bitnet_matrix_free(m2);
        }
        free(ref);
        free(got);
    }
    /* Type 36 is bitnet.cpp's I2_S blob. */
    size_t blen = 0;
    OK(bitnet_i2s_blob_size(rows, cols, &blen));
    CHECK(bitnet_ggml_size(BITNET_GGML_TYPE_I2S, rows, cols) == blen);
    uint8_t *b1 = (uint8_t *)xmalloc(blen), *b2 = (uint8_t *)xmalloc(blen);
    OK(bitnet_matrix_to_ggml(m, BITNET_GGML_TYPE_I2S, b1, blen));
    OK(bitnet_matrix_to_bitnet_i2s(m, b2, blen));
    CHECK(memcmp(b1, b2, blen) == 0);
    BitnetMatrix *m3 = NULL;
    OK(bitnet_matrix_from_ggml(BITNET_GGML_TYPE_I2S, b1, blen, rows, cols, BITNET_FORMAT_TL2, &m3));
    OK(bitnet_matrix_to_ternary(m3, t2, n));
    CHECK(memcmp(t2, t, n) == 0 && bitnet_matrix_scale(m3) == scale);
    bitnet_matrix_free(m3);
    free(b1);
    free(b2);
    /* Hugging Face packed: multiplied, or divided (scale 1 / weight_scale). */
    if (rows % 4 == 0) {
        uint8_t *hf = (uint8_t *)xmalloc(n / 4);
        ref_hf(t, rows, cols, hf);
        for (int div = 0; div < 2; div++) {
            BitnetMatrix *m4 = NULL;
            OK(bitnet_matrix_from_hf_packed(hf, rows, cols, div ? 4.0f : scale, div,
                                            BITNET_FORMAT_TL1, &m4));
            OK(bitnet_matrix_to_ternary(m4, t2, n));
            CHECK(memcmp(t2, t, n) == 0);
            CHECK(bitnet_matrix_scale(m4) == (div ? 0.25f : scale));
            bitnet_matrix_free(m4);
        }
        free(hf);
    }
    bitnet_matrix_free(m);
    free(t);
    free(t2);
}

/* The 3-bit KV cache: append (a block, then one token), read back, attention against f32
 * attention, and attention = scores + softmax + weighted V. */
#define KV_H 2
#define KV_D 64
#define KV_T 4
#define KV_HQ 8
static void check_kv(void) {
    float k[KV_T * KV_H * KV_D], v[KV_T * KV_H * KV_D], q[KV_HQ * KV_D];
    float out[KV_HQ * KV_D], ref[KV_HQ * KV_D], split[KV_HQ * KV_D];
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) k[i] = next_f32(), v[i] = next_f32();
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) q[i] = next_f32();
    BitnetKvCache *c = NULL;
    OK(bitnet_kv_new(KV_H, KV_D, 8, 1, &c));
    OK(bitnet_kv_append(c, k, v, 3));
    OK(bitnet_kv_append(c, k + 3 * KV_H * KV_D, v + 3 * KV_H * KV_D, 1));
    CHECK(bitnet_kv_len(c) == KV_T);
    /* One 8-bit sink token and three 3-bit ones: (d + 4) bytes per head for K and V of the
     * sink; per 3-bit token and head 4 bytes of scales each for K and V; per head K's codes
     * in one whole block of 16 positions and V's in one whole block of 4 (3 * d / 8 bytes a
     * position at d = 64: FORMATS.md section 8); and the f32 channel factors of K. */
    CHECK(bitnet_kv_bytes(c) == 2 * KV_H * (KV_D + 4) + 3 * KV_H * 8 +
                                    KV_H * (16 + 4) * (3 * KV_D / 8) + 4 * KV_H * KV_D);
    float kk[KV_H * KV_D], vv[KV_H * KV_D];
    OK(bitnet_kv_dequantize(c, 0, kk, vv));
    for (size_t i = 0; i < KV_H * KV_D; i++)
        CHECK(fabsf(kk[i] - k[i]) < 0.1f && fabsf(vv[i] - v[i]) < 0.1f);
    OK(bitnet_kv_attend(c, q, KV_HQ, out));
    double dot = 0, n1 = 0, n2 = 0;
    for (size_t h = 0; h < KV_HQ; h++) {
        size_t g = h / (KV_HQ / KV_H);
        double s[KV_T], mx = -1e300, z = 0;
        for (size_t t = 0; t < KV_T; t++) {
            s[t] = 0;
            for (size_t j = 0; j < KV_D; j++) s[t] += (double)q[h * KV_D + j] * k[(t * KV_H + g) * KV_D + j];
            s[t] /= sqrt((double)KV_D);
            if (s[t] > mx) mx = s[t];
        }
        for (size_t t = 0; t < KV_T; t++) z += (s[t] = exp(s[t] - mx));
        for (size_t j = 0; j < KV_D; j++) {
            double o = 0;
            for (size_t t = 0; t < KV_T; t++) o += s[t] * v[(t * KV_H + g) * KV_D + j];
            ref[h * KV_D + j] = (float)(o / z);
            dot += ref[h * KV_D + j] * (double)out[h * KV_D + j];
            n1 += (double)ref[h * KV_D + j] * ref[h * KV_D + j];
            n2 += (double)out[h * KV_D + j] * out[h * KV_D + j];
        }
    }
    CHECK(dot / sqrt(n1 * n2) > 0.9);
    /* In place (out is q: the call reads q before it writes, through a copy): the same bits;
     * again into out (the direct path), unchanged. */
    float inplace[KV_HQ * KV_D], again[KV_HQ * KV_D];
    memcpy(inplace, q, sizeof q);
    OK(bitnet_kv_attend(c, inplace, KV_HQ, inplace));
    OK(bitnet_kv_attend(c, q, KV_HQ, again));
    CHECK(memcmp(inplace, out, sizeof out) == 0 && memcmp(again, out, sizeof out) == 0);
    float sc[KV_HQ * KV_T], w1[KV_HQ * 1], w2[KV_HQ * 3], part[KV_HQ * KV_D];
    OK(bitnet_kv_scores(c, q, KV_HQ, 0, KV_T, sc));
    for (size_t h = 0; h < KV_HQ; h++) {
        float mx = sc[h * KV_T], z = 0;
        for (size_t t = 1; t < KV_T; t++) mx = sc[h * KV_T + t] > mx ? sc[h * KV_T + t] : mx;
        for (size_t t = 0; t < KV_T; t++) z += (sc[h * KV_T + t] = expf(sc[h * KV_T + t] - mx));
        w1[h] = sc[h * KV_T] / z;
        for (size_t t = 1; t < KV_T; t++) w2[h * 3 + t - 1] = sc[h * KV_T + t] / z;
    }
    OK(bitnet_kv_weighted_v(c, w1, KV_HQ, 0, 1, split));
    OK(bitnet_kv_weighted_v(c, w2, KV_HQ, 1, KV_T, part));
    for (size_t i = 0; i < KV_HQ * KV_D; i++)
        CHECK(fabsf(split[i] + part[i] - out[i]) <= 1e-4f * (1.0f + fabsf(out[i])));
    bitnet_kv_free(c);
    bitnet_kv_free(NULL);
}

/* The container: two matrices saved to a file, opened back, taken out without a copy (the
 * packed bytes and the products are the originals'), a matrix outliving its container; the
 * same file loaded from memory at an odd address. */
static void check_container(void) {
    enum { R = 9, C = 300 };
    static int8_t t[R * C];
    static int8_t x[C];
    for (size_t i = 0; i < R * C; i++) t[i] = (int8_t)((int)(next_u32() % 3) - 1);
    for (size_t i = 0; i < C; i++) x[i] = next_i8();
    BitnetMatrix *a = NULL, *b = NULL;
    OK(bitnet_matrix_from_ternary(t, R, C, 0.75f, BITNET_FORMAT_I2S, &a));
    OK(bitnet_matrix_from_ternary(t, R, C, 0.5f, BITNET_FORMAT_TL2, &b));
    char path[] = "/tmp/bitnet_happy_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    const BitnetMatrix *ms[2] = {a, b};
    const char *names[2] = {"blk.0.attn_q", "blk.0.attn_k"};
    OK(bitnet_container_save(path, ms, names, 2));

    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *file = (unsigned char *)xmalloc(size + 1);
    CHECK(fread(file + 1, 1, size, f) == size);
    fclose(f);

    for (int from_memory = 0; from_memory < 2; from_memory++) {
        BitnetContainer *c = NULL;
        if (from_memory)
            OK(bitnet_container_from_memory(file + 1, size, &c));
        else
            OK(bitnet_container_open(path, &c));
        CHECK(bitnet_container_len(c) == 2);
        CHECK(strcmp(bitnet_container_name(c, 0), names[0]) == 0);
        CHECK(strcmp(bitnet_container_name(c, 1), names[1]) == 0);
        CHECK(bitnet_container_name(c, 2) == NULL);
        BitnetMatrix *got[2] = {NULL, NULL};
        for (int i = 0; i < 2; i++) OK(bitnet_container_get(c, names[i], &got[i]));
        bitnet_container_free(c); /* the matrices keep the bytes alive */
        for (int i = 0; i < 2; i++) {
            size_t n = bitnet_matrix_packed_size(ms[i]);
            CHECK(n > 0 && n == bitnet_matrix_packed_size(got[i]));
            unsigned char *p1 = (unsigned char *)xmalloc(n), *p2 = (unsigned char *)xmalloc(n);
            OK(bitnet_matrix_packed_bytes(ms[i], p1, n));
            OK(bitnet_matrix_packed_bytes(got[i], p2, n));
            CHECK(memcmp(p1, p2, n) == 0);
            CHECK(bitnet_matrix_scale(got[i]) == bitnet_matrix_scale(ms[i]));
            CHECK(bitnet_matrix_format(got[i]) == bitnet_matrix_format(ms[i]));
            int32_t y1[R], y2[R];
            OK(bitnet_gemv_i8(ms[i], x, C, y1, R));
            OK(bitnet_gemv_i8(got[i], x, C, y2, R));
            CHECK(memcmp(y1, y2, sizeof y1) == 0);
            free(p1);
            free(p2);
            bitnet_matrix_free(got[i]);
        }
    }
    bitnet_container_free(NULL);
    free(file);
    remove(path);
    bitnet_matrix_free(a);
    bitnet_matrix_free(b);
}

int main(void) {
    CHECK(strcmp(bitnet_version(), BITNET_KERNELS_VERSION) == 0);
    const char *kernel = bitnet_kernel_name();
    CHECK(kernel != NULL && strncmp(kernel, "unavailable", 11) != 0);

    static const size_t shapes[][2] = {{1, 1},   {3, 7},    {5, 300},  {8, 256},  {16, 16},
                                       {4, 128}, {13, 1000}, {64, 513}, {9, 2048}, {33, 640}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_shape(shapes[i][0], shapes[i][1], 0);
    check_shape(12, 256, 1);
    check_threads();
    check_ggml(6, 512, 0.5f, 0x3800, 0.5f);
    check_ggml(3, 256, 1.75f, 0x3F00, 1.75f);
    /* 0.1 is no fp16 value: d = fp16(0.1) = 0x2E66, which is what comes back. */
    check_ggml(8, 768, 0.1f, 0x2E66, 0.0999755859375f);
    check_row_scales(7, 512);
    check_kv();
    check_container();

    /* A tiny case worked by hand (the doc example of ternary_gemv): trits [1 -1 0; 0 1 1],
     * scale 0.5, x = [1, 0.5, -1] -> q = [127, 64, -127], acc = [63, -63]. */
    {
        const int8_t t[6] = {1, -1, 0, 0, 1, 1};
        const float x[3] = {1.0f, 0.5f, -1.0f};
        float y[2];
        int32_t acc[2];
        const int8_t q[3] = {127, 64, -127};
        BitnetMatrix *m = NULL;
        OK(bitnet_matrix_from_ternary(t, 2, 3, 0.5f, BITNET_FORMAT_I2S, &m));
        OK(bitnet_gemv_i8(m, q, 3, acc, 2));
        CHECK(acc[0] == 63 && acc[1] == -63);
        OK(bitnet_gemv_f32(m, x, 3, y, 2));
        CHECK(y[0] == 63.0f * (0.5f * (1.0f / 127.0f)) && y[1] == -y[0]);
        bitnet_matrix_free(m);
    }
    /* The a4.8 quantizers, worked by hand. absmax int4: a = 14, s = 0.5, ties to even;
     * absmean: mean|x| = 8.5, s = sqrtf(7)/8.5. TopK 0.5 of 5: k = 3, the tie between the two
     * 1.0s goes to the lower index. The int4 row goes through the int8 product as is. */
    {
        const float x[5] = {14.0f, 1.0f, 3.0f, -5.0f, -19.5f};
        int8_t q[5];
        float s = 0.0f;
        OK(bitnet_quantize_activations_i4(x, 4, q, &s, 1));
        CHECK(s == 14.0f && q[0] == 7 && q[1] == 0 && q[2] == 2 && q[3] == -2);
        OK(bitnet_quantize_activations_i4(x, 5, q, &s, 0));
        CHECK(s == 8.5f);
        float k = sqrtf(7.0f) / 8.5f;
        for (int i = 0; i < 5; i++) {
            float r = nearbyintf(x[i] * k);
            CHECK(q[i] == (int8_t)(r > 7 ? 7 : r < -8 ? -8 : r));
        }
        const float xt[5] = {1.0f, 4.0f, -2.0f, 1.0f, 0.5f};
        OK(bitnet_quantize_activations_topk(xt, 5, 0.5f, q, &s));
        CHECK(s == 4.0f && q[0] == 32 && q[1] == 127 && q[2] == -64 && q[3] == 0 && q[4] == 0);
        const int8_t t[6] = {1, -1, 0, 0, 1, 1};
        BitnetMatrix *m = NULL;
        int32_t acc[2];
        OK(bitnet_matrix_from_ternary(t, 2, 3, 0.5f, BITNET_FORMAT_I2S_COL, &m));
        const int8_t q4[3] = {7, -8, 0};
        OK(bitnet_gemv_i8(m, q4, 3, acc, 2));
        CHECK(acc[0] == 15 && acc[1] == -8);
        bitnet_matrix_free(m);
    }
    bitnet_matrix_free(NULL);

    printf("happy path: %d checks passed (kernel %s, library %s)\n", checks, kernel,
           bitnet_version());
    return 0;
}
