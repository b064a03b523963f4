//! Every kernel this machine can run returns exactly the scalar reference's int32
//! accumulators (and the naive product of the unpacked trits), on random shapes and on the
//! edges around every block size.

mod common;

use bitnet_kernels::kernels::SCALAR;
use bitnet_kernels::{Format, TernaryMatrix};
use common::{assert_kernels_match_naive, cases, formats, kernel_sets, naive_gemm};
use proptest::prelude::*;

/// Checks every kernel, for every format, GEMV (n = 1) and GEMM, whole matrix (threads) and
/// single-thread row ranges, against the naive product.
fn check_all(t: &[i8], rows: usize, cols: usize, x: &[i8], n: usize) {
    let want = naive_gemm(t, rows, cols, x, n);
    for f in formats() {
        let m = TernaryMatrix::from_ternary(t, rows, cols, 1.0, f).unwrap();
        let mut sc = vec![0i32; n * rows];
        SCALAR.gemm_i8(&m, x, n, &mut sc).unwrap();
        assert_eq!(sc, want, "scalar {} {rows}x{cols} n={n}", f.name());
        for k in kernel_sets(f) {
            let mut y = vec![i32::MIN; n * rows];
            k.gemm_i8(&m, x, n, &mut y).unwrap();
            assert_eq!(y, want, "{} {} {rows}x{cols} n={n}", k.name(), f.name());
            // A row range that starts and ends inside tiles.
            let (a, b) = (rows / 3, rows - rows / 4);
            if a < b {
                let mut yr = vec![i32::MIN; n * (b - a)];
                k.gemm_i8_rows(&m, x, n, a..b, &mut yr).unwrap();
                for j in 0..n {
                    assert_eq!(
                        &yr[j * (b - a)..(j + 1) * (b - a)],
                        &want[j * rows + a..j * rows + b],
                        "{} {} rows {a}..{b} of {rows}x{cols} n={n}",
                        k.name(),
                        f.name()
                    );
                }
            }
            if n == 1 {
                let mut y1 = vec![i32::MIN; rows];
                k.gemv_i8(&m, x, &mut y1).unwrap();
                assert_eq!(y1, want, "{} {} gemv {rows}x{cols}", k.name(), f.name());
            }
        }
    }
}

fn trit() -> impl Strategy<Value = i8> {
    prop_oneof![Just(-1i8), Just(0i8), Just(1i8)]
}

fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
    (1usize..40, 1usize..1100, 1usize..6).prop_flat_map(|(rows, cols, n)| {
        (
            Just(rows),
            Just(cols),
            Just(n),
            proptest::collection::vec(trit(), rows * cols),
            proptest::collection::vec(any::<i8>(), n * cols),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]
    #[test]
    fn random_shapes_match_reference((rows, cols, n, t, x) in case()) {
        check_all(&t, rows, cols, &x, n);
    }
}

/// Column counts around every block size any format uses (2, 3, 64, 128, 256, ...).
const EDGE_COLS: &[usize] = &[
    1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 129, 191, 192, 193, 255, 256, 257,
    383, 384, 385, 511, 512, 513, 767, 768, 769, 1023, 1024, 1025,
];

#[test]
fn edge_shapes_with_extreme_values() {
    for &cols in EDGE_COLS {
        for rows in [1, 3, 4, 5, 7, 8, 9, 17] {
            for n in [1, 2, 5] {
                // All +1 rows against all 127 and all -128: the largest sums there are.
                let plus = vec![1i8; rows * cols];
                let minus = vec![-1i8; rows * cols];
                let zero = vec![0i8; rows * cols];
                let mixed: Vec<i8> = (0..rows * cols).map(|i| (i % 3) as i8 - 1).collect();
                for x_val in [127i8, -128, 0, 1] {
                    let x = vec![x_val; n * cols];
                    for t in [&plus, &minus, &zero, &mixed] {
                        check_all(t, rows, cols, &x, n);
                    }
                }
                let x: Vec<i8> = (0..n * cols)
                    .map(|i| if i % 2 == 0 { 127 } else { -128 })
                    .collect();
                check_all(&mixed, rows, cols, &x, n);
            }
        }
    }
}

/// The largest accumulators a long row can produce, where an int16 partial sum would wrap
/// (bitnet.cpp's AVX2 kernel wraps at K = 4096, all weights +1, activations 64).
#[test]
fn long_rows_do_not_overflow() {
    for cols in [4096, 4097, 20000] {
        let rows = 5;
        for (tv, xv) in [(1i8, 127i8), (1, -128), (-1, -128), (1, 64)] {
            let t = vec![tv; rows * cols];
            let x = vec![xv; cols];
            check_all(&t, rows, cols, &x, 1);
            let want = tv as i32 * xv as i32 * cols as i32;
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2S).unwrap();
            let mut y = vec![0; rows];
            bitnet_kernels::gemv_i8(&m, &x, &mut y).unwrap();
            assert_eq!(y, vec![want; rows]);
        }
    }
}

