//! The 3-bit KV cache (`docs/FORMATS.md` §8): building, appending, decode attention and its
//! two halves, reading back, freeing. These calls return a `BITNET_STATUS_*` code as `int`,
//! the signatures fixed by the issue that introduced them.

use std::ffi::c_int;

use crate::kv::KvCache;

use super::status::{
    boundary, c_slice, check_ptr, free_handle, into_output, product_of, result_buffer, span,
    status_call, write_out, BitnetStatus, CResult,
};

/// One attention layer's KV cache: opaque. Reading calls (`attend`, `scores`,
/// `weighted_v`, `dequantize`, `len`, `bytes`) take it as `const` and may run on any number
/// of threads at once while no `bitnet_kv_append` runs; free it once, with
/// `bitnet_kv_free`.
pub struct BitnetKvCache {
    inner: KvCache,
}

/// The cache behind a handle, `name` being the C parameter.
///
/// # Safety
/// `c` is NULL, misaligned (both rejected) or a live handle from this library.
unsafe fn cache<'a>(c: *const BitnetKvCache) -> CResult<&'a KvCache> {
    check_ptr(c, "c")?;
    // SAFETY: non-NULL and aligned; the caller vouches that it is a live handle.
    Ok(unsafe { &(*c).inner })
}

/// A status as the `int` these calls return.
fn code(s: BitnetStatus) -> c_int {
    s as c_int
}

/// A new, empty cache for `n_kv_heads` heads of `head_dim` values (1 to 65536), holding up
/// to `capacity` tokens, the first `n_sink` of them at 8 bits (1 is the usual choice; 0 for
/// none). On success `*out` receives it (free it with `bitnet_kv_free`); on failure `*out`
/// is left untouched.
///
/// Safety: `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_new(
    n_kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    n_sink: usize,
    out: *mut *mut BitnetKvCache,
) -> c_int {
    code(status_call(|| {
        check_ptr(out, "out")?;
        let inner = KvCache::new(n_kv_heads, head_dim, capacity, n_sink)?;
        let h = Box::into_raw(Box::new(BitnetKvCache { inner }));
        // SAFETY: `out` was checked above and is writable (the caller's contract).
        unsafe { out.write(h) };
        Ok(())
    }))
}

/// Appends `n_tokens` tokens of post-RoPE K and V, each `n_tokens × n_kv_heads × head_dim`
/// floats (token, then head, then value). On any error nothing is appended: a NaN or
/// infinity (`NON_FINITE`), a value whose rotation leaves the fp16 range (`INVALID_DATA`),
/// more tokens than the capacity leaves (`INVALID_SHAPE`).
///
/// Safety: `c` is a live cache no other call is using; `k` and `v` point to that many floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_append(
    c: *mut BitnetKvCache,
    k: *const f32,
    v: *const f32,
    n_tokens: usize,
) -> c_int {
    code(status_call(|| {
        check_ptr(c, "c")?;
        check_ptr(k, "k")?;
        check_ptr(v, "v")?;
        // SAFETY: non-NULL and aligned; a live handle that no other call uses (contract).
        let cache = unsafe { &mut (*c).inner };
        let len = product_of(n_tokens, cache.n_kv_heads() * cache.head_dim(), "n_tokens")?;
        // SAFETY: `k` and `v` point to `len` floats (the caller's contract).
        let (k, v) = unsafe { (c_slice(k, len, "k")?, c_slice(v, len, "v")?) };
        cache.append(k, v, n_tokens)?;
        Ok(())
    }))
}

/// Decode attention for one query token: `q` and `out` are `n_heads × head_dim` floats
/// (`n_heads` a multiple of `n_kv_heads`; query head h reads KV head
/// `h / (n_heads / n_kv_heads)`); scores are `q·k / sqrt(head_dim)`, the softmax runs over
/// every appended position. `out` is written only on success; an empty cache is
/// `INVALID_SHAPE`.
///
/// Safety: `c` is a live cache; `q` and `out` point to `n_heads × head_dim` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_attend(
    c: *const BitnetKvCache,
    q: *const f32,
    n_heads: usize,
    out: *mut f32,
) -> c_int {
    code(status_call(|| {
        // SAFETY: the caller passes a live handle.
        let cache = unsafe { cache(c) }?;
        check_ptr(q, "q")?;
        check_ptr(out, "out")?;
        let len = product_of(n_heads, cache.head_dim(), "n_heads")?;
        // SAFETY: `q` points to n_heads × head_dim floats (the caller's contract).
        let q = unsafe { c_slice(q, len, "q") }?;
        // Straight into `out` unless it overlaps q or the handle (attend writes its output
        // only after every check).
        let reads = [span(q.as_ptr(), len), span(c, 1)];
        // SAFETY: `out` was checked and holds `len` floats no other thread touches (the
        // caller's contract).
        unsafe { into_output(out, len, &reads, |o| Ok(cache.attend(q, n_heads, o)?)) }
    }))
}

