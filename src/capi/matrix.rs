//! Matrix handles: building them (from f32 weights, trits, packed bytes, a bitnet.cpp blob,
//! another format), freeing them, reading their shape, and copying their contents out.

use std::ffi::{c_int, c_void};

use crate::format::ggml::{GgmlType, HfScale};
use crate::format::i2s::{BITNET_BLOCK, BITNET_TAIL};
use crate::format::{Scales, TernaryMatrix};

use super::status::{
    boundary, c_slice, check_len, check_ptr, check_scale, format_of, free_handle, handle, located,
    status_call, write_out, BitnetStatus, CResult, Failure,
};

/// A packed ternary matrix: opaque, immutable once built. Any number of threads may use one
/// matrix at the same time (all calls take it as `const`); free it once, with
/// `bitnet_matrix_free`, when no call is using it.
pub struct BitnetMatrix {
    pub(crate) inner: TernaryMatrix,
}

/// Hands a new matrix to C through `out`.
///
/// # Safety
/// `out` passed [`check_ptr`] and is writable.
pub(super) unsafe fn put_matrix(out: *mut *mut BitnetMatrix, m: TernaryMatrix) {
    let h = Box::into_raw(Box::new(BitnetMatrix { inner: m }));
    // SAFETY: see the function's contract.
    unsafe { out.write(h) };
}

/// The size of a bitnet.cpp I2_S blob for `rows x cols`: `rows * cols / 4` packed bytes and
/// a 32-byte tail holding the f32 scale. bitnet.cpp needs `cols % 128 == 0`.
fn bitnet_blob_size(rows: usize, cols: usize) -> CResult<usize> {
    crate::Format::I2S.layout(rows, cols)?;
    if !cols.is_multiple_of(BITNET_BLOCK) {
        return Err(Failure::new(
            BitnetStatus::InvalidShape,
            format!("cols = {cols}: bitnet.cpp I2_S needs a multiple of {BITNET_BLOCK}"),
        ));
    }
    // rows * cols fits (the layout checked it), so neither / 4 nor + 32 can overflow.
    Ok(rows * cols / 4 + BITNET_TAIL)
}

// ---------------------------------------------------------------------------------------
// Building and freeing matrices

/// Absmean-ternarizes a row-major `rows x cols` f32 matrix (rows = output features) and packs
/// it in `format` (a `BITNET_FORMAT_*` value). On success `*out` receives a new matrix that
/// the caller frees with `bitnet_matrix_free`; on failure `*out` is left untouched.
///
/// Safety: `w` points to `rows * cols` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_from_f32(
    w: *const f32,
    rows: usize,
    cols: usize,
    format: c_int,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(w, "w")?;
        let format = format_of(format)?;
        // The shape, and that rows * cols fits.
        format.layout(rows, cols)?;
        // SAFETY: `w` points to rows * cols floats (the caller's contract).
        let w = unsafe { c_slice(w, rows * cols, "w") }?;
        let m = TernaryMatrix::from_f32(w, rows, cols, format).map_err(|e| located(e, "w", w))?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, m) };
        Ok(())
    })
}

/// Packs row-major trits (each -1, 0 or 1; `rows * cols` of them) with the weight scale
/// `scale` (finite and positive; a weight's value is trit * scale) in `format`. On success
/// `*out` receives a new matrix (free it with `bitnet_matrix_free`); on failure `*out` is
/// left untouched.
///
/// Safety: `trits` points to `rows * cols` bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_from_ternary(
    trits: *const i8,
    rows: usize,
    cols: usize,
    scale: f32,
    format: c_int,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(trits, "trits")?;
        let format = format_of(format)?;
        // The shape, and that rows * cols fits.
        format.layout(rows, cols)?;
        check_scale(scale)?;
        // SAFETY: `trits` points to rows * cols bytes (the caller's contract).
        let t = unsafe { c_slice(trits, rows * cols, "trits") }?;
        if let Some(i) = t.iter().position(|v| !(-1..=1).contains(v)) {
            return Err(Failure::new(
                BitnetStatus::InvalidData,
                format!("trits[{i}] = {} is not -1, 0 or 1", t[i]),
            ));
        }
        let m = TernaryMatrix::from_ternary(t, rows, cols, scale, format)?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, m) };
        Ok(())
    })
}

