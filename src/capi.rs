//! The C ABI (`include/bitnet_kernels.h`): every `extern "C"` function of the crate, and
//! nothing else. Each one is a thin shell over the Rust API (`DESIGN.md` §3).
//!
//! Rules at the boundary (after rustls-ffi):
//! - every export runs its body under [`std::panic::catch_unwind`]; a panic becomes
//!   [`BitnetStatus::Internal`], never an unwind into C;
//! - every pointer is checked for NULL (and alignment) before use, every length against the
//!   matrix shape, and every size product for overflow *before* a slice is formed;
//! - outputs are written only on success: results are computed into a temporary and copied
//!   out last (with `memmove`, so an output may even overlap an input);
//! - integers from C are never received as Rust enums: format ids arrive as `int` and go
//!   through [`Format::from_id`], status codes as `int`;
//! - a failed call also leaves a detailed sentence in a thread-local buffer,
//!   [`bitnet_last_error`], like `errno`: successful calls do not clear it.
//!
//! The header's version macros (`BITNET_KERNELS_VERSION`, `_MAJOR`, `_MINOR`, `_PATCH`) are
//! written from `Cargo.toml`'s version by `tests/header_up_to_date.rs`.
//!
//! Regenerate the header after changing this file:
//! `BITNET_BLESS=1 cargo test --release --test header_up_to_date`.

#![allow(clippy::missing_safety_doc)] // each function's doc has a "Safety" paragraph for C users

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::error::Error;
use crate::format::{check_shape, i2s, Format, TernaryMatrix};
use crate::kernels::{self, KernelSet};
use crate::matmul::check_rows;

/// The result of every call that can fail. `BITNET_STATUS_OK` is 0; every other value names
/// one kind of failure, and `bitnet_last_error()` gives the detail.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitnetStatus {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL (or not aligned for its type).
    NullPointer = 1,
    /// A dimension is zero, too large (cols >= 2^24), a size overflows, or a row range is
    /// empty or outside the matrix.
    InvalidShape = 2,
    /// A buffer length does not match what the matrix shape requires.
    LengthMismatch = 3,
    /// A format id that is not a `BITNET_FORMAT_*` value.
    InvalidFormat = 4,
    /// Trits outside {-1, 0, 1}, or packed bytes / a blob that do not decode to a ternary matrix.
    InvalidData = 5,
    /// A NaN or infinity in weights, activations or a scale.
    NonFinite = 6,
    /// `BITNET_KERNEL` names a kernel set this CPU or this build cannot run.
    KernelUnavailable = 7,
    /// The format exists but this build has no packer or kernel for it.
    Unsupported = 8,
    /// Memory could not be allocated.
    Alloc = 9,
    /// A bug in the library: a panic or a broken invariant, caught at the boundary.
    Internal = 10,
}

impl BitnetStatus {
    /// Every status, in code order.
    const ALL: [BitnetStatus; 11] = [
        BitnetStatus::Ok,
        BitnetStatus::NullPointer,
        BitnetStatus::InvalidShape,
        BitnetStatus::LengthMismatch,
        BitnetStatus::InvalidFormat,
        BitnetStatus::InvalidData,
        BitnetStatus::NonFinite,
        BitnetStatus::KernelUnavailable,
        BitnetStatus::Unsupported,
        BitnetStatus::Alloc,
        BitnetStatus::Internal,
    ];

    fn message(self) -> &'static CStr {
        match self {
            BitnetStatus::Ok => c"success",
            BitnetStatus::NullPointer => c"a required pointer argument is NULL or misaligned",
            BitnetStatus::InvalidShape => {
                c"invalid shape: a dimension is zero or too large, a size overflows, or a row range is empty or out of bounds"
            }
            BitnetStatus::LengthMismatch => {
                c"a buffer length does not match the matrix shape"
            }
            BitnetStatus::InvalidFormat => c"unknown format id (expected a BITNET_FORMAT_* value)",
            BitnetStatus::InvalidData => {
                c"invalid data: a trit outside {-1, 0, 1}, or packed bytes that are not a valid ternary matrix"
            }
            BitnetStatus::NonFinite => c"the input contains NaN or infinity",
            BitnetStatus::KernelUnavailable => {
                c"the kernel set named by BITNET_KERNEL cannot run on this CPU or is not built in"
            }
            BitnetStatus::Unsupported => c"this format is not supported by this build",
            BitnetStatus::Alloc => c"memory allocation failed",
            BitnetStatus::Internal => c"internal error in bitnet-kernels (a bug; please report it)",
        }
    }
}

