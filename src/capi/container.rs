//! Container handles (`docs/FORMATS.md` §9): saving matrices to one file, opening it (memory
//! mapped in builds with the `mmap` feature), listing and taking out its matrices. Like the
//! kv calls, these return the status as an `int`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;

use crate::container::{self, Container};
use crate::format::TernaryMatrix;

use super::matrix::{put_matrix, BitnetMatrix};
use super::status::{
    boundary, c_slice, check_ptr, free_handle, handle, status_call, BitnetStatus, CResult, Failure,
};

/// A loaded container file: opaque and immutable. Its matrices borrow its bytes (the
/// mapping); a matrix taken out with `bitnet_container_get` keeps those bytes alive on its
/// own, so the container may be freed before its matrices.
pub struct BitnetContainer {
    inner: Container,
    /// The names as C strings, in file order (they contain no NUL: the format forbids it).
    names: Vec<CString>,
}

/// A C string argument as `&str`, or `INVALID_DATA` when it is not UTF-8.
///
/// # Safety
/// `p` passed [`check_ptr`] and points to a NUL-terminated string.
unsafe fn c_str<'a>(p: *const c_char, name: &str) -> CResult<&'a str> {
    // SAFETY: see the function's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::new(BitnetStatus::InvalidData, format!("{name} is not UTF-8")))
}

/// A path from C: its bytes as they are on Unix, UTF-8 elsewhere.
///
/// # Safety
/// `p` passed [`check_ptr`] and points to a NUL-terminated string.
unsafe fn c_path(p: *const c_char) -> CResult<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: see the function's contract.
        let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        // SAFETY: see the function's contract.
        Ok(PathBuf::from(unsafe { c_str(p, "path") }?))
    }
}

/// Hands a new container to C through `out`.
///
/// # Safety
/// `out` passed [`check_ptr`] and is writable.
unsafe fn put_container(out: *mut *mut BitnetContainer, c: Container) -> CResult<()> {
    let names = c
        .names()
        .map(|n| CString::new(n).map_err(|_| Failure::new(BitnetStatus::Internal, "NUL in name")))
        .collect::<CResult<Vec<_>>>()?;
    let h = Box::into_raw(Box::new(BitnetContainer { inner: c, names }));
    // SAFETY: see the function's contract.
    unsafe { out.write(h) };
    Ok(())
}

/// The container behind a handle.
///
/// # Safety
/// `c` is NULL, misaligned (both rejected), or a live container from this library.
unsafe fn container<'a>(c: *const BitnetContainer) -> CResult<&'a BitnetContainer> {
    check_ptr(c, "c")?;
    // SAFETY: non-NULL and aligned; the caller vouches that it is a live handle.
    Ok(unsafe { &*c })
}

/// Saves `count` matrices under the names `names[i]` (UTF-8, unique) as one container file
/// at `path` (created or replaced). `count` may be 0 (then `matrices` and `names` may be
/// NULL). A failure to write is `BITNET_STATUS_IO`.
///
/// Safety: `path` is a NUL-terminated string; `matrices` and `names` point to `count` live
/// matrices and NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn bitnet_container_save(
    path: *const c_char,
    matrices: *const *const BitnetMatrix,
    names: *const *const c_char,
    count: usize,
) -> c_int {
    status_call(|| {
        check_ptr(path, "path")?;
        let (ms, ns): (&[*const BitnetMatrix], &[*const c_char]) = if count == 0 {
            (&[], &[])
        } else {
            check_ptr(matrices, "matrices")?;
            check_ptr(names, "names")?;
            // SAFETY: both point to `count` pointers (the caller's contract).
            unsafe {
                (
                    c_slice(matrices, count, "matrices")?,
                    c_slice(names, count, "names")?,
                )
            }
        };
        let mut items: Vec<(&str, &TernaryMatrix)> = Vec::with_capacity(count);
        for (i, (&m, &n)) in ms.iter().zip(ns).enumerate() {
            check_ptr(n, &format!("names[{i}]"))?;
            check_ptr(m, &format!("matrices[{i}]"))?;
            // SAFETY: checked non-NULL; live string and handle by the caller's contract.
            items.push(unsafe { (c_str(n, &format!("names[{i}]"))?, handle(m)?) });
        }
        // SAFETY: checked non-NULL; a NUL-terminated string by the caller's contract.
        let path = unsafe { c_path(path) }?;
        container::save_to_path(path, items)?;
        Ok(())
    }) as c_int
}

