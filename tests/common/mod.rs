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

/// Packs `t` in every format this build has and checks every kernel set with its own
/// kernels for it: `gemm_i8` on the `n` rows of `x`, and `gemv_i8` on the first row, against
/// [`naive_gemm`]. `what` names the case in failures.
pub fn assert_kernels_match_naive(
    t: &[i8],
    rows: usize,
    cols: usize,
    x: &[i8],
    n: usize,
    what: &str,
) {
    use bitnet_kernels::TernaryMatrix;
    let want = naive_gemm(t, rows, cols, x, n);
    for f in formats() {
        let m = TernaryMatrix::from_ternary(t, rows, cols, 1.0, f).unwrap();
        for k in kernel_sets(f) {
            let mut y = vec![i32::MIN; n * rows];
            k.gemm_i8(&m, x, n, &mut y).unwrap();
            assert_eq!(y, want, "{} {} gemm, {what}", k.name(), f.name());
            let mut y1 = vec![i32::MIN; rows];
            k.gemv_i8(&m, &x[..cols], &mut y1).unwrap();
            assert_eq!(y1, want[..rows], "{} {} gemv, {what}", k.name(), f.name());
        }
    }
}

/// Every kernel set this machine can run that has its own kernels for `format`
/// (scalar included), so a missing SIMD kernel is never silently replaced by another.
pub fn kernel_sets(format: Format) -> Vec<&'static KernelSet> {
    kernels::available().filter(|k| k.has_own(format)).collect()
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
