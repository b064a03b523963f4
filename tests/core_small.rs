//! The pure-Rust core on small cases, fast enough to run under Miri
//! (`BITNET_KERNEL=scalar cargo +nightly miri test --test core_small`, in `.ci/run`):
//! quantizers (ties, clamps, non-finite input), packers and unpackers of every format,
//! validation of packed bytes, the bitnet.cpp blob, the scalar reference against the naive
//! product, and the error paths of the safe API. Natively it also runs every kernel set.

// Reversed row ranges (4..2) are written on purpose: they must be errors.
#![allow(clippy::reversed_empty_ranges)]

mod common;

use bitnet_kernels::kernels::{KernelSet, SCALAR};
use bitnet_kernels::{quantize_activations, quantize_weights, Error, Format, TernaryMatrix};
use common::{formats, naive_gemm};

fn sets(f: Format) -> Vec<&'static KernelSet> {
    if cfg!(miri) {
        vec![&SCALAR] // Miri cannot call the C kernels
    } else {
        common::kernel_sets(f)
    }
}

/// Small shapes around the I2_S / TL blocks (fewer under Miri, which interprets every step).
const SHAPES: &[(usize, usize)] = if cfg!(miri) {
    &[(1, 1), (3, 5), (5, 129)]
} else {
    &[(1, 1), (3, 5), (4, 64), (5, 129), (2, 257), (7, 33)]
};

fn trits(rows: usize, cols: usize, seed: usize) -> Vec<i8> {
    (0..rows * cols)
        .map(|i| ((i * 5 + seed + i / 7) % 3) as i8 - 1)
        .collect()
}

#[test]
fn quantizers_round_ties_to_even_and_reject_non_finite() {
    // 127 / 2 * 0.5 = 31.75 -> 32; 63.5 is a tie -> 64; -63.5 -> -64; 0.5 of 1 -> 63.5 -> 64.
    let mut q = [0i8; 5];
    let a = quantize_activations(&[2.0, 1.0, -1.0, 0.0, 0.5], &mut q).unwrap();
    assert_eq!(a, 2.0);
    assert_eq!(q, [127, 64, -64, 0, 32]);
    // An all-zero row stays zero (the 1e-5 clamp), tiny values are still quantized.
    let mut q = [9i8; 3];
    assert_eq!(quantize_activations(&[0.0; 3], &mut q).unwrap(), 1e-5);
    assert_eq!(q, [0; 3]);
    let mut q = [0i8; 2];
    quantize_activations(&[1e-30, -1e-30], &mut q).unwrap();
    assert_eq!(q, [0, 0]);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut q = [7i8; 2];
        assert_eq!(
            quantize_activations(&[1.0, bad], &mut q),
            Err(Error::NonFinite {
                what: "activations",
                index: 1
            })
        );
        assert_eq!(q, [7, 7], "nothing written on failure");
        assert_eq!(
            quantize_weights(&[bad, 1.0], 1, 2),
            Err(Error::NonFinite {
                what: "weights",
                index: 0
            })
        );
    }
    assert!(matches!(
        quantize_activations(&[1.0], &mut [0i8; 2]),
        Err(Error::LengthMismatch { .. })
    ));
    // Weights: m = mean |w| = 1; |w| < m/2 is zero; everything else clamps to +-1.
    let (t, m) = quantize_weights(&[0.4, -0.6, 2.5, -0.5, 0.5, 0.0], 2, 3).unwrap();
    assert_eq!(m, 0.75);
    assert_eq!(t, vec![1, -1, 1, -1, 1, 0]);
    let (t, m) = quantize_weights(&[0.0; 4], 2, 2).unwrap();
    assert_eq!((t, m), (vec![0; 4], 1e-5));
    assert!(matches!(
        quantize_weights(&[1.0; 3], 2, 2),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        quantize_weights(&[], 0, 2),
        Err(Error::InvalidShape(_))
    ));
}

