//! Importing packed bytes of every format, and bitnet.cpp's I2_S blob, from arbitrary bytes
//! and dimensions: each call either succeeds or returns a clean error (never a panic or an
//! out-of-bounds access), and an accepted matrix
//! - keeps exactly the bytes it was given (one matrix, one packed form: re-packing its
//!   `to_ternary()` gives the same bytes back),
//! - multiplies, with every kernel this CPU has, exactly like the naive product of its
//!   `to_ternary()`.
//!
//! Input: mode, format id, rows, cols, scale bits, then payload. Modes:
//! 0 raw bytes as packed data; 1 a valid packing of fuzzer trits with a few bytes mutated;
//! 2 raw bytes as a bitnet.cpp blob; 3 a valid blob of fuzzer trits with a few bytes mutated;
//! 4 a ggml tensor (type 33..40: TQ1_0, TQ2_0, I2_S and types that must be refused), raw or a
//! valid export mutated; 5 Hugging Face packed bytes, raw or valid and mutated. An accepted
//! ggml or HF import exports back to a tensor that imports as the same matrix.
#![no_main]

mod common;

use bitnet_kernels::format::ggml::f32_to_f16;
use bitnet_kernels::{Error, Format, HfScale, TernaryMatrix};
use common::{check_products, cycle, trit, Bytes};
use libfuzzer_sys::fuzz_target;

/// Applies up to 4 fuzzer-chosen `(position, xor)` mutations; returns whether any changed a byte.
fn mutate(bytes: &mut [u8], b: &mut Bytes) -> bool {
    let mut changed = false;
    for _ in 0..b.u8() % 5 {
        let (pos, v) = (b.u32() as usize, b.u8());
        if !bytes.is_empty() {
            let n = bytes.len();
            bytes[pos % n] ^= v;
            changed |= v != 0;
        }
    }
    changed
}

/// A clean error of one of the kinds bad packed input may produce.
fn clean(e: &Error) {
    assert!(
        matches!(
            e,
            Error::InvalidShape(_)
                | Error::LengthMismatch { .. }
                | Error::InvalidFormat(_)
                | Error::InvalidData(_)
                | Error::NonFinite { .. }
                | Error::Unsupported(_)
                | Error::Alloc
        ),
        "unexpected error {e:?}"
    );
}

