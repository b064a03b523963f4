//! The products: check the arguments, quantize and pad x (`matmul/pad.rs`), ask the registry
//! for the matrix format's kernel, run it over whole row tiles on rayon's threads
//! (`matmul/run.rs`), rescale. One straight line, downwards: this module calls [`crate::kernels`] only to choose
//! a kernel, and the registry never calls back. Every step's maths is `docs/FORMATS.md` §1.

use std::ops::Range;

use crate::error::Result;
use crate::format::{Scales, TernaryMatrix};
use crate::kernels::{self, KernelSet};
use crate::quant::{act_factor, output_factor};

mod pad;
mod run;

pub(crate) use pad::check_rows;
use pad::{check_output, PaddedActivations};
pub use run::PARALLEL_MIN_MACS;
use run::{par_run, run};

/// `y`'s memory as the int32 accumulators a kernel writes: the f32 products let the kernel
/// fill `y` itself and then rescale it in place ([`crate::kernels::act::RescaleInPlace`]),
/// so they need no accumulator buffer.
fn as_acc(y: &mut [f32]) -> &mut [i32] {
    bytemuck::cast_slice_mut(y)
}

/// The rescale step (`docs/FORMATS.md` §1): `y` holds `n` activation rows' accumulators for
/// the matrix rows `rows`; activation row `j` (absmax `absmax[j]`) becomes
/// `acc * (m * (a_j / 127))` with one scale, or `acc[i] * (s_i * (a_j / 127))` with per-row
/// scales (`s` sliced to `rows`).
fn rescale(k: &KernelSet, m: &TernaryMatrix, rows: Range<usize>, y: &mut [f32], absmax: &[f32]) {
    let act = k.act();
    for (row, &a) in y.chunks_exact_mut(rows.len()).zip(absmax) {
        match m.scales() {
            Scales::One(s) => (act.rescale)(row, output_factor(s, a)),
            Scales::PerRow(s) => (act.rescale_rows)(row, &s[rows.clone()], act_factor(a)),
        }
    }
}

/// The checked products of one kernel set. The free functions ([`ternary_gemv`], [`gemv_i8`],
/// ...) call these on [`kernels::active`]; call them directly to use a particular set
/// (tests and benchmarks compare sets this way). Each checks every length against the
/// matrix, then runs the set's kernel for the matrix's own format.
impl KernelSet {
    /// Exact int32 accumulators `y = T x` for a whole matrix and one int8 row `x`
    /// (`x.len() == m.cols()`, `y.len() == m.rows()`), on rayon's threads when it pays.
    pub fn gemv_i8(&self, m: &TernaryMatrix, x: &[i8], y: &mut [i32]) -> Result<()> {
        self.gemm_i8(m, x, 1, y)
    }

    /// Exact int32 accumulators for `n` int8 rows: `x` is `n × cols` and `y` is `n × rows`,
    /// both row-major.
    pub fn gemm_i8(&self, m: &TernaryMatrix, x: &[i8], n: usize, y: &mut [i32]) -> Result<()> {
        let xp = PaddedActivations::new(m, x, n)?;
        check_output(n, m.rows(), y.len())?;
        let (_, k) = self.kernels_for(m.format())?;
        par_run(k, m, &xp, y);
        Ok(())
    }

    /// Exact int32 accumulators of `m` times one int8 row `x` (length `m.cols()`), for the
    /// rows in `rows` (any sub-range of `0..m.rows()`), on the calling thread:
    /// `y[r - rows.start] = sum_j t[r][j] * x[j]`.
    ///
    /// This is the call for an engine that splits work over its own thread pool.
    pub fn gemv_i8_rows(
        &self,
        m: &TernaryMatrix,
        x: &[i8],
        rows: Range<usize>,
        y: &mut [i32],
    ) -> Result<()> {
        self.gemm_i8_rows(m, x, 1, rows, y)
    }

    /// Like [`KernelSet::gemv_i8_rows`] for `n` activation rows (`x` is `n × cols`,
    /// row-major); `y` is `n × rows.len()`, row-major.
    pub fn gemm_i8_rows(
        &self,
        m: &TernaryMatrix,
        x: &[i8],
        n: usize,
        rows: Range<usize>,
        y: &mut [i32],
    ) -> Result<()> {
        check_rows(m, &rows)?;
        let x = PaddedActivations::new(m, x, n)?;
        check_output(n, rows.len(), y.len())?;
        let (_, k) = self.kernels_for(m.format())?;
        run(k, m, &x, rows, y);
        Ok(())
    }

    /// The BitLinear forward pass for `n` f32 rows (`x`: `n × cols`, `y`: `n × rows`):
    /// each row of x quantized to int8 (absmax), multiplied exactly, rescaled.
    pub fn gemm_f32(&self, m: &TernaryMatrix, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
        check_output(n, m.rows(), y.len())?;
        let (xp, absmax) = PaddedActivations::quantize(m, x, n, self.act().quantize)?;
        let (_, k) = self.kernels_for(m.format())?;
        par_run(k, m, &xp, as_acc(y));
        rescale(self, m, 0..m.rows(), y, &absmax);
        Ok(())
    }