/// The ids of the packed formats, as the `int format` parameters take them.
/// (Functions take an `int`, never this enum, so that any value from C is safe to pass.)
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitnetFormat {
    /// I2_S: 2 bits a weight, multiply-add kernels.
    I2s = 0,
    /// TL1: lookup-table format, 2 weights an index.
    Tl1 = 1,
    /// TL2: lookup-table format, 3 weights in 5 bits.
    Tl2 = 2,
}

const _: () = assert!(
    BitnetFormat::I2s as u32 == Format::I2S as u32
        && BitnetFormat::Tl1 as u32 == Format::TL1 as u32
        && BitnetFormat::Tl2 as u32 == Format::TL2 as u32
);

/// The C status for each crate error, one to one. No wildcard: a new variant must be mapped.
pub fn status_of(e: &Error) -> BitnetStatus {
    match e {
        Error::InvalidShape(_) => BitnetStatus::InvalidShape,
        Error::LengthMismatch { .. } => BitnetStatus::LengthMismatch,
        Error::InvalidFormat(_) => BitnetStatus::InvalidFormat,
        Error::InvalidData(_) => BitnetStatus::InvalidData,
        Error::NonFinite { .. } => BitnetStatus::NonFinite,
        Error::KernelUnavailable(_) => BitnetStatus::KernelUnavailable,
        Error::Unsupported(_) => BitnetStatus::Unsupported,
        Error::Alloc => BitnetStatus::Alloc,
        Error::Internal(_) => BitnetStatus::Internal,
    }
}

/// A packed ternary matrix: opaque, immutable once built. Any number of threads may use one
/// matrix at the same time (all calls take it as `const`); free it once, with
/// `bitnet_matrix_free`, when no call is using it.
pub struct BitnetMatrix {
    inner: TernaryMatrix,
}

// ---------------------------------------------------------------------------------------
// Boundary helpers

/// Why a call failed: its status and the sentence `bitnet_last_error()` will return.
struct Failure {
    status: BitnetStatus,
    detail: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            status: status_of(&e),
            detail: e.to_string(),
        }
    }
}

type CResult<T> = Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(detail: &str) {
    let c = CString::new(detail.replace('\0', " ")).unwrap_or_default();
    // A thread being torn down has no buffer left; there is nobody to read it then anyway.
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = c);
}

fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("(no message)");
    format!("internal error: panic caught at the C boundary: {msg}")
}

/// Runs the body of a status-returning export: panics become `Internal`, failures record
/// their detail for `bitnet_last_error()`.
fn guard(body: impl FnOnce() -> CResult<()>) -> BitnetStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => BitnetStatus::Ok,
        Ok(Err(f)) => {
            set_last_error(&f.detail);
            f.status
        }
        Err(payload) => {
            set_last_error(&panic_detail(&*payload));
            BitnetStatus::Internal
        }
    }
}

/// Runs the body of a value-returning export; `fallback` on failure or panic.
fn guard_value<T>(fallback: T, body: impl FnOnce() -> CResult<T>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(f)) => {
            set_last_error(&f.detail);
            fallback
        }
        Err(payload) => {
            set_last_error(&panic_detail(&*payload));
            fallback
        }
    }
}

fn null_pointer(what: &str, why: &str) -> Failure {
    Failure {
        status: BitnetStatus::NullPointer,
        detail: format!("{what} is {why}"),
    }
}

/// Rejects NULL and pointers not aligned for `T`.
fn check_ptr<T>(p: *const T, what: &str) -> CResult<()> {
    if p.is_null() {
        return Err(null_pointer(what, "NULL"));
    }
    if !p.is_aligned() {
        let align = std::mem::align_of::<T>();
        return Err(null_pointer(what, &format!("not aligned to {align} bytes")));
    }
    Ok(())
}

/// `a * b`, or `InvalidShape` when it overflows.
fn mul(a: usize, b: usize, what: &str) -> CResult<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::InvalidShape(format!("{what}: {a} x {b} overflows")).into())
}

