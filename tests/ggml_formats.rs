//! Round trips for every ggml / Hugging Face importer and exporter pair, and their refusals
//! (docs/FORMATS.md §7). The byte-exact comparison with ggml's own quantizer is in
//! tests/ggml_reference.rs.

mod common;

use bitnet_kernels::format::ggml::{
    f16_to_f32, f32_to_f16, GGML_TYPE_I2_S, GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0,
};
use bitnet_kernels::{Error, Format, HfScale, Scales, TernaryMatrix};
use common::{cases, formats};
use proptest::prelude::*;

const TQ: [u32; 2] = [GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0];

/// rows, cols (a multiple of 256), trits with some all-zero blocks, and an fp16 scale.
fn tq_matrix() -> impl Strategy<Value = (usize, usize, Vec<i8>, f32)> {
    (1usize..12, 1usize..4, 1u16..0x7C00).prop_flat_map(|(rows, kb, h)| {
        let n = rows * kb * 256;
        (
            Just(rows),
            Just(kb * 256),
            proptest::collection::vec(-1i8..=1, n),
            proptest::collection::vec(any::<bool>(), rows * kb),
            Just(f16_to_f32(h)),
        )
            .prop_map(|(rows, cols, mut t, zero, s)| {
                for (b, z) in zero.iter().enumerate() {
                    if *z {
                        t[b * 256..(b + 1) * 256].fill(0);
                    }
                }
                (rows, cols, t, s)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn tq_round_trips((rows, cols, t, s) in tq_matrix()) {
        let all_zero = t.iter().all(|&v| v == 0);
        for ty in TQ {
            for f in formats() {
                let m = TernaryMatrix::from_ternary(&t, rows, cols, s, f).unwrap();
                let bytes = m.to_ggml(ty).unwrap();
                prop_assert_eq!(bytes.len(), TernaryMatrix::ggml_size(ty, rows, cols).unwrap());
                let back = TernaryMatrix::from_ggml(ty, &bytes, rows, cols, f).unwrap();
                if all_zero {
                    prop_assert_eq!(back.to_ternary(), t.clone());
                    prop_assert_eq!(back.scale(), 1.0);
                } else {
                    prop_assert_eq!(&back, &m);
                }
                prop_assert_eq!(back.to_ggml(ty).unwrap(), bytes);
            }
        }
    }

    #[test]
    fn tq_row_scales_round_trip(
        (rows, cols, t, _s) in tq_matrix(),
        h in proptest::collection::vec(0x0400u16..0x7C00, 12),
    ) {
        // fp16 row scales (exact through the round trip), each row its own.
        let scales: Vec<f32> = h[..rows].iter().map(|&h| f16_to_f32(h)).collect();
        for ty in TQ {
            for f in formats() {
                let m = TernaryMatrix::from_ternary_row_scales(&t, rows, cols, scales.clone(), f)
                    .unwrap();
                let bytes = m.to_ggml(ty).unwrap();
                let back = TernaryMatrix::from_ggml(ty, &bytes, rows, cols, f).unwrap();
                prop_assert_eq!(back.to_ternary(), t.clone());
                // What the file can say: each row with a non-zero weight keeps its scale;
                // one scale when those all agree; an all-zero row reads 1.0.
                let live: Vec<usize> = (0..rows)
                    .filter(|&r| t[r * cols..(r + 1) * cols].iter().any(|&v| v != 0))
                    .collect();
                match back.scales() {
                    Scales::One(s) => prop_assert!(
                        live.iter().all(|&r| scales[r] == s)
                            && (!live.is_empty() || s == 1.0)
                    ),
                    Scales::PerRow(s) => {
                        for r in 0..rows {
                            let want = if live.contains(&r) { scales[r] } else { 1.0 };
                            prop_assert_eq!(s[r], want, "row {}", r);
                        }
                    }
                }
                prop_assert_eq!(back.to_ggml(ty).unwrap(), bytes);
            }
        }
    }

    #[test]
    fn tq_scale_is_fp16_rounded((rows, cols, t, _s) in tq_matrix(), s in 1e-6f32..60000.0) {
        prop_assume!(t.iter().any(|&v| v != 0));
        let m = TernaryMatrix::from_ternary(&t, rows, cols, s, Format::I2S).unwrap();
        for ty in TQ {
            let back =
                TernaryMatrix::from_ggml(ty, &m.to_ggml(ty).unwrap(), rows, cols, Format::I2S)
                    .unwrap();
            prop_assert_eq!(back.to_ternary(), t.clone());
            prop_assert_eq!(back.scale(), f16_to_f32(f32_to_f16(s)));
        }
    }

    #[test]
    fn i2s_in_gguf_round_trips(rows in 1usize..10, kb in 1usize..5, seed in any::<u64>()) {
        let cols = kb * 128;
        let t: Vec<i8> = (0..rows * cols)
            .map(|i| ((seed.wrapping_mul(i as u64 + 1) >> 7) % 3) as i8 - 1)
            .collect();
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 0.37, Format::I2S).unwrap();
        let blob = m.to_ggml(GGML_TYPE_I2_S).unwrap();
        prop_assert_eq!(&blob, &m.to_bitnet_i2s().unwrap());
        prop_assert_eq!(blob.len(), TernaryMatrix::ggml_size(GGML_TYPE_I2_S, rows, cols).unwrap());
        for f in formats() {
            let back = TernaryMatrix::from_ggml(GGML_TYPE_I2_S, &blob, rows, cols, f).unwrap();
            prop_assert_eq!(back, m.to_format(f).unwrap());
        }
    }

    #[test]
    fn hf_round_trips(q in 1usize..6, cols in 1usize..300, seed in any::<u64>(), s in 1e-3f32..10.0) {
        let rows = 4 * q;
        let t: Vec<i8> = (0..rows * cols)
            .map(|i| ((seed.wrapping_mul(2 * i as u64 + 1) >> 9) % 3) as i8 - 1)
            .collect();
        for f in formats() {
            let m = TernaryMatrix::from_ternary(&t, rows, cols, s, f).unwrap();
            let p = m.to_hf_packed().unwrap();
            prop_assert_eq!(p.len(), rows * cols / 4);
            let back = TernaryMatrix::from_hf_packed(&p, rows, cols, s, HfScale::Multiply, f).unwrap();
            prop_assert_eq!(&back, &m);
            let div = TernaryMatrix::from_hf_packed(&p, rows, cols, s, HfScale::Divide, f).unwrap();
            prop_assert_eq!(div.to_ternary(), t.clone());
            prop_assert_eq!(div.scale(), 1.0 / s);
        }
    }
}

fn tq_bytes(ty: u32, rows: usize, cols: usize, scale: f32) -> Vec<u8> {
    let t: Vec<i8> = (0..rows * cols).map(|i| (i % 3) as i8 - 1).collect();
    TernaryMatrix::from_ternary(&t, rows, cols, scale, Format::I2S)
        .unwrap()
        .to_ggml(ty)
        .unwrap()
}

#[test]
fn bad_ggml_input_is_refused() {
    let imp = |ty, b: &[u8], r, c| TernaryMatrix::from_ggml(ty, b, r, c, Format::I2S);
    for ty in TQ {
        let b = tq_bytes(ty, 2, 512, 0.5);
        assert!(matches!(imp(ty, &b, 2, 300), Err(Error::InvalidShape(_))));
        assert!(matches!(
            imp(ty, &b[1..], 2, 512),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            imp(ty, &b, 3, 512),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(imp(ty, &b, 0, 512), Err(Error::InvalidShape(_))));
        assert!(TernaryMatrix::ggml_size(ty, 2, 300).is_err());
    }
    for ty in [0, 1, 33, 37, 38, 39, 40, u32::MAX] {
        let e = imp(ty, &[0; 66], 1, 256).unwrap_err();
        assert!(matches!(&e, Error::Unsupported(_)), "{e}");
        assert!(TernaryMatrix::ggml_size(ty, 1, 256).is_err());
    }
    let e = imp(39, &[0; 66], 1, 256).unwrap_err().to_string();
    assert!(
        e.contains("TL2") && e.contains("MXFP4") && e.contains("tiling"),
        "{e}"
    );
    let m = TernaryMatrix::from_ternary(&[0; 300], 1, 300, 1.0, Format::I2S).unwrap();
    assert!(matches!(
        m.to_ggml(GGML_TYPE_TQ2_0),
        Err(Error::InvalidShape(_))
    ));
    let big = TernaryMatrix::from_ternary(&[1; 256], 1, 256, 70000.0, Format::I2S).unwrap();
    assert!(matches!(
        big.to_ggml(GGML_TYPE_TQ1_0),
        Err(Error::InvalidData(_))
    ));

    // TQ2_0: code 3, block 1, byte 5.
    let mut b = tq_bytes(GGML_TYPE_TQ2_0, 1, 512, 0.5);
    b[66 + 5] |= 0x0C;
    let e = imp(GGML_TYPE_TQ2_0, &b, 1, 512).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidData(s) if s.contains("code 3") && s.contains("block 1")),
        "{e}"
    );
    // TQ1_0: every byte value ggml never writes, in a 5-trit and a 4-trit position, and a
    // 4-trit byte whose fifth digit is not 0.
    let good = tq_bytes(GGML_TYPE_TQ1_0, 1, 256, 0.5);
    let mut refused = 0;
    for v in 0..=255u8 {
        for pos in [0, 40, 50] {
            let mut b = good.clone();
            b[pos] = v;
            if imp(GGML_TYPE_TQ1_0, &b, 1, 256).is_err() {
                refused += 1;
            }
        }
    }
    // 13 never-written values at each position; 4-trit bytes also refuse the 162 values
    // whose fifth digit is 1 or 2 (243 - 81 valid 4-trit values).
    assert_eq!(refused, 13 + 13 + (256 - 81));
    // Non-finite d.
    let mut b = tq_bytes(GGML_TYPE_TQ2_0, 1, 256, 0.5);
    b[64..66].copy_from_slice(&0x7C00u16.to_le_bytes());
    assert!(matches!(
        imp(GGML_TYPE_TQ2_0, &b, 1, 256),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn block_scales_must_agree() {
    let ty = GGML_TYPE_TQ2_0;
    let mut b = tq_bytes(ty, 3, 512, 0.5);
    // Row 2, block 1 gets d = 0.25.
    b[5 * 66 + 64..5 * 66 + 66].copy_from_slice(&f32_to_f16(0.25).to_le_bytes());
    let e = TernaryMatrix::from_ggml(ty, &b, 3, 512, Format::I2S).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidData(s) if s.contains("row 2, block 1 has |d| = 0.25")
            && s.contains("(row 2, block 0) has |d| = 0.5")),
        "{e}"
    );
    // Row 2 entirely at 0.25: per-row scales.
    b[4 * 66 + 64..4 * 66 + 66].copy_from_slice(&f32_to_f16(0.25).to_le_bytes());
    let m = TernaryMatrix::from_ggml(ty, &b, 3, 512, Format::I2S).unwrap();
    assert_eq!(m.scales(), Scales::PerRow(&[0.5, 0.5, 0.25]));
    assert!(m.scale().is_nan());
    // The I2_S blob holds one scale: a per-row matrix is refused.
    assert!(matches!(
        m.to_ggml(GGML_TYPE_I2_S),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(m.to_bitnet_i2s(), Err(Error::Unsupported(_))));
    // An all-zero block's d does not count, and neither does a d = 0 block's codes.
    let mut t: Vec<i8> = (0..512).map(|i| (i % 3) as i8 - 1).collect();
    t[256..].fill(0);
    let m = TernaryMatrix::from_ternary(&t, 1, 512, 0.5, Format::I2S).unwrap();
    let mut b = m.to_ggml(ty).unwrap();
    assert_eq!(&b[66 + 64..], &[0, 0]);
    b[66 + 64..].copy_from_slice(&f32_to_f16(3.0).to_le_bytes());
    assert_eq!(
        TernaryMatrix::from_ggml(ty, &b, 1, 512, Format::I2S).unwrap(),
        m
    );
    b[64..66].fill(0);
    let z = TernaryMatrix::from_ggml(ty, &b, 1, 512, Format::I2S).unwrap();
    assert!(z.to_ternary().iter().all(|&v| v == 0) && z.scale() == 1.0);
    // A negative d is folded into the trits.
    let mut b = m.to_ggml(ty).unwrap();
    b[64..66].copy_from_slice(&f32_to_f16(-0.5).to_le_bytes());
    let neg = TernaryMatrix::from_ggml(ty, &b, 1, 512, Format::I2S).unwrap();
    let want: Vec<i8> = t.iter().map(|&v| -v).collect();
    assert_eq!((neg.to_ternary(), neg.scale()), (want, 0.5));
}

#[test]
fn bad_hf_input_is_refused() {
    let hf = |p: &[u8], r, c, s| {
        TernaryMatrix::from_hf_packed(p, r, c, s, HfScale::Multiply, Format::I2S)
    };
    let p = vec![0x55u8; 2 * 10];
    assert!(hf(&p, 8, 10, 1.0).is_ok());
    let e = hf(&p, 6, 10, 1.0).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidShape(s) if s.contains("multiple of 4")),
        "{e}"
    );
    assert!(matches!(
        hf(&p[1..], 8, 10, 1.0),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        hf(&p, 8, 10, f32::NAN),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(hf(&p, 8, 10, 0.0), Err(Error::InvalidData(_))));
    let mut bad = p.clone();
    bad[13] = 0x75; // bits 5:4 = 3: packed row 1, column 3, row 1 + 2 * 2 = 5
    let e = hf(&bad, 8, 10, 1.0).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidData(s) if s.contains("row 5")),
        "{e}"
    );
    // Row p + i * rows / 4 sits in bits 2i+1:2i of byte [p, k].
    let mut t = vec![0i8; 8 * 10];
    t[7 * 10 + 4] = 1; // p = 1, i = 3
    t[2 * 10 + 9] = -1; // p = 0, i = 1
    let m = TernaryMatrix::from_ternary(&t, 8, 10, 1.0, Format::I2S).unwrap();
    let p = m.to_hf_packed().unwrap();
    assert_eq!(p[10 + 4], 0x95);
    assert_eq!(p[9], 0x51);
}
