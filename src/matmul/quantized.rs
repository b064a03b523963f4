//! Activations quantized once and multiplied by any number of matrices: the int8 rows and
//! their absmax scales of `docs/FORMATS.md` §1, kept at a width that I2_S and TL1 read as is.

use crate::error::{Error, Result};
use crate::format::aligned::AlignedBytes;
use crate::format::{check_shape, i2s, tl1};
use crate::kernels::{self, KernelSet};

/// The width a quantized row is stored at: `cols` rounded up to this. I2_S's K block (256) is
/// a multiple of TL1's (16), so both formats read these rows without a copy; TL2's K block
/// (a multiple of 3) needs a re-padded copy when `n > 1` (made in the workspace).
pub(crate) const STRIDE_BLOCK: usize = i2s::K_BLOCK;
const _: () = assert!(STRIDE_BLOCK.is_multiple_of(tl1::K_BLOCK));

/// The stored width of a row of `cols` activations.
pub(crate) fn stride_of(cols: usize) -> usize {
    cols.div_ceil(STRIDE_BLOCK) * STRIDE_BLOCK
}

/// `n` rows of `cols` f32 activations quantized to int8 (absmax, `docs/FORMATS.md` §1), with
/// each row's absmax `a`: made once ([`QuantizedActivations::quantize`]) and passed to any
/// number of products ([`crate::ternary_gemm_quantized`], [`crate::matmul::products`]),
/// which give exactly what the f32 calls give for the same `x`.
///
/// ```
/// use bitnet_kernels::{ternary_gemm_quantized, ternary_gemv, Format, QuantizedActivations, TernaryMatrix};
/// let q = TernaryMatrix::from_ternary(&[1, -1, 0, 0, 1, 1], 2, 3, 0.5, Format::I2S)?;
/// let k = TernaryMatrix::from_ternary(&[1, 1, 1], 1, 3, 2.0, Format::TL1)?;
/// let x = [1.0, 0.5, -1.0];
/// let xq = QuantizedActivations::quantize(&x, 1, 3)?; // once
/// let (mut yq, mut yk) = ([0.0f32; 2], [0.0f32; 1]);
/// ternary_gemm_quantized(&q, &xq, &mut yq)?;
/// ternary_gemm_quantized(&k, &xq, &mut yk)?;
/// let mut want = [0.0f32; 2];
/// ternary_gemv(&q, &x, &mut want)?;
/// assert_eq!(yq, want);
/// # Ok::<(), bitnet_kernels::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct QuantizedActivations {
    /// `n` rows of [`stride_of`]`(cols)` int8 values, each zero after `cols`, on a cache line
    /// (as the products' own padded rows are, `matmul::pad`); possibly longer.
    q: AlignedBytes,
    absmax: Vec<f32>,
    n: usize,
    cols: usize,
}

impl QuantizedActivations {
    /// Quantizes `n` rows of `cols` (`x.len() == n * cols`) with the active kernel set's
    /// quantizer ([`crate::kernels::active`]).
    pub fn quantize(x: &[f32], n: usize, cols: usize) -> Result<Self> {
        let mut q = Self::default();
        q.requantize(kernels::active()?, x, n, cols)?;
        Ok(q)
    }

    /// Quantizes into this value's buffers, reusing them (no allocation when they are large
    /// enough), with kernel set `k`'s quantizer. On error (a non-finite element, a bad
    /// length) the value is left empty (`n() == 0`), never half-written.
    pub fn requantize(&mut self, k: &KernelSet, x: &[f32], n: usize, cols: usize) -> Result<()> {
        self.n = 0;
        check_shape(n.max(1), cols)?;
        if n == 0 {
            return Err(Error::InvalidShape("n must be at least 1".into()));
        }
        let want = n
            .checked_mul(cols)
            .ok_or_else(|| Error::InvalidShape(format!("{n} activation rows overflow")))?;
        crate::error::check_len("activations", want, x.len())?;
        let stride = stride_of(cols);
        if self.q.as_slice().len() < n * stride {
            self.q = AlignedBytes::zeroed(n * stride)?;
        }
        self.absmax.resize(n, 0.0);
        let q = bytemuck::cast_slice_mut(&mut self.q.as_mut_slice()[..n * stride]);
        quantize_rows(k, x, cols, stride, q, &mut self.absmax)?;
        (self.n, self.cols) = (n, cols);
        Ok(())
    }

    /// The number of rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The number of activations per row (a matrix's `cols`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Each row's `a = max(max|x|, 1e-5)`: the product's output factor is `scale * a / 127`.
    pub fn absmax(&self) -> &[f32] {
        &self.absmax[..self.n]
    }

    /// Row `i`'s int8 values (`cols` of them).
    pub fn row(&self, i: usize) -> &[i8] {
        assert!(i < self.n, "row {i} of {}", self.n);
        let s = stride_of(self.cols);
        &self.rows()[i * s..i * s + self.cols]
    }

    /// The int8 buffer (at least `n` rows).
    fn rows(&self) -> &[i8] {
        bytemuck::cast_slice(self.q.as_slice())
    }

    /// The view the products read.
    pub(crate) fn view(&self) -> QView<'_> {
        let s = stride_of(self.cols);
        QView {
            q: &self.rows()[..self.n * s],
            absmax: self.absmax(),
        }
    }
}

/// Quantizes `x` (rows of `cols`) into `q` (rows of `stride`, zero after `cols`) and `absmax`
/// with `k`'s quantizer. The lengths are the caller's: `q.len() == n * stride`,
/// `absmax.len() == n`, `x.len() == n * cols`.
pub(crate) fn quantize_rows(
    k: &KernelSet,
    x: &[f32],
    cols: usize,
    stride: usize,
    q: &mut [i8],
    absmax: &mut [f32],
) -> Result<()> {
    let quantize = k.act().quantize;
    for ((dst, src), a) in q
        .chunks_exact_mut(stride)
        .zip(x.chunks_exact(cols))
        .zip(absmax.iter_mut())
    {
        *a = quantize(src, &mut dst[..cols])?;
        dst[cols..].fill(0);
    }
    Ok(())
}

/// Quantized activations as the products read them: `n` rows of [`stride_of`]`(cols)`,
/// from a [`QuantizedActivations`] or a workspace.
#[derive(Clone, Copy)]
pub(crate) struct QView<'a> {
    pub(crate) q: &'a [i8],
    pub(crate) absmax: &'a [f32],
}
