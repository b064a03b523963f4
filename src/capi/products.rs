//! The products (GEMV and GEMM, int8 and f32, whole matrix or a range of output rows) and
//! the activation quantizer. Each export checks, in order: the handle, every pointer, the
//! shape parameters (`n`, the row range), every length against the shape; then runs the
//! Rust call straight into `y` (which it writes only once every check has passed), or,
//! where `y` overlaps `x`, into a temporary copied to `y` after success.

use super::matrix::BitnetMatrix;
use super::status::{
    c_slice, check_len, check_n, check_ptr, handle, into_output, located, product_of,
    result_buffer, row_range, span, status_call, write_out, BitnetStatus, Failure,
};

/// Exact int32 accumulators `y[i] = sum_j t[i][j] * x[j]` for any int8 x (-128 included).
/// `x_len` must be cols, `y_len` rows. Large products use the library's thread pool
/// (RAYON_NUM_THREADS). `y` is untouched on failure and may overlap `x`.
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` elements.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemv_i8(
    m: *const BitnetMatrix,
    x: *const i8,
    x_len: usize,
    y: *mut i32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        check_len("x_len", x_len, m.cols(), "cols")?;
        check_len("y_len", y_len, m.rows(), "rows")?;
        // SAFETY: `x` points to x_len elements (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                Ok(crate::gemv_i8(m, x, out)?)
            })
        }
    })
}

/// The BitLinear forward pass for one activation row: x (cols floats) is quantized to int8
/// (absmax), multiplied exactly, and rescaled: `y[i] = acc[i] * (scale * (absmax / 127))`.
/// `x_len` must be cols, `y_len` rows. `y` is untouched on failure and may overlap `x`.
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemv_f32(
    m: *const BitnetMatrix,
    x: *const f32,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        check_len("x_len", x_len, m.cols(), "cols")?;
        check_len("y_len", y_len, m.rows(), "rows")?;
        // SAFETY: `x` points to x_len floats (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                crate::ternary_gemv(m, x, out).map_err(|e| located(e, "x", x))
            })
        }
    })
}

/// The BitLinear forward pass for `n` activation rows (prefill): x is n x cols
/// (`x_len == n * cols`), y is n x rows (`y_len == n * rows`), both row-major; each row of
/// x has its own activation scale. `y` is untouched on failure and may overlap `x`.
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_f32(
    m: *const BitnetMatrix,
    x: *const f32,
    x_len: usize,
    n: usize,
    y: *mut f32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        check_n(n)?;
        check_len(
            "x_len",
            x_len,
            product_of(n, m.cols(), "n * cols")?,
            "n * cols",
        )?;
        check_len(
            "y_len",
            y_len,
            product_of(n, m.rows(), "n * rows")?,
            "n * rows",
        )?;
        // SAFETY: `x` points to x_len floats (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                crate::ternary_gemm(m, x, n, out).map_err(|e| located(e, "x", x))
            })
        }
    })
}

/// Exact int32 accumulators for `n` int8 activation rows: x is n x cols
/// (`x_len == n * cols`), y is n x rows (`y_len == n * rows`), both row-major. `y` is
/// untouched on failure and may overlap `x`.
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` elements.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_i8(
    m: *const BitnetMatrix,
    x: *const i8,
    x_len: usize,
    n: usize,
    y: *mut i32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        check_n(n)?;
        check_len(
            "x_len",
            x_len,
            product_of(n, m.cols(), "n * cols")?,
            "n * cols",
        )?;
        check_len(
            "y_len",
            y_len,
            product_of(n, m.rows(), "n * rows")?,
            "n * rows",
        )?;
        // SAFETY: `x` points to x_len elements (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                Ok(crate::gemm_i8(m, x, n, out)?)
            })
        }
    })
}

