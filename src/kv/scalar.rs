//! The reference kernels for the 3-bit codes (K in blocks of 16 positions, V in blocks of
//! 4): plain Rust, one code at a time. Every SIMD kernel
//! returns exactly [`kv3_dot`]'s sums and [`kv3_wsum`]'s floats (`docs/FORMATS.md` §8).

use super::quant::Blocks3;
use super::WBLOCK;

/// # Safety
/// The raw kernel contract of [`crate::kernels::RawKvDot`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe extern "C" fn kv3_dot(
    blocks: *const u8,
    first: usize,
    n: usize,
    groups: usize,
    q: *const i16,
    qs: usize,
    nq: usize,
    out: *mut i32,
    _next: *const u8,
    _next_len: usize,
) {
    let k = Blocks3::k(groups);
    for t in 0..n {
        let i = first + t;
        // SAFETY: the contract makes the block of position i (k.bytes) valid.
        let block = unsafe { std::slice::from_raw_parts(blocks.add(k.block(i).start), k.bytes) };
        for h in 0..nq {
            // SAFETY: the contract makes the nq query vectors and the nq * n outputs valid.
            let qh = unsafe { std::slice::from_raw_parts(q.add(h * qs), 8 * groups) };
            let mut acc = 0i32;
            for (j, &qj) in qh.iter().enumerate() {
                acc += qj as i32 * k.code(block, i % k.per, j) as i32;
            }
            // SAFETY: as above.
            unsafe { *out.add(h * n + t) = acc };
        }
    }
}

/// # Safety
/// The raw kernel contract of [`crate::kernels::RawKvWsum`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe extern "C" fn kv3_wsum(
    blocks: *const u8,
    first: usize,
    n: usize,
    groups: usize,
    w: *const i8,
    f: *const f32,
    nq: usize,
    acc: *mut f32,
    accs: usize,
    _next: *const u8,
    _next_len: usize,
) {
    let nb = n.div_ceil(WBLOCK);
    let ws = WBLOCK * nb;
    let v = Blocks3::v(groups);
    let mut sums = vec![0i32; 8 * groups];
    for b in 0..nb {
        let tokens = b * WBLOCK..n.min((b + 1) * WBLOCK);
        for h in 0..nq {
            sums.fill(0);
            for t in tokens.clone() {
                let i = first + t;
                // SAFETY: the contract makes the block of position i (v.bytes) and the nq
                // runs of ws weights valid.
                let (block, wt) = unsafe {
                    (
                        std::slice::from_raw_parts(blocks.add(v.block(i).start), v.bytes),
                        *w.add(h * ws + t) as i32,
                    )
                };
                for (j, s) in sums.iter_mut().enumerate() {
                    *s += wt * v.code(block, i % v.per, j) as i32;
                }
            }
            // SAFETY: the contract makes the nq * nb factors and the nq accumulator vectors
            // valid.
            let (fb, a) = unsafe {
                (
                    *f.add(h * nb + b),
                    std::slice::from_raw_parts_mut(acc.add(h * accs), 8 * groups),
                )
            };
            for (aj, &s) in a.iter_mut().zip(&sums) {
                *aj = fb.mul_add(s as f32, *aj);
            }
        }
    }
}
