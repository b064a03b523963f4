//! The products: check the arguments, quantize and pad x (`matmul/pad.rs`), ask the registry
//! for the matrix format's kernel, run it over whole row tiles on rayon's threads
//! (`matmul/run.rs`), rescale. One straight line, downwards: this module calls [`crate::kernels`] only to choose
//! a kernel, and the registry never calls back. Every step's maths is `docs/FORMATS.md` §1.

use std::ops::Range;

use crate::error::Result;
use crate::format::{Scales, TernaryMatrix};
use crate::kernels::{self, KernelSet};
use crate::quant::act_factor;

mod multi;
mod pad;
mod quantized;
mod run;
mod workspace;

pub use multi::{Activations, Output};
pub(crate) use pad::check_rows;
use pad::{check_output, PaddedActivations};
pub use quantized::QuantizedActivations;
pub use run::PARALLEL_MIN_MACS;
use run::{par_run, par_run_then, run};
pub use workspace::{Workspace, MAX_MATRICES};

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
    rescale_with(k, m, rows, y, absmax, act_factor);
}

/// [`rescale`] for any activation quantizer: row `j` with scale `a_j` becomes
/// `acc * (m * part(a_j))` or `acc[i] * (s_i * part(a_j))` (int8: `part(a) = a / 127`, so
/// `m * part(a)` is [`crate::quant::output_factor`]; int4: `β / sqrtf(7)` or `a / 7`).
fn rescale_with(
    k: &KernelSet,
    m: &TernaryMatrix,
    rows: Range<usize>,
    y: &mut [f32],
    act_scales: &[f32],
    part: impl Fn(f32) -> f32,
) {
    let act = k.act();
    for (row, &a) in y.chunks_exact_mut(rows.len()).zip(act_scales) {
        match m.scales() {
            Scales::One(s) => (act.rescale)(row, s * part(a)),
            Scales::PerRow(s) => (act.rescale_rows)(row, &s[rows.clone()], part(a)),
        }
    }
}