/// A slice over `len` elements of C memory, after checking the pointer and that the byte
/// size fits `isize` (what `from_raw_parts` requires).
///
/// # Safety
/// If `p` is non-NULL and aligned, it must point to `len` initialized `T`s that stay valid
/// and unmodified for `'a`.
unsafe fn slice<'a, T>(p: *const T, len: usize, what: &str) -> CResult<&'a [T]> {
    check_ptr(p, what)?;
    if mul(len, std::mem::size_of::<T>(), what)? > isize::MAX as usize {
        return Err(Error::InvalidShape(format!("{what}: {len} elements are too many")).into());
    }
    // SAFETY: non-NULL, aligned, size fits isize; the caller vouches for validity.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Copies a finished result to C memory (`memmove`: `dst` may overlap an input).
///
/// # Safety
/// `dst` was checked by [`check_ptr`] and has room for `src.len()` elements.
unsafe fn write_out<T: Copy>(src: &[T], dst: *mut T) {
    // SAFETY: see the function's contract; `copy` tolerates overlap.
    unsafe { std::ptr::copy(src.as_ptr(), dst, src.len()) }
}

/// The matrix behind a handle.
///
/// # Safety
/// `m` is NULL or a live handle from this library.
unsafe fn matrix<'a>(m: *const BitnetMatrix) -> CResult<&'a TernaryMatrix> {
    check_ptr(m, "matrix")?;
    // SAFETY: non-NULL; the caller vouches that it is a live handle.
    Ok(unsafe { &(*m).inner })
}

/// Stores a new handle in `*out` (checked by [`check_ptr`] beforehand).
///
/// # Safety
/// `out` is non-NULL, aligned and writable.
unsafe fn put_matrix(out: *mut *mut BitnetMatrix, m: TernaryMatrix) -> CResult<()> {
    let h = Box::into_raw(Box::new(BitnetMatrix { inner: m }));
    // SAFETY: see the function's contract.
    unsafe { out.write(h) };
    Ok(())
}

fn format_of(id: c_int) -> CResult<Format> {
    Ok(Format::from_id(id as i64)?)
}

/// `row_begin..row_end` after checking it against the matrix.
fn row_range(m: &TernaryMatrix, row_begin: usize, row_end: usize) -> CResult<Range<usize>> {
    let r = row_begin..row_end;
    check_rows(m, &r)?;
    Ok(r)
}

fn length(what: &'static str, expected: usize, got: usize) -> CResult<()> {
    Ok(crate::error::check_len(what, expected, got)?)
}

/// `got`, after checking that it is the output length the shape requires.
fn output_len(expected: usize, got: usize) -> CResult<usize> {
    length("output", expected, got)?;
    Ok(got)
}

/// The body of every constructor: `build` runs only once `out` is known to be writable, and
/// `*out` is written only when it succeeds.
///
/// # Safety
/// `out` is NULL or points to a writable `BitnetMatrix *`.
unsafe fn new_matrix(
    out: *mut *mut BitnetMatrix,
    build: impl FnOnce() -> CResult<TernaryMatrix>,
) -> BitnetStatus {
    guard(|| {
        check_ptr(out, "out")?;
        let m = build()?;
        // SAFETY: `out` was checked above.
        unsafe { put_matrix(out, m) }
    })
}

/// The body of every copy-out of a matrix's contents: `data` computes them, and they are
/// copied to `out` only when `out_len` is exactly their length.
///
/// # Safety
/// `m` is NULL or a live handle; `out` is NULL or points to `out_len` writable elements.
unsafe fn copy_out<T: Copy>(
    m: *const BitnetMatrix,
    out: *mut T,
    out_len: usize,
    data: impl FnOnce(&TernaryMatrix) -> CResult<std::borrow::Cow<'_, [T]>>,
) -> BitnetStatus
where
    [T]: ToOwned,
{
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let m = unsafe { matrix(m) }?;
        check_ptr(out, "out")?;
        let d = data(m)?;
        length("output", d.len(), out_len)?;
        // SAFETY: `out` was checked and holds out_len == d.len() elements.
        unsafe { write_out(&d, out) };
        Ok(())
    })
}

