//! What the C ABI adds: the same products and the same decode attention called through the
//! Rust API and through the `bitnet_*` C functions, timed in turns in one run (medians), with
//! the results compared bit for bit. The C calls check their arguments, catch panics and copy
//! through a temporary when `y` may overlap `x`; this measures what that costs a caller.
//!
//! The C functions are called as the Rust items they are (`bitnet_kernels::capi`), which is
//! the code a C program links: the same symbols, with no wrapper of ours in between.

use std::ptr;

use bitnet_kernels::capi::{
    bitnet_gemm_f32, bitnet_gemv_f32, bitnet_kv_append, bitnet_kv_attend, bitnet_kv_free,
    bitnet_kv_new, bitnet_matrix_free, bitnet_matrix_from_ternary, BitnetKvCache, BitnetMatrix,
};
use bitnet_kernels::{ternary_gemm, ternary_gemv, Format, TernaryMatrix};

use crate::data;
use crate::kv::{decode_data, DecodeData, D, HK, HQ};
use crate::stats::{measure_pair, Timing};

/// One call measured both ways.
pub struct Row {
    /// The product or step, its shape and where its data lie.
    pub what: String,
    /// The Rust API's call.
    pub rust_call: &'static str,
    /// The C function's name.
    pub c_call: &'static str,
    /// The Rust call's median, timed in turns with the C call's.
    pub rust: Timing,
    /// The C call's median.
    pub c: Timing,
    /// The two calls' outputs are the same bits.
    pub same: bool,
}

/// `BITNET_FORMAT_I2S`, the C ABI's id of I2_S ([`Format::from_id`]).
const I2S_ID: i32 = 0;

/// A ternary matrix both as a Rust value and as a C handle, packed from the same trits.
struct Both {
    m: TernaryMatrix,
    c: *mut BitnetMatrix,
}

impl Both {
    fn new(rows: usize, cols: usize) -> Self {
        let trits = data::trits(rows, cols, 1);
        let m = TernaryMatrix::from_ternary(&trits, rows, cols, 0.5, Format::I2S).expect("pack");
        let mut c = ptr::null_mut();
        // SAFETY: `trits` holds rows × cols values; `c` receives the handle.
        let s =
            unsafe { bitnet_matrix_from_ternary(trits.as_ptr(), rows, cols, 0.5, I2S_ID, &mut c) };
        assert_eq!(s as i32, 0, "bitnet_matrix_from_ternary");
        Both { m, c }
    }
}

impl Drop for Both {
    fn drop(&mut self) {
        // SAFETY: the handle came from bitnet_matrix_from_ternary and is freed once.
        unsafe { bitnet_matrix_free(self.c) };
    }
}

/// `ternary_gemm` (n rows; `ternary_gemv` when n = 1) against `bitnet_gemm_f32` /
/// `bitnet_gemv_f32` on an I2_S matrix.
fn product(rows: usize, cols: usize, n: usize, budget_s: f64) -> Row {
    let both = Both::new(rows, cols);
    let x = data::activations(n, cols, 2);
    let (mut yr, mut yc) = (vec![0f32; n * rows], vec![0f32; n * rows]);
    let (rust, c) = measure_pair(budget_s, 5, 2001, |c_abi| {
        if !c_abi {
            if n == 1 {
                ternary_gemv(&both.m, &x, &mut yr).expect("ternary_gemv");
            } else {
                ternary_gemm(&both.m, &x, n, &mut yr).expect("ternary_gemm");
            }
            return;
        }
        // SAFETY: a live handle; x and y hold the lengths passed.
        let s = unsafe {
            if n == 1 {
                bitnet_gemv_f32(both.c, x.as_ptr(), x.len(), yc.as_mut_ptr(), yc.len())
            } else {
                bitnet_gemm_f32(both.c, x.as_ptr(), x.len(), n, yc.as_mut_ptr(), yc.len())
            }
        };
        assert_eq!(s as i32, 0, "C product");
    });
    let same = yr
        .iter()
        .map(|v| v.to_bits())
        .eq(yc.iter().map(|v| v.to_bits()));
    let (rust_call, c_call, what) = if n == 1 {
        ("ternary_gemv", "bitnet_gemv_f32", "GEMV")
    } else {
        ("ternary_gemm", "bitnet_gemm_f32", "GEMM")
    };
    Row {
        what: format!("I2_S {what} {rows}×{cols}, n = {n}, warm"),
        rust_call,
        c_call,
        rust,
        c,
        same,
    }
}

/// `KvCache::attend` against `bitnet_kv_attend` on one layer's cache (the 2B-4T heads,
/// `tokens` positions, one 8-bit sink token as `bitnet_kv_new` is given), in cache.
fn attend(tokens: usize, budget_s: f64) -> Row {
    let DecodeData { caches, k, v, q } = decode_data(1, tokens).expect("decode data");
    let mut c: *mut BitnetKvCache = ptr::null_mut();
    // SAFETY: `c` receives the handle; k and v hold tokens × HK × D floats.
    unsafe {
        assert_eq!(bitnet_kv_new(HK, D, tokens, 1, &mut c), 0, "bitnet_kv_new");
        assert_eq!(
            bitnet_kv_append(c, k.as_ptr(), v.as_ptr(), tokens),
            0,
            "bitnet_kv_append"
        );
    }
    let (mut or, mut oc) = (vec![0f32; HQ * D], vec![0f32; HQ * D]);
    let (rust, ct) = measure_pair(budget_s, 5, 2001, |c_abi| {
        if c_abi {
            // SAFETY: a live cache; q and out hold HQ × D floats.
            let s = unsafe { bitnet_kv_attend(c, q.as_ptr(), HQ, oc.as_mut_ptr()) };
            assert_eq!(s, 0, "bitnet_kv_attend");
        } else {
            caches[0].attend(&q, HQ, &mut or).expect("attend");
        }
    });
    // SAFETY: freed once.
    unsafe { bitnet_kv_free(c) };
    let same = or
        .iter()
        .map(|v| v.to_bits())
        .eq(oc.iter().map(|v| v.to_bits()));
    Row {
        what: format!("3-bit KV attention, {tokens} tokens, {HQ}/{HK} heads × {D}, in cache"),
        rust_call: "KvCache::attend",
        c_call: "bitnet_kv_attend",
        rust,
        c: ct,
        same,
    }
}

/// Every row, on the current thread count (the caller sets it), `budget_s` seconds a row.
pub fn measure(quick: bool) -> Vec<Row> {
    let budget = if quick { 0.2 } else { 1.0 };
    let tokens = if quick { 1024 } else { 4096 };
    vec![
        product(6912, 2560, 1, budget),
        product(2560, 2560, 1, budget),
        product(2560, 2560, if quick { 16 } else { 128 }, budget),
        attend(tokens, budget),
    ]
}

/// The rows as a markdown section.
pub fn markdown(rows: &[Row], threads: usize) -> String {
    let mut s = format!(
        "## Through the C ABI\n\nThe same call through the Rust API and through the C function a C \
         program links, timed in turns (medians, {threads} thread(s), the active kernel set).\n\n\
         | call | Rust | µs | C | µs | C ÷ Rust | same bits |\n|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        s += &format!(
            "| {} | `{}` | {:.1} | `{}` | {:.1} | {:.3} | {} |\n",
            r.what,
            r.rust_call,
            r.rust.secs * 1e6,
            r.c_call,
            r.c.secs * 1e6,
            r.c.secs / r.rust.secs,
            if r.same { "yes" } else { "**no**" }
        );
    }
    s
}