/// The first half of attention, for engines with their own softmax or split-K scheme:
/// `scores[h × (pos_end − pos_begin) + (t − pos_begin)] = q_h·k_t / sqrt(head_dim)` for the
/// positions `pos_begin <= t < pos_end <= bitnet_kv_len(c)`. `scores` is written only on
/// success.
///
/// Safety: `c` is a live cache; `q` points to `n_heads × head_dim` floats, `scores` to
/// `n_heads × (pos_end − pos_begin)`.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_scores(
    c: *const BitnetKvCache,
    q: *const f32,
    n_heads: usize,
    pos_begin: usize,
    pos_end: usize,
    scores: *mut f32,
) -> c_int {
    code(status_call(|| {
        // SAFETY: the caller passes a live handle.
        let cache = unsafe { cache(c) }?;
        check_ptr(q, "q")?;
        check_ptr(scores, "scores")?;
        let range = positions(cache, pos_begin, pos_end)?;
        let len = product_of(n_heads, cache.head_dim(), "n_heads")?;
        let n_out = product_of(n_heads, range.len(), "n_heads")?;
        // SAFETY: `q` points to n_heads × head_dim floats (the caller's contract).
        let q = unsafe { c_slice(q, len, "q") }?;
        // As in bitnet_kv_attend: scores checks everything before it writes.
        let reads = [span(q.as_ptr(), len), span(c, 1)];
        // SAFETY: `scores` was checked and holds `n_out` floats (the caller's contract).
        unsafe {
            into_output(scores, n_out, &reads, |o| {
                Ok(cache.scores(q, n_heads, range, o)?)
            })
        }
    }))
}

/// The second half of attention: `out_h = Σ_t weights[h × (pos_end − pos_begin) +
/// (t − pos_begin)] · v_t` over `pos_begin <= t < pos_end`, with V read from its codes.
/// Sums over consecutive ranges add up to the whole. `out` is written only on success.
///
/// Safety: `c` is a live cache; `weights` points to `n_heads × (pos_end − pos_begin)`
/// floats, `out` to `n_heads × head_dim`.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_weighted_v(
    c: *const BitnetKvCache,
    weights: *const f32,
    n_heads: usize,
    pos_begin: usize,
    pos_end: usize,
    out: *mut f32,
) -> c_int {
    code(status_call(|| {
        // SAFETY: the caller passes a live handle.
        let cache = unsafe { cache(c) }?;
        check_ptr(weights, "weights")?;
        check_ptr(out, "out")?;
        let range = positions(cache, pos_begin, pos_end)?;
        let n_w = product_of(n_heads, range.len(), "n_heads")?;
        let len = product_of(n_heads, cache.head_dim(), "n_heads")?;
        // SAFETY: `weights` points to n_w floats (the caller's contract).
        let w = unsafe { c_slice(weights, n_w, "weights") }?;
        // As in bitnet_kv_attend: weighted_v checks everything before it writes.
        let reads = [span(w.as_ptr(), n_w), span(c, 1)];
        // SAFETY: `out` was checked and holds `len` floats (the caller's contract).
        unsafe {
            into_output(out, len, &reads, |o| {
                Ok(cache.weighted_v(w, n_heads, range, o)?)
            })
        }
    }))
}

/// `[pos_begin, pos_end)` if it lies within the appended positions, else `INVALID_SHAPE`.
fn positions(cache: &KvCache, begin: usize, end: usize) -> CResult<std::ops::Range<usize>> {
    if begin > end || end > cache.len() {
        return Err(super::status::Failure::new(
            BitnetStatus::InvalidShape,
            format!(
                "positions [{begin}, {end}) are not within the {} appended",
                cache.len()
            ),
        ));
    }
    Ok(begin..end)
}

/// Position `pos` read back, dequantized, in the caller's space: `k` and `v` each receive
/// `n_kv_heads × head_dim` floats, only on success. A position not yet appended is
/// `INVALID_SHAPE`.
///
/// Safety: `c` is a live cache; `k` and `v` point to `n_kv_heads × head_dim` floats.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_dequantize(
    c: *const BitnetKvCache,
    pos: usize,
    k: *mut f32,
    v: *mut f32,
) -> c_int {
    code(status_call(|| {
        // SAFETY: the caller passes a live handle.
        let cache = unsafe { cache(c) }?;
        check_ptr(k, "k")?;
        check_ptr(v, "v")?;
        let len = cache.n_kv_heads() * cache.head_dim(); // fits: the cache holds such rows
        let mut kk = result_buffer::<f32>(len)?;
        let mut vv = result_buffer::<f32>(len)?;
        cache.dequantize(pos, &mut kk, &mut vv)?;
        // SAFETY: `k` and `v` were checked and have room for `len` floats each.
        unsafe {
            write_out(&kk, k);
            write_out(&vv, v);
        }
        Ok(())
    }))
}

/// Tokens appended so far; 0 if `c` is NULL.
///
/// Safety: `c` is NULL or a live cache.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_len(c: *const BitnetKvCache) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| 0, || Ok(unsafe { cache(c) }?.len()))
}

/// Bytes the appended tokens occupy (codes and scales of K and V, and K's channel factors); 0
/// if `c` is NULL.
///
/// Safety: `c` is NULL or a live cache.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_bytes(c: *const BitnetKvCache) -> usize {
    // SAFETY: the caller passes a live handle or NULL.
    boundary(|_| 0, || Ok(unsafe { cache(c) }?.bytes()))
}

/// Frees a cache. NULL is a no-op. The handle must not be used afterwards, nor freed twice.
///
/// Safety: `c` is NULL or a live cache that no other call is using.
#[no_mangle]
pub unsafe extern "C" fn bitnet_kv_free(c: *mut BitnetKvCache) {
    // SAFETY: forwarded contract (a handle this library boxed, or NULL).
    unsafe { free_handle(c, "c") }
}