/// The body of every product: checks the handle, `y`, and `x` (`x_len(m)` elements); sizes
/// a temporary by `y_len(m)` (which also checks a length given by the caller); runs the
/// product into it with the active kernel set; and copies it to `y` only on success.
///
/// # Safety
/// `m` is NULL or a live handle; `x` is NULL or points to `x_len(m)` elements, `y` to
/// `y_len(m)` writable ones.
unsafe fn product<X, Y: Copy + Default>(
    m: *const BitnetMatrix,
    x: *const X,
    x_len: impl FnOnce(&TernaryMatrix) -> CResult<usize>,
    y: *mut Y,
    y_len: impl FnOnce(&TernaryMatrix) -> CResult<usize>,
    run: impl FnOnce(&KernelSet, &TernaryMatrix, &[X], &mut [Y]) -> crate::Result<()>,
) -> BitnetStatus {
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let m = unsafe { matrix(m) }?;
        check_ptr(y, "y")?;
        // SAFETY: the caller passes x_len(m) elements; slice() checks the byte size.
        let x = unsafe { slice(x, x_len(m)?, "x") }?;
        let n = y_len(m)?;
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| Error::Alloc)?;
        out.resize(n, Y::default());
        run(kernels::active()?, m, x, &mut out)?;
        // SAFETY: `y` was checked and holds y_len(m) == out.len() elements.
        unsafe { write_out(&out, y) };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Library information

/// The library's version, e.g. "0.1.0" (compare with `BITNET_KERNELS_VERSION` to detect a
/// header/library mismatch). A static string: never free it.
#[no_mangle]
pub extern "C" fn bitnet_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    guard_value(std::ptr::null(), || Ok(V.as_ptr().cast()))
}

/// A static, readable sentence for a status code (any int, also unknown ones). Never NULL;
/// never free it.
#[no_mangle]
pub extern "C" fn bitnet_status_message(status: c_int) -> *const c_char {
    guard_value(c"internal error".as_ptr(), || {
        Ok(BitnetStatus::ALL
            .into_iter()
            .find(|s| *s as c_int == status)
            .map_or(c"unknown status code", |s| s.message())
            .as_ptr())
    })
}

/// The detail of the most recent failed call on the calling thread (e.g. "length mismatch:
/// activations has 299 elements, the shape needs 300"), or "" if none failed yet. Like
/// `errno`, successful calls leave it alone. The string belongs to the library and stays
/// valid until the next failed call on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn bitnet_last_error() -> *const c_char {
    guard_value(c"".as_ptr(), || {
        Ok(LAST_ERROR
            .try_with(|l| l.borrow().as_ptr())
            .unwrap_or(c"".as_ptr()))
    })
}

/// The kernel set every call uses ("avx512", "avx2", "neon", "scalar"), chosen once per
/// process: the best this CPU runs, or the one named by the environment variable
/// `BITNET_KERNEL`. NULL when `BITNET_KERNEL` names one that cannot run here (every product
/// then fails with `BITNET_STATUS_KERNEL_UNAVAILABLE`; `bitnet_last_error()` says why).
/// A static string: never free it.
#[no_mangle]
pub extern "C" fn bitnet_kernel_name() -> *const c_char {
    static NAME: OnceLock<CString> = OnceLock::new();
    guard_value(std::ptr::null(), || {
        let k = kernels::active()?;
        Ok(NAME
            .get_or_init(|| CString::new(k.name()).unwrap_or_default())
            .as_ptr())
    })
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
    // SAFETY: `out` is the caller's; `w` holds rows * cols floats (product checked first).
    unsafe {
        new_matrix(out, || {
            check_ptr(w, "w")?;
            let format = format_of(format)?;
            check_shape(rows, cols)?;
            let w = slice(w, rows * cols, "w")?;
            Ok(TernaryMatrix::from_f32(w, rows, cols, format)?)
        })
    }
}

/// Packs row-major trits (each -1, 0 or 1; `rows * cols` of them) with the weight scale
/// `scale` (a weight's value is trit * scale) in `format`. On success `*out` receives a new
/// matrix (free it with `bitnet_matrix_free`); on failure `*out` is left untouched.
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
    // SAFETY: `out` is the caller's; `trits` holds rows * cols bytes (product checked first).
    unsafe {
        new_matrix(out, || {
            check_ptr(trits, "trits")?;
            let format = format_of(format)?;
            check_shape(rows, cols)?;
            let t = slice(trits, rows * cols, "trits")?;
            Ok(TernaryMatrix::from_ternary(t, rows, cols, scale, format)?)
        })
    }
}

