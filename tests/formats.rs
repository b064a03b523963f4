//! Packing round trips for every format, the bitnet.cpp I2_S interchange blob, and the
//! validation of packed bytes.

mod common;

use bitnet_kernels::{Error, Format, TernaryMatrix};
use common::{cases, formats};
use proptest::prelude::*;

fn matrix() -> impl Strategy<Value = (usize, usize, Vec<i8>)> {
    (1usize..20, 1usize..700).prop_flat_map(|(rows, cols)| {
        (
            Just(rows),
            Just(cols),
            proptest::collection::vec(-1i8..=1, rows * cols),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn pack_unpack_round_trip((rows, cols, t) in matrix()) {
        for f in formats() {
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 0.25, f).unwrap();
            prop_assert_eq!(m.to_ternary(), t.clone());
            prop_assert_eq!(m.packed_bytes().len(), m.layout().packed_len);
            // Packed bytes are canonical: wrapping them gives the same matrix, byte for byte.
            let w = TernaryMatrix::from_packed(m.packed_bytes(), rows, cols, 0.25, f).unwrap();
            prop_assert_eq!(w.packed_bytes(), m.packed_bytes());
            for g in formats() {
                let c = m.to_format(g).unwrap();
                prop_assert_eq!(c.to_ternary(), t.clone());
            }
        }
    }

    #[test]
    fn bitnet_blob_round_trip(rows in 1usize..10, blocks in 1usize..5, seed in any::<u64>()) {
        let cols = blocks * 128;
        let t: Vec<i8> = (0..rows * cols)
            .map(|i| ((seed >> (i % 61)) as usize + i * 7) % 3)
            .map(|v| v as i8 - 1)
            .collect();
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.5, Format::I2S).unwrap();
        let blob = m.to_bitnet_i2s().unwrap();
        prop_assert_eq!(blob.len(), rows * cols / 4 + 32);
        let back = TernaryMatrix::from_bitnet_i2s(&blob, rows, cols).unwrap();
        prop_assert_eq!(back.packed_bytes(), m.packed_bytes());
        prop_assert_eq!(back.scale(), 1.5);
        prop_assert_eq!(back.to_bitnet_i2s().unwrap(), blob);
    }

    #[test]
    fn arbitrary_bytes_are_accepted_only_if_canonical(
        rows in 1usize..6, cols in 1usize..300, bytes in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        for f in formats() {
            let len = f.layout(rows, cols).unwrap().packed_len;
            let mut b = bytes.clone();
            b.resize(len, 0x55);
            match TernaryMatrix::from_packed(&b, rows, cols, 1.0, f) {
                Ok(m) => {
                    // Accepted bytes survive unpack + repack unchanged.
                    let again = TernaryMatrix::from_ternary(&m.to_ternary(), rows, cols, 1.0, f).unwrap();
                    prop_assert_eq!(again.packed_bytes(), &b[..]);
                }
                Err(e) => prop_assert!(matches!(e, Error::InvalidData(_)), "{e}"),
            }
        }
    }
}

#[test]
fn bitnet_blob_needs_whole_blocks_and_the_exact_length() {
    let m = TernaryMatrix::from_ternary(&[1; 100], 1, 100, 1.0, Format::I2S).unwrap();
    assert!(matches!(m.to_bitnet_i2s(), Err(Error::InvalidShape(_))));
    assert!(matches!(
        TernaryMatrix::from_bitnet_i2s(&[0x55; 63], 1, 128),
        Err(Error::LengthMismatch { .. })
    ));
    let mut blob = vec![0x55u8; 32 + 32];
    blob[32..36].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(
        TernaryMatrix::from_bitnet_i2s(&blob, 1, 128).unwrap_err(),
        Error::NonFinite {
            what: "blob scale",
            index: 0
        }
    );
}

#[test]
fn from_f32_is_quantize_then_pack() {
    let w: Vec<f32> = (0..37 * 301)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    for f in formats() {
        let m = TernaryMatrix::from_f32(&w, 37, 301, f).unwrap();
        let (t, s) = bitnet_kernels::quantize_weights(&w, 37, 301).unwrap();
        assert_eq!(m.to_ternary(), t);
        assert_eq!(m.scale(), s);
    }
}

#[test]
fn format_ids_match_the_c_abi() {
    assert_eq!(Format::from_id(0).unwrap(), Format::I2S);
    assert_eq!(Format::from_id(1).unwrap(), Format::TL1);
    assert_eq!(Format::from_id(2).unwrap(), Format::TL2);
    assert_eq!(Format::from_id(3).unwrap(), Format::I2SCol);
    assert_eq!(Format::from_id(4), Err(Error::InvalidFormat(4)));
    assert_eq!(Format::from_id(-1), Err(Error::InvalidFormat(-1)));
}