#[test]
fn every_format_packs_validates_and_multiplies_exactly() {
    for f in formats() {
        for &(rows, cols) in SHAPES {
            let t = trits(rows, cols, rows + cols);
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 0.5, f).unwrap();
            assert_eq!(m.to_ternary(), t, "{} {rows}x{cols}", f.name());
            assert_eq!(m.packed_bytes().len(), m.layout().packed_len);
            assert_eq!(
                m.packed_bytes().as_ptr() as usize % 64,
                0,
                "64-byte aligned"
            );
            // The packed bytes import back to the same matrix; one flipped bit somewhere is
            // either rejected or a different valid matrix that round-trips itself.
            let p = m.packed_bytes().to_vec();
            let back = TernaryMatrix::from_packed(&p, rows, cols, 0.5, f).unwrap();
            assert_eq!(back.to_ternary(), t);
            for i in [0, p.len() / 2, p.len() - 1] {
                let mut q = p.clone();
                q[i] ^= 0x40;
                match TernaryMatrix::from_packed(&q, rows, cols, 0.5, f) {
                    Ok(m2) => {
                        let again =
                            TernaryMatrix::from_ternary(&m2.to_ternary(), rows, cols, 0.5, f)
                                .unwrap();
                        assert_eq!(again.packed_bytes(), &q[..], "one packed form");
                    }
                    Err(e) => assert!(matches!(e, Error::InvalidData(_)), "{e:?}"),
                }
            }
            assert!(matches!(
                TernaryMatrix::from_packed(&p[1..], rows, cols, 0.5, f),
                Err(Error::LengthMismatch { .. })
            ));
            assert_eq!(
                TernaryMatrix::from_packed(&p, rows, cols, f32::NAN, f).err(),
                Some(Error::NonFinite {
                    what: "scale",
                    index: 0
                })
            );
            // Products: scalar (and natively every kernel) = the naive product.
            let n = 2;
            let x: Vec<i8> = (0..n * cols).map(|i| (i * 53 + 128) as u8 as i8).collect();
            let want = naive_gemm(&t, rows, cols, &x, n);
            for k in sets(f) {
                let mut y = vec![i32::MIN; n * rows];
                k.gemm_i8(&m, &x, n, &mut y).unwrap();
                assert_eq!(y, want, "{} {} {rows}x{cols}", k.name(), f.name());
                let mut y = vec![i32::MIN; rows];
                k.gemv_i8(&m, &x[..cols], &mut y).unwrap();
                assert_eq!(y, want[..rows], "{} {} gemv", k.name(), f.name());
                if rows > 1 {
                    let mut y = vec![i32::MIN; rows - 1];
                    k.gemv_i8_rows(&m, &x[..cols], 1..rows, &mut y).unwrap();
                    assert_eq!(y, want[1..rows], "{} {} rows", k.name(), f.name());
                }
            }
        }
    }
}

