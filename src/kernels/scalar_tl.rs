//! The reference kernels for TL1 and TL2: plain Rust, one group at a time, the formats'
//! meaning written out (decode the group's trits, multiply-add them). No tables: the SIMD
//! kernels' tables are what these check.
//!
//! Same raw signature as every kernel (see [`super::RawGemv`]).

use crate::format::tl1::{self, nibble_pos};
use crate::format::tl2;

/// Writes `dot(w, r, x_j)` for every row `r` of the range and activation row `j`.
///
/// # Safety
/// The raw kernel contract of [`super::RawGemm`], with `tile_bytes` the bytes of one row tile.
#[allow(clippy::too_many_arguments)]
unsafe fn for_each_output(
    w: *const u8,
    kp: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
    tile_bytes: usize,
    dot: impl Fn(&[u8], usize, &[i8]) -> i32,
) {
    let rows = row_end - row_begin;
    // SAFETY: the contract guarantees these extents are readable / writable: the packed
    // matrix holds whole tiles up to row_end, x holds n × kp, y holds n × rows.
    let (w, x, y) = unsafe {
        (
            std::slice::from_raw_parts(w, row_end / tl1::ROW_TILE * tile_bytes),
            std::slice::from_raw_parts(x, n * kp),
            std::slice::from_raw_parts_mut(y, n * rows),
        )
    };
    for r in row_begin..row_end {
        for j in 0..n {
            y[j * rows + (r - row_begin)] = dot(w, r, &x[j * kp..(j + 1) * kp]);
        }
    }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemv`].
pub unsafe extern "C" fn tl1_gemv(
    w: *const u8,
    kp: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    // SAFETY: forwarded contract; a GEMV is a GEMM with one activation row.
    unsafe { tl1_gemm(w, kp, x, 1, row_begin, row_end, y) }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemm`].
pub unsafe extern "C" fn tl1_gemm(
    w: *const u8,
    kp: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    let steps = kp / tl1::K_BLOCK;
    let dot = |w: &[u8], r: usize, x: &[i8]| {
        let mut acc = 0i32; // |acc| <= 128 · kp < 2^31
        for g in 0..kp / tl1::GROUP {
            let (off, sh) = nibble_pos(r, g, steps, tl1::STEP_BYTES);
            let t = tl1::digits((w[off] >> sh) & 0xF);
            for (k, &d) in t.iter().enumerate() {
                acc += d as i32 * x[tl1::GROUP * g + k] as i32;
            }
        }
        acc
    };
    // SAFETY: forwarded contract.
    unsafe {
        for_each_output(
            w,
            kp,
            x,
            n,
            row_begin,
            row_end,
            y,
            steps * tl1::STEP_BYTES,
            dot,
        )
    }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemv`].
pub unsafe extern "C" fn tl2_gemv(
    w: *const u8,
    kp: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    // SAFETY: forwarded contract; a GEMV is a GEMM with one activation row.
    unsafe { tl2_gemm(w, kp, x, 1, row_begin, row_end, y) }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemm`].
pub unsafe extern "C" fn tl2_gemm(
    w: *const u8,
    kp: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    let steps = kp / tl2::K_BLOCK;
    let dot = |w: &[u8], r: usize, x: &[i8]| {
        let mut acc = 0i32; // |acc| <= 128 · kp < 2^31
        for g in 0..kp / tl2::GROUP {
            let (off, sh) = nibble_pos(r, g, steps, tl2::STEP_BYTES);
            let (soff, bit) = tl2::sign_pos(r, g, steps);
            let t = tl2::digits((w[soff] >> bit) & 1 == 1, (w[off] >> sh) & 0xF);
            for (k, &d) in t.iter().enumerate() {
                acc += d as i32 * x[tl2::GROUP * g + k] as i32;
            }
        }
        acc
    };
    // SAFETY: forwarded contract.
    unsafe {
        for_each_output(
            w,
            kp,
            x,
            n,
            row_begin,
            row_end,
            y,
            steps * tl2::STEP_BYTES,
            dot,
        )
    }
}