fn check_accepted(m: &TernaryMatrix, given: &[u8], scale: f32, xsrc: &[u8]) {
    assert_eq!(
        m.packed_bytes(),
        given,
        "an accepted matrix keeps its bytes"
    );
    assert_eq!(m.scale().to_bits(), scale.to_bits());
    let again = TernaryMatrix::from_ternary(&m.to_ternary(), m.rows(), m.cols(), scale, m.format())
        .expect("re-packing an accepted matrix");
    assert_eq!(again.packed_bytes(), given, "one packed form per matrix");
    check_products(m, xsrc);
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mode = b.u8() % 6;
    let fmt = b.u8() % 5; // 4 is not a format
    let rows = b.u8() as usize % 140; // crosses TL tiles (64) twice; 0 is a bad shape
    let cols = match b.u8() % 4 {
        0 => b.u16() as usize,            // anything, up to 65535
        1 => 128 * (b.u8() as usize % 9), // bitnet.cpp's blocks (0 included)
        _ => b.u16() as usize % 1100,     // around the K blocks
    };
    let scale = if b.u8() % 8 == 0 { b.f32() } else { 0.5 }; // non-finite sometimes
    let xsrc = b.take(64);
    let format = Format::from_id(fmt as i64);
    if fmt == 4 {
        assert!(matches!(format, Err(Error::InvalidFormat(4))));
        return;
    }
    let format = format.unwrap();
    match mode {
        0 => {
            let bytes = b.rest();
            match TernaryMatrix::from_packed(bytes, rows, cols, scale, format) {
                Ok(m) => check_accepted(&m, bytes, scale, xsrc),
                Err(e) => clean(&e),
            }
        }
        1 => {
            let Ok(l) = format.layout(rows, cols) else {
                return;
            };
            if rows * cols > 1 << 16 {
                return; // keep one execution fast
            }
            let t = cycle(b.take(256), rows * cols, trit);
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, format).unwrap();
            assert_eq!(m.to_ternary(), t, "pack / unpack round trip");
            assert_eq!(m.packed_bytes().len(), l.packed_len);
            let mut bytes = m.packed_bytes().to_vec();
            let changed = mutate(&mut bytes, &mut b);
            match TernaryMatrix::from_packed(&bytes, rows, cols, scale, format) {
                Ok(m2) => {
                    check_accepted(&m2, &bytes, scale, xsrc);
                    if !changed {
                        assert_eq!(m2.to_ternary(), t);
                    }
                }
                Err(Error::NonFinite { .. }) => assert!(!scale.is_finite()),
                Err(Error::InvalidData(_)) if scale <= 0.0 => {}
                Err(Error::InvalidData(_)) => assert!(changed, "valid bytes rejected"),
                Err(e) => panic!("unexpected error {e:?} for a valid shape"),
            }
        }
        2 | 3 => {
            let blob = if mode == 2 {
                b.rest().to_vec()
            } else {
                if rows == 0 || cols == 0 || cols % 128 != 0 || rows * cols > 1 << 16 {
                    return;
                }
                let t = cycle(b.take(256), rows * cols, trit);
                let m =
                    TernaryMatrix::from_ternary(&t, rows, cols, scale_or(scale), format).unwrap();
                let mut blob = m.to_bitnet_i2s().unwrap();
                mutate(&mut blob, &mut b);
                blob
            };
            match TernaryMatrix::from_bitnet_i2s(&blob, rows, cols) {
                Ok(m) => {
                    assert_eq!(m.format(), Format::I2S);
                    // Export is the exact inverse, up to the tail's unused 28 bytes.
                    let out = m.to_bitnet_i2s().unwrap();
                    let body = blob.len() - 28;
                    assert_eq!(out[..body], blob[..body], "blob round trip");
                    assert!(out[body..].iter().all(|&v| v == 0));
                    check_products(&m, xsrc);
                }
                Err(e) => clean(&e),
            }
        }
        4 => {
            let ty = 33 + (b.u8() % 8) as u32;
            let cols = if b.u8() % 2 == 0 {
                256 * (b.u8() as usize % 5)
            } else {
                cols
            };
            let (bytes, changed) = if b.u8() % 2 == 0 {
                (b.rest().to_vec(), true)
            } else {
                let Ok(size) = TernaryMatrix::ggml_size(ty, rows, cols) else {
                    return;
                };
                if size > 1 << 15 {
                    return;
                }
                let t = cycle(b.take(256), rows * cols, trit);
                let m =
                    TernaryMatrix::from_ternary(&t, rows, cols, scale_or(scale), format).unwrap();
                let Ok(mut bytes) = m.to_ggml(ty) else {
                    return; // a scale above fp16's range
                };
                // A scale that rounds to fp16 zero exports as d = 0: its blocks import as
                // zeros, and the bytes do not come back.
                let d_zero = ty != 36 && f32_to_f16(m.scale()) & 0x7FFF == 0;
                let changed = mutate(&mut bytes, &mut b) | d_zero;
                (bytes, changed)
            };
            match TernaryMatrix::from_ggml(ty, &bytes, rows, cols, format) {
                Ok(m) => {
                    assert!((34..=36).contains(&ty));
                    assert_eq!(m.format(), format);
                    let out = m.to_ggml(ty).expect("export of an imported tensor");
                    if !changed {
                        assert_eq!(out, bytes, "ggml round trip");
                    }
                    let again = TernaryMatrix::from_ggml(ty, &out, rows, cols, format).unwrap();
                    assert_eq!(again, m, "import of an export");
                    check_products(&m, xsrc);
                }
                Err(e) => {
                    clean(&e);
                    assert!(changed, "valid ggml bytes rejected: {e}");
                }
            }
        }
        5 => {
            let how = if b.u8() % 2 == 0 {
                HfScale::Multiply
            } else {
                HfScale::Divide
            };
            let bytes = if b.u8() % 2 == 0
                || rows == 0
                || cols == 0
                || rows % 4 != 0
                || rows * cols > 1 << 16
            {
                b.rest().to_vec()
            } else {
                let t = cycle(b.take(256), rows * cols, trit);
                let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, format).unwrap();
                let mut bytes = m.to_hf_packed().unwrap();
                mutate(&mut bytes, &mut b);
                bytes
            };
            match TernaryMatrix::from_hf_packed(&bytes, rows, cols, scale, how, format) {
                Ok(m) => {
                    assert_eq!(m.to_hf_packed().unwrap(), bytes, "HF round trip");
                    check_products(&m, xsrc);
                }
                Err(e) => clean(&e),
            }
        }
        _ => unreachable!(),
    }
});

/// A valid (finite, positive) scale for building a valid blob or tensor.
fn scale_or(s: f32) -> f32 {
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
    }
}
