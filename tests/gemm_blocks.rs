//! GEMMs with many activation rows: kernels block the activation rows (tiles of a few rows,
//! outer blocks such as the NEON I2_S GEMM's 64 rows whose sums it keeps on the stack, and
//! the x86 I2_S GEMM's 512 KiB blocks), so `n` around and across those block sizes must give
//! exactly the naive product.

mod common;

use common::assert_kernels_match_naive;

/// `n` rows of activations, no two equal (a multiplicative hash).
fn activations(n: usize, cols: usize) -> Vec<i8> {
    (0..n * cols)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 as i8)
        .collect()
}

#[test]
fn many_activation_rows_match_naive() {
    let (rows, cols) = (9, 300);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 5 + i / 7) % 3) as i8 - 1)
        .collect();
    for n in [7, 63, 64, 65, 129] {
        assert_kernels_match_naive(&t, rows, cols, &activations(n, cols), n, &format!("n={n}"));
    }
}

/// Long rows: the x86 I2_S GEMM walks activation rows in blocks of 512 KiB (30 rows of
/// 14592 padded columns), so n across that block must give exactly the naive product too.
#[test]
fn long_rows_block_the_activation_rows() {
    let (rows, cols) = (5, 14336 + 77);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 7 + i / 11) % 3) as i8 - 1)
        .collect();
    for n in [35, 37, 73] {
        assert_kernels_match_naive(&t, rows, cols, &activations(n, cols), n, &format!("n={n}"));
    }
}
