//! The engine's calls (issue 13) in C: activations quantized once (`BitnetActivations`),
//! one input times several matrices in one dispatch, a list of output rows, the workspace
//! as caller memory, and the thread count.

use std::ffi::c_int;
use std::ops::Range;

use super::matrix::BitnetMatrix;
use super::status::{
    c_slice, check_len, check_n, check_ptr, free_handle, handle, into_output, located, overlap,
    product_of, result_buffer, span, status_call, write_out, BitnetStatus, CResult, Failure,
};
use crate::matmul::{Activations, Output, MAX_MATRICES};
use crate::{QuantizedActivations, TernaryMatrix};

/// Activation rows quantized once (int8 plus one absmax per row), for any number of
/// products (`bitnet_gemm_f32_quantized`, `bitnet_gemm_i8_quantized`): opaque, immutable
/// once made, usable by several threads at once. Free with `bitnet_activations_free`.
pub struct BitnetActivations {
    inner: QuantizedActivations,
}

/// Sets how many threads the products use, counting the calling thread: 1 runs every
/// product on the caller; n >= 2 uses a pool of the library's own (n - 1 workers plus the
/// caller); 0 restores the default, which is `RAYON_NUM_THREADS` when it was set at start
/// and the number of cores otherwise. Returns a status as `int` (`BITNET_STATUS_UNSUPPORTED`
/// if the threads cannot be started; the setting is then unchanged).
#[no_mangle]
pub extern "C" fn bitnet_set_num_threads(n: usize) -> c_int {
    status_call(|| Ok(crate::set_num_threads(n)?)) as c_int
}

/// Quantizes `n` rows of `cols` floats (`x_len == n * cols`) to int8 exactly as
/// `bitnet_gemm_f32` does, into a new handle in `*out` (untouched on failure).
///
/// Safety: `x` points to `x_len` floats; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn bitnet_quantize_once(
    x: *const f32,
    x_len: usize,
    n: usize,
    cols: usize,
    out: *mut *mut BitnetActivations,
) -> BitnetStatus {
    status_call(|| {
        check_ptr(x, "x")?;
        check_ptr(out, "out")?;
        check_n(n)?;
        check_len("x_len", x_len, product_of(n, cols, "n * cols")?, "n * cols")?;
        // SAFETY: `x` points to x_len floats (the caller's contract).
        let x = unsafe { c_slice(x, x_len, "x") }?;
        let inner = QuantizedActivations::quantize(x, n, cols).map_err(|e| located(e, "x", x))?;
        let h = Box::into_raw(Box::new(BitnetActivations { inner }));
        // SAFETY: `out` was checked and is writable (the caller's contract).
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees activations from `bitnet_quantize_once`. NULL is a no-op.
///
/// Safety: `a` is NULL or a live handle that no other call is using.
#[no_mangle]
pub unsafe extern "C" fn bitnet_activations_free(a: *mut BitnetActivations) {
    // SAFETY: forwarded contract (a handle this library boxed, or NULL).
    unsafe { free_handle(a, "a") }
}

/// The activations behind a handle.
///
/// # Safety
/// `a` is NULL, misaligned (both rejected) or a live handle.
unsafe fn activations<'a>(a: *const BitnetActivations) -> CResult<&'a QuantizedActivations> {
    check_ptr(a, "a")?;
    // SAFETY: non-NULL and aligned; the caller vouches that it is a live handle.
    Ok(unsafe { &(*a).inner })
}

/// A product of quantized activations into C memory: the checks both quantized calls share
/// (live handles, `y`, matching cols, `y_len == n * rows`), then `product` straight into `y`
/// (it writes only once its own checks have passed, so `y` is untouched on failure).
///
/// # Safety
/// `m` and `a` are live handles (or NULL/misaligned, rejected); `y` points to `y_len` elements.
unsafe fn quantized_product<T: Copy + Default>(
    m: *const BitnetMatrix,
    a: *const BitnetActivations,
    y: *mut T,
    y_len: usize,
    product: fn(&TernaryMatrix, &QuantizedActivations, &mut [T]) -> crate::Result<()>,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: live handles (NULL and misaligned are rejected).
        let (m, a) = unsafe { (handle(m)?, activations(a)?) };
        check_ptr(y, "y")?;
        check_len("a cols", a.cols(), m.cols(), "cols")?;
        check_len(
            "y_len",
            y_len,
            product_of(a.n(), m.rows(), "n * rows")?,
            "n * rows",
        )?;
        // SAFETY: `y` was checked and points to y_len elements (the caller's contract); it
        // reads no caller memory but the handles.
        unsafe { into_output(y, y_len, &[], |out| Ok(product(m, a, out)?)) }
    })
}

/// The BitLinear forward pass of quantized activations: y is n x rows (`y_len`), n being the
/// handle's row count; bit-identical to `bitnet_gemm_f32` on the f32 rows. `y` is untouched
/// on failure.
///
/// Safety: `m` and `a` are live handles; `y` points to `y_len` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_f32_quantized(
    m: *const BitnetMatrix,
    a: *const BitnetActivations,
    y: *mut f32,
    y_len: usize,
) -> BitnetStatus {
    // SAFETY: forwarded contract.
    unsafe { quantized_product(m, a, y, y_len, crate::ternary_gemm_quantized) }
}