/// Copies and validates packed bytes in this library's layout for `format` (as written by
/// `bitnet_matrix_packed_bytes`, e.g. from a file); `len` must equal the packed size of a
/// `rows x cols` matrix in that format. On success `*out` receives a new matrix (free it with
/// `bitnet_matrix_free`); on failure `*out` is left untouched.
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
    // SAFETY: `out` is the caller's; `bytes` holds `len` bytes.
    unsafe {
        new_matrix(out, || {
            let format = format_of(format)?;
            let b = slice(bytes, len, "bytes")?;
            Ok(TernaryMatrix::from_packed(b, rows, cols, scale, format)?)
        })
    }
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
    guard(|| {
        check_ptr(out, "out")?;
        check_shape(rows, cols)?;
        if !cols.is_multiple_of(i2s::BITNET_BLOCK) {
            return Err(Error::InvalidShape(format!(
                "bitnet.cpp I2_S needs cols to be a multiple of {}, got {cols}",
                i2s::BITNET_BLOCK
            ))
            .into());
        }
        // rows * cols was checked by check_shape, so /4 and + 32 cannot overflow.
        let n = rows * cols / 4 + i2s::BITNET_TAIL;
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
    // SAFETY: `out` is the caller's; `blob` holds `len` bytes.
    unsafe {
        new_matrix(out, || {
            let b = slice(blob, len, "blob")?;
            Ok(TernaryMatrix::from_bitnet_i2s(b, rows, cols)?)
        })
    }
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
    // SAFETY: the caller's handle and buffer, checked by copy_out.
    unsafe { copy_out(m, out, out_len, |m| Ok(m.to_bitnet_i2s()?.into())) }
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
    // SAFETY: `out` is the caller's; `m` is a live handle or NULL (checked).
    unsafe {
        new_matrix(out, || {
            let m = matrix(m)?;
            Ok(m.to_format(format_of(format)?)?)
        })
    }
}

/// Frees a matrix. NULL is a no-op. The handle must not be used afterwards, nor freed twice.
///
/// Safety: `m` is NULL or a live matrix from this library that no other call is using.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_free(m: *mut BitnetMatrix) {
    guard_value((), || {
        if !m.is_null() {
            // SAFETY: a live handle made by Box::into_raw in put_matrix, freed once.
            drop(unsafe { Box::from_raw(m) });
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Reading a matrix

/// Output features (the length of y); 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_rows(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    guard_value(0, || Ok(unsafe { matrix(m) }?.rows()))
}

/// Input features (the length of x); 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_cols(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    guard_value(0, || Ok(unsafe { matrix(m) }?.cols()))
}

/// The weight scale (absmean): a weight's value is trit * scale. NaN if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_scale(m: *const BitnetMatrix) -> f32 {
    // SAFETY: the caller passes a live handle or NULL.
    guard_value(f32::NAN, || Ok(unsafe { matrix(m) }?.scale()))
}

/// The format id (a `BITNET_FORMAT_*` value); -1 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_format(m: *const BitnetMatrix) -> c_int {
    // SAFETY: the caller passes a live handle or NULL.
    guard_value(-1, || Ok(unsafe { matrix(m) }?.format() as c_int))
}

/// Rows a kernel processes together. Row ranges given to the `_rows` calls may be any
/// range, but ranges that start and end on a multiple of this (or at `rows`) avoid
/// recomputing a shared tile in two threads. 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_row_tile(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    guard_value(0, || Ok(unsafe { matrix(m) }?.layout().row_tile))
}

/// The size of the packed bytes (what `bitnet_matrix_packed_bytes` writes); 0 if `m` is NULL.
///
/// Safety: `m` is NULL or a live matrix.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_packed_size(m: *const BitnetMatrix) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    guard_value(0, || Ok(unsafe { matrix(m) }?.packed_bytes().len()))
}

