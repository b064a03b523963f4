//! Status codes, their messages, the last-error detail, and the boundary every export runs
//! inside: panics caught, pointers checked (NULL, alignment), lengths compared, results
//! written out only at the end.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt::Display;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::error::Error;
use crate::format::{Format, TernaryMatrix};

use super::matrix::BitnetMatrix;

/// The result of every call that can fail. `BITNET_STATUS_OK` is 0; every other value names
/// one kind of failure: `bitnet_status_message(status)` says which kind, and
/// `bitnet_last_error()` the specifics. The codes are part of the ABI: they never change,
/// and new ones are only ever appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitnetStatus {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL.
    NullPointer = 1,
    /// A dimension is zero, too large (cols >= 2^24), a size overflows, or a row range is
    /// empty or outside the matrix.
    InvalidShape = 2,
    /// A buffer length does not match what the matrix shape requires.
    LengthMismatch = 3,
    /// A format id that is not a `BITNET_FORMAT_*` value.
    InvalidFormat = 4,
    /// Trits outside {-1, 0, 1}, a scale that is zero or negative, or packed bytes / a blob
    /// that do not decode to a ternary matrix.
    InvalidData = 5,
    /// A NaN or infinity in weights, activations or a scale.
    NonFinite = 6,
    /// `BITNET_KERNEL` names a kernel set this CPU or this build cannot run.
    KernelUnavailable = 7,
    /// The format exists but this build has no packer or kernel for it; or a ggml type this
    /// library does not decode, or TQ blocks whose scales would need per-row scales.
    Unsupported = 8,
    /// Memory could not be allocated.
    Alloc = 9,
    /// A bug in the library: a panic or a broken invariant, caught at the boundary.
    Internal = 10,
    /// A pointer is not aligned for its type (e.g. a `float *` whose address is not a
    /// multiple of 4).
    MisalignedPointer = 11,
    /// Reading or writing a file failed (`bitnet_last_error()` has the system's message).
    Io = 12,
    /// No item has the name asked for (e.g. a matrix name in a container).
    NotFound = 13,
}

impl BitnetStatus {
    /// Every status, in code order.
    pub(crate) const ALL: [BitnetStatus; 14] = [
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
        BitnetStatus::MisalignedPointer,
        BitnetStatus::Io,
        BitnetStatus::NotFound,
    ];

    /// The kind of failure, short, so that `"<message>: <detail>"` reads as one line and
    /// the detail (`bitnet_last_error()`) never repeats it.
    pub(crate) fn message(self) -> &'static CStr {
        match self {
            BitnetStatus::Ok => c"success",
            BitnetStatus::NullPointer => c"null pointer",
            BitnetStatus::InvalidShape => c"invalid shape",
            BitnetStatus::LengthMismatch => c"length mismatch",
            BitnetStatus::InvalidFormat => c"invalid format",
            BitnetStatus::InvalidData => c"invalid data",
            BitnetStatus::NonFinite => c"non-finite input",
            BitnetStatus::KernelUnavailable => c"kernel unavailable",
            BitnetStatus::Unsupported => c"unsupported",
            BitnetStatus::Alloc => c"out of memory",
            BitnetStatus::Internal => c"internal error (a bug in bitnet-kernels; please report it)",
            BitnetStatus::MisalignedPointer => c"misaligned pointer",
            BitnetStatus::Io => c"I/O error",
            BitnetStatus::NotFound => c"not found",
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
    /// I2_S_COL: I2_S codes column by column in 256-row blocks; products skip the columns
    /// whose activation is zero (sparse activations).
    I2sCol = 3,
}

/// The ggml tensor type ids the `ggml_type` parameters take (ggml's and bitnet.cpp's own
/// numbers, as stored in GGUF tensor infos). Other ids, 39 included (TL2 in bitnet.cpp's fork,
/// MXFP4 upstream), are `BITNET_STATUS_UNSUPPORTED`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitnetGgmlType {
    /// ggml TQ1_0: 54-byte blocks of 256 weights (5 trits a byte, fp16 d).
    Tq1_0 = 34,
    /// ggml TQ2_0: 66-byte blocks of 256 weights (2 bits a weight, fp16 d).
    Tq2_0 = 35,
    /// bitnet.cpp I2_S: 2 bits a weight in 128-weight groups, then a 32-byte tail with the f32 scale.
    I2s = 36,
}