/// Copies and validates packed bytes in this library's layout for `format` (as written by
/// `bitnet_matrix_packed_bytes`, e.g. from a file); `len` must equal the packed size of a
/// `rows x cols` matrix in that format, and `scale` be finite and positive. On success
/// `*out` receives a new matrix (free it with `bitnet_matrix_free`); on failure `*out` is
/// left untouched.
///
/// Safety: `bytes` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_from_packed(
    bytes: *const u8,
    len: usize,
    rows: usize,
    cols: usize,
    scale: f32,
    format: c_int,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(bytes, "bytes")?;
        let format = format_of(format)?;
        let layout = format.layout(rows, cols)?;
        check_len(
            "len",
            len,
            layout.packed_len,
            format_args!("{format} packed size"),
        )?;
        check_scale(scale)?;
        // SAFETY: `bytes` points to `len` bytes (the caller's contract).
        let b = unsafe { c_slice(bytes, len, "bytes") }?;
        let m = TernaryMatrix::from_packed(b, rows, cols, scale, format)?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, m) };
        Ok(())
    })
}

/// The size in bytes of a bitnet.cpp I2_S tensor blob for a `rows x cols` matrix:
/// `rows * cols / 4` packed bytes plus a 32-byte tail holding the f32 scale. bitnet.cpp
/// needs `cols % 128 == 0` (else `BITNET_STATUS_INVALID_SHAPE`). Writes `*out` on success.
///
/// Safety: `out` points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn bitnet_i2s_blob_size(
    rows: usize,
    cols: usize,
    out: *mut usize,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(out, "out")?;
        let n = bitnet_blob_size(rows, cols)?;
        // SAFETY: `out` was checked above.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Imports a bitnet.cpp I2_S tensor (as stored in its GGUF files: `len` bytes, see
/// `bitnet_i2s_blob_size`) and repacks it into this library's I2_S layout, exactly.
/// On success `*out` receives a new matrix (free it with `bitnet_matrix_free`); on failure
/// `*out` is left untouched.
///
/// Safety: `blob` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_from_bitnet_i2s(
    blob: *const u8,
    len: usize,
    rows: usize,
    cols: usize,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(blob, "blob")?;
        let size = bitnet_blob_size(rows, cols)?;
        check_len("len", len, size, "bitnet_i2s_blob_size(rows, cols)")?;
        // SAFETY: `blob` points to `len` bytes (the caller's contract).
        let b = unsafe { c_slice(blob, len, "blob") }?;
        let m = TernaryMatrix::from_bitnet_i2s(b, rows, cols)?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, m) };
        Ok(())
    })
}

/// The byte size of a `rows x cols` ggml tensor of type `ggml_type` (34 TQ1_0: 54 bytes per
/// 256 weights; 35 TQ2_0: 66 bytes per 256 weights; 36 bitnet.cpp I2_S: `rows * cols / 4 +
/// 32`), with rows = output features (`ne1`) and cols = input features (`ne0`). 0 when the
/// type is not one of these or the shape is invalid for it (TQ types need `cols % 256 ==
/// 0`, I2_S `cols % 128 == 0`); `bitnet_last_error()` then says why.
#[no_mangle]
pub extern "C" fn bitnet_ggml_size(ggml_type: c_int, rows: usize, cols: usize) -> usize {
    boundary(
        |_| 0,
        || Ok(GgmlType::from_id(ggml_type.into())?.size(rows, cols)?),
    )
}