#[test]
fn bitnet_blob_round_trips_and_rejects_code_3() {
    let (rows, cols) = (3, 256);
    let t = trits(rows, cols, 1);
    let m = TernaryMatrix::from_ternary(&t, rows, cols, 0.25, Format::I2S).unwrap();
    let blob = m.to_bitnet_i2s().unwrap();
    assert_eq!(blob.len(), rows * cols / 4 + 32);
    let back = TernaryMatrix::from_bitnet_i2s(&blob, rows, cols).unwrap();
    assert_eq!((back.to_ternary(), back.scale()), (t, 0.25));
    let mut bad = blob.clone();
    bad[5] |= 0x03;
    assert!(matches!(
        TernaryMatrix::from_bitnet_i2s(&bad, rows, cols),
        Err(Error::InvalidData(_))
    ));
    let mut nan = blob.clone();
    let tail = rows * cols / 4;
    nan[tail..tail + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(
        TernaryMatrix::from_bitnet_i2s(&nan, rows, cols).err(),
        Some(Error::NonFinite {
            what: "blob scale",
            index: 0
        })
    );
    assert!(matches!(
        TernaryMatrix::from_bitnet_i2s(&blob[1..], rows, cols),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        TernaryMatrix::from_bitnet_i2s(&blob, rows, cols + 1),
        Err(Error::InvalidShape(_))
    ));
}

#[test]
fn the_safe_api_rejects_bad_calls_without_writing() {
    let m = TernaryMatrix::from_ternary(&trits(5, 40, 0), 5, 40, 1.0, Format::I2S).unwrap();
    let x = vec![1i8; 40];
    let xf = vec![0.5f32; 40];
    let k = &SCALAR;
    let mut y = vec![-9i32; 5];
    assert!(matches!(
        k.gemv_i8(&m, &x[1..], &mut y),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        k.gemv_i8(&m, &x, &mut y[1..]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        k.gemm_i8(&m, &[], 0, &mut []),
        Err(Error::InvalidShape(_))
    ));
    for r in [3..3, 4..2, 0..6, 5..6] {
        assert!(
            matches!(
                k.gemv_i8_rows(&m, &x, r.clone(), &mut y[..r.len().min(5)]),
                Err(Error::InvalidShape(_))
            ),
            "{r:?}"
        );
    }
    assert!(y.iter().all(|&v| v == -9), "nothing written on failure");
    let mut yf = vec![-9.0f32; 5];
    let mut bad = xf.clone();
    bad[17] = f32::NAN;
    assert_eq!(
        k.gemm_f32(&m, &bad, 1, &mut yf),
        Err(Error::NonFinite {
            what: "activations",
            index: 17
        })
    );
    assert!(matches!(
        k.gemm_f32(&m, &xf, 2, &mut yf),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        k.gemv_f32_rows(&m, &xf, 2..1, &mut yf[..1]),
        Err(Error::InvalidShape(_))
    ));
    assert!(yf.iter().all(|&v| v == -9.0));
    assert!(matches!(Format::from_id(4), Err(Error::InvalidFormat(4))));
    assert!(matches!(Format::from_id(-1), Err(Error::InvalidFormat(-1))));
    assert!(bitnet_kernels::kernels::by_name("no-such-kernel").is_err());
}

/// `gemm_f32_rows` (and `ternary_gemm_rows`) give, bit for bit, the same rows of a
/// whole-matrix `gemm_f32`, for ranges that start and end inside row tiles.
#[test]
fn gemm_f32_rows_match_the_whole_product() {
    let (rows, cols, n) = (70, 37, 3);
    let t: Vec<i8> = (0..rows * cols).map(|i| (i * 7 % 3) as i8 - 1).collect();
    let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    for f in formats() {
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 0.75, f).unwrap();
        for k in sets(f) {
            let mut whole = vec![0.0f32; n * rows];
            k.gemm_f32(&m, &x, n, &mut whole).unwrap();
            for r in [0..rows, 1..5, 3..67, 69..70] {
                let mut part = vec![f32::NAN; n * r.len()];
                k.gemm_f32_rows(&m, &x, n, r.clone(), &mut part).unwrap();
                for j in 0..n {
                    let want = &whole[j * rows + r.start..j * rows + r.end];
                    let got = &part[j * r.len()..(j + 1) * r.len()];
                    assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{f} {} rows {r:?} activation row {j}",
                        k.name()
                    );
                }
            }
            let mut short = vec![0.0f32; n * 4 - 1];
            assert!(matches!(
                k.gemm_f32_rows(&m, &x, n, 1..5, &mut short),
                Err(Error::LengthMismatch { .. })
            ));
        }
    }
}

/// `ternary_gemv_i4` on a matrix with one scale per row: each accumulator times its own row's
/// scale times the int4 activation factor, `acc * (s_i * (β / sqrtf(7)))` (absmean) or
/// `acc * (s_i * (a / 7))` (absmax), bit for bit.
#[test]
fn int4_product_with_row_scales() {
    use bitnet_kernels::{gemv_i8, quantize_activations_i4, ternary_gemv_i4, I4Mode};
    let (rows, cols) = (9, 37);
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 7 + 3) % 3) as i8 - 1)
        .collect();
    let scales: Vec<f32> = (0..rows).map(|r| 0.3 + r as f32 * 0.7).collect();
    let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2S)
        .unwrap()
        .with_row_scales(scales.clone())
        .unwrap();
    let x: Vec<f32> = (0..cols).map(|j| ((j * 13) % 17) as f32 - 8.25).collect();
    for mode in [I4Mode::AbsMean, I4Mode::AbsMax] {
        let mut q = vec![0i8; cols];
        let s = quantize_activations_i4(&x, &mut q, mode).unwrap();
        let mut acc = vec![0i32; rows];
        gemv_i8(&m, &q, &mut acc).unwrap();
        let f = bitnet_kernels::quant::output_factor_i4(1.0, s, mode);
        let mut y = vec![0.0f32; rows];
        ternary_gemv_i4(&m, &x, mode, &mut y).unwrap();
        for i in 0..rows {
            assert_eq!(
                y[i].to_bits(),
                (acc[i] as f32 * (scales[i] * f)).to_bits(),
                "{mode:?} row {i}"
            );
        }
    }
}