const _: () = assert!(
    BitnetGgmlType::Tq1_0 as u32 == crate::format::ggml::GGML_TYPE_TQ1_0
        && BitnetGgmlType::Tq2_0 as u32 == crate::format::ggml::GGML_TYPE_TQ2_0
        && BitnetGgmlType::I2s as u32 == crate::format::ggml::GGML_TYPE_I2_S
);

const _: () = assert!(
    BitnetFormat::I2s as u32 == Format::I2S as u32
        && BitnetFormat::Tl1 as u32 == Format::TL1 as u32
        && BitnetFormat::Tl2 as u32 == Format::TL2 as u32
        && BitnetFormat::I2sCol as u32 == Format::I2SCol as u32
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
        Error::Io(_) => BitnetStatus::Io,
    }
}

/// What `bitnet_last_error()` says for a crate error: its specifics, without the kind that
/// `Error`'s `Display` puts in front (that is `bitnet_status_message`'s part).
pub(crate) fn detail_of(e: &Error) -> String {
    match e {
        Error::InvalidShape(s)
        | Error::InvalidData(s)
        | Error::KernelUnavailable(s)
        | Error::Unsupported(s)
        | Error::Io(s)
        | Error::Internal(s) => s.clone(),
        Error::LengthMismatch {
            what,
            expected,
            got,
        } => format!("{what} has {got} elements, {expected} expected"),
        Error::InvalidFormat(id) => {
            format!("format = {id} is not a BITNET_FORMAT_* value (0, 1, 2 or 3)")
        }
        // A scale is one number: no index to give.
        Error::NonFinite { what, index: 0 } if what.ends_with("scale") => {
            format!("{what} is NaN or infinity")
        }
        Error::NonFinite { what, index } => format!("{what}[{index}] is NaN or infinity"),
        Error::Alloc => "the library could not allocate memory for this call".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Failures and the last-error buffer

/// Why a call failed: its status and the detail `bitnet_last_error()` will return.
pub(crate) struct Failure {
    pub(crate) status: BitnetStatus,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn new(status: BitnetStatus, detail: impl Into<String>) -> Self {
        Failure {
            status,
            detail: detail.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::new(status_of(&e), detail_of(&e))
    }
}

pub(crate) type CResult<T> = Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(detail: &str) {
    let c = CString::new(detail.replace('\0', " ")).unwrap_or_default();
    // A thread being torn down has no buffer left; there is nobody to read it then anyway.
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = c);
}

fn panic_detail(payload: &(dyn Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("(no message)");
    format!("panic caught at the C boundary: {msg}")
}

/// Runs an export's body: a panic never unwinds into C, a failure records its detail for
/// `bitnet_last_error()`. `on_failure` turns the failure into the export's return value
/// (its status, or a fixed value such as 0 or NaN for the accessors).
pub(crate) fn boundary<T>(
    on_failure: impl FnOnce(BitnetStatus) -> T,
    body: impl FnOnce() -> CResult<T>,
) -> T {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => return v,
        Ok(Err(f)) => f,
        Err(payload) => Failure::new(BitnetStatus::Internal, panic_detail(&*payload)),
    };
    set_last_error(&failure.detail);
    on_failure(failure.status)
}

/// [`boundary`] for the exports that return a status.
pub(crate) fn status_call(body: impl FnOnce() -> CResult<()>) -> BitnetStatus {
    boundary(|s| s, || body().map(|()| BitnetStatus::Ok))
}

// ---------------------------------------------------------------------------------------
// Checks on what C passes in

/// Rejects NULL (`NULL_POINTER`) and pointers not aligned for `T` (`MISALIGNED_POINTER`);
/// `name` is the C parameter's name.
pub(crate) fn check_ptr<T>(p: *const T, name: &str) -> CResult<()> {
    if p.is_null() {
        return Err(Failure::new(
            BitnetStatus::NullPointer,
            format!("{name} is NULL"),
        ));
    }
    if !p.is_aligned() {
        let align = std::mem::align_of::<T>();
        return Err(Failure::new(
            BitnetStatus::MisalignedPointer,
            format!("{name} = {p:p} is not a multiple of {align} bytes"),
        ));
    }
    Ok(())
}

/// `a * b`, or `INVALID_SHAPE` naming the product (`what`, e.g. "n * cols") when it
/// overflows.
pub(crate) fn product_of(a: usize, b: usize, what: &str) -> CResult<usize> {
    a.checked_mul(b).ok_or_else(|| {
        Failure::new(
            BitnetStatus::InvalidShape,
            format!("{what} = {a} * {b} overflows size_t"),
        )
    })
}

/// `LENGTH_MISMATCH` unless the length parameter `name` equals `expected`, which `why`
/// explains (e.g. "n * cols").
pub(crate) fn check_len(name: &str, got: usize, expected: usize, why: impl Display) -> CResult<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Failure::new(
            BitnetStatus::LengthMismatch,
            format!("{name} is {got}, expected {expected} ({why})"),
        ))
    }
}

