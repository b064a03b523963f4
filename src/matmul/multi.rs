//! The engine's call: one input (f32, or quantized once) times one or several matrices of the
//! same `cols`, all their row chunks claimed from one counter in one dispatch of the thread
//! pool, every temporary in a caller's workspace. Also the row-list product.
//!
//! Bit-identity with the single-matrix calls: the same quantizer ([`quantize_rows`]), the
//! same kernel on whole tiles ([`run_tiles`]), the same rescale ([`rescale_out`]).

use std::ops::Range;

use crate::error::{check_len, Error, Result};
use crate::format::TernaryMatrix;
use crate::kernels::{FormatKernels, KernelSet};
use crate::par;

use super::pad::{check_activations, check_output};
use super::quantized::{quantize_rows, stride_of, QView, QuantizedActivations};
use super::rescale_out;
use super::run::{build_tables, chunks_per_thread, run_tiles, scatter, Tables, PARALLEL_MIN_MACS};
use super::workspace::{
    carve, common_cols, needs_acc, needs_repad, tab_region, Needs, MAX_MATRICES,
};

/// A product's input: `n` f32 rows of `cols` (row-major; quantized by the call, exactly as
/// [`crate::ternary_gemm`] does), or rows quantized once before.
#[derive(Clone, Copy, Debug)]
pub enum Activations<'a> {
    /// `x.len() == n * cols`.
    F32 {
        /// The rows.
        x: &'a [f32],
        /// How many.
        n: usize,
    },
    /// Quantized by [`QuantizedActivations::quantize`].
    Quantized(&'a QuantizedActivations),
}

/// A product's output: `n × rows`, row-major, either the BitLinear result (f32) or the exact
/// int32 accumulators of the quantized input.
#[derive(Debug)]
pub enum Output<'a> {
    /// `y[j * rows + r] = acc * (scale * a_j / 127)`.
    F32(&'a mut [f32]),
    /// `y[j * rows + r] = acc`, exact.
    I32(&'a mut [i32]),
}

impl Output<'_> {
    fn len(&self) -> usize {
        match self {
            Output::F32(y) => y.len(),
            Output::I32(y) => y.len(),
        }
    }

    /// The output's memory as int32 accumulators (an f32 output holds them until rescaled).
    fn as_acc(&mut self) -> &mut [i32] {
        match self {
            Output::F32(y) => bytemuck::cast_slice_mut(y),
            Output::I32(y) => y,
        }
    }
}

/// Where one matrix's accumulators go: straight into its output (one row, whole tiles), or
/// into the workspace, tile-major per chunk, copied out after.
enum Target<'a> {
    Direct,
    Acc(&'a mut [i32]),
}

