//! The reference kernel of I2_S_COL (`docs/FORMATS.md` §12): plain Rust, one weight at a time,
//! visiting only the columns whose activation is non-zero, like the SIMD kernels.

use crate::format::i2s_col::position;

/// # Safety
/// The raw kernel contract of [`super::RawGemv`].
pub(super) unsafe extern "C" fn i2s_col_gemv(
    w: *const u8,
    kp: usize,
    rows_padded: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    // SAFETY: forwarded contract; a GEMV is a GEMM with one activation row.
    unsafe { i2s_col_gemm(w, kp, rows_padded, x, 1, row_begin, row_end, y) }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemm`].
pub(super) unsafe extern "C" fn i2s_col_gemm(
    w: *const u8,
    kp: usize,
    rows_padded: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    let rows = row_end - row_begin;
    // SAFETY: forwarded contract; the matrix is `kp` columns of `rows_padded / 4` bytes.
    let (w, x, y) =
        unsafe { super::scalar::raw_slices(w, kp * (rows_padded / 4), kp, x, n, rows, y) };
    for j in 0..n {
        let xj = &x[j * kp..(j + 1) * kp];
        let out = &mut y[j * rows..(j + 1) * rows];
        out.fill(0);
        for (c, &v) in xj.iter().enumerate().filter(|(_, &v)| v != 0) {
            for (r, o) in (row_begin..row_end).zip(out.iter_mut()) {
                let (byte, shift) = position(r, c, rows_padded);
                *o += (((w[byte] >> shift) & 3) as i32 - 1) * v as i32;
            }
        }
    }
}