/// Imports a ggml tensor (`size` bytes; see `bitnet_ggml_size`) of type `ggml_type` (34
/// TQ1_0, 35 TQ2_0, 36 bitnet.cpp I2_S) with rows = output features (`ne1`) and cols = input
/// features (`ne0`), exactly, and packs it in `format`. TQ1_0 and TQ2_0 carry an fp16 scale
/// `d` per 256-weight block: when every block with a non-zero weight has the same `|d|`,
/// that is the matrix's scale (1.0 when every block is zero); else, when the blocks agree
/// within each row, the matrix has one scale per row (`bitnet_matrix_has_row_scales`; 1.0
/// for a row whose weights are all zero); otherwise `BITNET_STATUS_INVALID_DATA`, with the
/// first disagreeing block named in `bitnet_last_error()`. Type 39 and other types: `BITNET_STATUS_UNSUPPORTED`. On success
/// `*out` receives a new matrix (free it with `bitnet_matrix_free`); on failure `*out` is
/// left untouched.
///
/// Safety: `data` points to `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_from_ggml(
    ggml_type: c_int,
    data: *const c_void,
    size: usize,
    rows: usize,
    cols: usize,
    format: c_int,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(data, "data")?;
        let format = format_of(format)?;
        format.layout(rows, cols)?;
        let want = GgmlType::from_id(ggml_type.into())?.size(rows, cols)?;
        check_len(
            "size",
            size,
            want,
            "bitnet_ggml_size(ggml_type, rows, cols)",
        )?;
        // SAFETY: `data` points to `size` bytes (the caller's contract).
        let d = unsafe { c_slice(data.cast::<u8>(), size, "data") }?;
        // ggml_type >= 34 here (the size check accepted it), so the cast is lossless.
        let m = TernaryMatrix::from_ggml(ggml_type as u32, d, rows, cols, format)?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, m) };
        Ok(())
    })
}

/// Imports a Hugging Face `transformers` packed BitNet weight (`uint8` of shape
/// `(rows / 4, cols)`, rows = output features; `rows % 4 == 0`): byte `[p, k]` holds in bits
/// `2i+1:2i` the code (trit + 1) of row `p + i * rows / 4`. The scale is `weight_scale`, or
/// `1 / weight_scale` (rounded to f32) when `scale_is_divisor` is non-zero (the older
/// `"bitlinear"` class; `"autobitlinear"` multiplies). Code 3 is `BITNET_STATUS_INVALID_DATA`.
/// On success `*out` receives a new matrix (free it with `bitnet_matrix_free`); on failure
/// `*out` is left untouched.
///
/// Safety: `packed` points to `rows / 4 * cols` bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_from_hf_packed(
    packed: *const u8,
    rows: usize,
    cols: usize,
    weight_scale: f32,
    scale_is_divisor: c_int,
    format: c_int,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(packed, "packed")?;
        let format = format_of(format)?;
        format.layout(rows, cols)?;
        let size = crate::format::ggml::hf_size(rows, cols)?;
        check_scale(weight_scale)?;
        let how = if scale_is_divisor != 0 {
            HfScale::Divide
        } else {
            HfScale::Multiply
        };
        // SAFETY: `packed` points to rows / 4 * cols bytes (the caller's contract).
        let p = unsafe { c_slice(packed, size, "packed") }?;
        let m = TernaryMatrix::from_hf_packed(p, rows, cols, weight_scale, how, format)?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, m) };
        Ok(())
    })
}

/// The same trits and scale packed in another format, as a new matrix in `*out` (free it
/// with `bitnet_matrix_free`); `*out` is untouched on failure.
///
/// Safety: `m` is a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_to_format(
    m: *const BitnetMatrix,
    format: c_int,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(out, "out")?;
        let converted = m.to_format(format_of(format)?)?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, converted) };
        Ok(())
    })
}

