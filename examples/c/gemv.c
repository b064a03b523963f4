/* Quantize a weight matrix to ternary, run one GEMV, print which kernel ran.
 *
 * Build (from the repository root, after `cargo build --release` and, on Linux, the SONAME
 * link `ln -sf libbitnet_kernels.so target/release/libbitnet_kernels.so.0.1`):
 *   cc -std=c11 -Iinclude examples/c/gemv.c -Ltarget/release -lbitnet_kernels \
 *      -Wl,-rpath,"$PWD/target/release" -o gemv && ./gemv
 * or, once installed (see README "Use it from C"):
 *   cc examples/c/gemv.c $(pkg-config --cflags --libs bitnet_kernels) -o gemv
 */
#include <bitnet_kernels.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    enum { ROWS = 256, COLS = 512 }; /* out_features x in_features */
    float *w = malloc(sizeof(float) * ROWS * COLS);
    float x[COLS], y[ROWS];
    if (!w) return 1;
    for (int i = 0; i < ROWS * COLS; i++) w[i] = (float)((i * 7919) % 13 - 6) / 6.0f;
    for (int i = 0; i < COLS; i++) x[i] = (float)(i % 17) / 16.0f - 0.5f;

    /* Ternarize (absmean) and pack once; the matrix is immutable and thread-safe. */
    BitnetMatrix *m = NULL;
    BitnetStatus st = bitnet_matrix_from_f32(w, ROWS, COLS, BITNET_FORMAT_I2S, &m);
    free(w); /* the matrix keeps its own packed copy */
    if (st != BITNET_STATUS_OK) {
        fprintf(stderr, "bitnet_matrix_from_f32: %s (%s)\n", bitnet_status_message(st),
                bitnet_last_error());
        return 1;
    }

    /* y = W x with x quantized to int8 per call (BitLinear). */
    st = bitnet_gemv_f32(m, x, COLS, y, ROWS);
    if (st != BITNET_STATUS_OK) {
        fprintf(stderr, "bitnet_gemv_f32: %s (%s)\n", bitnet_status_message(st),
                bitnet_last_error());
        bitnet_matrix_free(m);
        return 1;
    }

    const char *kernel = bitnet_kernel_name();
    printf("bitnet-kernels %s, kernel %s, scale %g: y[0] = %g, y[%d] = %g\n", bitnet_version(),
           kernel ? kernel : "(unavailable)", (double)bitnet_matrix_scale(m), (double)y[0],
           ROWS - 1, (double)y[ROWS - 1]);
    bitnet_matrix_free(m);
    return 0;
}
