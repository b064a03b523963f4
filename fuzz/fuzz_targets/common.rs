//! Helpers shared by the fuzz targets: a reader that turns the fuzzer's bytes into
//! parameters (never failing: an exhausted input reads as zeros), and the reference product.
#![allow(dead_code)]

use bitnet_kernels::{Error, TernaryMatrix};

// The integration tests' helpers: the naive product, the kernel sets with their own kernels
// for a format, the formats this build packs.
#[path = "../../tests/common/mod.rs"]
mod shared;
#[allow(unused_imports)] // each target uses some of them
pub use shared::{formats, kernel_sets as sets, naive_gemm};

/// Reads little-endian integers from the front of the fuzzer's input.
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    pub fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        self.u32() as u64 | (self.u32() as u64) << 32
    }
    /// Any f32 bit pattern: NaNs, infinities and subnormals included.
    pub fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
    /// Up to `n` bytes (fewer when the input runs out).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `len` values made by cycling `src` through `f` (all `f(0)` when `src` is empty).
pub fn cycle<T>(src: &[u8], len: usize, f: impl Fn(u8) -> T) -> Vec<T> {
    if src.is_empty() {
        return (0..len).map(|_| f(0)).collect();
    }
    src.iter().cycle().take(len).map(|&b| f(b)).collect()
}

/// A trit from a byte: -1, 0 or 1.
pub fn trit(b: u8) -> i8 {
    (b % 3) as i8 - 1
}

/// An accepted matrix must multiply, with every kernel set, GEMV and GEMM, exactly like the
/// naive product of its own `to_ternary()`.
pub fn check_products(m: &TernaryMatrix, xsrc: &[u8]) {
    let (rows, cols) = (m.rows(), m.cols());
    let t = m.to_ternary();
    assert_eq!(t.len(), rows * cols);
    assert!(
        t.iter().all(|v| (-1..=1).contains(v)),
        "to_ternary gave a non-trit"
    );
    let n = 2;
    let x = cycle(xsrc, n * cols, |b| b as i8);
    let want = naive_gemm(&t, rows, cols, &x, n);
    for k in sets(m.format()) {
        let mut y = vec![i32::MIN; rows];
        k.gemv_i8(m, &x[..cols], &mut y).unwrap();
        assert_eq!(y, want[..rows], "{} gemv {}", k.name(), m.format().name());
        let mut y = vec![i32::MIN; n * rows];
        k.gemm_i8(m, &x, n, &mut y).unwrap();
        assert_eq!(y, want, "{} gemm {}", k.name(), m.format().name());
    }
}

/// Asserts that a model-file reader (`gguf`, `hf`) failed with one of the clean error kinds
/// that malformed file bytes may produce.
pub fn clean_read_error(e: &Error) {
    assert!(
        matches!(
            e,
            Error::InvalidData(_)
                | Error::InvalidShape(_)
                | Error::LengthMismatch { .. }
                | Error::NonFinite { .. }
                | Error::Unsupported(_)
                | Error::Alloc
        ),
        "unexpected error kind: {e:?}"
    );
}
