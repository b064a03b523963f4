//! Checking a product's arguments against the matrix and bringing the activations to the
//! packed width: the steps before a kernel may be called.

use std::borrow::Cow;
use std::ops::Range;

use crate::error::{check_len, Error, Result};
use crate::format::TernaryMatrix;
use crate::quant::{output_factor, quantize_activations};

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
/// `n * kp` values, which is what a kernel reads. Only made by the two constructors below,
/// which establish that length.
pub(crate) struct PaddedActivations<'a> {
    data: Cow<'a, [i8]>,
    n: usize,
}

impl<'a> PaddedActivations<'a> {
    /// Checks `x.len() == n * cols`, and pads (copies) only when `cols` is not already the
    /// padded width.
    pub(crate) fn new(m: &TernaryMatrix, x: &'a [i8], n: usize) -> Result<Self> {
        check_activations(m, n, x.len())?;
        let (cols, kp) = (m.cols(), m.layout().cols_padded);
        if cols == kp {
            return Ok(Self { data: x.into(), n });
        }
        let mut data = vec![0i8; n * kp];
        for (dst, src) in data.chunks_exact_mut(kp).zip(x.chunks_exact(cols)) {
            dst[..cols].copy_from_slice(src);
        }
        Ok(Self {
            data: data.into(),
            n,
        })
    }

    /// Quantizes `n` f32 rows (`x.len() == n * cols`, checked) to int8 (absmax,
    /// `docs/FORMATS.md` §1), padded to the matrix's width; returns them with each row's
    /// output factor (`m * a / 127`).
    pub(crate) fn quantize(
        m: &TernaryMatrix,
        x: &[f32],
        n: usize,
    ) -> Result<(PaddedActivations<'static>, Vec<f32>)> {
        check_activations(m, n, x.len())?;
        let (cols, kp) = (m.cols(), m.layout().cols_padded);
        let mut q = vec![0i8; n * kp];
        let mut factors = Vec::with_capacity(n);
        for (dst, src) in q.chunks_exact_mut(kp).zip(x.chunks_exact(cols)) {
            let a = quantize_activations(src, &mut dst[..cols])?;
            factors.push(output_factor(m.scale(), a));
        }
        Ok((PaddedActivations { data: q.into(), n }, factors))
    }

    /// The number of activation rows.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// All `n * kp` values, row after row.
    pub(crate) fn as_slice(&self) -> &[i8] {
        &self.data
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