/// The exact int32 accumulators of quantized activations: y is n x rows (`y_len`).
/// `y` is untouched on failure.
///
/// Safety: `m` and `a` are live handles; `y` points to `y_len` elements.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_i8_quantized(
    m: *const BitnetMatrix,
    a: *const BitnetActivations,
    y: *mut i32,
    y_len: usize,
) -> BitnetStatus {
    // SAFETY: forwarded contract.
    unsafe { quantized_product(m, a, y, y_len, crate::gemm_i8_quantized) }
}

/// The matrices of a fused call: `count` (1 to 16) live handles.
///
/// # Safety
/// `ms` is NULL (rejected) or points to `count` pointers, each NULL (rejected) or a live
/// handle.
/// Returned as a full array, the first `count` entries the handles (the rest repeat the
/// first), so that callers slice it without allocating.
unsafe fn matrices<'a>(
    ms: *const *const BitnetMatrix,
    count: usize,
) -> CResult<[&'a TernaryMatrix; MAX_MATRICES]> {
    if count == 0 || count > MAX_MATRICES {
        return Err(Failure::new(
            BitnetStatus::InvalidShape,
            format!("count is {count}, expected 1 to {MAX_MATRICES}"),
        ));
    }
    // SAFETY: `ms` points to `count` pointers (the caller's contract).
    let ptrs = unsafe { c_slice(ms, count, "ms") }?;
    // SAFETY: each is a live handle (NULL and misaligned are rejected).
    let first = unsafe { handle(ptrs[0]) }?;
    let mut out = [first; MAX_MATRICES];
    for (o, &p) in out.iter_mut().zip(ptrs) {
        // SAFETY: as above.
        *o = unsafe { handle(p) }?;
    }
    Ok(out)
}

/// `INVALID_DATA` when two of the non-empty ranges overlap (`what` names them).
fn check_disjoint(spans: &[Range<usize>], what: &str) -> CResult<()> {
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if overlap(a, b) {
                return Err(Failure::new(
                    BitnetStatus::InvalidData,
                    format!("{what} overlap"),
                ));
            }
        }
    }
    Ok(())
}

