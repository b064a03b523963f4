//! The products: quantize x, pad it, run a kernel over row ranges (threads through rayon),
//! rescale. One straight line; every step's maths is `FORMATS.md` §1.

use std::ops::Range;
use std::sync::Mutex;

use crate::error::{check_len, Result};
use crate::format::TernaryMatrix;
use crate::kernels::{
    self, check_activations, check_rows, run, FormatKernels, KernelSet, PaddedActivations,
};
use crate::par;
use crate::quant::{output_factor, quantize_activations};

/// Below this many multiply-adds a product runs on the calling thread: waking rayon's
/// workers costs more than it gives. Measured (I2_S AVX-512, cache-resident, back-to-back
/// calls, 2 threads, Sapphire-Rapids-class KVM guest): 2048x2048 = 4.2M MACs took 25.6 µs on
/// one thread and 16.3 µs on two; 1024x2048 (2.1M, below this) takes 12.5 µs on one.
pub const PARALLEL_MIN_MACS: usize = 1 << 22;

/// Splits the rows of `m` over rayon's pool (which honours `RAYON_NUM_THREADS`) in whole
/// tiles, the calling thread working from the start ([`crate::par`]).
fn par_run(k: FormatKernels, m: &TernaryMatrix, x: &PaddedActivations<'_>, y: &mut [i32]) {
    let (rows, n, tile) = (m.rows(), x.n(), m.layout().row_tile);
    let work = rows.saturating_mul(m.cols()).saturating_mul(n);
    let threads = if work < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    if n == 1 {
        return par::for_each_chunk(
            rows,
            tile,
            threads,
            |ranges| par::split_rows(y, 1, ranges),
            |r, out| run(k, m, x, r, out),
        );
    }
    // n rows of output per row of m: each chunk fills its own buffer, copied in after.
    let parts = Mutex::new(Vec::new());
    par::for_each_chunk(
        rows,
        tile,
        threads,
        |ranges| vec![(); ranges.len()],
        |r, ()| {
            let mut out = vec![0i32; n * r.len()];
            run(k, m, x, r.clone(), &mut out);
            parts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((r, out));
        },
    );
    for (r, out) in parts.into_inner().unwrap_or_else(|e| e.into_inner()) {
        for j in 0..n {
            y[j * rows + r.start..j * rows + r.end]
                .copy_from_slice(&out[j * r.len()..(j + 1) * r.len()]);
        }
    }
}

/// Quantizes `n` f32 rows to int8, padded to the matrix's width; returns them with each
/// row's output factor (`m * a / 127`).
fn quantize_padded(
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
    Ok((PaddedActivations::from_padded(q, n), factors))
}

fn rescale(acc: &[i32], factor: f32, y: &mut [f32]) {
    for (o, &a) in y.iter_mut().zip(acc) {
        *o = a as f32 * factor;
    }
}

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
        check_len("output", n * m.rows(), y.len())?;
        let (_, k) = self.kernels_for(m.format())?;
        par_run(k, m, &xp, y);
        Ok(())
    }

    /// The BitLinear forward pass for `n` f32 rows (`x`: `n × cols`, `y`: `n × rows`):
    /// each row of x quantized to int8 (absmax), multiplied exactly, rescaled.
    pub fn gemm_f32(&self, m: &TernaryMatrix, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
        check_len("output", n.saturating_mul(m.rows()), y.len())?;
        let (xp, factors) = quantize_padded(m, x, n)?;
        let (_, k) = self.kernels_for(m.format())?;
        let mut acc = vec![0i32; n * m.rows()];
        par_run(k, m, &xp, &mut acc);
        for (j, f) in factors.into_iter().enumerate() {
            let r = j * m.rows()..(j + 1) * m.rows();
            rescale(&acc[r.clone()], f, &mut y[r]);
        }
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
        check_len("output", rows.len(), y.len())?;
        let (xp, factors) = quantize_padded(m, x, 1)?;
        let (_, k) = self.kernels_for(m.format())?;
        let mut acc = vec![0i32; rows.len()];
        run(k, m, &xp, rows, &mut acc);
        rescale(&acc, factors[0], y);
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
        check_len("output", n.saturating_mul(rows.len()), y.len())?;
        let (xp, factors) = quantize_padded(m, x, n)?;
        let (_, k) = self.kernels_for(m.format())?;
        let mut acc = vec![0i32; n * rows.len()];
        run(k, m, &xp, rows.clone(), &mut acc);
        for (j, f) in factors.into_iter().enumerate() {
            let r = j * rows.len()..(j + 1) * rows.len();
            rescale(&acc[r.clone()], f, &mut y[r]);
        }
        Ok(())
    }
}

/// The BitLinear forward pass for one activation row: `y = (T · quant(x)) · m · a/127`,
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
