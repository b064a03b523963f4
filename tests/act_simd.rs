//! Every kernel set's activation quantizer and rescale return exactly the scalar ones' bits
//! (`quantize_activations`, `acc as f32 * factor`), and every set's f32 products equal the
//! definition `docs/FORMATS.md` §1 gives: scalar quantization, exact int32 product, rescale.

mod common;

use bitnet_kernels::kernels::{self, KernelSet};
use bitnet_kernels::quant::output_factor;
use bitnet_kernels::{quantize_activations, Error, Format, TernaryMatrix};
use common::{cases, formats};
use proptest::prelude::*;

/// Every set this machine can run (the scalar one included, as a check of the test itself).
fn sets() -> Vec<&'static KernelSet> {
    kernels::available().collect()
}

/// Checks one row on every set against the scalar quantizer: same `a` bits, same `q`, or
/// the same error with `q` untouched.
fn check_row(x: &[f32]) {
    let mut want = vec![0x55i8; x.len()];
    let want_a = quantize_activations(x, &mut want);
    for k in sets() {
        let mut q = vec![0x55i8; x.len()];
        let got = k.quantize_activations(x, &mut q);
        match (&want_a, &got) {
            (Ok(wa), Ok(ga)) => {
                assert_eq!(wa.to_bits(), ga.to_bits(), "{}: a of {x:?}", k.name());
                assert_eq!(q, want, "{}: q of {x:?}", k.name());
            }
            (Err(we), Err(ge)) => {
                assert_eq!(we, ge, "{}: error of {x:?}", k.name());
                assert!(q.iter().all(|&v| v == 0x55), "{}: wrote on error", k.name());
            }
            _ => panic!("{}: {want_a:?} vs {got:?} for {x:?}", k.name()),
        }
    }
}

/// Finite values of every kind: any bit pattern (huge, tiny, subnormal), ordinary
/// magnitudes, ±0, subnormals.
fn finite() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>()
            .prop_map(f32::from_bits)
            .prop_filter("finite", |v| v.is_finite()),
        -4.0f32..4.0,
        Just(0.0f32),
        Just(-0.0f32),
        (1u32..0x0080_0000, any::<bool>())
            .prop_map(|(b, neg)| f32::from_bits(b | if neg { 1 << 31 } else { 0 })),
    ]
}

/// A row whose absmax is `a` (at a random position) and whose other elements are chosen so
/// that `x * (127 / a)` lands exactly on ties `k + 0.5`, on the clamp (`±a` and its
/// neighbours), on ±0 and on subnormals.
fn tie_row(len: usize) -> impl Strategy<Value = Vec<f32>> {
    // 127 / a is exact for these a: 1.0, 0.5, 2.0, 0.25.
    let a = prop_oneof![
        Just(127.0f32),
        Just(254.0f32),
        Just(63.5f32),
        Just(508.0f32)
    ];
    (a, 0..len.max(1)).prop_flat_map(move |(a, at)| {
        let unit = a / 127.0;
        let elem = prop_oneof![
            (-127i32..127).prop_map(move |k| (k as f32 + 0.5) * unit),
            (-127i32..=127).prop_map(move |k| k as f32 * unit),
            Just(a),
            Just(-a),
            Just(f32::from_bits(a.to_bits() - 1)),
            Just(-f32::from_bits(a.to_bits() - 1)),
            Just(0.0f32),
            Just(-0.0f32),
            (1u32..0x0080_0000).prop_map(f32::from_bits),
        ];
        proptest::collection::vec(elem, len).prop_map(move |mut v| {
            if !v.is_empty() {
                v[at] = a;
            }
            v
        })
    })
}