/// The fused product of `n` f32 rows (`x_len == n * cols`) by `count` matrices of the same
/// cols, in one dispatch of the thread pool, x quantized once: `ys[i]` (length
/// `y_lens[i] == n * rows_i`) gets exactly what `bitnet_gemm_f32(ms[i], x, ...)` gives.
/// With `ws` NULL the library allocates the temporaries and the outputs may overlap x; with
/// `ws` (any alignment, at least `ws_len >= bitnet_workspace_size(...)` bytes) it allocates
/// nothing on one thread, and then x, every output and ws must not overlap (checked:
/// `INVALID_DATA`). Outputs are untouched on failure.
///
/// Safety: `ms` holds `count` live handles; `ys` and `y_lens` hold `count` entries, `ys[i]`
/// pointing to `y_lens[i]` floats; `x` to `x_len` floats; `ws`, when not NULL, to `ws_len`
/// writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_multi_f32(
    ms: *const *const BitnetMatrix,
    count: usize,
    x: *const f32,
    x_len: usize,
    n: usize,
    ys: *const *mut f32,
    y_lens: *const usize,
    ws: *mut u8,
    ws_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller's contract; NULLs and bad counts are rejected.
        let mats = unsafe { matrices(ms, count) }?;
        let refs = &mats[..count];
        check_ptr(x, "x")?;
        check_n(n)?;
        let cols = refs[0].cols();
        if let Some(m) = refs.iter().find(|m| m.cols() != cols) {
            return Err(Failure::new(
                BitnetStatus::InvalidShape,
                format!("matrices of {cols} and {} cols in one call", m.cols()),
            ));
        }
        check_len("x_len", x_len, product_of(n, cols, "n * cols")?, "n * cols")?;
        // SAFETY: `ys` and `y_lens` hold `count` entries (the caller's contract).
        let (yp, yl) = unsafe { (c_slice(ys, count, "ys")?, c_slice(y_lens, count, "y_lens")?) };
        for (i, (m, (&p, &len))) in refs.iter().zip(yp.iter().zip(yl)).enumerate() {
            // The names are formatted on failure only: the workspace path allocates nothing.
            if p.is_null() || !p.is_aligned() {
                check_ptr(p, &format!("ys[{i}]"))?;
            }
            let want = product_of(n, m.rows(), "n * rows")?;
            if len != want {
                check_len(&format!("y_lens[{i}]"), len, want, "n * rows")?;
            }
        }
        // SAFETY: `x` points to x_len floats (the caller's contract).
        let xs = unsafe { c_slice(x, x_len, "x") }?;
        let input = Activations::F32 { x: xs, n };
        let mut spans: [Range<usize>; MAX_MATRICES + 2] = std::array::from_fn(|_| 0..0);
        spans[0] = span(x, x_len);
        if !ws.is_null() {
            spans[1] = span(ws, ws_len);
        }
        for (s, (&p, &l)) in spans[2..].iter_mut().zip(yp.iter().zip(yl)) {
            *s = span(p, l);
        }
        let disjoint = check_disjoint(&spans[..count + 2], "x, the outputs and ws");
        if ws.is_null() && disjoint.is_ok() {
            // Straight into the outputs (no copy).
            let mut outs: [&mut [f32]; MAX_MATRICES] = std::array::from_fn(|_| &mut [][..]);
            for (o, (&p, &len)) in outs.iter_mut().zip(yp.iter().zip(yl)) {
                // SAFETY: checked non-NULL and aligned, `len` floats (contract), disjoint
                // from x and every other output (checked above).
                *o = unsafe { std::slice::from_raw_parts_mut(p, len) };
            }
            return crate::ternary_gemm_multi(refs, xs, n, &mut outs[..count])
                .map_err(|e| located(e, "x", xs));
        }
        if ws.is_null() {
            // Some output overlaps x or another output: through temporaries, copied in order.
            let mut bufs = Vec::with_capacity(count);
            for &len in yl {
                bufs.push(result_buffer::<f32>(len)?);
            }
            let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            crate::ternary_gemm_multi(refs, xs, n, &mut outs).map_err(|e| located(e, "x", xs))?;
            for (b, &p) in bufs.iter().zip(yp) {
                // SAFETY: each output was checked and holds its y_lens[i] floats.
                unsafe { write_out(b, p) };
            }
            return Ok(());
        }
        disjoint?;
        if ws_len > isize::MAX as usize {
            return Err(Failure::new(
                BitnetStatus::InvalidShape,
                "ws_len is too large",
            ));
        }
        // SAFETY: `ws` is non-NULL and points to ws_len writable bytes (the contract); the
        // size fits isize (checked).
        let wsb = unsafe { std::slice::from_raw_parts_mut(ws, ws_len) };
        let mut outs: [Output<'_>; MAX_MATRICES] = std::array::from_fn(|_| Output::F32(&mut []));
        for (o, (&p, &len)) in outs.iter_mut().zip(yp.iter().zip(yl)) {
            // SAFETY: checked non-NULL and aligned, `len` floats (contract), disjoint from
            // every other buffer of this call (checked above).
            *o = Output::F32(unsafe { std::slice::from_raw_parts_mut(p, len) });
        }
        let k = crate::kernels::active()?;
        k.products_in(refs, input, &mut outs[..count], wsb)
            .map_err(|e| located(e, "x", xs))?;
        Ok(())
    })
}

