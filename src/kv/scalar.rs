//! The reference kernels for the 3-bit rows: plain Rust, one code at a time. Every SIMD kernel
//! returns exactly [`kv3_dot`]'s sums, and [`kv3_wsum`]'s within the bound of
//! `docs/FORMATS.md` §8 (the SIMD kernels fuse the multiply-add).

use super::quant::code3;

/// # Safety
/// The raw kernel contract of [`crate::kernels::RawKvDot`].
pub(crate) unsafe extern "C" fn kv3_dot(
    rows: *const u8,
    stride: usize,
    n: usize,
    groups: usize,
    q: *const i16,
    qs: usize,
    nq: usize,
    out: *mut i32,
) {
    for t in 0..n {
        // SAFETY: the contract makes row t (3 * groups bytes), the nq query vectors and
        // the n * nq outputs valid.
        let (row, out) = unsafe {
            (
                std::slice::from_raw_parts(rows.add(t * stride), 3 * groups),
                std::slice::from_raw_parts_mut(out.add(t * nq), nq),
            )
        };
        for (h, o) in out.iter_mut().enumerate() {
            // SAFETY: as above.
            let qh = unsafe { std::slice::from_raw_parts(q.add(h * qs), 8 * groups) };
            let mut acc = 0i32;
            for (j, &qj) in qh.iter().enumerate() {
                acc += qj as i32 * code3(row, j) as i32;
            }
            *o = acc;
        }
    }
}

/// # Safety
/// The raw kernel contract of [`crate::kernels::RawKvWsum`].
pub(crate) unsafe extern "C" fn kv3_wsum(
    rows: *const u8,
    stride: usize,
    n: usize,
    groups: usize,
    w: *const f32,
    nq: usize,
    acc: *mut f32,
    accs: usize,
) {
    for t in 0..n {
        // SAFETY: the contract makes row t, the n * nq weights and the nq accumulator
        // vectors valid.
        let (row, wt) = unsafe {
            (
                std::slice::from_raw_parts(rows.add(t * stride), 3 * groups),
                std::slice::from_raw_parts(w.add(t * nq), nq),
            )
        };
        for (h, &wh) in wt.iter().enumerate() {
            // SAFETY: as above.
            let a = unsafe { std::slice::from_raw_parts_mut(acc.add(h * accs), 8 * groups) };
            for (j, aj) in a.iter_mut().enumerate() {
                *aj += wh * code3(row, j) as f32;
            }
        }
    }
}
