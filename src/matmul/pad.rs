//! Checking a product's arguments against the matrix and bringing the activations to the
//! packed width: the steps before a kernel may be called.

use std::cell::Cell;
use std::ops::Range;

use crate::error::{check_len, Error, Result};
use crate::format::aligned::{AlignedBytes, LINE};
use crate::format::TernaryMatrix;

/// Checks that `rows` is a non-empty sub-range of `0..m.rows()`.
pub(crate) fn check_rows(m: &TernaryMatrix, rows: &Range<usize>) -> Result<()> {
    if rows.start >= rows.end || rows.end > m.rows() {
        return Err(Error::InvalidShape(format!(
            "row range {}..{} is empty or outside 0..{}",
            rows.start,
            rows.end,
            m.rows()
        )));
    }
    Ok(())
}

/// Checks that `len` activations are `n >= 1` rows of `m.cols()` each.
pub(crate) fn check_activations(m: &TernaryMatrix, n: usize, len: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidShape("n must be at least 1".into()));
    }
    let want = n
        .checked_mul(m.cols())
        .ok_or_else(|| Error::InvalidShape(format!("{n} activation rows overflow")))?;
    check_len("activations", want, len)
}

/// Checks that an output buffer of `len` elements holds `n` rows of `rows` each (an
/// overflowing product is a shape error, never a wrapped length).
pub(crate) fn check_output(n: usize, rows: usize, len: usize) -> Result<()> {
    let want = n
        .checked_mul(rows)
        .ok_or_else(|| Error::InvalidShape(format!("{n} output rows of {rows} overflow")))?;
    check_len("output", want, len)
}

/// `n` int8 activation rows, each zero-padded to the matrix's padded width `kp`: exactly
/// `n * kp` values, which is what a kernel reads, starting on a cache line. Only made by the
/// two constructors below, which establish that length and that alignment.
///
/// Why aligned: the kernels load the activations in 32- or 64-byte vectors, once per row tile,
/// and a vector that straddles two cache lines is two loads. On an Emerald-Rapids-class guest
/// (2026-11-28, `gemm_calls -- 6912 2560 128 THREADS 16`, idle) `gemm_i8` of 128 rows 16 bytes
/// off a line took 10.38 ms on one thread and 5.38 on two when they were read in place, and
/// 7.64 and 3.78 ms copied onto a line first.
pub(crate) struct PaddedActivations<'a> {
    rows: Rows<'a>,
    n: usize,
    /// `n * kp`.
    len: usize,
}

/// Where the rows are: the caller's own (already padded and on a line), or a copy.
enum Rows<'a> {
    Caller(&'a [i8]),
    Copy(AlignedBytes),
}

impl<'a> PaddedActivations<'a> {
    /// Checks `x.len() == n * cols`, and pads (copies) only when `cols` is not already the
    /// padded width or `x` does not start on a cache line.
    pub(crate) fn new(m: &TernaryMatrix, x: &'a [i8], n: usize) -> Result<Self> {
        check_activations(m, n, x.len())?;
        let (cols, kp) = (m.cols(), m.layout().cols_padded);
        if cols == kp && x.as_ptr().align_offset(LINE) == 0 {
            return Ok(Self {
                rows: Rows::Caller(x),
                n,
                len: x.len(),
            });
        }
        let mut b = scratch(n * kp)?;
        let rows: &mut [i8] = bytemuck::cast_slice_mut(&mut b.as_mut_slice()[..n * kp]);
        for (dst, src) in rows.chunks_exact_mut(kp).zip(x.chunks_exact(cols)) {
            dst[..cols].copy_from_slice(src);
            dst[cols..].fill(0);
        }
        Ok(Self {
            rows: Rows::Copy(b),
            n,
            len: n * kp,
        })
    }

    /// Quantizes `n` f32 rows (`x.len() == n * cols`, checked) to int8 (absmax,
    /// `docs/FORMATS.md` §1) with `quantize` (a kernel set's row quantizer), straight into
    /// the padded rows; returns them with each row's absmax `a` (the rescale,
    /// `matmul::rescale`, turns it into the output factors).
    pub(crate) fn quantize(
        m: &TernaryMatrix,
        x: &[f32],
        n: usize,
        quantize: impl Fn(&[f32], &mut [i8]) -> Result<f32>,
    ) -> Result<(PaddedActivations<'static>, Vec<f32>)> {
        check_activations(m, n, x.len())?;
        let (cols, kp) = (m.cols(), m.layout().cols_padded);
        let mut b = scratch(n * kp)?;
        let rows: &mut [i8] = bytemuck::cast_slice_mut(&mut b.as_mut_slice()[..n * kp]);
        let mut absmax = Vec::with_capacity(n);
        for (dst, src) in rows.chunks_exact_mut(kp).zip(x.chunks_exact(cols)) {
            let a = quantize(src, &mut dst[..cols])?;
            dst[cols..].fill(0);
            absmax.push(a);
        }
        let p = PaddedActivations {
            rows: Rows::Copy(b),
            n,
            len: n * kp,
        };
        Ok((p, absmax))
    }

    /// The number of activation rows.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// All `n * kp` values, row after row.
    pub(crate) fn as_slice(&self) -> &[i8] {
        match &self.rows {
            Rows::Caller(x) => x,
            Rows::Copy(b) => bytemuck::cast_slice(&b.as_slice()[..self.len]),
        }
    }
}

/// The largest padded-activation buffer a thread keeps for its next call (16 MiB: n = 1024
/// rows of 16384 columns); a larger one is freed after its call.
const SCRATCH_KEEP: usize = 16 << 20;

thread_local! {
    /// The buffer of this thread's last padded activations, kept for the next call: a fresh
    /// allocation of more than glibc's mmap threshold costs a page fault per 4 KiB on every
    /// call. Taken out while in use, so a nested call simply allocates.
    static SCRATCH: Cell<Option<AlignedBytes>> = const { Cell::new(None) };
}

/// A buffer of at least `len` bytes on a cache line: this thread's kept one where it is large
/// enough. Its contents are arbitrary: the callers write every byte they read.
fn scratch(len: usize) -> Result<AlignedBytes> {
    match SCRATCH.try_with(Cell::take).ok().flatten() {
        Some(b) if b.as_slice().len() >= len => Ok(b),
        _ => AlignedBytes::zeroed(len),
    }
}

impl Drop for PaddedActivations<'_> {
    /// Gives a copy's buffer back to this thread for its next call (see [`SCRATCH`]), the
    /// larger of it and the one kept.
    fn drop(&mut self) {
        if let Rows::Copy(b) = std::mem::replace(&mut self.rows, Rows::Caller(&[])) {
            if b.as_slice().len() <= SCRATCH_KEEP {
                // `try_with` fails only while the thread exits.
                let _ = SCRATCH.try_with(|c| {
                    let keep = match c.take() {
                        Some(old) if old.as_slice().len() > b.as_slice().len() => old,
                        _ => b,
                    };
                    c.set(Some(keep));
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_length_overflow_is_a_shape_error() {
        assert!(matches!(
            check_output(usize::MAX, 2, 0),
            Err(Error::InvalidShape(_))
        ));
        assert!(matches!(
            check_output(3, 2, 5),
            Err(Error::LengthMismatch {
                what: "output",
                expected: 6,
                got: 5
            })
        ));
        assert!(check_output(3, 2, 6).is_ok());
    }
}
