//! The largest accumulators the contract allows: one row of `cols = 2^24 - 1` (the limit,
//! FORMATS.md §4) of equal trits times equal activations, `|acc| = 128 * cols` just below
//! 2^31, on every SIMD kernel set that has its own kernels (the scalar reference sums in
//! plain i32 and is checked against the naive product elsewhere; it would only slow this
//! test under emulation). A kernel whose partial sums wrap anywhere along the row (a missing
//! flush, an int16 stage, a too-wide accumulator scale) fails here.

mod common;

use bitnet_kernels::{Format, TernaryMatrix};
use common::kernel_sets;

#[test]
fn max_cols_extremes_are_exact() {
    let cols = (1usize << 24) - 1;
    for f in common::formats() {
        for tv in [1i8, -1] {
            let m = TernaryMatrix::from_ternary(&vec![tv; cols], 1, cols, 1.0, f).unwrap();
            // x = -128 gives the extremes: -128 * cols (t = 1) and +128 * cols (t = -1).
            let x = vec![-128i8; cols];
            let want = -128 * tv as i64 * cols as i64;
            for k in kernel_sets(f).into_iter().filter(|k| k.name != "scalar") {
                let mut y = [0i32];
                k.gemv_i8(&m, &x, &mut y).unwrap();
                assert_eq!(y[0] as i64, want, "{} {} t={tv}", k.name, f.name());
            }
        }
    }
}

/// A row long enough to cross a kernel's internal flush period (the NEON dot-product GEMV
/// folds one accumulator every 2^21 columns), with mixed values, against the naive product.
#[test]
fn long_mixed_rows_match_naive() {
    let (rows, cols) = (5, (1usize << 21) + 300);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 7 + i / 11) % 3) as i8 - 1)
        .collect();
    let x: Vec<i8> = (0..2 * cols).map(|i| (i * 37 % 256) as u8 as i8).collect();
    let want = common::naive_gemm(&t, rows, cols, &x, 2);
    for f in common::formats() {
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
        for k in kernel_sets(f) {
            let mut y = vec![0; 2 * rows];
            k.gemm_i8(&m, &x, 2, &mut y).unwrap();
            assert_eq!(y, want, "{} {} gemm", k.name, f.name());
            let mut y1 = vec![0; rows];
            k.gemv_i8(&m, &x[..cols], &mut y1).unwrap();
            assert_eq!(y1, want[..rows], "{} {} gemv", k.name, f.name());
        }
    }
    let _ = Format::ALL;
}