/// The same trits (and format) with one scale per output row: a new matrix in `*out` (free it
/// with `bitnet_matrix_free`) whose row `i` weights are `trit * scales[i]`. `len` must equal
/// `bitnet_matrix_rows(m)`, and every scale be finite (`NON_FINITE`) and positive
/// (`INVALID_DATA`); `*out` is untouched on failure.
///
/// Safety: `m` is a live matrix; `scales` points to `len` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_with_row_scales(
    m: *const BitnetMatrix,
    scales: *const f32,
    len: usize,
    out: *mut *mut BitnetMatrix,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(out, "out")?;
        check_ptr(scales, "scales")?;
        check_len("len", len, m.rows(), "rows")?;
        // SAFETY: `scales` points to len floats (the caller's contract).
        let s = unsafe { c_slice(scales, len, "scales") }?;
        if let Some(i) = s.iter().position(|v| !v.is_finite()) {
            return Err(Failure::new(
                BitnetStatus::NonFinite,
                format!("scales[{i}] is NaN or infinity"),
            ));
        }
        if let Some(i) = s.iter().position(|&v| v <= 0.0) {
            return Err(Failure::new(
                BitnetStatus::InvalidData,
                format!("scales[{i}] = {} is not positive", s[i]),
            ));
        }
        let scaled = m.clone().with_row_scales(s.to_vec())?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, scaled) };
        Ok(())
    })
}

/// Frees a matrix. NULL is a no-op. The handle must not be used afterwards, nor freed twice.
///
/// Safety: `m` is NULL or a live matrix from this library that no other call is using.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_free(m: *mut BitnetMatrix) {
    // SAFETY: forwarded contract (a handle this library boxed, or NULL).
    unsafe { free_handle(m, "m") }
}

// ---------------------------------------------------------------------------------------
// Reading a matrix

/// Output features (the length of y); 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_rows(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| 0, || Ok(unsafe { handle(m) }?.rows()))
}

/// Input features (the length of x); 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_cols(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| 0, || Ok(unsafe { handle(m) }?.cols()))
}

/// The weight scale (absmean): a weight's value is trit * scale. NaN if `m` is NULL, and NaN
/// (with `bitnet_last_error` saying so) if the matrix has one scale per row: read those with
/// `bitnet_matrix_row_scales`.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_scale(m: *const BitnetMatrix) -> f32 {
    boundary(
        |_| f32::NAN,
        // SAFETY: the caller passes a live handle or NULL.
        || match unsafe { handle(m) }?.scales() {
            Scales::One(s) => Ok(s),
            Scales::PerRow(_) => Err(Failure::new(
                BitnetStatus::Unsupported,
                "the matrix has one scale per row: read them with bitnet_matrix_row_scales",
            )),
        },
    )
}

/// 1 if the matrix has one scale per output row, 0 if it has one scale; -1 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_has_row_scales(m: *const BitnetMatrix) -> c_int {
    boundary(
        |_| -1,
        // SAFETY: the caller passes a live handle or NULL.
        || Ok(matches!(unsafe { handle(m) }?.scales(), Scales::PerRow(_)) as c_int),
    )
}

/// Writes each output row's scale into `out` (`len` must equal `bitnet_matrix_rows(m)`): the
/// per-row scales, or the one scale repeated for a matrix with one. Row `i`'s weights are
/// `trit * out[i]`. `out` is untouched on failure.
///
/// Safety: `m` is a live matrix; `out` points to `len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_row_scales(
    m: *const BitnetMatrix,
    out: *mut f32,
    len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(out, "out")?;
        check_len("len", len, m.rows(), "rows")?;
        let s: Vec<f32> = match m.scales() {
            Scales::One(s) => vec![s; len],
            Scales::PerRow(s) => s.to_vec(),
        };
        // SAFETY: `out` was checked and holds len == s.len() floats.
        unsafe { write_out(&s, out) };
        Ok(())
    })
}

/// The format id (a `BITNET_FORMAT_*` value); -1 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_format(m: *const BitnetMatrix) -> c_int {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| -1, || Ok(unsafe { handle(m) }?.format() as c_int))
}

/// Rows a kernel processes together. Row ranges given to the `_rows` calls may be any
/// range, but ranges that start and end on a multiple of this (or at `rows`) avoid
/// recomputing a shared tile in two threads. 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_row_tile(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| 0, || Ok(unsafe { handle(m) }?.layout().row_tile))
}