fn any_row(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![proptest::collection::vec(finite(), len), tie_row(len)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn quantize_matches_scalar(x in (0usize..=200).prop_flat_map(any_row)) {
        check_row(&x);
    }

    #[test]
    fn quantize_long_rows_match_scalar(x in (1000usize..7000).prop_flat_map(any_row)) {
        check_row(&x);
    }

    /// NaN and ±Inf at random positions: the same first index, nothing written.
    #[test]
    fn non_finite_gives_the_scalar_error(
        (mut x, bad) in (1usize..300).prop_flat_map(|len| (
            any_row(len),
            proptest::collection::vec(
                (0..len, prop_oneof![
                    Just(f32::NAN), Just(-f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY),
                    Just(f32::from_bits(0x7f80_0001)),
                ]),
                1..4,
            ),
        ))
    ) {
        for &(i, v) in &bad {
            x[i] = v;
        }
        let first = bad.iter().map(|&(i, _)| i).min().unwrap();
        let mut q = vec![0i8; x.len()];
        prop_assert_eq!(
            quantize_activations(&x, &mut q),
            Err(Error::NonFinite { what: "activations", index: first })
        );
        check_row(&x);
    }

    #[test]
    fn rescale_matches_scalar(
        acc in (0usize..=200).prop_flat_map(|n| proptest::collection::vec(any::<i32>(), n)),
        factor in finite(),
    ) {
        let want: Vec<u32> = acc.iter().map(|&a| (a as f32 * factor).to_bits()).collect();
        for k in sets() {
            let mut y = vec![f32::NAN; acc.len()];
            k.rescale(&acc, factor, &mut y).unwrap();
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(&got, &want, "{}", k.name());
        }
    }

    #[test]
    fn rescale_rows_matches_scalar(
        (acc, scales) in (0usize..=200).prop_flat_map(|n| (
            proptest::collection::vec(any::<i32>(), n),
            proptest::collection::vec(finite(), n),
        )),
        act in finite(),
    ) {
        // The definition: two roundings, (s * act) first, no fused multiply-add.
        let want: Vec<u32> = acc
            .iter()
            .zip(&scales)
            .map(|(&a, &s)| (a as f32 * (s * act)).to_bits())
            .collect();
        for k in sets() {
            let mut y = vec![f32::NAN; acc.len()];
            k.rescale_rows(&acc, &scales, act, &mut y).unwrap();
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(&got, &want, "{}", k.name());
        }
    }
}

fn trit() -> impl Strategy<Value = i8> {
    prop_oneof![Just(-1i8), Just(0i8), Just(1i8)]
}

/// The f32 products of every set, for every format, whole matrix and row range, with one
/// scale and with per-row scales, are the definition: scalar quantization of each row, the
/// exact product, `acc as f32 * factor` (one scale) or `acc[i] as f32 * (s_i * (a / 127))`
/// (per-row scales).
fn check_products(t: &[i8], rows: usize, cols: usize, x: &[f32], n: usize, scale: f32) {
    // Per-row scales that differ from row to row (and from the one scale).
    let row_scales: Vec<f32> = (0..rows).map(|i| scale * (1.0 + 0.37 * i as f32)).collect();
    for (f, per_row) in formats().into_iter().flat_map(|f| [(f, false), (f, true)]) {
        let m = TernaryMatrix::from_ternary(t, rows, cols, scale, f).unwrap();
        let m = if per_row {
            m.with_row_scales(row_scales.clone()).unwrap()
        } else {
            m
        };
        let mut want = vec![0u32; n * rows];
        for j in 0..n {
            let mut q = vec![0i8; cols];
            let a = quantize_activations(&x[j * cols..(j + 1) * cols], &mut q).unwrap();
            let mut acc = vec![0i32; rows];
            kernels::SCALAR.gemv_i8(&m, &q, &mut acc).unwrap();
            for (i, (w, &v)) in want[j * rows..].iter_mut().zip(&acc).enumerate() {
                *w = if per_row {
                    (v as f32 * (row_scales[i] * (a / 127.0f32))).to_bits()
                } else {
                    (v as f32 * output_factor(scale, a)).to_bits()
                };
            }
        }
        let bits = |y: &[f32]| y.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for k in sets() {
            let mut y = vec![f32::NAN; n * rows];
            k.gemm_f32(&m, x, n, &mut y).unwrap();
            assert_eq!(
                bits(&y),
                want,
                "{} {} {rows}x{cols} n={n} per_row={per_row}",
                k.name(),
                f.name()
            );
            let (a, b) = (rows / 3, rows - rows / 4);
            if a < b {
                let mut yr = vec![f32::NAN; n * (b - a)];
                k.gemm_f32_rows(&m, x, n, a..b, &mut yr).unwrap();
                for j in 0..n {
                    assert_eq!(
                        bits(&yr[j * (b - a)..(j + 1) * (b - a)]),
                        &want[j * rows + a..j * rows + b],
                        "{} {} rows {a}..{b}",
                        k.name(),
                        f.name()
                    );
                }
                if n == 1 {
                    k.gemv_f32_rows(&m, x, a..b, &mut yr).unwrap();
                    assert_eq!(bits(&yr), &want[a..b], "{} {}", k.name(), f.name());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn f32_products_match_the_definition(
        (rows, cols, n, t, x, scale) in (1usize..40, 1usize..700, 1usize..5).prop_flat_map(
            |(rows, cols, n)| (
                Just(rows),
                Just(cols),
                Just(n),
                proptest::collection::vec(trit(), rows * cols),
                proptest::collection::vec(-3.0f32..3.0, n * cols),
                0.001f32..10.0,
            )
        )
    ) {
        check_products(&t, rows, cols, &x, n, scale);
    }
}

/// A product whose activations hold a NaN fails with the scalar index and leaves `y` alone,
/// on every set.
#[test]
fn non_finite_product_leaves_output_untouched() {
    let m = TernaryMatrix::from_ternary(&[1, 0, -1, 1, 1, 1], 2, 3, 1.0, Format::I2S).unwrap();
    for k in sets() {
        let mut y = [7.0f32; 4];
        let r = k.gemm_f32(&m, &[1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0], 2, &mut y);
        assert_eq!(
            r,
            Err(Error::NonFinite {
                what: "activations",
                index: 1
            }),
            "{}",
            k.name()
        );
        assert_eq!(y, [7.0; 4], "{}", k.name());
    }
}
