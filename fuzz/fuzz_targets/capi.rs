//! The C ABI driven like a careless C caller would: a program of calls decoded from the
//! fuzzer's bytes, with arbitrary dimensions, lengths, format ids (any `int`), NULL,
//! misaligned and valid pointers, non-finite floats and invalid trits. Checked after every
//! call:
//! - the status is a known code and never `BITNET_STATUS_INTERNAL` (a panic caught at the
//!   boundary is a bug);
//! - on failure nothing was written: output buffers still hold their sentinel and `*out`
//!   handles are still NULL;
//! - on success the inputs were valid (no NULL, a real format, finite values, matching
//!   lengths) and the results equal the Rust API's on the same trits, bit for bit;
//! - containers (`bitnet_container_from_memory` of a file of the live handles, a few bytes
//!   mutated) load only when valid and give back the same trits and scales by name;
//! - handles are freed at the end, so LeakSanitizer (on in `cargo fuzz`'s ASan build) sees
//!   any leak.
//!
//! Buffers are always really as long as the length passed with them, as the contract asks;
//! sizes whose byte count cannot exist (overflow, > isize::MAX) are passed with a small
//! buffer and must be rejected before any slice is formed.
#![no_main]

mod common;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use bitnet_kernels::capi::*;
use bitnet_kernels::{ternary_gemm, Format, TernaryMatrix};
use common::{naive_gemm, Bytes};
use libfuzzer_sys::fuzz_target;

const MAX_HANDLES: usize = 3;

/// Where a pointer argument points: NULL, the real buffer, or one byte past its start
/// (misaligned for any type wider than a byte; the backing store has room for that).
#[derive(Clone, Copy, PartialEq)]
enum Ptr {
    Null,
    Valid,
    Misaligned,
}

impl Ptr {
    /// Whether this pointer, for a `T`, is one the library must accept (a "misaligned"
    /// byte pointer is still aligned).
    fn ok<T>(self) -> bool {
        self == Ptr::Valid || (self == Ptr::Misaligned && std::mem::align_of::<T>() == 1)
    }
    fn pick(b: &mut Bytes) -> Ptr {
        match b.u8() % 16 {
            0 => Ptr::Null,
            1 => Ptr::Misaligned,
            _ => Ptr::Valid,
        }
    }
}

/// A caller's buffer of `len` `T`s, filled with a sentinel, with a spare element so that a
/// misaligned view of `len` elements still lies inside it.
struct Buf<T: Copy + PartialEq + std::fmt::Debug> {
    store: Vec<T>,
    len: usize,
    sentinel: T,
}

impl<T: Copy + PartialEq + std::fmt::Debug> Buf<T> {
    fn new(len: usize, sentinel: T) -> Self {
        Buf {
            store: vec![sentinel; len + 1],
            len,
            sentinel,
        }
    }
    fn from(v: Vec<T>, sentinel: T) -> Self {
        let len = v.len();
        let mut store = v;
        store.push(sentinel);
        Buf {
            store,
            len,
            sentinel,
        }
    }
    fn ptr(&mut self, p: Ptr) -> *mut T {
        match p {
            Ptr::Null => null_mut(),
            Ptr::Valid => self.store.as_mut_ptr(),
            Ptr::Misaligned if std::mem::align_of::<T>() > 1 => {
                (self.store.as_mut_ptr() as *mut u8).wrapping_add(1) as *mut T
            }
            Ptr::Misaligned => self.store.as_mut_ptr(),
        }
    }
    fn untouched(&self) -> bool {
        self.store.iter().all(|v| *v == self.sentinel)
    }
    fn data(&self) -> &[T] {
        &self.store[..self.len]
    }
}

/// The status as an int, checked to be a known code and not INTERNAL.
fn check(st: BitnetStatus, what: &str) -> bool {
    check_int(st as i32, what)
}

/// [`check`] for the calls that return the status as `int` (a `BITNET_STATUS_*` value).
fn check_int(code: i32, what: &str) -> bool {
    assert!((0..=13).contains(&code), "{what}: unknown status {code}");
    assert_ne!(
        code,
        BitnetStatus::Internal as i32,
        "{what}: internal error: {}",
        last_error()
    );
    // Every status has a sentence.
    // SAFETY: bitnet_status_message returns a static NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(bitnet_status_message(code)) };
    assert!(!msg.to_bytes().is_empty());
    code == BitnetStatus::Ok as i32
}

