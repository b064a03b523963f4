//! The reference kernels: plain Rust, one weight at a time, written to be obviously right.
//! Every SIMD kernel must return exactly these int32 accumulators.
//!
//! They share the C kernels' raw signature (see [`super::RawGemv`]) so the registry treats
//! all kernels alike; the safe wrappers in `super` check every argument first.

use crate::format::i2s::{chunk_offset, CHUNK_BYTES, K_BLOCK};

/// # Safety
/// The raw kernel contract of [`super::RawGemv`].
pub(super) unsafe extern "C" fn i2s_gemv(
    w: *const u8,
    kp: usize,
    rows_padded: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    // SAFETY: forwarded contract; a GEMV is a GEMM with one activation row.
    unsafe { i2s_gemm(w, kp, rows_padded, x, 1, row_begin, row_end, y) }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemm`].
pub(super) unsafe extern "C" fn i2s_gemm(
    w: *const u8,
    kp: usize,
    _rows_padded: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    let rows = row_end - row_begin;
    // SAFETY: forwarded contract; the rows up to `row_end` occupy `chunk_offset(row_end, 0, kp)` bytes.
    let (w, x, y) =
        unsafe { super::scalar::raw_slices(w, chunk_offset(row_end, 0, kp), kp, x, n, rows, y) };
    for r in row_begin..row_end {
        for j in 0..n {
            let xj = &x[j * kp..(j + 1) * kp];
            let mut acc = 0i32;
            for b in 0..kp / K_BLOCK {
                let chunk = &w[chunk_offset(r, b, kp)..][..CHUNK_BYTES];
                for (i, &byte) in chunk.iter().enumerate() {
                    for k in 0..4 {
                        let t = ((byte >> (2 * k)) & 3) as i32 - 1;
                        acc += t * xj[b * K_BLOCK + k * CHUNK_BYTES + i] as i32;
                    }
                }
            }
            y[j * rows + (r - row_begin)] = acc;
        }
    }
}

/// A raw kernel call's arguments as slices: the `w_len` packed bytes the rows up to
/// `row_end` occupy, the `n × kp` activations and the `n × (row_end − row_begin)` outputs.
/// Every reference kernel starts here.
///
/// # Safety
/// The raw kernel contract of [`super::RawGemm`], with `w_len` bytes readable at `w`.
pub(super) unsafe fn raw_slices<'a>(
    w: *const u8,
    w_len: usize,
    kp: usize,
    x: *const i8,
    n: usize,
    rows: usize,
    y: *mut i32,
) -> (&'a [u8], &'a [i8], &'a mut [i32]) {
    // SAFETY: the contract guarantees these extents are readable / writable.
    unsafe {
        (
            std::slice::from_raw_parts(w, w_len),
            std::slice::from_raw_parts(x, n * kp),
            std::slice::from_raw_parts_mut(y, n * rows),
        )
    }
}
