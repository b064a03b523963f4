//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bitnet_kernels::kernels::{self, KernelSet};
use bitnet_kernels::Format;

/// The most naive product there is, from unpacked trits: the meaning of every kernel.
pub fn naive_gemm(t: &[i8], rows: usize, cols: usize, x: &[i8], n: usize) -> Vec<i32> {
    let mut y = vec![0i32; n * rows];
    for j in 0..n {
        for r in 0..rows {
            y[j * rows + r] = (0..cols)
                .map(|c| t[r * cols + c] as i32 * x[j * cols + c] as i32)
                .sum();
        }
    }
    y
}

/// Every kernel set this machine can run that has its own kernels for `format`
/// (scalar included), so a missing SIMD kernel is never silently replaced by another.
pub fn kernel_sets(format: Format) -> Vec<&'static KernelSet> {
    kernels::available()
        .filter(|k| k.own(format).is_some())
        .collect()
}

/// Formats this build can pack.
pub fn formats() -> Vec<Format> {
    Format::ALL
        .into_iter()
        .filter(|f| f.layout(1, 1).is_ok())
        .collect()
}

/// Proptest case count: `PROPTEST_CASES` if set, else `default` (smaller under emulation).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