fn last_error() -> String {
    // SAFETY: this thread's NUL-terminated buffer.
    unsafe { CStr::from_ptr(bitnet_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A format id: mostly near the valid ones, sometimes any int.
fn format_id(b: &mut Bytes) -> i32 {
    match b.u8() % 8 {
        0 => b.u32() as i32,
        v => v as i32 - 3, // -2..=4
    }
}

/// A dimension: mostly small, sometimes 0 or huge.
fn dim(b: &mut Bytes, small: usize) -> usize {
    match b.u8() % 16 {
        0 => 0,
        1 => usize::MAX,
        2 => 1 << 24, // one past MAX_COLS
        3 => (1 << 31) + b.u8() as usize,
        _ => 1 + b.u16() as usize % small,
    }
}

/// A length near `want`: equal most of the time, off by a little or wildly otherwise.
fn length(b: &mut Bytes, want: usize) -> usize {
    match b.u8() % 8 {
        0 => want.wrapping_add(1),
        1 => want.wrapping_sub(1),
        2 => b.u16() as usize,
        _ => want,
    }
}

/// Lengths we can really allocate; anything larger is passed only with NULL or as a
/// size that must overflow.
const CAP: usize = 1 << 20;

/// Floats: finite mostly, with a NaN, an infinity or a subnormal at fuzzer-chosen places.
fn floats(b: &mut Bytes, len: usize) -> Vec<f32> {
    let src = b.take(64).to_vec();
    let mut v: Vec<f32> = (0..len)
        .map(|i| {
            src.get(i % src.len().max(1))
                .map_or(0.0, |&x| x as f32 / 16.0 - 8.0)
        })
        .collect();
    for _ in 0..b.u8() % 3 {
        let (pos, kind) = (b.u32() as usize, b.u8() % 4);
        if len > 0 {
            v[pos % len] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40][kind as usize];
        }
    }
    v
}

/// A live handle's shape and trits, read back through the C ABI.
struct Info {
    rows: usize,
    cols: usize,
    /// One per row: the per-row scales, or the one scale repeated.
    scales: Vec<f32>,
    per_row: bool,
    trits: Vec<i8>,
}

unsafe fn info(m: *const BitnetMatrix) -> Info {
    // SAFETY: m is a live handle.
    unsafe {
        let (rows, cols, scale) = (
            bitnet_matrix_rows(m),
            bitnet_matrix_cols(m),
            bitnet_matrix_scale(m),
        );
        let per_row = match bitnet_matrix_has_row_scales(m) {
            0 => false,
            1 => true,
            v => panic!("has_row_scales of a live handle: {v}"),
        };
        let mut scales = vec![f32::NAN; rows];
        let st = bitnet_matrix_row_scales(m, scales.as_mut_ptr(), rows);
        assert_eq!(st, BitnetStatus::Ok);
        assert!(scales.iter().all(|s| s.is_finite() && *s > 0.0));
        // scale() is the one scale, or NaN for per-row scales.
        assert!(rows >= 1 && cols >= 1 && (scale.is_nan() == per_row));
        assert!(per_row || scales.iter().all(|s| s.to_bits() == scale.to_bits()));
        assert!((0..=3).contains(&bitnet_matrix_format(m)));
        assert!(bitnet_matrix_row_tile(m) >= 1 && bitnet_matrix_packed_size(m) >= 1);
        let mut trits = vec![9i8; rows * cols];
        let st = bitnet_matrix_to_ternary(m, trits.as_mut_ptr(), trits.len());
        assert_eq!(st, BitnetStatus::Ok);
        assert!(trits.iter().all(|t| (-1..=1).contains(t)));
        Info {
            rows,
            cols,
            scales,
            per_row,
            trits,
        }
    }
}

/// The Rust API's f32 product on the same trits and scale (all formats give the same bits).
fn rust_gemm_f32(i: &Info, x: &[f32], n: usize) -> Vec<u32> {
    let m =
        TernaryMatrix::from_ternary(&i.trits, i.rows, i.cols, i.scales[0], Format::I2S).unwrap();
    let m = if i.per_row {
        m.with_row_scales(i.scales.clone()).unwrap()
    } else {
        m
    };
    let mut y = vec![0f32; n * i.rows];
    ternary_gemm(&m, x, n, &mut y).unwrap();
    y.iter().map(|v| v.to_bits()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut handles: Vec<*mut BitnetMatrix> = Vec::new();
    for _ in 0..12 {
        if b.is_empty() {
            break;
        }
        // SAFETY: every pointer passed is NULL, misaligned (rejected before use), a live
        // handle, or a buffer really as long as the length passed with it.
        unsafe { step(&mut b, &mut handles) };
    }
    for h in handles {
        // SAFETY: each live handle is freed once.
        unsafe { bitnet_matrix_free(h) };
    }
    // SAFETY: freeing NULL is a no-op.
    unsafe { bitnet_matrix_free(null_mut()) };
});

/// A handle to operate on: NULL sometimes, else one of the live ones.
fn handle(b: &mut Bytes, handles: &[*mut BitnetMatrix]) -> *mut BitnetMatrix {
    let i = b.u8() as usize;
    if handles.is_empty() || i % 8 == 0 {
        null_mut()
    } else {
        handles[i % handles.len()]
    }
}

unsafe fn step(b: &mut Bytes, handles: &mut Vec<*mut BitnetMatrix>) {
    let op = b.u8() % 15;
    match op {
        // Constructors.
        0..=3 => {
            if handles.len() >= MAX_HANDLES {
                return;
            }
            let (rows, cols) = (dim(b, 70), dim(b, 700));
            let fmt = format_id(b);
            let pout = Ptr::pick(b);
            let pin = Ptr::pick(b);
            let mut out = Buf::new(1, null_mut::<BitnetMatrix>());
            let small = rows.checked_mul(cols).filter(|&n| n <= CAP);
            let (st, ok_inputs) = match op {
                0 => {
                    // from_ternary: trits from the input, sometimes one that is not a trit.
                    let n = small.unwrap_or(0);
                    let src = b.take(32).to_vec();
                    let mut t: Vec<i8> = (0..n)
                        .map(|i| {
                            (src.get(i % src.len().max(1)).copied().unwrap_or(1) % 3) as i8 - 1
                        })
                        .collect();
                    let bad = b.u8() % 8 == 0 && n > 0;
                    if bad {
                        let p = b.u16() as usize % n;
                        t[p] = [2i8, -2, 127, -128][b.u8() as usize % 4];
                    }
                    let scale = if b.u8() % 8 == 0 { b.f32() } else { 0.75 };
                    let mut t = Buf::from(t, 0);
                    let pin = if small.is_none() { Ptr::Null } else { pin };
                    let st = bitnet_matrix_from_ternary(
                        t.ptr(pin),
                        rows,
                        cols,
                        scale,
                        fmt,
                        out.ptr(pout),
                    );
                    (
                        st,
                        !bad && scale.is_finite() && scale > 0.0 && pin.ok::<i8>(),
                    )
                }
                1 => {
                    let n = small.unwrap_or(0);
                    let w = floats(b, n);
                    let finite = w.iter().all(|v| v.is_finite());
                    let mut w = Buf::from(w, 0.0);
                    let pin = if small.is_none() { Ptr::Null } else { pin };
                    let st = bitnet_matrix_from_f32(w.ptr(pin), rows, cols, fmt, out.ptr(pout));
                    (st, finite && pin.ok::<f32>())
                }
                2 => {
                    // from_packed: the real packing of some trits (mutated sometimes) or raw bytes.
                    let scale = if b.u8() % 8 == 0 { b.f32() } else { 2.0 };
                    let bytes = match (b.u8() % 2, Format::from_id(fmt as i64), small) {
                        (0, Ok(f), Some(n)) => {
                            let t: Vec<i8> = (0..n).map(|i| (i % 3) as i8 - 1).collect();
                            let mut p = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f)
                                .map(|m| m.packed_bytes().to_vec())
                                .unwrap_or_default();
                            if !p.is_empty() && b.u8() % 2 == 0 {
                                let i = b.u32() as usize % p.len();
                                p[i] ^= b.u8();
                            }
                            p
                        }
                        _ => b.take(b.0.len().min(4096)).to_vec(),
                    };
                    let len = length(b, bytes.len()).min(bytes.len());
                    let mut bytes = Buf::from(bytes, 0);
                    let st = bitnet_matrix_from_packed(
                        bytes.ptr(pin),
                        len,
                        rows,
                        cols,
                        scale,
                        fmt,
                        out.ptr(pout),
                    );
                    (st, scale.is_finite() && scale > 0.0 && pin != Ptr::Null)
                }
                _ => {
                    let mut size = usize::MAX;
                    let st = bitnet_i2s_blob_size(rows, cols, &mut size);
                    if check(st, "i2s_blob_size") {
                        assert_eq!(size, rows * cols / 4 + 32);
                    } else {
                        assert_eq!(size, usize::MAX);
                    }
                    let blob = b.take(b.0.len().min(4096)).to_vec();
                    let len = length(b, blob.len()).min(blob.len());
                    let mut blob = Buf::from(blob, 0);
                    let st = bitnet_matrix_from_bitnet_i2s(
                        blob.ptr(pin),
                        len,
                        rows,
                        cols,
                        out.ptr(pout),
                    );
                    (st, pin != Ptr::Null)
                }
            };
            if check(st, "constructor") {
                let h = out.data()[0];
                assert!(!h.is_null(), "success without a handle");
                assert!(
                    pout == Ptr::Valid && ok_inputs,
                    "op {op} accepted bad input"
                );
                if op != 3 {
                    assert!((0..=3).contains(&fmt), "format id {fmt} accepted");
                }
                let i = info(h);
                assert_eq!((i.rows, i.cols), (rows, cols));
                handles.push(h);
            } else {
                assert!(out.untouched(), "a failed constructor wrote *out");
            }
        }
        // Products with one activation row.
        4..=6 => {
            let m = handle(b, handles);
            let (rows, cols) = if m.is_null() {
                (1, 1)
            } else {
                (bitnet_matrix_rows(m), bitnet_matrix_cols(m))
            };
            let (px, py) = (Ptr::pick(b), Ptr::pick(b));
            let (x_len, y_len) = (length(b, cols).min(CAP), length(b, rows).min(CAP));
            let ranged = b.u8() % 2 == 0;
            let (rb, re) = match b.u8() % 4 {
                0 => (b.u16() as usize, b.u16() as usize),
                1 => (0, rows),
                _ => {
                    let a = b.u16() as usize % rows;
                    (a, a + 1 + b.u16() as usize % (rows - a))
                }
            };
            let y_len = if ranged {
                length(b, re.wrapping_sub(rb)).min(CAP)
            } else {
                y_len
            };
            let px_ok = if op == 6 {
                px.ok::<f32>()
            } else {
                px.ok::<i8>()
            };
            let valid = !m.is_null()
                && px_ok
                && py.ok::<i32>()
                && x_len == cols
                && (if ranged {
                    rb < re && re <= rows && y_len == re - rb
                } else {
                    y_len == rows
                });
            if op == 6 {
                let x = floats(b, x_len);
                let finite = x.iter().all(|v| v.is_finite());
                let mut xb = Buf::from(x.clone(), 0.0);
                let mut y = Buf::new(y_len, -7.0f32);
                let st = if ranged {
                    bitnet_gemv_f32_rows(m, xb.ptr(px), x_len, rb, re, y.ptr(py), y_len)
                } else {
                    bitnet_gemv_f32(m, xb.ptr(px), x_len, y.ptr(py), y_len)
                };
                if check(st, "gemv_f32") {
                    assert!(valid && finite, "gemv_f32 accepted bad input");
                    let want = rust_gemm_f32(&info(m), &x, 1);
                    let (a, e) = if ranged { (rb, re) } else { (0, rows) };
                    assert_eq!(bits(y.data()), want[a..e]);
                } else {
                    assert!(y.untouched(), "a failed gemv_f32 wrote y");
                }
            } else {
                let x: Vec<i8> = (0..x_len)
                    .map(|i| (i as u8).wrapping_mul(b.0.first().copied().unwrap_or(3)) as i8)
                    .collect();
                let mut xb = Buf::from(x.clone(), 0);
                let mut y = Buf::new(y_len, i32::MIN + 7);
                let st = if ranged {
                    bitnet_gemv_i8_rows(m, xb.ptr(px), x_len, rb, re, y.ptr(py), y_len)
                } else {
                    bitnet_gemv_i8(m, xb.ptr(px), x_len, y.ptr(py), y_len)
                };
                if check(st, "gemv_i8") {
                    assert!(valid, "gemv_i8 accepted bad input");
                    let i = info(m);
                    let want = naive_gemm(&i.trits, rows, cols, &x, 1);
                    let (a, e) = if ranged { (rb, re) } else { (0, rows) };
                    assert_eq!(y.data(), &want[a..e]);
                } else {
                    assert!(y.untouched(), "a failed gemv_i8 wrote y");
                }
            }
        }
        // Products with n activation rows: n small, zero, or a size that cannot exist; the
        // whole matrix or a row range; lengths right, off by one or wild.
        7 | 8 => {
            let m = handle(b, handles);
            let (rows, cols) = if m.is_null() {
                (1, 1)
            } else {
                (bitnet_matrix_rows(m), bitnet_matrix_cols(m))
            };
            let n = match b.u8() % 8 {
                0 => 0,
                1 => usize::MAX,
                2 => (usize::MAX >> 1) + 1,
                v => v as usize - 2,
            };
            let (px, py) = (Ptr::pick(b), Ptr::pick(b));
            // The output rows: all of them, or a range of them (the `_rows` calls).
            let ranged = b.u8() % 2 == 0 && !m.is_null();
            let (a, e) = if ranged {
                let a = b.u16() as usize % rows;
                (a, a + 1 + b.u16() as usize % (rows - a))
            } else {
                (0, rows)
            };
            let real = n.checked_mul(cols.max(rows)).is_some_and(|v| v <= CAP);
            // A huge n must fail on overflow before any slice: prove it by passing 1 element.
            let (want_x, want_y) = if real {
                (n * cols, n * (e - a))
            } else {
                (1, 1)
            };
            let (x_len, y_len) = (length(b, want_x).min(CAP), length(b, want_y).min(CAP));
            let px_ok = if op == 7 {
                px.ok::<f32>()
            } else {
                px.ok::<i8>()
            };
            let valid = real
                && n >= 1
                && !m.is_null()
                && px_ok
                && py.ok::<i32>()
                && x_len == want_x
                && y_len == want_y;
            if op == 7 {
                let x = floats(b, x_len);
                let finite = x.iter().all(|v| v.is_finite());
                let mut xb = Buf::from(x.clone(), 0.0);
                let mut y = Buf::new(y_len, -7.0f32);
                let st = if ranged {
                    bitnet_gemm_f32_rows(m, xb.ptr(px), x_len, n, a, e, y.ptr(py), y_len)
                } else {
                    bitnet_gemm_f32(m, xb.ptr(px), x_len, n, y.ptr(py), y_len)
                };
                if check(st, "gemm_f32") {
                    assert!(valid && finite, "gemm_f32 accepted bad input (n = {n})");
                    let want = rust_gemm_f32(&info(m), &x, n);
                    for j in 0..n {
                        assert_eq!(
                            bits(&y.data()[j * (e - a)..(j + 1) * (e - a)]),
                            want[j * rows + a..j * rows + e]
                        );
                    }
                } else {
                    assert!(y.untouched(), "a failed gemm_f32 wrote y");
                }
            } else {
                let x: Vec<i8> = (0..x_len).map(|i| (i * 37 + 128) as u8 as i8).collect();
                let mut xb = Buf::from(x.clone(), 0);
                let mut y = Buf::new(y_len, i32::MIN + 7);
                let st = if ranged {
                    bitnet_gemm_i8_rows(m, xb.ptr(px), x_len, n, a, e, y.ptr(py), y_len)
                } else {
                    bitnet_gemm_i8(m, xb.ptr(px), x_len, n, y.ptr(py), y_len)
                };
                if check(st, "gemm_i8") {
                    assert!(valid, "gemm_i8 accepted bad input (n = {n})");
                    let i = info(m);
                    let want = naive_gemm(&i.trits, rows, cols, &x, n);
                    for j in 0..n {
                        assert_eq!(
                            y.data()[j * (e - a)..(j + 1) * (e - a)],
                            want[j * rows + a..j * rows + e]
                        );
                    }
                } else {
                    assert!(y.untouched(), "a failed gemm_i8 wrote y");
                }
            }
        }
        // Exports into caller buffers of fuzzer-chosen length.
        9 => {
            let m = handle(b, handles);
            let p = Ptr::pick(b);
            let which = b.u8() % 3;
            let want = if m.is_null() {
                1
            } else {
                match which {
                    0 => bitnet_matrix_rows(m) * bitnet_matrix_cols(m),
                    1 => bitnet_matrix_packed_size(m),
                    _ => {
                        let mut s = 0;
                        let st = bitnet_i2s_blob_size(
                            bitnet_matrix_rows(m),
                            bitnet_matrix_cols(m),
                            &mut s,
                        );
                        if st == BitnetStatus::Ok {
                            s
                        } else {
                            1
                        }
                    }
                }
            };
            let len = length(b, want).min(CAP);
            let mut out = Buf::new(len, 0xA5u8);
            let st = match which {
                0 => bitnet_matrix_to_ternary(m, out.ptr(p) as *mut i8, len),
                1 => bitnet_matrix_packed_bytes(m, out.ptr(p), len),
                _ => bitnet_matrix_to_bitnet_i2s(m, out.ptr(p), len),
            };
            if check(st, "export") {
                assert!(!m.is_null() && p != Ptr::Null && len == want);
                if which == 2 {
                    // The blob imports back to the same trits.
                    let i = info(m);
                    let back = TernaryMatrix::from_bitnet_i2s(out.data(), i.rows, i.cols).unwrap();
                    assert_eq!(back.to_ternary(), i.trits);
                }
            } else {
                assert!(out.untouched(), "a failed export wrote its output");
            }
        }
        // Conversion to another format.
        10 => {
            if handles.len() >= MAX_HANDLES {
                return;
            }
            let m = handle(b, handles);
            let fmt = format_id(b);
            let p = Ptr::pick(b);
            let mut out = Buf::new(1, null_mut::<BitnetMatrix>());
            let st = bitnet_matrix_to_format(m, fmt, out.ptr(p));
            if check(st, "to_format") {
                let h = out.data()[0];
                assert!(!m.is_null() && p == Ptr::Valid && (0..=3).contains(&fmt));
                assert_eq!(info(h).trits, info(m).trits);
                handles.push(h);
            } else {
                assert!(out.untouched());
            }
        }
        // A container of the live handles, saved by the Rust API, a few bytes mutated, loaded
        // through bitnet_container_from_memory; its matrices taken out by name.
        11 => {
            let infos: Vec<Info> = handles.iter().map(|&h| info(h)).collect();
            let ms: Vec<TernaryMatrix> = infos
                .iter()
                .map(|i| {
                    let m = TernaryMatrix::from_ternary(
                        &i.trits,
                        i.rows,
                        i.cols,
                        i.scales[0],
                        Format::I2S,
                    )
                    .unwrap();
                    if i.per_row {
                        m.with_row_scales(i.scales.clone()).unwrap()
                    } else {
                        m
                    }
                })
                .collect();
            let names: Vec<String> = (0..ms.len()).map(|i| format!("m{i}")).collect();
            let mut file = Vec::new();
            bitnet_kernels::container::save(&mut file, names.iter().map(|n| n.as_str()).zip(&ms))
                .unwrap();
            let mut mutated = false;
            for _ in 0..b.u8() % 3 {
                let (pos, v) = (b.u32() as usize, b.u8());
                let n = file.len();
                file[pos % n] ^= v;
                mutated |= v != 0;
            }
            let (pd, po) = (Ptr::pick(b), Ptr::pick(b));
            let mut data = Buf::from(file.clone(), 0u8);
            let mut out = Buf::new(1, null_mut::<BitnetContainer>());
            let st = bitnet_container_from_memory(data.ptr(pd).cast(), file.len(), out.ptr(po));
            assert!(
                (0..=13).contains(&st),
                "container_from_memory: unknown status {st}"
            );
            // SAFETY: BitnetStatus is a repr(C) enum with every value 0..=13.
            let st = std::mem::transmute::<i32, BitnetStatus>(st);
            if !check(st, "container_from_memory") {
                assert!(out.untouched());
                assert!(mutated || pd != Ptr::Valid || po != Ptr::Valid);
                return;
            }
            // `data` may have any alignment (a misaligned pointer reads shifted bytes, which
            // must then still make a valid file).
            assert!(pd != Ptr::Null && po == Ptr::Valid);
            let exact = !mutated && pd == Ptr::Valid;
            let c = out.data()[0];
            if !exact {
                bitnet_container_free(c);
                return;
            }
            assert_eq!(bitnet_container_len(c), ms.len());
            for (i, want) in infos.iter().enumerate() {
                let name = bitnet_container_name(c, i);
                assert!(!name.is_null());
                let mut h = Buf::new(1, null_mut::<BitnetMatrix>());
                let st = bitnet_container_get(c, name, h.ptr(Ptr::Valid));
                assert_eq!(st, BitnetStatus::Ok as i32);
                let got = info(h.data()[0]);
                assert_eq!(got.trits, want.trits);
                assert_eq!(got.per_row, want.per_row);
                assert_eq!(bits(&got.scales), bits(&want.scales));
                bitnet_matrix_free(h.data()[0]);
            }
            assert!(bitnet_container_name(c, ms.len()).is_null());
            let mut h = Buf::new(1, null_mut::<BitnetMatrix>());
            let st = bitnet_container_get(c, c"none".as_ptr(), h.ptr(Ptr::Valid));
            assert_eq!(st, BitnetStatus::NotFound as i32);
            assert!(h.untouched());
            bitnet_container_free(c);
        }
        // The engine's calls: a fused product of one or two handles (shared cols or not),
        // with or without caller memory as workspace (sized right or one byte short);
        // activations quantized once; a row list with fuzzer-chosen indices.
        12 => {
            let (m0, m1) = (handle(b, handles), handle(b, handles));
            let dims = |m: *mut BitnetMatrix| {
                if m.is_null() {
                    (1, 1)
                } else {
                    (bitnet_matrix_rows(m), bitnet_matrix_cols(m))
                }
            };
            let ((r0, c0), (r1, c1)) = (dims(m0), dims(m1));
            let n = 1 + b.u8() as usize % 3;
            if n * (r0 + r1 + c0) > CAP {
                return;
            }
            let x = floats(b, n * c0);
            let finite = x.iter().all(|v| v.is_finite());
            let x_len = length(b, n * c0).min(CAP);
            let mut xb = Buf::from(x.clone(), 0.0);
            xb.store.resize(x_len.max(x.len()) + 1, 0.0);
            let (l0, l1) = (length(b, n * r0).min(CAP), length(b, n * r1).min(CAP));
            let (mut y0, mut y1) = (Buf::new(l0, -7.0f32), Buf::new(l1, -7.0f32));
            let ms = [m0 as *const BitnetMatrix, m1 as *const BitnetMatrix];
            let count = 1 + b.u8() as usize % 2;
            let mut size = 0usize;
            let st = bitnet_workspace_size(ms.as_ptr(), count, n, &mut size);
            let sized = check(st, "workspace_size");
            let mode = b.u8() % 3;
            let ws_len = match mode {
                0 => 0,
                1 => size,
                _ => size.saturating_sub(1),
            };
            let mut ws = vec![0u8; ws_len.min(CAP * 8)];
            let ws_ptr = if mode == 0 || ws.len() != ws_len {
                null_mut()
            } else {
                ws.as_mut_ptr()
            };
            let ys = [y0.ptr(Ptr::Valid), y1.ptr(Ptr::Valid)];
            let lens = [l0, l1];
            let st = bitnet_gemm_multi_f32(
                ms.as_ptr(),
                count,
                xb.ptr(Ptr::Valid),
                x_len,
                n,
                ys.as_ptr(),
                lens.as_ptr(),
                ws_ptr,
                ws_len,
            );
            let valid = !m0.is_null()
                && (count == 1 || (!m1.is_null() && c1 == c0))
                && x_len == n * c0
                && l0 == n * r0
                && (count == 1 || l1 == n * r1)
                && (ws_ptr.is_null() || (sized && ws_len >= size));
            if check(st, "gemm_multi_f32") {
                assert!(valid && finite, "gemm_multi_f32 accepted bad input");
                assert_eq!(bits(y0.data()), rust_gemm_f32(&info(m0), &x, n));
                if count == 2 {
                    assert_eq!(bits(y1.data()), rust_gemm_f32(&info(m1), &x, n));
                }
            } else {
                assert!(
                    y0.untouched() && y1.untouched(),
                    "a failed gemm_multi_f32 wrote y"
                );
            }
            // Quantized once, then multiplied.
            let mut qa: *mut BitnetActivations = null_mut();
            let st = bitnet_quantize_once(xb.ptr(Ptr::Valid), x_len, n, c0, &mut qa);
            if check(st, "quantize_once") {
                assert!(x_len == n * c0 && finite);
                let mut y = Buf::new(l0, -7.0f32);
                let st = bitnet_gemm_f32_quantized(m0, qa, y.ptr(Ptr::Valid), l0);
                if check(st, "gemm_f32_quantized") {
                    assert!(!m0.is_null() && l0 == n * r0);
                    assert_eq!(bits(y.data()), rust_gemm_f32(&info(m0), &x, n));
                } else {
                    assert!(y.untouched());
                }
                bitnet_activations_free(qa);
            } else {
                assert!(qa.is_null());
            }
            // A row list over the first activation row.
            let count = b.u8() as usize % 9;
            let picks: Vec<usize> = (0..count)
                .map(|_| {
                    if b.u8() % 16 == 0 {
                        r0 + b.u8() as usize
                    } else {
                        b.u16() as usize % r0
                    }
                })
                .collect();
            let mut y = Buf::new(picks.len(), -7.0f32);
            let st = bitnet_gemv_f32_row_list(
                m0,
                xb.ptr(Ptr::Valid),
                c0,
                picks.as_ptr(),
                picks.len(),
                y.ptr(Ptr::Valid),
                picks.len(),
            );
            if check(st, "gemv_f32_row_list") {
                assert!(!m0.is_null() && picks.iter().all(|&r| r < r0));
                let want = rust_gemm_f32(&info(m0), &x[..c0], 1);
                let got: Vec<u32> = bits(y.data());
                assert_eq!(got, picks.iter().map(|&r| want[r]).collect::<Vec<_>>());
            } else {
                assert!(y.untouched(), "a failed row list wrote y");
            }
        }
        // Per-row scales: a new handle with fuzzer-chosen scales, read back.
        13 => {
            if handles.len() >= MAX_HANDLES {
                return;
            }
            let m = handle(b, handles);
            let rows = if m.is_null() {
                1
            } else {
                bitnet_matrix_rows(m)
            };
            let len = length(b, rows).min(CAP);
            let s = floats(b, len);
            let (ps, pout) = (Ptr::pick(b), Ptr::pick(b));
            let mut sb = Buf::from(s.clone(), 0.0);
            let mut out = Buf::new(1, null_mut::<BitnetMatrix>());
            let st = bitnet_matrix_with_row_scales(m, sb.ptr(ps), len, out.ptr(pout));
            let valid = !m.is_null()
                && len == rows
                && ps.ok::<f32>()
                && pout.ok::<*mut BitnetMatrix>()
                && s.iter().all(|v| v.is_finite() && *v > 0.0);
            if check(st, "with_row_scales") {
                assert!(valid);
                let h = out.data()[0];
                assert_eq!(bitnet_matrix_has_row_scales(h), 1);
                let i = info(h);
                assert_eq!(bits(&i.scales), bits(&s));
                assert_eq!(i.trits, info(m).trits);
                handles.push(h);
            } else {
                assert!(!valid && out.untouched());
            }
        }
        // Quantization, accessors on NULL, messages, frees.
        _ => {
            let len = match b.u8() % 4 {
                0 => 0,
                1 => usize::MAX / 2,
                _ => b.u16() as usize % 3000,
            };
            let real = len <= CAP;
            let x = floats(b, if real { len } else { 1 });
            let finite = x.iter().all(|v| v.is_finite());
            let (px, pq) = (Ptr::pick(b), Ptr::pick(b));
            let mut xb = Buf::from(x.clone(), 0.0);
            let mut q = Buf::new(if real { len } else { 1 }, 0x55u8 as i8);
            let mut a = Buf::new(1, -1.0f32);
            let st = bitnet_quantize_activations(xb.ptr(px), len, q.ptr(pq), a.ptr(Ptr::Valid));
            if check(st, "quantize") {
                assert!(real && len > 0 && finite && px.ok::<f32>() && pq.ok::<i8>());
                let mut want = vec![0i8; len];
                let am = bitnet_kernels::quantize_activations(&x, &mut want).unwrap();
                assert_eq!(q.data(), &want[..]);
                assert_eq!(a.data()[0].to_bits(), am.to_bits());
            } else {
                assert!(q.untouched() && a.untouched());
            }
            // The a4.8 quantizers on the same row: int4 with any mode, TopK with any ratio.
            let mode = b.u8() as i32 % 4 - 1; // -1..=2: two valid, two not
            let mut q4 = Buf::new(if real { len } else { 1 }, 0x55u8 as i8);
            let mut s4 = Buf::new(1, -1.0f32);
            let st = bitnet_quantize_activations_i4(
                xb.ptr(px),
                len,
                q4.ptr(pq),
                s4.ptr(Ptr::Valid),
                mode,
            );
            if check_int(st, "quantize_i4") {
                assert!(real && len > 0 && finite && (0..=1).contains(&mode));
                let mut want = vec![0i8; len];
                let m4 = bitnet_kernels::I4Mode::from_id(mode as i64).unwrap();
                let sc = bitnet_kernels::quantize_activations_i4(&x, &mut want, m4).unwrap();
                assert_eq!(q4.data(), &want[..]);
                assert!(want.iter().all(|v| (-8..=7).contains(v)));
                assert_eq!(s4.data()[0].to_bits(), sc.to_bits());
            } else {
                assert!(q4.untouched() && s4.untouched());
            }
            let ratio = match b.u8() % 4 {
                0 => f32::from_bits(b.u32()),
                1 => 0.5,
                _ => b.u8() as f32 / 200.0,
            };
            let mut qt = Buf::new(if real { len } else { 1 }, 0x55u8 as i8);
            let mut at = Buf::new(1, -1.0f32);
            let st = bitnet_quantize_activations_topk(
                xb.ptr(px),
                len,
                ratio,
                qt.ptr(pq),
                at.ptr(Ptr::Valid),
            );
            if check_int(st, "quantize_topk") {
                assert!(real && len > 0 && finite && ratio > 0.0 && ratio <= 1.0);
                let mut want = vec![0i8; len];
                let am = bitnet_kernels::quantize_activations_topk(&x, ratio, &mut want).unwrap();
                assert_eq!(qt.data(), &want[..]);
                assert_eq!(at.data()[0].to_bits(), am.to_bits());
                let kept = want.iter().filter(|&&v| v != 0).count();
                assert!(kept <= bitnet_kernels::quant::topk_count(len, ratio).unwrap());
            } else {
                assert!(qt.untouched() && at.untouched());
            }
            assert_eq!(bitnet_matrix_rows(null()), 0);
            assert_eq!(bitnet_matrix_cols(null()), 0);
            assert!(bitnet_matrix_scale(null()).is_nan());
            assert_eq!(bitnet_matrix_format(null()), -1);
            assert_eq!(bitnet_matrix_has_row_scales(null()), -1);
            let _ = CStr::from_ptr(bitnet_status_message(b.u32() as i32));
            // Never NULL: a kernel's name, or "unavailable: <reason>".
            assert!(!CStr::from_ptr(bitnet_kernel_name()).is_empty());
            if b.u8() % 4 == 0 && !handles.is_empty() {
                let h = handles.swap_remove(b.u8() as usize % handles.len());
                bitnet_matrix_free(h);
            }
        }
    }
}