/// `INVALID_SHAPE` for `n == 0`: the `gemm` calls take one or more activation rows.
pub(crate) fn check_n(n: usize) -> CResult<()> {
    if n == 0 {
        return Err(Failure::new(
            BitnetStatus::InvalidShape,
            "n is 0, at least 1 activation row is needed",
        ));
    }
    Ok(())
}

/// `row_begin..row_end`, after checking that it is a non-empty range of the matrix's rows.
pub(crate) fn row_range(
    m: &TernaryMatrix,
    row_begin: usize,
    row_end: usize,
) -> CResult<Range<usize>> {
    if row_begin >= row_end || row_end > m.rows() {
        return Err(Failure::new(
            BitnetStatus::InvalidShape,
            format!(
                "rows [{row_begin}, {row_end}) is empty or not inside [0, {})",
                m.rows()
            ),
        ));
    }
    Ok(row_begin..row_end)
}

/// A weight scale must be finite (`NON_FINITE`) and positive (`INVALID_DATA`).
pub(crate) fn check_scale(scale: f32) -> CResult<()> {
    if !scale.is_finite() {
        return Err(Failure::new(
            BitnetStatus::NonFinite,
            format!("scale is {scale}"),
        ));
    }
    if scale <= 0.0 {
        return Err(Failure::new(
            BitnetStatus::InvalidData,
            format!("scale = {scale} is not positive"),
        ));
    }
    Ok(())
}

/// The format with this id, or `INVALID_FORMAT`.
pub(crate) fn format_of(id: c_int) -> CResult<Format> {
    Ok(Format::from_id(id as i64)?)
}

/// `e` as a failure, with a NaN or infinity located in the C input it came from: the Rust
/// API counts per activation row and names its own inputs; C callers want the parameter
/// (`x`, `w`) and the index in the whole buffer. The first non-finite value is the one the
/// Rust API stopped at (it scans in order), so this is only ever computed on failure.
pub(crate) fn located(e: Error, name: &str, input: &[f32]) -> Failure {
    if let Error::NonFinite { .. } = e {
        if let Some(i) = input.iter().position(|v| !v.is_finite()) {
            return Failure::new(
                BitnetStatus::NonFinite,
                format!("{name}[{i}] is NaN or infinity"),
            );
        }
    }
    e.into()
}