/// Opens the container file at `path` and validates it whole (checksum, header, every
/// matrix). In builds with the `mmap` feature the file is memory-mapped and the matrices
/// point into the mapping (no copy); the file must not be changed while it is open.
/// On success `*out` receives a container to free with `bitnet_container_free`.
///
/// Safety: `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn bitnet_container_open(
    path: *const c_char,
    out: *mut *mut BitnetContainer,
) -> c_int {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(path, "path")?;
        // SAFETY: checked non-NULL; a NUL-terminated string by the caller's contract.
        let path = unsafe { c_path(path) }?;
        // SAFETY (map): that the file is not changed while it is open is this function's
        // documented precondition for C callers, as for any memory map.
        #[cfg(feature = "mmap")]
        let c = unsafe { Container::map(path) }?;
        #[cfg(not(feature = "mmap"))]
        let c = Container::open(path)?;
        // SAFETY: `out` was checked above.
        unsafe { put_container(out, c) }
    }) as c_int
}

/// Loads a container from `size` bytes at `data` (a file read into memory, any alignment).
/// The bytes are copied once into an aligned buffer, so `data` may be freed afterwards.
///
/// Safety: `data` points to `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_container_from_memory(
    data: *const c_void,
    size: usize,
    out: *mut *mut BitnetContainer,
) -> c_int {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(data, "data")?;
        // SAFETY: `data` points to `size` bytes (the caller's contract).
        let bytes = unsafe { c_slice(data.cast::<u8>(), size, "data") }?;
        let c = Container::from_bytes(bytes)?;
        // SAFETY: `out` was checked above.
        unsafe { put_container(out, c) }
    }) as c_int
}

/// How many matrices the container holds; 0 if `c` is NULL.
///
/// Safety: `c` is NULL or a live container.
#[no_mangle]
pub unsafe extern "C" fn bitnet_container_len(c: *const BitnetContainer) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| 0, || Ok(unsafe { container(c) }?.inner.len()))
}

/// The name of matrix `i` (file order), valid until the container is freed; NULL if `c` is
/// NULL or `i >= bitnet_container_len(c)`.
///
/// Safety: `c` is NULL or a live container.
#[no_mangle]
pub unsafe extern "C" fn bitnet_container_name(
    c: *const BitnetContainer,
    i: usize,
) -> *const c_char {
    boundary(
        |_| std::ptr::null(),
        || {
            // SAFETY: the caller passes a live handle or NULL.
            let c = unsafe { container(c) }?;
            c.names.get(i).map(|n| n.as_ptr()).ok_or_else(|| {
                Failure::new(
                    BitnetStatus::InvalidShape,
                    format!("i = {i}: the container holds {} matrices", c.names.len()),
                )
            })
        },
    )
}

/// Takes out the matrix named `name`: on success `*out` receives a new matrix handle (free
/// it with `bitnet_matrix_free`) that borrows the container's bytes without copying them and
/// keeps them alive, also after `bitnet_container_free`. No such name: `BITNET_STATUS_NOT_FOUND`.
///
/// Safety: `c` is a live container, `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn bitnet_container_get(
    c: *const BitnetContainer,
    name: *const c_char,
    out: *mut *mut BitnetMatrix,
) -> c_int {
    status_call(|| {
        check_ptr(out, "out")?;
        check_ptr(name, "name")?;
        // SAFETY: the caller passes a live handle (NULL is rejected).
        let c = unsafe { container(c) }?;
        // SAFETY: checked non-NULL; a NUL-terminated string by the caller's contract.
        let name = unsafe { c_str(name, "name") }?;
        let m = c.inner.get(name).ok_or_else(|| {
            Failure::new(
                BitnetStatus::NotFound,
                format!("no matrix named '{name}' in the container"),
            )
        })?;
        // SAFETY: `out` was checked above. The clone shares the bytes (no copy).
        unsafe { put_matrix(out, m.clone()) };
        Ok(())
    }) as c_int
}

/// Frees a container. NULL is a no-op. Matrices taken out of it stay valid.
///
/// Safety: `c` is NULL or a live container that no other call is using.
#[no_mangle]
pub unsafe extern "C" fn bitnet_container_free(c: *mut BitnetContainer) {
    // SAFETY: forwarded contract (a handle this library boxed, or NULL).
    unsafe { free_handle(c, "c") }
}