/// Rescales the f32 output `y` of one activation row (absmax `a`) for `m`'s output rows
/// `rows` (`y.len() == rows.len()`): [`rescale`] for one activation row, in place. The one
/// rescale of the engine's calls ([`KernelSet::products`], [`KernelSet::gemv_row_list`]).
fn rescale_out(k: &KernelSet, m: &TernaryMatrix, rows: Range<usize>, y: &mut [f32], a: f32) {
    debug_assert_eq!(rows.len(), y.len());
    rescale(k, m, rows, y, &[a]);
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

    /// [`KernelSet::gemm_i8`] through the int4 kernels (`docs/FORMATS.md` §13) of the set
    /// that runs the matrix's format under this one, whatever the products would choose:
    /// `Unsupported` where they have none, `InvalidData` where a value of `x` is outside
    /// −8..=7. Hidden: for the tests and benchmarks, which compare them with the others.
    #[doc(hidden)]
    pub fn gemm_i4(&self, m: &TernaryMatrix, x: &[i8], n: usize, y: &mut [i32]) -> Result<()> {
        let xp = PaddedActivations::new(m, x, n)?;
        check_output(n, m.rows(), y.len())?;
        if !kernels::fits_i4(x) {
            return Err(crate::Error::InvalidData(
                "int4 kernels take activations in -8..=7 only".into(),
            ));
        }
        let (name, k) = self.kernels_for(m.format())?;
        let k = k.i4_form().ok_or_else(|| {
            crate::Error::Unsupported(format!(
                "no int4 kernel for format {} in set {name}",
                m.format().name()
            ))
        })?;
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
        // Each chunk of each activation row rescaled by the thread that computed it, as soon
        // as it is done (elementwise: the same bits as one pass over y).
        par_run_then(k, m, &xp, as_acc(y), |j, rows, acc| {
            rescale_out(self, m, rows, bytemuck::cast_slice_mut(acc), absmax[j])
        });
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

thread_local! {
    /// This thread's workspace for the convenient forms of the engine's calls
    /// ([`ternary_gemv_multi`] and the others), kept for its next call.
    static WORKSPACE: std::cell::Cell<Workspace> = std::cell::Cell::new(Workspace::default());
}

/// The largest workspace a thread keeps for its next call (64 MiB).
const WORKSPACE_KEEP: usize = 64 << 20;

/// Runs `f` with this thread's workspace grown to `bytes` (a nested call gets an empty one).
fn with_workspace<R>(bytes: usize, f: impl FnOnce(&mut Workspace) -> R) -> R {
    let mut ws = WORKSPACE.try_with(|c| c.take()).unwrap_or_default();
    ws.reserve(bytes);
    let r = f(&mut ws);
    if ws.len() <= WORKSPACE_KEEP {
        let _ = WORKSPACE.try_with(|c| c.set(ws));
    }
    r
}

/// `ys[i] = ms[i] · x` for every `i` with the active kernel set, in one dispatch, every
/// temporary in `ws`: see [`KernelSet::products`].
pub fn products(
    ms: &[&TernaryMatrix],
    x: Activations<'_>,
    ys: &mut [Output<'_>],
    ws: &mut Workspace,
) -> Result<()> {
    kernels::active()?.products(ms, x, ys, ws)
}

/// Rows `rows` of `m · x` for one activation row with the active kernel set, temporaries in
/// `ws`: see [`KernelSet::gemv_row_list`].
pub fn gemv_row_list(
    m: &TernaryMatrix,
    x: Activations<'_>,
    rows: &[usize],
    y: Output<'_>,
    ws: &mut Workspace,
) -> Result<()> {
    kernels::active()?.gemv_row_list(m, x, rows, y, ws)
}

/// The f32 outputs `ys` as [`Output`]s in a fixed array (no allocation).
fn f32_outputs<'a>(ys: &'a mut [&mut [f32]]) -> Result<[Output<'a>; MAX_MATRICES]> {
    if ys.len() > MAX_MATRICES {
        return Err(crate::Error::InvalidShape(format!(
            "{} outputs in one call; at most {MAX_MATRICES}",
            ys.len()
        )));
    }
    let mut it = ys.iter_mut();
    Ok(std::array::from_fn(|_| match it.next() {
        Some(y) => Output::F32(y),
        None => Output::F32(&mut []),
    }))
}

/// One activation row times several matrices of the same `cols` (q, k, v; gate, up) in one
/// dispatch of the thread pool: `ys[i] = ternary_gemv(ms[i], x)`, bit for bit, with `x`
/// quantized once. Temporaries live in a workspace this thread keeps.
///
/// ```
/// use bitnet_kernels::{ternary_gemv, ternary_gemv_multi, Format, TernaryMatrix};
/// let q = TernaryMatrix::from_ternary(&[1, -1, 0, 0, 1, 1], 2, 3, 0.5, Format::I2S)?;
/// let k = TernaryMatrix::from_ternary(&[1, 1, 1], 1, 3, 2.0, Format::I2S)?;
/// let x = [1.0, 0.5, -1.0];
/// let (mut yq, mut yk) = ([0.0f32; 2], [0.0f32; 1]);
/// ternary_gemv_multi(&[&q, &k], &x, &mut [&mut yq, &mut yk])?;
/// let mut want = [0.0f32; 1];
/// ternary_gemv(&k, &x, &mut want)?;
/// assert_eq!(yk, want);
/// # Ok::<(), bitnet_kernels::Error>(())
/// ```
pub fn ternary_gemv_multi(ms: &[&TernaryMatrix], x: &[f32], ys: &mut [&mut [f32]]) -> Result<()> {
    ternary_gemm_multi(ms, x, 1, ys)
}

/// [`ternary_gemv_multi`] for `n` activation rows: `ys[i] = ternary_gemm(ms[i], x, n)`.
pub fn ternary_gemm_multi(
    ms: &[&TernaryMatrix],
    x: &[f32],
    n: usize,
    ys: &mut [&mut [f32]],
) -> Result<()> {
    let k = kernels::active()?;
    let count = ys.len();
    let mut outs = f32_outputs(ys)?;
    let bytes = Workspace::bytes_for(ms, n)?;
    with_workspace(bytes, |ws| {
        k.products(ms, Activations::F32 { x, n }, &mut outs[..count], ws)
    })
}

/// The BitLinear forward pass of activations quantized once ([`QuantizedActivations`]):
/// `y` (`n × rows`) is exactly what [`ternary_gemm`] gives for the same f32 rows.
pub fn ternary_gemm_quantized(
    m: &TernaryMatrix,
    x: &QuantizedActivations,
    y: &mut [f32],
) -> Result<()> {
    let bytes = Workspace::bytes_for(&[m], x.n().max(1))?;
    with_workspace(bytes, |ws| {
        products(&[m], Activations::Quantized(x), &mut [Output::F32(y)], ws)
    })
}

/// The exact int32 accumulators of activations quantized once: `y` (`n × rows`) is what
/// [`gemm_i8`] gives for its int8 rows.
pub fn gemm_i8_quantized(m: &TernaryMatrix, x: &QuantizedActivations, y: &mut [i32]) -> Result<()> {
    let bytes = Workspace::bytes_for(&[m], x.n().max(1))?;
    with_workspace(bytes, |ws| {
        products(&[m], Activations::Quantized(x), &mut [Output::I32(y)], ws)
    })
}

/// [`ternary_gemv`] for a list of output rows only, on the calling thread: `y[i]` is
/// element `rows[i]` of the whole product, bit for bit (`y.len() == rows.len()`; any order,
/// repeats allowed, an index `>= m.rows()` is an error before anything is written). For a
/// gated FFN's up-projection where the gate is non-zero. See [`KernelSet::gemv_row_list`].
pub fn ternary_gemv_row_list(
    m: &TernaryMatrix,
    x: &[f32],
    rows: &[usize],
    y: &mut [f32],
) -> Result<()> {
    let bytes = Workspace::bytes_for(&[m], 1)?;
    with_workspace(bytes, |ws| {
        gemv_row_list(m, Activations::F32 { x, n: 1 }, rows, Output::F32(y), ws)
    })
}

/// The BitLinear forward pass of one row with BitNet a4.8's int4 activations: `x`
/// (`m.cols()` floats) is quantized with [`crate::quantize_activations_i4`] (`mode`), the
/// int4 values multiplied exactly like any int8 row ([`gemv_i8`]) and each accumulator
/// rescaled: `y[i] = acc[i] as f32 * f` with
/// `f = `[`crate::quant::output_factor_i4`]`(m.scale(), scale, mode)` (`m * (β / sqrtf(7))`
/// for absmean, `m * (a / 7)` for absmax, in that f32 order).
///
/// ```
/// use bitnet_kernels::{ternary_gemv_i4, Format, I4Mode, TernaryMatrix};
/// let m = TernaryMatrix::from_ternary(&[1, -1, 0, 0, 1, 1], 2, 3, 0.5, Format::I2S).unwrap();
/// let mut y = [0.0f32; 2];
/// ternary_gemv_i4(&m, &[7.0, 3.5, -7.0], I4Mode::AbsMax, &mut y).unwrap();
/// // int4: [7, 4, -7] (3.5 is a tie: 4); acc = [3, -3]; factor = 0.5 * (7 / 7)
/// assert_eq!(y, [1.5, -1.5]);
/// ```
pub fn ternary_gemv_i4(
    m: &TernaryMatrix,
    x: &[f32],
    mode: crate::I4Mode,
    y: &mut [f32],
) -> Result<()> {
    let k = kernels::active()?;
    check_output(1, m.rows(), y.len())?;
    // The int8 path's steps with the int4 quantizer: straight into the padded scratch rows,
    // the same kernels and threads, the same rescale with the int4 activation factor.
    let (xp, scale) =
        PaddedActivations::quantize(m, x, 1, |x, q| crate::quantize_activations_i4(x, q, mode))?;
    let (_, kk) = k.kernels_for(m.format())?;
    par_run(kk, m, &xp, as_acc(y));
    rescale_with(k, m, 0..m.rows(), y, &scale, |s| {
        crate::quant::act_factor_i4(s, mode)
    });
    Ok(())
}