// ---------------------------------------------------------------------------------------
// Reading and writing C memory

/// A slice over `len` elements of C memory, after checking the pointer and that the byte
/// size fits `isize` (what `from_raw_parts` requires).
///
/// # Safety
/// If `p` is non-NULL and aligned, it must point to `len` initialized `T`s that stay valid
/// and unmodified for `'a`.
pub(crate) unsafe fn c_slice<'a, T>(p: *const T, len: usize, name: &str) -> CResult<&'a [T]> {
    check_ptr(p, name)?;
    if product_of(len, std::mem::size_of::<T>(), name)? > isize::MAX as usize {
        return Err(Failure::new(
            BitnetStatus::InvalidShape,
            format!("{name}: {len} elements are more than memory can hold"),
        ));
    }
    // SAFETY: non-NULL, aligned, size fits isize; the caller vouches for validity.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A zeroed buffer of `len` elements for a result, or `ALLOC` (not an abort) when memory is
/// short: a C caller can ask for any size.
pub(crate) fn result_buffer<T: Copy + Default>(len: usize) -> CResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::Alloc)?;
    v.resize(len, T::default());
    Ok(v)
}

/// The address range of `len` elements at `p` (to check that buffers do not overlap).
pub(crate) fn span<T>(p: *const T, len: usize) -> Range<usize> {
    let a = p as usize;
    a..a.saturating_add(len.saturating_mul(std::mem::size_of::<T>()))
}

/// Whether two address ranges share a byte (empty ranges share none).
pub(crate) fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end && !a.is_empty() && !b.is_empty()
}

/// Runs `product` with the caller's `y` (`y_len` elements) as its output: straight into C
/// memory when `y` overlaps none of `inputs` (the address ranges the product reads; the
/// usual case, no copy), else into a temporary copied to `y` after success (the calls that
/// document that `y` may overlap `x`). `y` is untouched on failure either way: every
/// product checks all of its arguments (shapes, non-finite input) before it writes an
/// output.
///
/// # Safety
/// `y` passed [`check_ptr`] and points to `y_len` writable elements that no other thread
/// touches during the call.
pub(crate) unsafe fn into_output<T: Copy + Default>(
    y: *mut T,
    y_len: usize,
    inputs: &[Range<usize>],
    product: impl FnOnce(&mut [T]) -> CResult<()>,
) -> CResult<()> {
    let out = span(y, y_len);
    if inputs.iter().any(|i| overlap(i, &out)) {
        let mut tmp = result_buffer(y_len)?;
        product(&mut tmp)?;
        // SAFETY: `y` holds y_len == tmp.len() elements (the contract).
        unsafe { write_out(&tmp, y) };
        return Ok(());
    }
    if product_of(y_len, std::mem::size_of::<T>(), "y_len")? > isize::MAX as usize {
        return Err(Failure::new(
            BitnetStatus::InvalidShape,
            "y_len is more than memory can hold",
        ));
    }
    // SAFETY: non-NULL and aligned (checked), `y_len` writable elements no other thread
    // touches (the contract), and disjoint from every input this call reads (checked
    // above), so this is the only reference to that memory while it lives.
    product(unsafe { std::slice::from_raw_parts_mut(y, y_len) })
}

/// Copies a finished result to C memory (`memmove`: `dst` may overlap an input).
///
/// # Safety
/// `dst` passed [`check_ptr`] and has room for `src.len()` elements.
pub(crate) unsafe fn write_out<T: Copy>(src: &[T], dst: *mut T) {
    // SAFETY: see the function's contract; `copy` tolerates overlap.
    unsafe { std::ptr::copy(src.as_ptr(), dst, src.len()) }
}

