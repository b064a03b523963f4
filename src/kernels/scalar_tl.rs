//! The reference kernels for TL1 and TL2: plain Rust, one group at a time, the formats'
//! meaning written out (decode the group's trits, multiply-add them). No tables: the SIMD
//! kernels' tables are what these check.
//!
//! Same raw signature as every kernel (see [`super::RawGemv`]).

use crate::format::tl1::{self, nibble_pos};
use crate::format::tl2;

/// For every row `r` of the range and activation row `j`, the exact
/// `sum_g sum_k decode(w, r, g)[k] * x_j[G g + k]`, where `decode` gives the `G` trits of
/// group `g` of row `r`.
///
/// # Safety
/// The raw kernel contract of [`super::RawGemm`], with `tile_bytes` the bytes of one row tile.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_by_groups<const G: usize>(
    w: *const u8,
    kp: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
    tile_bytes: usize,
    decode: impl Fn(&[u8], usize, usize) -> [i8; G],
) {
    let rows = row_end - row_begin;
    // SAFETY: forwarded contract; the rows up to `row_end` occupy whole tiles of `tile_bytes`.
    let (w, x, y) = unsafe {
        super::scalar::raw_slices(w, row_end / tl1::ROW_TILE * tile_bytes, kp, x, n, rows, y)
    };
    for r in row_begin..row_end {
        for j in 0..n {
            let x = &x[j * kp..(j + 1) * kp];
            let mut acc = 0i32; // |acc| <= 128 · kp < 2^31
            for g in 0..kp / G {
                for (k, d) in decode(w, r, g).into_iter().enumerate() {
                    acc += d as i32 * x[G * g + k] as i32;
                }
            }
            y[j * rows + (r - row_begin)] = acc;
        }
    }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemv`].
pub(super) unsafe extern "C" fn tl1_gemv(
    w: *const u8,
    kp: usize,
    rows_padded: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    // SAFETY: forwarded contract; a GEMV is a GEMM with one activation row.
    unsafe { tl1_gemm(w, kp, rows_padded, x, 1, row_begin, row_end, y) }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemm`].
pub(super) unsafe extern "C" fn tl1_gemm(
    w: *const u8,
    kp: usize,
    _rows_padded: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    let steps = kp / tl1::K_BLOCK;
    let decode = |w: &[u8], r, g| {
        let (off, sh) = nibble_pos(r, g, steps, tl1::STEP_BYTES);
        tl1::digits((w[off] >> sh) & 0xF)
    };
    let tile_bytes = steps * tl1::STEP_BYTES;
    // SAFETY: forwarded contract.
    unsafe { gemm_by_groups(w, kp, x, n, row_begin, row_end, y, tile_bytes, decode) }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemv`].
pub(super) unsafe extern "C" fn tl2_gemv(
    w: *const u8,
    kp: usize,
    rows_padded: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    // SAFETY: forwarded contract; a GEMV is a GEMM with one activation row.
    unsafe { tl2_gemm(w, kp, rows_padded, x, 1, row_begin, row_end, y) }
}

/// # Safety
/// The raw kernel contract of [`super::RawGemm`].
pub(super) unsafe extern "C" fn tl2_gemm(
    w: *const u8,
    kp: usize,
    _rows_padded: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) {
    let steps = kp / tl2::K_BLOCK;
    let decode = |w: &[u8], r, g| {
        let (off, sh) = nibble_pos(r, g, steps, tl2::STEP_BYTES);
        let (soff, bit) = tl2::sign_pos(r, g, steps);
        tl2::digits((w[soff] >> bit) & 1 == 1, (w[off] >> sh) & 0xF)
    };
    let tile_bytes = steps * tl2::STEP_BYTES;
    // SAFETY: forwarded contract.
    unsafe { gemm_by_groups(w, kp, x, n, row_begin, row_end, y, tile_bytes, decode) }
}