/// Copies the packed bytes (this library's layout; the same bytes for every kernel and
/// machine) into `out`, whose length `out_len` must equal `bitnet_matrix_packed_size(m)`.
/// Save them with the shape, scale and format, and reload with `bitnet_matrix_from_packed`.
///
/// Safety: `m` is a live matrix; `out` points to `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_packed_bytes(
    m: *const BitnetMatrix,
    out: *mut u8,
    out_len: usize,
) -> BitnetStatus {
    // SAFETY: the caller's handle and buffer, checked by copy_out.
    unsafe { copy_out(m, out, out_len, |m| Ok(m.packed_bytes().into())) }
}

/// Unpacks the trits (-1, 0, 1), row-major, into `out` (`out_len` must be rows * cols).
///
/// Safety: `m` is a live matrix; `out` points to `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_matrix_to_ternary(
    m: *const BitnetMatrix,
    out: *mut i8,
    out_len: usize,
) -> BitnetStatus {
    // SAFETY: the caller's handle and buffer, checked by copy_out.
    unsafe { copy_out(m, out, out_len, |m| Ok(m.to_ternary().into())) }
}

// ---------------------------------------------------------------------------------------
// Products

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
    // SAFETY: the caller's handle and buffers, checked by product.
    unsafe {
        product(
            m,
            x,
            |_| Ok(x_len),
            y,
            |m| output_len(m.rows(), y_len),
            |k, m, x, y| k.gemv_i8(m, x, y),
        )
    }
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
    // SAFETY: the caller's handle and buffers, checked by product.
    unsafe {
        product(
            m,
            x,
            |_| Ok(x_len),
            y,
            |m| output_len(m.rows(), y_len),
            |k, m, x, y| k.gemm_f32(m, x, 1, y),
        )
    }
}

/// The BitLinear forward pass for `n` activation rows (prefill): x is n x cols, y is
/// n x rows, both row-major; each row of x has its own activation scale. `y` is untouched on
/// failure and may overlap `x`.
///
/// Safety: `m` is a live matrix; `x` points to n * cols floats, `y` to n * rows floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_f32(
    m: *const BitnetMatrix,
    x: *const f32,
    n: usize,
    y: *mut f32,
) -> BitnetStatus {
    let x_len = |m: &TernaryMatrix| mul(n, m.cols(), "x");
    let y_len = |m: &TernaryMatrix| mul(n, m.rows(), "y");
    // SAFETY: the caller's handle and buffers, checked by product.
    unsafe { product(m, x, x_len, y, y_len, |k, m, x, y| k.gemm_f32(m, x, n, y)) }
}

/// Exact int32 accumulators for `n` int8 activation rows: x is n x cols, y is n x rows,
/// both row-major. `y` is untouched on failure and may overlap `x`.
///
/// Safety: `m` is a live matrix; `x` points to n * cols bytes, `y` to n * rows int32.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_i8(
    m: *const BitnetMatrix,
    x: *const i8,
    n: usize,
    y: *mut i32,
) -> BitnetStatus {
    let x_len = |m: &TernaryMatrix| mul(n, m.cols(), "x");
    let y_len = |m: &TernaryMatrix| mul(n, m.rows(), "y");
    // SAFETY: the caller's handle and buffers, checked by product.
    unsafe { product(m, x, x_len, y, y_len, |k, m, x, y| k.gemm_i8(m, x, n, y)) }
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
    let y_len = |m: &TernaryMatrix| output_len(row_range(m, row_begin, row_end)?.len(), y_len);
    // SAFETY: the caller's handle and buffers, checked by product.
    unsafe {
        product(
            m,
            x,
            |_| Ok(x_len),
            y,
            y_len,
            |k, m, x, y| k.gemv_i8_rows(m, x, row_begin..row_end, y),
        )
    }
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
    let y_len = |m: &TernaryMatrix| output_len(row_range(m, row_begin, row_end)?.len(), y_len);
    // SAFETY: the caller's handle and buffers, checked by product.
    unsafe {
        product(
            m,
            x,
            |_| Ok(x_len),
            y,
            y_len,
            |k, m, x, y| k.gemv_f32_rows(m, x, row_begin..row_end, y),
        )
    }
}

