//! Running a kernel: whole row tiles to the raw kernel, ragged ends through a small buffer,
//! rows split over threads ([`crate::par`]). The only place a raw kernel is called.

use std::ops::Range;
use std::sync::Mutex;

use super::pad::PaddedActivations;
use crate::format::TernaryMatrix;
use crate::kernels::FormatKernels;
use crate::par;

/// Below this many multiply-adds a product runs on the calling thread: waking rayon's
/// workers costs more than it gives. Measured (I2_S AVX-512, cache-resident, back-to-back
/// calls, 2 threads, Sapphire-Rapids-class KVM guest): 2048x2048 = 4.2M MACs took 25.6 µs on
/// one thread and 16.3 µs on two; 1024x2048 (2.1M, below this) takes 12.5 µs on one.
pub const PARALLEL_MIN_MACS: usize = 1 << 22;

/// Runs kernel `k` over the whole tiles `tiles` of `m` for `n` activation rows `xs` (each
/// `cols_padded` long), writing `out[j * tiles.len() + r - tiles.start]`: the one raw call.
/// Every condition the kernel trusts is asserted here, so a caller's mistake panics rather
/// than reaching the kernel; `k` must come from `kernels_for(m.format())`.
pub(crate) fn run_tiles(
    k: FormatKernels,
    m: &TernaryMatrix,
    xs: &[i8],
    n: usize,
    tiles: Range<usize>,
    out: &mut [i32],
) {
    let l = m.layout();
    let (tile, kp) = (l.row_tile, l.cols_padded);
    let (rb, re) = (tiles.start, tiles.end);
    assert!(
        n >= 1
            && Some(xs.len()) == n.checked_mul(kp)
            && rb < re
            && rb.is_multiple_of(tile)
            && re.is_multiple_of(tile)
            && re <= l.rows_padded
            && Some(out.len()) == n.checked_mul(re - rb),
        "kernel arguments do not match the matrix"
    );
    // SAFETY: rb..re are whole tiles inside the padded rows (asserted), `xs` holds n × kp
    // activations, `out` holds n × (re - rb) outputs (asserted), and the packed bytes are
    // `m`'s, in the layout of `m.format()`, the format `k` was handed out for.
    unsafe {
        if n == 1 {
            (k.gemv)(
                m.packed_bytes().as_ptr(),
                kp,
                xs.as_ptr(),
                rb,
                re,
                out.as_mut_ptr(),
            )
        } else {
            (k.gemm)(
                m.packed_bytes().as_ptr(),
                kp,
                xs.as_ptr(),
                n,
                rb,
                re,
                out.as_mut_ptr(),
            )
        }
    }
}

/// Runs kernel `k` for `rows`, writing `y[j * rows.len() + r - rows.start]`. Rows inside
/// whole tiles go straight to the kernel; a ragged tile at either end is computed whole into
/// a small buffer and the wanted rows copied out, so kernels only ever see whole tiles.
///
/// The caller has checked `rows` against `m` (`check_rows`), `x` against `m`
/// (`PaddedActivations` is `n × cols_padded`) and `y.len() == n * rows.len()`, and `k` came
/// from `kernels_for(m.format())`; the assertions below restate that before any raw call.
pub(crate) fn run(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    rows: Range<usize>,
    y: &mut [i32],
) {
    let l = m.layout();
    let (tile, kp, n) = (l.row_tile, l.cols_padded, x.n());
    let len = rows.len();
    let xs = x.as_slice();
    assert!(
        !rows.is_empty()
            && rows.end <= l.rows
            && Some(xs.len()) == n.checked_mul(kp)
            && Some(y.len()) == n.checked_mul(len),
        "kernel arguments do not match the matrix"
    );
    let call = |rb: usize, re: usize, out: &mut [i32]| run_tiles(k, m, xs, n, rb..re, out);
    let first = rows.start.div_ceil(tile) * tile;
    let last = rows.end / tile * tile;
    let mut tmp = Vec::new();
    // Computes tiles [tb, te) into `tmp` and copies rows [a, b) of them into y.
    let mut via_tmp = |tb: usize, te: usize, a: usize, b: usize, y: &mut [i32]| {
        tmp.clear();
        tmp.resize(n * (te - tb), 0);
        call(tb, te, &mut tmp);
        for j in 0..n {
            y[j * len + (a - rows.start)..][..b - a]
                .copy_from_slice(&tmp[j * (te - tb) + (a - tb)..][..b - a]);
        }
    };
    if first >= last {
        // The whole range sits within one or two tiles.
        let (tb, te) = (rows.start / tile * tile, rows.end.div_ceil(tile) * tile);
        via_tmp(tb, te, rows.start, rows.end, y);
        return;
    }
    if rows.start < first {
        via_tmp(first - tile, first, rows.start, first, y);
    }
    if last < rows.end {
        via_tmp(last, last + tile, last, rows.end, y);
    }
    if n == 1 {
        call(first, last, &mut y[first - rows.start..last - rows.start]);
    } else {
        via_tmp(first, last, first, last, y);
    }
}

/// Runs kernel `k` over all rows of `m`, split over the pool in use ([`par::set_num_threads`];
/// by default rayon's, which honours `RAYON_NUM_THREADS`) in whole tiles, the calling thread working from the start
/// ([`crate::par`]); `y` is `n × rows`, row-major.
pub(crate) fn par_run(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    y: &mut [i32],
) {
    let (rows, n, tile) = (m.rows(), x.n(), m.layout().row_tile);
    let work = rows.saturating_mul(m.cols()).saturating_mul(n);
    let threads = if work < PARALLEL_MIN_MACS {
        1
    } else {
        par::num_threads()
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
