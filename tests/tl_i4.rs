//! The lookup-table kernels for int4 activations (`docs/FORMATS.md` §13: TL2 with one-byte
//! tables; TL1 the same) return exactly the scalar reference's int32 accumulators, called directly
//! (`gemm_i4`) and through the int8 products, which take them when every activation is in
//! −8..=7: ragged rows and columns off every tile and step, activations at −8 and 7,
//! all-zero rows, K past every flush and chunk bound, the bounded (no-table-memory) form.

mod common;

use bitnet_kernels::kernels::{self, KernelSet, SCALAR};
use bitnet_kernels::{Format, TernaryMatrix};
use common::{cases, naive_gemm};
use proptest::prelude::*;

/// The formats with int4 kernels.
const FORMATS: [Format; 2] = [Format::TL1, Format::TL2];

/// The sets this CPU runs that have their own int4 kernels for `f`.
fn i4_sets(f: Format) -> Vec<&'static KernelSet> {
    kernels::available().filter(|k| k.has_own_i4(f)).collect()
}

/// Every int4 kernel of `f`, forced and through the int8 products (whole matrix, GEMV, a
/// row range inside tiles), against the naive product; the scalar set too.
fn check(t: &[i8], rows: usize, cols: usize, x: &[i8], n: usize) {
    let want = naive_gemm(t, rows, cols, x, n);
    for f in FORMATS {
        let m = TernaryMatrix::from_ternary(t, rows, cols, 1.0, f).unwrap();
        let mut sc = vec![i32::MIN; n * rows];
        SCALAR.gemm_i8(&m, x, n, &mut sc).unwrap();
        assert_eq!(sc, want, "scalar {} {rows}x{cols} n={n}", f.name());
        for k in i4_sets(f) {
            let what = format!("{} {} {rows}x{cols} n={n}", k.name(), f.name());
            let mut y = vec![i32::MIN; n * rows];
            k.gemm_i4(&m, x, n, &mut y).unwrap();
            assert_eq!(y, want, "int4 kernel, {what}");
            let mut y = vec![i32::MIN; n * rows];
            k.gemm_i8(&m, x, n, &mut y).unwrap();
            assert_eq!(y, want, "gemm_i8, {what}");
            let mut y1 = vec![i32::MIN; rows];
            k.gemv_i8(&m, &x[..cols], &mut y1).unwrap();
            assert_eq!(y1, want[..rows], "gemv_i8, {what}");
            let (a, b) = (rows / 3, rows - rows / 4);
            if a < b {
                let mut yr = vec![i32::MIN; n * (b - a)];
                k.gemm_i8_rows(&m, x, n, a..b, &mut yr).unwrap();
                for j in 0..n {
                    assert_eq!(
                        &yr[j * (b - a)..(j + 1) * (b - a)],
                        &want[j * rows + a..j * rows + b],
                        "rows {a}..{b}, {what}"
                    );
                }
            }
        }
    }
}

/// This machine has int4 kernels to test (every x86-64 CPU the tests run on has AVX2;
/// every AArch64 one NEON), so the checks below cannot pass by testing nothing.
#[test]
#[cfg_attr(miri, ignore = "Miri runs no C kernels")]
fn int4_kernels_are_present() {
    for f in FORMATS {
        let sets: Vec<_> = i4_sets(f).iter().map(|k| k.name()).collect();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(sets.contains(&"avx2"), "{} {sets:?}", f.name());
        }
        #[cfg(target_arch = "aarch64")]
        assert!(sets.contains(&"neon"), "{} {sets:?}", f.name());
        assert!(!SCALAR.has_own_i4(f));
    }
}