/// The size of the packed bytes (what `bitnet_matrix_packed_bytes` writes); 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_packed_size(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| 0, || Ok(unsafe { handle(m) }?.packed_bytes().len()))
}

// ---------------------------------------------------------------------------------------
// Copying a matrix's contents out

/// Copies the packed bytes (this library's layout; the same bytes for every kernel and
/// machine) into `out`, whose length `out_len` must equal `bitnet_matrix_packed_size(m)`.
/// Save them with the shape, scale and format, and reload with `bitnet_matrix_from_packed`.
/// `out` is untouched on failure.
///
/// Safety: `m` is a live matrix; `out` points to `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_packed_bytes(
    m: *const BitnetMatrix,
    out: *mut u8,
    out_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(out, "out")?;
        let bytes = m.packed_bytes();
        check_len(
            "out_len",
            out_len,
            bytes.len(),
            "bitnet_matrix_packed_size(m)",
        )?;
        // SAFETY: `out` was checked and holds out_len == bytes.len() bytes.
        unsafe { write_out(bytes, out) };
        Ok(())
    })
}

/// Unpacks the trits (-1, 0, 1), row-major, into `out` (`out_len` must be rows * cols).
/// `out` is untouched on failure.
///
/// Safety: `m` is a live matrix; `out` points to `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_to_ternary(
    m: *const BitnetMatrix,
    out: *mut i8,
    out_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(out, "out")?;
        // rows * cols fits: the matrix exists.
        check_len("out_len", out_len, m.rows() * m.cols(), "rows * cols")?;
        let trits = m.to_ternary();
        // SAFETY: `out` was checked and holds out_len == trits.len() bytes.
        unsafe { write_out(&trits, out) };
        Ok(())
    })
}

/// Exports the matrix as a bitnet.cpp I2_S tensor blob into `out`, whose length `out_len`
/// must equal `bitnet_i2s_blob_size(rows, cols)`; the exact inverse of
/// `bitnet_matrix_from_bitnet_i2s`. `out` is untouched on failure.
///
/// Safety: `m` is a live matrix; `out` points to `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_to_bitnet_i2s(
    m: *const BitnetMatrix,
    out: *mut u8,
    out_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(out, "out")?;
        let size = bitnet_blob_size(m.rows(), m.cols())?;
        check_len("out_len", out_len, size, "bitnet_i2s_blob_size(rows, cols)")?;
        let blob = m.to_bitnet_i2s()?;
        // SAFETY: `out` was checked and holds out_len == blob.len() bytes.
        unsafe { write_out(&blob, out) };
        Ok(())
    })
}

/// Exports the matrix as a ggml tensor of type `ggml_type` into `out`, whose length `size`
/// must equal `bitnet_ggml_size(ggml_type, rows, cols)`. TQ1_0 and TQ2_0: the bytes ggml's
/// own quantizer writes for the weights trit * scale (`d` = the scale rounded to fp16, to
/// nearest even, in blocks with a non-zero weight; `d` = 0 and zero codes in all-zero
/// blocks; a scale above 65504 is `BITNET_STATUS_INVALID_DATA`). I2_S: the bitnet.cpp blob
/// (as `bitnet_matrix_to_bitnet_i2s`). `out` is untouched on failure.
///
/// Safety: `m` is a live matrix; `out` points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_to_ggml(
    m: *const BitnetMatrix,
    ggml_type: c_int,
    out: *mut c_void,
    size: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(out, "out")?;
        let want = GgmlType::from_id(ggml_type.into())?.size(m.rows(), m.cols())?;
        check_len(
            "size",
            size,
            want,
            "bitnet_ggml_size(ggml_type, rows, cols)",
        )?;
        // ggml_type >= 34 here (the size check accepted it), so the cast is lossless.
        let bytes = m.to_ggml(ggml_type as u32)?;
        // SAFETY: `out` was checked and holds size == bytes.len() bytes.
        unsafe { write_out(&bytes, out.cast::<u8>()) };
        Ok(())
    })
}