    /// The BitLinear forward pass of one f32 row for the rows in `rows` only, on the calling
    /// thread: `y[r - rows.start]`, bit-identical to the same rows of a whole-matrix call.
    pub fn gemv_f32_rows(
        &self,
        m: &TernaryMatrix,
        x: &[f32],
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<()> {
        check_rows(m, &rows)?;
        check_output(1, rows.len(), y.len())?;
        let (xp, absmax) = PaddedActivations::quantize(m, x, 1, self.act().quantize)?;
        let (_, k) = self.kernels_for(m.format())?;
        run(k, m, &xp, rows.clone(), as_acc(y));
        rescale(self, m, rows, y, &absmax);
        Ok(())
    }

    /// The BitLinear forward pass of `n` f32 rows (`x`: `n × cols`) for the output rows in
    /// `rows` only, on the calling thread; `y` is `n × rows.len()`, row-major, bit-identical
    /// to the same rows of a whole-matrix call.
    pub fn gemm_f32_rows(
        &self,
        m: &TernaryMatrix,
        x: &[f32],
        n: usize,
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<()> {
        check_rows(m, &rows)?;
        check_output(n, rows.len(), y.len())?;
        let (xp, absmax) = PaddedActivations::quantize(m, x, n, self.act().quantize)?;
        let (_, k) = self.kernels_for(m.format())?;
        run(k, m, &xp, rows.clone(), as_acc(y));
        rescale(self, m, rows, y, &absmax);
        Ok(())
    }
}

/// The BitLinear forward pass for one activation row: `y = (T · quant(x)) · m · a/127`
/// (`m` the row's scale for a matrix with per-row scales),
/// with `x.len() == m.cols()` and `y.len() == m.rows()`. Uses the active kernel
/// ([`kernels::active`]) and rayon's threads when the matrix is large enough.
///
/// ```
/// use bitnet_kernels::{ternary_gemv, Format, TernaryMatrix};
/// let m = TernaryMatrix::from_ternary(&[1, -1, 0, 0, 1, 1], 2, 3, 0.5, Format::I2S).unwrap();
/// let mut y = [0.0f32; 2];
/// ternary_gemv(&m, &[1.0, 0.5, -1.0], &mut y).unwrap();
/// // int8: [127, 64, -127]; acc = [63, -63]; factor = 0.5 * 1/127
/// assert_eq!(y, [63.0 * (0.5 * (1.0 / 127.0)), -63.0 * (0.5 * (1.0 / 127.0))]);
/// ```
pub fn ternary_gemv(m: &TernaryMatrix, x: &[f32], y: &mut [f32]) -> Result<()> {
    kernels::active()?.gemm_f32(m, x, 1, y)
}

/// The BitLinear forward pass for `n` activation rows (prefill): `x` is `n × cols`, `y` is
/// `n × rows`, both row-major; each row of x has its own activation scale.
pub fn ternary_gemm(m: &TernaryMatrix, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
    kernels::active()?.gemm_f32(m, x, n, y)
}

/// [`ternary_gemv`] for a range of output rows on the calling thread, for engines that
/// split work over their own thread pool.
pub fn ternary_gemv_rows(
    m: &TernaryMatrix,
    x: &[f32],
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<()> {
    kernels::active()?.gemv_f32_rows(m, x, rows, y)
}

/// [`ternary_gemm`] for a range of output rows on the calling thread: `x` is `n × cols`,
/// `y` is `n × rows.len()`, both row-major.
pub fn ternary_gemm_rows(
    m: &TernaryMatrix,
    x: &[f32],
    n: usize,
    rows: Range<usize>,
    y: &mut [f32],
) -> Result<()> {
    kernels::active()?.gemm_f32_rows(m, x, n, rows, y)
}

/// Exact int32 accumulators `y[i] = sum_j t[i][j] * x[j]` for any int8 `x` (−128 included).
pub fn gemv_i8(m: &TernaryMatrix, x: &[i8], y: &mut [i32]) -> Result<()> {
    kernels::active()?.gemv_i8(m, x, y)
}

/// Exact int32 accumulators for `n` int8 rows (`x`: `n × cols`, `y`: `n × rows`).
pub fn gemm_i8(m: &TernaryMatrix, x: &[i8], n: usize, y: &mut [i32]) -> Result<()> {
    kernels::active()?.gemm_i8(m, x, n, y)
}

/// [`gemv_i8`] for the rows in `rows` only, on the calling thread (`y.len() == rows.len()`).
pub fn gemv_i8_rows(m: &TernaryMatrix, x: &[i8], rows: Range<usize>, y: &mut [i32]) -> Result<()> {
    kernels::active()?.gemv_i8_rows(m, x, rows, y)
}

/// [`gemm_i8`] for the rows in `rows` only, on the calling thread
/// (`y` is `n × rows.len()`, row-major).
pub fn gemm_i8_rows(
    m: &TernaryMatrix,
    x: &[i8],
    n: usize,
    rows: Range<usize>,
    y: &mut [i32],
) -> Result<()> {
    kernels::active()?.gemm_i8_rows(m, x, n, rows, y)
}
