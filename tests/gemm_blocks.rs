//! GEMMs with many activation rows: kernels block the activation rows (tiles of a few rows,
//! and outer blocks such as the NEON I2_S GEMM's 64 rows whose sums it keeps on the stack),
//! so `n` around and across those block sizes must give exactly the naive product.

mod common;

use bitnet_kernels::TernaryMatrix;
use common::{formats, kernel_sets, naive_gemm};

#[test]
fn many_activation_rows_match_naive() {
    let (rows, cols) = (9, 300);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 5 + i / 7) % 3) as i8 - 1)
        .collect();
    for n in [7, 63, 64, 65, 129] {
        // A multiplicative hash, so that no two activation rows are equal.
        let x: Vec<i8> = (0..n * cols)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 as i8)
            .collect();
        let want = naive_gemm(&t, rows, cols, &x, n);
        for f in formats() {
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
            for k in kernel_sets(f) {
                let mut y = vec![i32::MIN; n * rows];
                k.gemm_i8(&m, &x, n, &mut y).unwrap();
                assert_eq!(y, want, "{} {} n={n}", k.name, f.name());
            }
        }
    }
}

/// Long rows: the x86 I2_S GEMM walks activation rows in blocks of 512 KiB (36 rows of
/// 14336), so n across that block must give exactly the naive product too.
#[test]
fn long_rows_block_the_activation_rows() {
    let (rows, cols) = (5, 14336 + 77);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 7 + i / 11) % 3) as i8 - 1)
        .collect();
    for n in [35, 37, 73] {
        let x: Vec<i8> = (0..n * cols)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 as i8)
            .collect();
        let want = naive_gemm(&t, rows, cols, &x, n);
        for f in formats() {
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
            for k in kernel_sets(f) {
                let mut y = vec![i32::MIN; n * rows];
                k.gemm_i8(&m, &x, n, &mut y).unwrap();
                assert_eq!(y, want, "{} {} n={n}", k.name, f.name());
            }
        }
    }
}