impl KernelSet {
    /// `ys[i] = ms[i] · x` for every `i`, in one dispatch of the thread pool, every
    /// temporary in `ws` (at least [`Workspace::bytes_for`]`(ms, n)` bytes, else an error
    /// and nothing written). `ms`: 1 to [`MAX_MATRICES`] matrices of the same `cols`; each
    /// `ys[i]` is `n × ms[i].rows()`. Bit-identical to separate calls of
    /// [`KernelSet::gemm_f32`] (f32 output) or of [`KernelSet::gemm_i8`] on the quantized
    /// rows (int32 output).
    ///
    /// [`Workspace::bytes_for`]: super::Workspace::bytes_for
    pub fn products(
        &self,
        ms: &[&TernaryMatrix],
        x: Activations<'_>,
        ys: &mut [Output<'_>],
        ws: &mut super::Workspace,
    ) -> Result<()> {
        self.products_in(ms, x, ys, ws.bytes())
    }

    /// [`KernelSet::products`] with the workspace as raw bytes (the C ABI's caller memory).
    pub(crate) fn products_in(
        &self,
        ms: &[&TernaryMatrix],
        x: Activations<'_>,
        ys: &mut [Output<'_>],
        bytes: &mut [u8],
    ) -> Result<()> {
        let cols = common_cols(ms)?;
        check_len("outputs", ms.len(), ys.len())?;
        let n = match x {
            Activations::F32 { x, n } => {
                check_activations(ms[0], n, x.len())?;
                n
            }
            Activations::Quantized(q) => {
                if q.n() == 0 || q.cols() != cols {
                    return Err(Error::InvalidShape(format!(
                        "quantized activations of {} columns ({} rows) for matrices of {cols}",
                        q.cols(),
                        q.n()
                    )));
                }
                q.n()
            }
        };
        let mut kern: [Option<FormatKernels>; MAX_MATRICES] = [None; MAX_MATRICES];
        for (i, (m, y)) in ms.iter().zip(ys.iter()).enumerate() {
            check_output(n, m.rows(), y.len())?;
            kern[i] = Some(self.kernels_for(m.format())?.1);
        }
        let need = Needs::of(ms, n, matches!(x, Activations::F32 { .. }))?;
        let s = carve(bytes, need)?;
        let stride = stride_of(cols);
        // The quantized rows.
        let qv = match x {
            Activations::F32 { x, .. } => {
                quantize_rows(self, x, cols, stride, s.q, s.absmax)?;
                QView {
                    q: s.q,
                    absmax: s.absmax,
                }
            }
            Activations::Quantized(q) => q.view(),
        };
        // Re-padded copies, one per distinct padded width that needs one.
        let mut repad = &mut *s.repad;
        let mut copies: [(usize, &[i8]); MAX_MATRICES] = [(0, &[]); MAX_MATRICES];
        let mut ncopies = 0;
        for m in ms {
            let kp = m.layout().cols_padded;
            if !needs_repad(n, kp, stride) || copies[..ncopies].iter().any(|c| c.0 == kp) {
                continue;
            }
            let (dst, rest) = std::mem::take(&mut repad).split_at_mut(n * kp);
            repad = rest;
            for (d, src) in dst.chunks_exact_mut(kp).zip(qv.q.chunks_exact(stride)) {
                d[..cols].copy_from_slice(&src[..cols]);
                d[cols..].fill(0);
            }
            copies[ncopies] = (kp, dst);
            ncopies += 1;
        }
        let xs_of = |m: &TernaryMatrix| -> &[i8] {
            let kp = m.layout().cols_padded;
            if needs_repad(n, kp, stride) {
                copies[..ncopies]
                    .iter()
                    .find(|c| c.0 == kp)
                    .expect("a copy for each width")
                    .1
            } else {
                &qv.q[..n * kp]
            }
        };
        // The int4 kernels where every activation fits (FormatKernels::for_activations).
        for (k, m) in kern.iter_mut().zip(ms) {
            *k = k.map(|k| k.for_activations(xs_of(m)));
        }
        // Lookup tables (TL1 / TL2), built once here for the whole K and shared by every
        // chunk of the dispatch.
        let mut tab = &mut *s.tab;
        let mut tables: [Option<Tables<'_>>; MAX_MATRICES] = std::array::from_fn(|_| None);
        for (i, m) in ms.iter().enumerate() {
            let (b, rest) = std::mem::take(&mut tab).split_at_mut(tab_region(m, n));
            tab = rest;
            tables[i] = build_tables(kern[i].expect("set"), m, xs_of(m), n, b);
        }
        // Targets.
        let mut acc = &mut *s.acc;
        let mut targets: [Target<'_>; MAX_MATRICES] = std::array::from_fn(|_| Target::Direct);
        for (i, m) in ms.iter().enumerate() {
            if needs_acc(m, n) {
                let (a, rest) = std::mem::take(&mut acc).split_at_mut(n * m.layout().rows_padded);
                acc = rest;
                targets[i] = Target::Acc(a);
            }
        }
        // The work, and how it is cut.
        let work: usize = ms
            .iter()
            .map(|m| {
                m.layout()
                    .rows_padded
                    .saturating_mul(m.layout().cols_padded)
                    .saturating_mul(n)
            })
            .fold(0, usize::saturating_add);
        let threads = if work < PARALLEL_MIN_MACS {
            1
        } else {
            par::num_threads()
        };
        let is_f32: [bool; MAX_MATRICES] =
            std::array::from_fn(|i| matches!(ys.get(i), Some(Output::F32(_))));
        // Where each matrix's accumulators go (its output, or its workspace region), and for
        // the latter the output they are scattered into.
        let mut accs: [&mut [i32]; MAX_MATRICES] = Default::default();
        let mut sinks: [Option<par::Disjoint<'_, i32>>; MAX_MATRICES] =
            std::array::from_fn(|_| None);
        for (i, (y, t)) in ys.iter_mut().zip(targets.iter_mut()).enumerate() {
            accs[i] = match t {
                Target::Direct => y.as_acc(),
                Target::Acc(a) => {
                    sinks[i] = Some(par::Disjoint::new(y.as_acc()));
                    a
                }
            };
        }
        // One piece of work: matrix i's padded rows r into `acc`, then written (and rescaled)
        // into its output by the thread that computed it, while they are in its cache.
        let job = |i: usize, r: Range<usize>, acc: &mut [i32]| {
            let m = ms[i];
            let k = kern[i].expect("set");
            run_tiles(k, m, xs_of(m), n, r.clone(), acc, tables[i].as_ref());
            match &sinks[i] {
                Some(dst) => {
                    let rescale = |j: usize, live: Range<usize>, piece: &mut [i32]| {
                        if is_f32[i] {
                            let y = bytemuck::cast_slice_mut(piece);
                            rescale_out(self, m, live, y, qv.absmax[j]);
                        }
                    };
                    let rows = m.rows();
                    scatter(
                        acc,
                        r.len(),
                        r.start.min(rows)..r.end.min(rows),
                        rows,
                        dst,
                        rescale,
                    )
                }
                // A direct target: one activation row, no padding rows.
                None if is_f32[i] => {
                    rescale_out(self, m, r, bytemuck::cast_slice_mut(acc), qv.absmax[0])
                }
                None => {}
            }
        };
        let count = ms.len();
        if threads <= 1 {
            for (i, acc) in accs.into_iter().take(count).enumerate() {
                job(i, 0..ms[i].layout().rows_padded, acc);
            }
            return Ok(());
        }
        let mut jobs = Vec::new();
        for (i, (m, mut rest)) in ms.iter().zip(accs).enumerate() {
            let l = m.layout();
            let tiles = l.rows_padded / l.row_tile;
            let share = (l.rows_padded * l.cols_padded * n) as f64 / work as f64;
            let chunks = par::chunks_for(tiles, threads, share, chunks_per_thread(m));
            for c in 0..chunks {
                let r = par::chunk(tiles, chunks, c, l.row_tile, l.rows_padded);
                if r.is_empty() {
                    continue;
                }
                let (acc, tail) = std::mem::take(&mut rest).split_at_mut(n * r.len());
                rest = tail;
                jobs.push((i, r, acc));
            }
        }
        par::run_jobs(jobs, threads, |(i, r, acc)| job(i, r, acc));
        Ok(())
    }

    /// One activation row times the rows `rows` of `m` (any order; a row may repeat), on the
    /// calling thread: `y[i]` is row `rows[i]` of the whole product, bit for bit
    /// (`y.len() == rows.len()`). Any index `>= m.rows()` is an error before anything is
    /// computed or written. Runs of consecutive indices share their tiles; each other index
    /// costs one tile of the format (4 rows for I2_S, 64 for TL1/TL2, 256 for I2_S_COL). `x` must hold one row.
    pub fn gemv_row_list(
        &self,
        m: &TernaryMatrix,
        x: Activations<'_>,
        rows: &[usize],
        mut y: Output<'_>,
        ws: &mut super::Workspace,
    ) -> Result<()> {
        let cols = common_cols(&[m])?;
        check_len("output", rows.len(), y.len())?;
        if let Some(&bad) = rows.iter().find(|&&r| r >= m.rows()) {
            return Err(Error::InvalidShape(format!(
                "row {bad} is outside 0..{}",
                m.rows()
            )));
        }
        let one = |n: usize| {
            if n == 1 {
                Ok(())
            } else {
                Err(Error::InvalidShape(format!(
                    "a row list takes one activation row, not {n}"
                )))
            }
        };
        match x {
            Activations::F32 { x, n } => {
                one(n)?;
                check_activations(m, 1, x.len())?;
            }
            Activations::Quantized(q) => {
                one(q.n())?;
                if q.cols() != cols {
                    return Err(Error::InvalidShape(format!(
                        "quantized activations of {} columns for a matrix of {cols}",
                        q.cols()
                    )));
                }
            }
        }
        let k = self.kernels_for(m.format())?.1;
        let mut need = Needs::of(&[m], 1, matches!(x, Activations::F32 { .. }))?;
        need.acc = 0;
        let s = carve(ws.bytes(), need)?;
        let stride = stride_of(cols);
        let qv = match x {
            Activations::F32 { x, .. } => {
                quantize_rows(self, x, cols, stride, s.q, s.absmax)?;
                QView {
                    q: s.q,
                    absmax: s.absmax,
                }
            }
            Activations::Quantized(q) => q.view(),
        };
        let l = m.layout();
        let kp = l.cols_padded;
        let xs: &[i8] = if needs_repad(1, kp, stride) {
            s.repad[..cols].copy_from_slice(&qv.q[..cols]);
            s.repad[cols..kp].fill(0);
            &s.repad[..kp]
        } else {
            &qv.q[..kp]
        };
        let k = k.for_activations(xs);
        let tables = build_tables(k, m, xs, 1, s.tab);
        let tables = tables.as_ref();
        // One tile's accumulators, for the ends of runs.
        let tile = l.row_tile;
        let mut edge = [0i32; crate::format::MAX_ROW_TILE];
        assert!(tile <= edge.len());
        let mut edge_tile = usize::MAX;
        let out = y.as_acc();
        let mut i = 0;
        while i < rows.len() {
            // The run rows[i..j] of consecutive ascending indices.
            let mut j = i + 1;
            while j < rows.len() && rows[j] == rows[j - 1] + 1 {
                j += 1;
            }
            let run = rows[i]..rows[j - 1] + 1;
            let (first, last) = (run.start.div_ceil(tile) * tile, run.end / tile * tile);
            let mut from_edge = |r: Range<usize>, out: &mut [i32]| {
                for (o, row) in out.iter_mut().zip(r) {
                    let t = row / tile * tile;
                    if t != edge_tile {
                        run_tiles(k, m, xs, 1, t..t + tile, &mut edge[..tile], tables);
                        edge_tile = t;
                    }
                    *o = edge[row - t];
                }
            };
            let o = &mut out[i..j];
            if first < last {
                let (head, rest) = o.split_at_mut(first - run.start);
                let (mid, tail) = rest.split_at_mut(last - first);
                from_edge(run.start..first, head);
                run_tiles(k, m, xs, 1, first..last, mid, tables);
                from_edge(last..run.end, tail);
            } else {
                from_edge(run.clone(), o);
            }
            i = j;
        }
        if let Output::F32(y) = y {
            // Rescaled one run at a time, each with its own rows (see `rescale_out`).
            let mut i = 0;
            while i < rows.len() {
                let mut j = i + 1;
                while j < rows.len() && rows[j] == rows[j - 1] + 1 {
                    j += 1;
                }
                rescale_out(
                    self,
                    m,
                    rows[i]..rows[j - 1] + 1,
                    &mut y[i..j],
                    qv.absmax[0],
                );
                i = j;
            }
        }
        Ok(())
    }
}