/// GEMM with more activation rows than the kernels' small-n paths take (AVX2: 3, AVX-512: 8),
/// so the unpacked-tile path runs with full and partial tiles, over one and several K blocks.
#[test]
fn gemm_tiles_and_k_blocks() {
    for cols in [255, 2048, 2049, 2560, 2561, 5121, 6912] {
        for rows in [5, 17] {
            let t: Vec<i8> = (0..rows * cols)
                .map(|i| ((i * 7 + i / 11) % 3) as i8 - 1)
                .collect();
            for n in [4, 7, 9, 13] {
                let x: Vec<i8> = (0..n * cols)
                    .map(|i: usize| (i.wrapping_mul(2654435761) >> 7) as u8 as i8)
                    .collect();
                check_all(&t, rows, cols, &x, n);
                check_all(&vec![1; rows * cols], rows, cols, &vec![-128; n * cols], n);
            }
        }
    }
}

/// The widest rows allowed (cols = 2^24 - 1, the documented limit) with every weight and
/// activation at an extreme, in every format: each kernel's accumulators reach their stated
/// bounds (|result| = 128 * (2^24 - 1) is just below 2^31), so a kernel whose partial sums
/// wrap anywhere along the row (a GEMV that never flushes its `c * 4^k` accumulators, an
/// int16 stage, a too-wide accumulator scale) fails here.
#[test]
fn widest_rows_at_the_extremes() {
    let (rows, cols) = (5, (1 << 24) - 1);
    // I2_S_COL pads rows to 256 (1 GiB here); its int16 stages flush every 255 / 127 columns,
    // which `long_rows_do_not_overflow` and `sparse_columns_at_every_density` cross.
    for f in formats().into_iter().filter(|&f| f != Format::I2SCol) {
        // I2_S: n = 9 takes the unpacked-tile GEMM path, n = 2 the small-n path. A TL GEMM is
        // one GEMV per activation row, so n = 2 covers its GEMM entry point; the scalar TL
        // reference (plain i32 sums, checked against the naive product elsewhere) takes ~3 s
        // a GEMV here, so only the SIMD TL kernels run.
        let (ns, sets): (&[usize], Vec<_>) = if f == Format::I2S {
            (&[1, 2, 9], kernel_sets(f))
        } else {
            let simd = kernel_sets(f).into_iter().filter(|k| k.name() != "scalar");
            (&[1, 2], simd.collect())
        };
        for (tv, xv) in [(1i8, -128i8), (-1, -128), (1, 127)] {
            let t = vec![tv; rows * cols];
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
            drop(t);
            let want = tv as i32 * xv as i32 * cols as i32;
            for &n in ns {
                let x = vec![xv; n * cols];
                for k in &sets {
                    let what = format!("{} {} t={tv} x={xv} n={n}", k.name(), f.name());
                    let mut y = vec![0; n * rows];
                    k.gemm_i8(&m, &x, n, &mut y).unwrap();
                    assert_eq!(y, vec![want; n * rows], "gemm {what}");
                    if n == 1 {
                        let mut y1 = vec![0; rows];
                        k.gemv_i8(&m, &x, &mut y1).unwrap();
                        assert_eq!(y1, vec![want; rows], "gemv {what}");
                    }
                }
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
    assert_kernels_match_naive(&t, rows, cols, &x, 2, "long mixed rows");
}

/// The threaded path (a matrix large enough to be split) agrees with the one-thread path.
#[test]
fn threaded_matches_single_thread() {
    let (rows, cols) = (1030, 4100);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 7 + i / 5) % 3) as i8 - 1)
        .collect();
    let x: Vec<i8> = (0..3 * cols).map(|i| (i * 31 % 256) as u8 as i8).collect();
    assert_kernels_match_naive(&t, rows, cols, &x, 3, "threaded");
}

#[test]
fn every_available_set_is_listed_and_scalar_is_last() {
    let names: Vec<_> = bitnet_kernels::kernels::KERNELS
        .iter()
        .map(|k| k.name())
        .collect();
    assert_eq!(names.last(), Some(&"scalar"));
    assert!(bitnet_kernels::kernels::available().any(|k| k.name() == "scalar"));
    let _ = Format::ALL;
}