/// Activations outside −8..=7 are refused by the forced int4 call (and taken by the int8
/// kernels in the products).
#[test]
fn int4_call_refuses_int8_values() {
    let t = [1i8, -1, 0, 1, 1, 1];
    let m = TernaryMatrix::from_ternary(&t, 2, 3, 1.0, Format::TL2).unwrap();
    for k in i4_sets(Format::TL2) {
        let mut y = [0i32; 2];
        for bad in [[8i8, 0, 0], [0, -9, 0], [0, 0, 127]] {
            assert!(k.gemm_i4(&m, &bad, 1, &mut y).is_err(), "{}", k.name());
            k.gemv_i8(&m, &bad, &mut y).unwrap();
            assert_eq!(y, naive_gemm(&t, 2, 3, &bad, 1)[..], "{}", k.name());
        }
    }
}

fn trit() -> impl Strategy<Value = i8> {
    prop_oneof![Just(-1i8), Just(0i8), Just(1i8)]
}

/// int4 values, the extremes often.
fn int4() -> impl Strategy<Value = i8> {
    prop_oneof![Just(-8i8), Just(7i8), Just(0i8), -8i8..=7]
}

fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
    (1usize..150, 1usize..1200, 1usize..4).prop_flat_map(|(rows, cols, n)| {
        (
            Just(rows),
            Just(cols),
            Just(n),
            proptest::collection::vec(trit(), rows * cols),
            proptest::collection::vec(int4(), n * cols),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]
    #[test]
    #[cfg_attr(miri, ignore = "proptest shapes are too large for Miri")]
    fn random_shapes_match_reference((rows, cols, n, t, x) in case()) {
        check(&t, rows, cols, &x, n);
    }
}

/// A deterministic pseudo-random sequence (xorshift) mapped into `lo..=hi`.
fn seq(seed: u64, len: usize, lo: i8, hi: i8) -> Vec<i8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (lo as i64 + (s % (hi as i64 - lo as i64 + 1) as u64) as i64) as i8
        })
        .collect()
}

/// Columns around every step (16, 24), the AVX2 flush (256 steps: 4096 / 6144 columns) and
/// the bounded chunk (448 steps: 7168 / 10752 columns); rows around the 64-row tile. Weight rows all
/// +1, all −1, all 0 and mixed; activation rows all −8, all 7, all 0 and mixed: the largest
/// sums of either sign every bound must hold.
#[test]
#[cfg_attr(miri, ignore = "too large for Miri")]
fn edges_and_extremes() {
    for &cols in &[
        1, 2, 3, 15, 16, 17, 23, 24, 25, 47, 48, 49, 4095, 4096, 4097, 6143, 6144, 6145, 7167,
        7168, 7169, 10751, 10752, 10753, 12293,
    ] {
        for &rows in &[1, 63, 64, 65, 130] {
            let mut t = seq(cols as u64 * 7 + rows as u64, rows * cols, -1, 1);
            for (r, row) in t.chunks_exact_mut(cols).enumerate() {
                match r % 5 {
                    0 => row.fill(1),
                    1 => row.fill(-1),
                    2 => row.fill(0),
                    _ => {}
                }
            }
            let n = 4;
            let mut x = seq(cols as u64 + 3, n * cols, -8, 7);
            x[..cols].fill(-8);
            x[cols..2 * cols].fill(7);
            x[2 * cols..3 * cols].fill(0);
            check(&t, rows, cols, &x, n);
        }
    }
}

/// Tables of many rows past the 16 MiB budget: the bounded form runs (K in balanced passes
/// accumulating into y, tables on the stack).
#[test]
#[cfg_attr(miri, ignore = "too large for Miri")]
fn beyond_table_budget_runs_bounded_passes() {
    let (rows, cols, n) = (66, 12293, 260);
    let t = seq(5, rows * cols, -1, 1);
    let mut x = seq(6, n * cols, -8, 7);
    x[..cols].fill(-8);
    let want = naive_gemm(&t, rows, cols, &x, n);
    for f in FORMATS {
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
        for k in i4_sets(f) {
            let mut y = vec![i32::MIN; n * rows];
            k.gemm_i4(&m, &x, n, &mut y).unwrap();
            assert_eq!(y, want, "{} {}", k.name(), f.name());
        }
    }
}