/// `bitnet_gemm_i8` for the output rows `[row_begin, row_end)` only, on the calling thread:
/// x is n x cols; y is n x (row_end - row_begin), row-major.
///
/// Safety: `m` is a live matrix; `x` points to n * cols bytes, `y` to
/// n * (row_end - row_begin) int32.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_i8_rows(
    m: *const BitnetMatrix,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
) -> BitnetStatus {
    let x_len = |m: &TernaryMatrix| mul(n, m.cols(), "x");
    let y_len = |m: &TernaryMatrix| mul(n, row_range(m, row_begin, row_end)?.len(), "y");
    // SAFETY: the caller's handle and buffers, checked by product.
    unsafe {
        product(m, x, x_len, y, y_len, |k, m, x, y| {
            k.gemm_i8_rows(m, x, n, row_begin..row_end, y)
        })
    }
}

/// The library's activation quantizer (absmax int8, round half to even, FORMATS.md §1):
/// writes `len` int8 to `q` and the row's absmax `a` (at least 1e-5) to `*absmax`. With
/// `bitnet_gemv_i8_rows`, `y[i] = (float)acc[i] * (bitnet_matrix_scale(m) * (a / 127.0f))`
/// reproduces `bitnet_gemv_f32` bit for bit. Outputs are untouched on failure.
///
/// Safety: `x` points to `len` floats, `q` to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_quantize_activations(
    x: *const f32,
    len: usize,
    q: *mut i8,
    absmax: *mut f32,
) -> BitnetStatus {
    guard(|| {
        check_ptr(q, "q")?;
        check_ptr(absmax, "absmax")?;
        // SAFETY: the caller passes `len` floats.
        let x = unsafe { slice(x, len, "x") }?;
        if len == 0 {
            return Err(Error::InvalidShape("len must be at least 1".into()).into());
        }
        let mut out = vec![0i8; len];
        let a = crate::quant::quantize_activations(x, &mut out)?;
        // SAFETY: `q` and `absmax` were checked; q holds len bytes.
        unsafe {
            write_out(&out, q);
            absmax.write(a);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_crates() {
        // SAFETY: bitnet_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(bitnet_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_error_has_its_own_status() {
        let errors = [
            Error::InvalidShape(String::new()),
            Error::LengthMismatch {
                what: "x",
                expected: 1,
                got: 2,
            },
            Error::InvalidFormat(7),
            Error::InvalidData(String::new()),
            Error::NonFinite {
                what: "x",
                index: 0,
            },
            Error::KernelUnavailable(String::new()),
            Error::Unsupported(String::new()),
            Error::Alloc,
            Error::Internal(String::new()),
        ];
        let mut seen: Vec<_> = errors.iter().map(|e| status_of(e) as c_int).collect();
        seen.push(BitnetStatus::Ok as c_int);
        seen.push(BitnetStatus::NullPointer as c_int);
        seen.sort();
        let all: Vec<_> = BitnetStatus::ALL.iter().map(|s| *s as c_int).collect();
        assert_eq!(seen, all, "each status exactly once, codes 0..=10 in order");
        assert_eq!(all, (0..11).collect::<Vec<_>>());
    }

    #[test]
    fn messages_are_distinct_and_cover_unknown_codes() {
        let msg = |s: c_int| {
            // SAFETY: bitnet_status_message always returns a static NUL-terminated string.
            unsafe { CStr::from_ptr(bitnet_status_message(s)) }
                .to_str()
                .unwrap()
        };
        let mut all: Vec<_> = (-1..12).map(msg).collect();
        assert_eq!(all[0], "unknown status code");
        assert_eq!(all[12], "unknown status code");
        assert_eq!(msg(c_int::MIN), "unknown status code");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 12, "11 distinct sentences + the unknown one");
    }

    #[test]
    fn panics_become_internal_with_detail() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let s = guard(|| panic!("boom {}", 42));
        let v = guard_value(7u8, || panic!("bang"));
        std::panic::set_hook(prev);
        assert_eq!(s, BitnetStatus::Internal);
        assert_eq!(v, 7);
        // SAFETY: bitnet_last_error returns this thread's NUL-terminated buffer.
        let last = unsafe { CStr::from_ptr(bitnet_last_error()) };
        assert!(last.to_str().unwrap().contains("bang"), "{last:?}");
    }

    #[test]
    fn misaligned_and_oversized_pointers_are_rejected() {
        let buf = [0f32; 4];
        let p = (buf.as_ptr() as *const u8).wrapping_add(1) as *const f32;
        let mut y = [0f32; 1];
        let mut t = [1i8; 1];
        let mut m = std::ptr::null_mut();
        // SAFETY: valid trits and out pointer.
        let st = unsafe { bitnet_matrix_from_ternary(t.as_ptr(), 1, 1, 1.0, 0, &mut m) };
        assert_eq!(st, BitnetStatus::Ok);
        // SAFETY: every pointer is either valid or rejected before use.
        unsafe {
            assert_eq!(
                bitnet_gemv_f32(m, p, 1, y.as_mut_ptr(), 1),
                BitnetStatus::NullPointer
            );
            // usize::MAX floats: the byte size overflows, so no slice is ever formed.
            assert_eq!(
                bitnet_gemv_f32(m, buf.as_ptr(), usize::MAX, y.as_mut_ptr(), 1),
                BitnetStatus::InvalidShape
            );
            assert_eq!(
                bitnet_quantize_activations(
                    buf.as_ptr(),
                    usize::MAX / 2,
                    t.as_mut_ptr(),
                    &mut y[0]
                ),
                BitnetStatus::InvalidShape
            );
            bitnet_matrix_free(m);
        }
        assert_eq!(t, [1]);
        assert_eq!(y, [0.0]);
    }

    /// The cost of the boundary (panic guard, checks, the temporary that makes outputs
    /// write-only-on-success, the copy out): the C call against the Rust call it wraps,
    /// single-threaded, alternating batches in one process, medians.
    #[test]
    #[ignore = "timing: cargo test --release --lib capi::tests::boundary_overhead -- --ignored --nocapture"]
    fn boundary_overhead() {
        use std::time::Instant;
        let k = kernels::active().unwrap();
        println!("kernel {}", k.name());
        for (rows, cols) in [(4, 256), (256, 1024), (2560, 2560)] {
            let t: Vec<i8> = (0..rows * cols)
                .map(|i| ((i * 7919) % 3) as i8 - 1)
                .collect();
            let h = BitnetMatrix {
                inner: TernaryMatrix::from_ternary(&t, rows, cols, 0.5, Format::I2S).unwrap(),
            };
            let xi: Vec<i8> = (0..cols).map(|i| (i * 31 % 255) as i8).collect();
            let xf: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
            let (mut yi, mut yf) = (vec![0i32; rows], vec![0f32; rows]);
            let reps = (20_000_000 / (rows * cols)).clamp(3, 100_000);
            let batch = |f: &mut dyn FnMut()| {
                let t0 = Instant::now();
                for _ in 0..reps {
                    f();
                }
                t0.elapsed().as_secs_f64() * 1e9 / reps as f64
            };
            let (mut ri, mut ci, mut rf, mut cf) = (vec![], vec![], vec![], vec![]);
            for _ in 0..15 {
                ri.push(batch(&mut || {
                    k.gemv_i8_rows(&h.inner, &xi, 0..rows, &mut yi).unwrap()
                }));
                // SAFETY: a live handle and buffers of the stated lengths.
                ci.push(batch(&mut || unsafe {
                    bitnet_gemv_i8_rows(&h, xi.as_ptr(), cols, 0, rows, yi.as_mut_ptr(), rows);
                }));
                rf.push(batch(&mut || {
                    k.gemv_f32_rows(&h.inner, &xf, 0..rows, &mut yf).unwrap()
                }));
                // SAFETY: a live handle and buffers of the stated lengths.
                cf.push(batch(&mut || unsafe {
                    bitnet_gemv_f32_rows(&h, xf.as_ptr(), cols, 0, rows, yf.as_mut_ptr(), rows);
                }));
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (ri, ci, rf, cf) = (med(&mut ri), med(&mut ci), med(&mut rf), med(&mut cf));
            println!(
                "{rows:>5} x {cols:<5} int8: rust {ri:>10.0} ns, C {ci:>10.0} ns ({:+.1}%) | \
                 f32: rust {rf:>10.0} ns, C {cf:>10.0} ns ({:+.1}%)",
                (ci / ri - 1.0) * 100.0,
                (cf / rf - 1.0) * 100.0
            );
        }
    }
}