/// `bitnet_gemv_i8` for the output rows `[row_begin, row_end)` only, on the calling thread:
/// `y[r - row_begin]` for each row r, `y_len == row_end - row_begin`, `x_len == cols`. For
/// engines that split a product over their own threads (see `bitnet_matrix_row_tile`).
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` elements.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemv_i8_rows(
    m: *const BitnetMatrix,
    x: *const i8,
    x_len: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        let rows = row_range(m, row_begin, row_end)?;
        check_len("x_len", x_len, m.cols(), "cols")?;
        check_len("y_len", y_len, rows.len(), "row_end - row_begin")?;
        // SAFETY: `x` points to x_len elements (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                Ok(crate::gemv_i8_rows(m, x, rows, out)?)
            })
        }
    })
}

/// `bitnet_gemv_f32` for the output rows `[row_begin, row_end)` only, on the calling thread;
/// bit-identical to the same rows of the whole call. `y_len == row_end - row_begin`,
/// `x_len == cols`. Each call quantizes all of x; to quantize once, use
/// `bitnet_quantize_activations` with `bitnet_gemv_i8_rows`.
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemv_f32_rows(
    m: *const BitnetMatrix,
    x: *const f32,
    x_len: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut f32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        let rows = row_range(m, row_begin, row_end)?;
        check_len("x_len", x_len, m.cols(), "cols")?;
        check_len("y_len", y_len, rows.len(), "row_end - row_begin")?;
        // SAFETY: `x` points to x_len floats (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                crate::ternary_gemv_rows(m, x, rows, out).map_err(|e| located(e, "x", x))
            })
        }
    })
}

/// `bitnet_gemm_f32` for the output rows `[row_begin, row_end)` only, on the calling thread;
/// bit-identical to the same rows of the whole call. x is n x cols (`x_len == n * cols`);
/// y is n x (row_end - row_begin) (`y_len == n * (row_end - row_begin)`), row-major.
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_f32_rows(
    m: *const BitnetMatrix,
    x: *const f32,
    x_len: usize,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut f32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        check_n(n)?;
        let rows = row_range(m, row_begin, row_end)?;
        let y_want = product_of(n, rows.len(), "n * (row_end - row_begin)")?;
        check_len(
            "x_len",
            x_len,
            product_of(n, m.cols(), "n * cols")?,
            "n * cols",
        )?;
        check_len("y_len", y_len, y_want, "n * (row_end - row_begin)")?;
        // SAFETY: `x` points to x_len floats (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                crate::ternary_gemm_rows(m, x, n, rows, out).map_err(|e| located(e, "x", x))
            })
        }
    })
}

/// `bitnet_gemm_i8` for the output rows `[row_begin, row_end)` only, on the calling thread:
/// x is n x cols (`x_len == n * cols`); y is n x (row_end - row_begin)
/// (`y_len == n * (row_end - row_begin)`), row-major.
///
/// Safety: `m` is a live matrix; `x` and `y` point to `x_len` and `y_len` elements.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_i8_rows(
    m: *const BitnetMatrix,
    x: *const i8,
    x_len: usize,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(y, "y")?;
        check_n(n)?;
        let rows = row_range(m, row_begin, row_end)?;
        let y_want = product_of(n, rows.len(), "n * (row_end - row_begin)")?;
        check_len(
            "x_len",
            x_len,
            product_of(n, m.cols(), "n * cols")?,
            "n * cols",
        )?;
        check_len("y_len", y_len, y_want, "n * (row_end - row_begin)")?;
        // SAFETY: `x` points to x_len elements (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract).
        unsafe {
            into_output(y, y_len, &[span(x.as_ptr(), x_len)], |out| {
                Ok(crate::gemm_i8_rows(m, x, n, rows, out)?)
            })
        }
    })
}

/// The library's activation quantizer (absmax int8, round half to even; see
/// docs/FORMATS.md): writes `len` int8 to `q` and the row's absmax `a` (at least 1e-5) to
/// `*absmax`. With `bitnet_gemv_i8_rows`,
/// `y[i] = (float)acc[i] * (bitnet_matrix_scale(m) * (a / 127.0f))` reproduces
/// `bitnet_gemv_f32` bit for bit. Outputs are untouched on failure.
///
/// Safety: `x` points to `len` floats, `q` to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_quantize_activations(
    x: *const f32,
    len: usize,
    q: *mut i8,
    absmax: *mut f32,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(x, "x")?;
        check_ptr(q, "q")?;
        check_ptr(absmax, "absmax")?;
        if len == 0 {
            return Err(Failure::new(
                BitnetStatus::InvalidShape,
                "len is 0, at least 1 is needed",
            ));
        }
        // SAFETY: `x` points to `len` floats (the caller's contract).
        let x = unsafe { c_slice(x, len, "x") }?;
        let mut out = result_buffer(len)?;
        let a = crate::quantize_activations(x, &mut out).map_err(|e| located(e, "x", x))?;
        // SAFETY: `q` and `absmax` were checked; q holds len bytes.
        unsafe {
            write_out(&out, q);
            absmax.write(a);
        }
        Ok(())
    })
}

/// BitNet a4.8's int4 activation quantizer (docs/FORMATS.md §11): writes `len` values in
/// -8..7 (one a byte) to `q` and the row's scale to `*scale`: mode 0 (absmean, the paper's)
/// `beta = max(mean|x|, 1e-5)`, mode 1 (absmax) `a = max(max|x|, 1e-5)`. The values are
/// ordinary int8 activations for `bitnet_gemv_i8` and the other int8 products; the output
/// factor is `bitnet_matrix_scale(m) * (beta / sqrtf(7.0f))` (absmean) or
/// `bitnet_matrix_scale(m) * (a / 7.0f)` (absmax). Outputs are untouched on failure; another
/// mode is `BITNET_STATUS_INVALID_DATA`.
///
/// Safety: `x` points to `len` floats, `q` to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_quantize_activations_i4(
    x: *const f32,
    len: usize,
    q: *mut i8,
    scale: *mut f32,
    mode: std::ffi::c_int,
) -> std::ffi::c_int {
    // `int` as the issue fixes it (like the KV-cache calls): a BITNET_STATUS_* value.
    status_call(|| {
        check_ptr(x, "x")?;
        check_ptr(q, "q")?;
        check_ptr(scale, "scale")?;
        check_len_nonzero(len)?;
        let mode = crate::I4Mode::from_id(mode as i64)?;
        // SAFETY: `x` points to `len` floats (the caller's contract).
        let x = unsafe { c_slice(x, len, "x") }?;
        let mut out = result_buffer(len)?;
        let s =
            crate::quantize_activations_i4(x, &mut out, mode).map_err(|e| located(e, "x", x))?;
        // SAFETY: `q` and `scale` were checked; q holds len bytes.
        unsafe {
            write_out(&out, q);
            scale.write(s);
        }
        Ok(())
    }) as std::ffi::c_int
}

/// BitNet a4.8's TopK + int8 quantizer (docs/FORMATS.md §11): keeps the `ceil(ratio * len)`
/// entries of largest |x| (ties to the lower index), zeroes the rest, quantizes with the int8
/// absmax quantizer and writes the row's absmax `a` (at least 1e-5; the same as without the
/// mask) to `*absmax`. `ratio` must lie in (0, 1] (NaN: `NON_FINITE`; else `INVALID_DATA`).
/// Outputs are untouched on failure.
///
/// Safety: `x` points to `len` floats, `q` to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_quantize_activations_topk(
    x: *const f32,
    len: usize,
    ratio: f32,
    q: *mut i8,
    absmax: *mut f32,
) -> std::ffi::c_int {
    // `int` as the issue fixes it (like the KV-cache calls): a BITNET_STATUS_* value.
    status_call(|| {
        check_ptr(x, "x")?;
        check_ptr(q, "q")?;
        check_ptr(absmax, "absmax")?;
        check_len_nonzero(len)?;
        crate::quant::topk_count(len, ratio)?;
        // SAFETY: `x` points to `len` floats (the caller's contract).
        let x = unsafe { c_slice(x, len, "x") }?;
        let mut out = result_buffer(len)?;
        let a =
            crate::quantize_activations_topk(x, ratio, &mut out).map_err(|e| located(e, "x", x))?;
        // SAFETY: `q` and `absmax` were checked; q holds len bytes.
        unsafe {
            write_out(&out, q);
            absmax.write(a);
        }
        Ok(())
    }) as std::ffi::c_int
}

/// A quantizer's row must hold at least one value.
fn check_len_nonzero(len: usize) -> Result<(), Failure> {
    if len == 0 {
        return Err(Failure::new(
            BitnetStatus::InvalidShape,
            "len is 0, at least 1 is needed",
        ));
    }
    Ok(())
}