/// `bitnet_gemm_multi_f32` for one activation row (`x_len == cols`, `y_lens[i] == rows_i`).
///
/// Safety: as `bitnet_gemm_multi_f32`.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemv_multi_f32(
    ms: *const *const BitnetMatrix,
    count: usize,
    x: *const f32,
    x_len: usize,
    ys: *const *mut f32,
    y_lens: *const usize,
    ws: *mut u8,
    ws_len: usize,
) -> BitnetStatus {
    // SAFETY: the same contract.
    unsafe { bitnet_gemm_multi_f32(ms, count, x, x_len, 1, ys, y_lens, ws, ws_len) }
}

/// The bytes of caller memory (`ws`) a fused product of `n` rows by these `count` matrices
/// (same cols) needs; also enough for each alone. Written to `*bytes`.
///
/// Safety: `ms` holds `count` live handles; `bytes` is writable.
#[no_mangle]
pub unsafe extern "C" fn bitnet_workspace_size(
    ms: *const *const BitnetMatrix,
    count: usize,
    n: usize,
    bytes: *mut usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller's contract; NULLs and bad counts are rejected.
        let mats = unsafe { matrices(ms, count) }?;
        let refs = &mats[..count];
        check_ptr(bytes, "bytes")?;
        check_n(n)?;
        let b = crate::Workspace::bytes_for(refs, n)?;
        // SAFETY: checked and writable (contract).
        unsafe { bytes.write(b) };
        Ok(())
    })
}

/// `bitnet_gemv_f32` for the output rows listed in `rows` only (`rows_len` of them, any
/// order, repeats allowed), on the calling thread: `y[i]` (`y_len == rows_len`) is element
/// `rows[i]` of the whole product, bit for bit. A row `>= rows` of the matrix is
/// `INVALID_SHAPE`. `y` is untouched on failure and may overlap x.
///
/// Safety: `m` is a live matrix; `x`, `rows` and `y` point to `x_len`, `rows_len` and
/// `y_len` elements.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemv_f32_row_list(
    m: *const BitnetMatrix,
    x: *const f32,
    x_len: usize,
    rows: *const usize,
    rows_len: usize,
    y: *mut f32,
    y_len: usize,
) -> BitnetStatus {
    status_call(|| {
        // SAFETY: the caller passes a live handle (NULL and misaligned are rejected).
        let m = unsafe { handle(m) }?;
        check_ptr(x, "x")?;
        check_ptr(rows, "rows")?;
        check_ptr(y, "y")?;
        check_len("x_len", x_len, m.cols(), "cols")?;
        check_len("y_len", y_len, rows_len, "rows_len")?;
        // SAFETY: `x` and `rows` point to x_len and rows_len elements (the contract).
        let (x, list) = unsafe { (c_slice(x, x_len, "x")?, c_slice(rows, rows_len, "rows")?) };
        let inputs = [span(x.as_ptr(), x_len), span(list.as_ptr(), rows_len)];
        // SAFETY: `y` was checked and points to y_len floats (the caller's contract).
        unsafe {
            into_output(y, y_len, &inputs, |out| {
                crate::ternary_gemv_row_list(m, x, list, out).map_err(|e| located(e, "x", x))
            })
        }
    })
}
