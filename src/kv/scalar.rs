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
        // SAFETY: the contract makes row t (3 * groups bytes) valid.
        let row = unsafe { std::slice::from_raw_parts(rows.add(t * stride), 3 * groups) };
        for h in 0..nq {
            // SAFETY: the contract makes the nq query vectors and the nq * n outputs valid.
            let qh = unsafe { std::slice::from_raw_parts(q.add(h * qs), 8 * groups) };
            let mut acc = 0i32;
            for (j, &qj) in qh.iter().enumerate() {
                acc += qj as i32 * code3(row, j) as i32;
            }
            // SAFETY: as above.
            unsafe { *out.add(h * n + t) = acc };
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
        // SAFETY: the contract makes row t valid.
        let row = unsafe { std::slice::from_raw_parts(rows.add(t * stride), 3 * groups) };
        for h in 0..nq {
            // SAFETY: the contract makes the nq * n weights and the nq accumulator vectors
            // valid.
            let (wh, a) = unsafe {
                (
                    *w.add(h * n + t),
                    std::slice::from_raw_parts_mut(acc.add(h * accs), 8 * groups),
                )
            };
            for (j, aj) in a.iter_mut().enumerate() {
                *aj += wh * code3(row, j) as f32;
            }
        }
    }
}