/// I2_S_COL reads only the columns whose activation is non-zero: every density from 0 to 1
/// (all-zero rows, one non-zero, all non-zero), extreme values, ragged shapes around its
/// 256-row block and 64-column padding, against the naive product, for every kernel set.
#[test]
fn sparse_columns_at_every_density() {
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (rows, cols) in [
        (1, 1),
        (255, 63),
        (256, 64),
        (257, 65),
        (300, 700),
        (513, 129),
    ] {
        let t: Vec<i8> = (0..rows * cols).map(|_| (next() % 3) as i8 - 1).collect();
        for n in [1, 3] {
            for density in [0.0, 0.01, 0.16, 0.3, 0.5, 0.84, 1.0] {
                let x: Vec<i8> = (0..n * cols)
                    .map(|_| {
                        let keep = (next() % 1000) as f64 / 1000.0 < density;
                        let v = match next() % 4 {
                            0 => -128,
                            1 => 127,
                            _ => (next() % 256) as u8 as i8,
                        };
                        if keep {
                            v
                        } else {
                            0
                        }
                    })
                    .collect();
                check_all(&t, rows, cols, &x, n);
            }
            // Exactly one non-zero activation, at the first, a middle and the last column.
            for c in [0, cols / 2, cols - 1] {
                let mut x = vec![0i8; n * cols];
                x[c] = -128;
                x[(n - 1) * cols + c] = 127;
                check_all(&t, rows, cols, &x, n);
            }
        }
    }
    // Long rows crossing the flush periods (int16 lanes: 255 / 127 columns; AVX-512's int32
    // lanes of 4^k-scaled sums: 2^14 groups of 4 columns) with every weight and activation
    // extreme. 256 rows: every bit pair of a block (AVX-512's k = 3 lanes, 64 · c · x a
    // column, are the first to wrap: at 2^15 groups without a flush).
    for cols in [254, 255, 256, 1000, 5000, 65537, 140001] {
        let pairs: &[(i8, i8)] = if cols < 10_000 {
            &[(1, -128), (-1, -128), (1, 127), (-1, 127)]
        } else {
            &[(1, -128), (-1, 127)]
        };
        for &(tv, xv) in pairs {
            let rows = if cols < 10_000 { 3 } else { 256 };
            check_all(&vec![tv; rows * cols], rows, cols, &vec![xv; cols], 1);
        }
    }
}

/// I2_S_COL's windows: the AVX-512 GEMV lists the non-zero columns of 2048 columns at a time
/// and runs them down windows of 16 row blocks (4096 rows); columns are `rows_padded / 4`
/// bytes apart. Shapes crossing both windows (and a column window that ends in a partial
/// group of 4), GEMV row ranges that start and end mid-matrix, in every row window, at
/// several densities, with extreme values, against the naive product of the trits.
#[test]
fn sparse_windows_and_row_ranges() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (rows, cols) in [(4097, 2049), (8448, 130), (600, 4100)] {
        let t: Vec<i8> = (0..rows * cols).map(|_| (next() % 3) as i8 - 1).collect();
        let f = Format::I2SCol;
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
        for density in [0.003, 0.16, 0.5, 1.0] {
            let x: Vec<i8> = (0..cols)
                .map(|_| match next() % 1000 {
                    k if k as f64 >= density * 1000.0 => 0,
                    k if k % 3 == 0 => -128,
                    k if k % 3 == 1 => 127,
                    _ => (next() % 256) as u8 as i8,
                })
                .collect();
            let want = naive_gemm(&t, rows, cols, &x, 1);
            let ranges = [
                0..rows,
                256..rows,
                300..rows - 1,
                rows / 2 - 7..rows,
                rows - 1..rows,
                4096.min(rows - 1)..rows,
            ];
            for k in kernel_sets(f) {
                for r in &ranges {
                    let mut y = vec![i32::MIN; r.len()];
                    k.gemv_i8_rows(&m, &x, r.clone(), &mut y).unwrap();
                    assert!(
                        y == want[r.clone()],
                        "{} {rows}x{cols} density {density} rows {r:?}",
                        k.name()
                    );
                }
            }
        }
    }
}

/// Activations at any address: the products copy rows that do not start on a cache line
/// into an aligned buffer (and borrow those that do), with the same results either way,
/// GEMV and GEMM, on one thread and split over threads.
#[test]
fn activations_at_every_offset_in_a_line() {
    // cols = 512 is I2_S's padded width, so an aligned x is read in place.
    let (rows, cols, n) = (2816, 512, 3);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 5 + i / 7) % 3) as i8 - 1)
        .collect();
    let x: Vec<i8> = (0..n * cols).map(|i| (i * 29 % 255) as u8 as i8).collect();
    let mut buf = vec![0i8; x.len() + 128];
    let base = buf.as_ptr().align_offset(64);
    for off in [0, 1, 16, 32, 63] {
        let s = base + off;
        buf[s..s + x.len()].copy_from_slice(&x);
        assert_kernels_match_naive(
            &t,
            rows,
            cols,
            &buf[s..s + x.len()],
            n,
            &format!("offset {off}"),
        );
    }
}