/// Frees a handle the library made with `Box::into_raw`, under the C boundary: NULL is a
/// no-op; a misaligned pointer cannot be a handle and is left alone (the detail says so).
///
/// # Safety
/// `p` is NULL, misaligned, or a live handle of type `T` from this library that no other
/// call is using; it is not used afterwards.
pub(crate) unsafe fn free_handle<T>(p: *mut T, name: &'static str) {
    boundary(
        |_| (),
        || {
            if p.is_null() {
                return Ok(());
            }
            check_ptr(p, name)?;
            // SAFETY: a live handle made by Box::into_raw, freed once (the caller's contract).
            drop(unsafe { Box::from_raw(p) });
            Ok(())
        },
    )
}

/// The matrix behind a handle.
///
/// # Safety
/// `m` is NULL, misaligned (both rejected), or a live handle from this library.
pub(crate) unsafe fn handle<'a>(m: *const BitnetMatrix) -> CResult<&'a TernaryMatrix> {
    check_ptr(m, "m")?;
    // SAFETY: non-NULL and aligned; the caller vouches that it is a live handle.
    Ok(unsafe { &(*m).inner })
}

// ---------------------------------------------------------------------------------------
// Library information

/// The library's version, e.g. "0.1.0" (compare with `BITNET_KERNELS_VERSION` to detect a
/// header/library mismatch). A static string: never free it.
#[no_mangle]
pub extern "C" fn bitnet_version() -> *const c_char {
    const V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("the version contains a NUL byte"),
        };
    V.as_ptr()
}

/// The kind of failure a status code stands for, e.g. "length mismatch" (any int, also
/// unknown ones: "unknown status code"). Print it with the detail as
/// `"%s: %s", bitnet_status_message(st), bitnet_last_error()`. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn bitnet_status_message(status: c_int) -> *const c_char {
    boundary(
        |_| c"unknown status code".as_ptr(),
        || {
            let known = BitnetStatus::ALL
                .into_iter()
                .find(|s| *s as c_int == status);
            Ok(known
                .map_or(c"unknown status code", |s| s.message())
                .as_ptr())
        },
    )
}

/// The specifics of the most recent failed call on the calling thread, naming the C
/// parameter at fault (e.g. `x_len is 299, expected 300 (n * cols)`,
/// `x[17] is NaN or infinity`, `trits[5] = 2 is not -1, 0 or 1`), or "" if none failed yet.
/// It does not repeat the kind of failure: that is `bitnet_status_message(status)`. Like `errno`,
/// successful calls leave it alone. The string belongs to the library and stays valid until
/// the next failed call on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn bitnet_last_error() -> *const c_char {
    boundary(
        |_| c"".as_ptr(),
        || {
            // A thread being torn down has no buffer left: nothing failed on it that can
            // still be asked about.
            let detail = LAST_ERROR.try_with(|l| l.borrow().as_ptr());
            Ok(detail.unwrap_or(c"".as_ptr()))
        },
    )
}

/// The kernel set every call uses ("avx512", "avx2", "neon-dotprod", "neon", "scalar"),
/// chosen once per process: the best this CPU runs, or the one named by the environment
/// variable `BITNET_KERNEL`. When `BITNET_KERNEL` names a set that cannot run here, a
/// sentence of the form `unavailable: <reason>`, e.g. `unavailable: no kernel named 'x' in
/// this build (built in: avx512, avx2, scalar)`, and every product fails with
/// `BITNET_STATUS_KERNEL_UNAVAILABLE`. Never NULL; a static string: never free it.
#[no_mangle]
pub extern "C" fn bitnet_kernel_name() -> *const c_char {
    static NAME: OnceLock<CString> = OnceLock::new();
    boundary(
        |_| c"unavailable: internal error".as_ptr(),
        || {
            let name = NAME.get_or_init(|| {
                let s = match crate::kernel_name() {
                    Ok(name) => name.to_string(),
                    Err(e) => format!("unavailable: {}", detail_of(&e)),
                };
                CString::new(s.replace('\0', " ")).unwrap_or_default()
            });
            Ok(name.as_ptr())
        },
    )
}
