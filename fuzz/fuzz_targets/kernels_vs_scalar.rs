//! Every kernel this CPU can run, for every format this build packs, against the scalar
//! reference (`assert_eq!` on the int32 accumulators), on fuzzer-chosen shapes and values:
//! GEMV, GEMM and row ranges that start and end inside tiles. Mode 1 drives the extremes:
//! rows of all +1 / all -1 (or a fuzzer bit pattern) against activations all 127 or all -128
//! over long K (up to 20000), where any narrow partial sum would wrap; those results are also
//! checked against their closed form.
#![no_main]

mod common;

use bitnet_kernels::kernels::SCALAR;
use bitnet_kernels::TernaryMatrix;
use common::{cycle, formats, naive_gemm, sets, trit, Bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let extreme = b.u8() % 4 == 1;
    let (rows, cols, n, t, x) = if extreme {
        let rows = 1 + b.u8() as usize % 5;
        let cols = 1 + b.u16() as usize % 20000; // long K (bitnet.cpp's AVX2 wraps at 4096)
        let n = 1 + b.u8() as usize % 2;
        let pattern = b.u8();
        let t: Vec<i8> = (0..rows * cols)
            .map(|i| match pattern % 3 {
                0 => 1,
                1 => -1,
                _ => ((pattern >> (i / cols % 8)) & 1) as i8 * 2 - 1, // ±1 a row
            })
            .collect();
        let xbits = b.u8(); // bit j: activation row j is all -128, else all 127
        let x: Vec<i8> = (0..n * cols)
            .map(|i| {
                if (xbits >> (i / cols)) & 1 == 1 {
                    -128
                } else {
                    127
                }
            })
            .collect();
        (rows, cols, n, t, x)
    } else {
        let rows = 1 + b.u8() as usize % 70; // crosses I2_S's 4-row and TL's 64-row tiles
        let cols = 1 + b.u16() as usize % 1100;
        let n = 1 + b.u8() as usize % 4;
        let t = cycle(b.take(512), rows * cols, trit);
        let x = cycle(b.take(512), n * cols, |v| v as i8);
        (rows, cols, n, t, x)
    };
    let want = if extreme {
        // Closed form: every row is constant ±1 and every activation row constant.
        let mut y = vec![0i32; n * rows];
        for j in 0..n {
            for r in 0..rows {
                y[j * rows + r] = t[r * cols] as i32 * x[j * cols] as i32 * cols as i32;
            }
        }
        assert_eq!(y, naive_gemm(&t, rows, cols, &x, n));
        y
    } else {
        naive_gemm(&t, rows, cols, &x, n)
    };
    let a = b.u8() as usize % rows;
    let e = a + 1 + b.u8() as usize % (rows - a);
    for f in formats() {
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
        let mut sc = vec![0i32; n * rows];
        SCALAR.gemm_i8(&m, &x, n, &mut sc).unwrap();
        assert_eq!(sc, want, "scalar {} {rows}x{cols} n={n}", f.name());
        for k in sets(f) {
            let mut y = vec![i32::MIN; n * rows];
            k.gemm_i8(&m, &x, n, &mut y).unwrap();
            assert_eq!(
                y,
                want,
                "{} {} gemm {rows}x{cols} n={n}",
                k.name(),
                f.name()
            );
            let mut y = vec![i32::MIN; rows];
            k.gemv_i8(&m, &x[..cols], &mut y).unwrap();
            assert_eq!(
                y,
                want[..rows],
                "{} {} gemv {rows}x{cols}",
                k.name(),
                f.name()
            );
            let mut yr = vec![i32::MIN; n * (e - a)];
            k.gemm_i8_rows(&m, &x, n, a..e, &mut yr).unwrap();
            for j in 0..n {
                assert_eq!(
                    yr[j * (e - a)..(j + 1) * (e - a)],
                    want[j * rows + a..j * rows + e],
                    "{} {} rows {a}..{e} of {rows}x{cols} n={n}",
                    k.name(),
                    f.name()
                );
            }
        }
    }
});
