/* Quantize a weight matrix to ternary, run one GEMV, print which kernel ran.
 *
 * Build against an install (docs/c-api.md), after `cargo build --release`:
 *   sh pkgconfig/install.sh "$HOME/.local"
 *   export PKG_CONFIG_PATH="$HOME/.local/lib/pkgconfig"
 *   cc examples/c/gemv.c $(pkg-config --cflags --libs bitnet_kernels) -o gemv         # shared
 *   cc examples/c/gemv.c $(pkg-config --cflags --libs bitnet_kernels_static) -o gemv  # static
 *   ./gemv
 * or straight from the build tree (cargo does not make the SONAME link the program asks for):
 *   ln -sf libbitnet_kernels.so target/release/libbitnet_kernels.so.0.1
 *   cc -std=c11 -Iinclude examples/c/gemv.c -Ltarget/release -lbitnet_kernels \
 *      -Wl,-rpath,"$PWD/target/release" -o gemv && ./gemv
 */
#include <bitnet_kernels.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed call, printed as "<call>: <kind of failure>: <specifics>", e.g.
 * "bitnet_gemv_f32: length mismatch: x_len is 511, expected 512 (cols)". */
static void report(const char *call, BitnetStatus st) {
    fprintf(stderr, "%s: %s: %s\n", call, bitnet_status_message(st), bitnet_last_error());
}

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
        report("bitnet_matrix_from_f32", st);
        return 1;
    }

    /* y = W x with x quantized to int8 per call (BitLinear). Every buffer goes with its
     * length; y is written only on success. */
    st = bitnet_gemv_f32(m, x, COLS, y, ROWS);
    if (st != BITNET_STATUS_OK) {
        report("bitnet_gemv_f32", st);
        bitnet_matrix_free(m);
        return 1;
    }

    /* Never NULL: the kernel set's name, or "unavailable: <reason>" when BITNET_KERNEL
     * names one this machine cannot run (the products then fail, as above). */
    printf("bitnet-kernels %s, kernel %s, scale %g: y[0] = %g, y[%d] = %g\n", bitnet_version(),
           bitnet_kernel_name(), (double)bitnet_matrix_scale(m), (double)y[0], ROWS - 1,
           (double)y[ROWS - 1]);
    bitnet_matrix_free(m);
    return 0;
}
