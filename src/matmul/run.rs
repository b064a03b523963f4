//! Running a kernel: whole row tiles to the raw kernel, ragged ends through a small buffer,
//! rows split over threads ([`crate::par`]). The only place a raw kernel is called.

use std::cell::Cell;
use std::ops::Range;

use super::pad::PaddedActivations;
use crate::format::TernaryMatrix;
use crate::kernels::{FormatKernels, TABLE_ALIGN};
use crate::par;

/// Below this many multiply-adds a product runs on the calling thread: waking rayon's
/// workers costs more than it gives. Measured (I2_S AVX-512, cache-resident, back-to-back
/// calls, 2 threads, Sapphire-Rapids-class KVM guest): 2048x2048 = 4.2M MACs took 25.6 µs on
/// one thread and 16.3 µs on two; 1024x2048 (2.1M, below this) takes 12.5 µs on one.
pub const PARALLEL_MIN_MACS: usize = 1 << 22;

/// The most bytes of lookup tables one product builds (its `n` activation rows together);
/// beyond it the kernels' bounded form runs (tables rebuilt per chunk of K on their stack).
/// 16 MiB: a GEMM of 128 rows of 14336 columns in TL2 needs about 19 MiB.
pub(crate) const TABLE_MAX_BYTES: usize = 16 << 20;

/// The one-pass lookup tables of a product's `n` activation rows for one matrix, built once
/// before its rows are dispatched ([`build_tables`]) and read by every thread.
pub(crate) struct Tables<'a> {
    /// `n` rows of `per_row` bytes, at [`TABLE_ALIGN`].
    tab: &'a [u8],
    per_row: usize,
    /// `kernels_for` of the format and `kp` they were built for (checked at use).
    build: usize,
    kp: usize,
}

/// The bytes of the tables of `n` activation rows of `m` under `k` (with their alignment
/// slack), or `None` where `k` has no one-pass form or they would exceed [`TABLE_MAX_BYTES`].
pub(crate) fn table_bytes(k: FormatKernels, m: &TernaryMatrix, n: usize) -> Option<usize> {
    let t = k.tables?;
    let bytes = t.bytes(m.format(), m.layout().cols_padded).checked_mul(n)?;
    (bytes <= TABLE_MAX_BYTES).then_some(bytes + TABLE_ALIGN)
}

/// Builds the tables of the `n` activation rows `xs` (each `cols_padded` long) for `m` under
/// `k` in `buf` (any address), or returns `None` (the bounded kernels run) where `k` has no
/// one-pass form or `buf` is too small for them.
pub(crate) fn build_tables<'a>(
    k: FormatKernels,
    m: &TernaryMatrix,
    xs: &[i8],
    n: usize,
    buf: &'a mut [u8],
) -> Option<Tables<'a>> {
    let t = k.tables?;
    let kp = m.layout().cols_padded;
    let per_row = t.bytes(m.format(), kp);
    let total = per_row.checked_mul(n)?;
    let skip = buf.as_ptr().align_offset(TABLE_ALIGN);
    let buf = buf.get_mut(skip..)?.get_mut(..total)?;
    assert!(
        Some(xs.len()) == n.checked_mul(kp),
        "activations do not match the matrix"
    );
    for (j, tab) in buf.chunks_exact_mut(per_row.max(1)).take(n).enumerate() {
        // SAFETY: `xs` row j holds kp activations; `tab` is per_row bytes (the kernel's
        // size for kp), aligned to TABLE_ALIGN.
        unsafe { (t.build)(xs[j * kp..].as_ptr(), kp, tab.as_mut_ptr()) };
    }
    Some(Tables {
        tab: buf,
        per_row,
        build: t.build as usize,
        kp,
    })
}

thread_local! {
    /// Tables built on the calling thread when the caller gave no workspace (u64s: 8-byte
    /// aligned bytes).
    static TABLES: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
    /// One chunk's tile-major accumulators on the thread that runs it.
    static ACC: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on `len` elements (contents arbitrary) of this thread's buffer `key`, grown as
/// needed and kept for the thread's next call (as the padded activations are, `pad.rs`)
/// unless it grew past `keep` elements. Taken out while in use, so a nested call simply
/// allocates.
fn with_kept<T: Copy + Default + 'static, R>(
    key: &'static std::thread::LocalKey<Cell<Vec<T>>>,
    len: usize,
    keep: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    let mut buf = key.try_with(Cell::take).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    let r = f(&mut buf[..len]);
    if buf.len() <= keep {
        let _ = key.try_with(|c| c.set(buf));
    }
    r
}

/// Runs `f` with the tables of `xs` for `m` built in this thread's kept buffer (`None` where
/// `k` has no one-pass form or they are too large).
fn with_local_tables<R>(
    k: FormatKernels,
    m: &TernaryMatrix,
    xs: &[i8],
    n: usize,
    f: impl FnOnce(Option<&Tables<'_>>) -> R,
) -> R {
    let Some(bytes) = table_bytes(k, m, n) else {
        return f(None);
    };
    let keep = (TABLE_MAX_BYTES + TABLE_ALIGN).div_ceil(8);
    with_kept(&TABLES, bytes.div_ceil(8), keep, |buf| {
        f(build_tables(k, m, xs, n, bytemuck::cast_slice_mut(buf)).as_ref())
    })
}

/// Runs kernel `k` over the whole tiles `tiles` of `m` for `n` activation rows `xs` (each
/// `cols_padded` long), writing `out[j * tiles.len() + r - tiles.start]`: the one raw call.
/// With `tab` (the rows' tables, [`build_tables`]) the one-pass kernel runs, else the
/// bounded one. Every condition the kernel trusts is asserted here, so a caller's mistake
/// panics rather than reaching the kernel; `k` must come from `kernels_for(m.format())`.
pub(crate) fn run_tiles(
    k: FormatKernels,
    m: &TernaryMatrix,
    xs: &[i8],
    n: usize,
    tiles: Range<usize>,
    out: &mut [i32],
    tab: Option<&Tables<'_>>,
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
    if let (Some(t), Some(tab)) = (k.tables, tab) {
        assert!(
            tab.build == t.build as usize
                && tab.kp == kp
                && tab.per_row == t.bytes(m.format(), kp)
                && Some(tab.tab.len()) == n.checked_mul(tab.per_row)
                && tab.tab.as_ptr().align_offset(TABLE_ALIGN) == 0,
            "tables do not match the kernel"
        );
        for j in 0..n {
            let o = &mut out[j * (re - rb)..(j + 1) * (re - rb)];
            // SAFETY: as below, with the tables of activation row j built by this kernel
            // set's builder for this format and kp (asserted: same builder, size, alignment).
            unsafe {
                (t.gemv)(
                    m.packed_bytes().as_ptr(),
                    kp,
                    tab.tab[j * tab.per_row..].as_ptr(),
                    rb,
                    re,
                    o.as_mut_ptr(),
                )
            }
        }
        return;
    }
    // SAFETY: rb..re are whole tiles inside the padded rows (asserted), `xs` holds n × kp
    // activations, `out` holds n × (re - rb) outputs (asserted), and the packed bytes are
    // `m`'s, in the layout of `m.format()`, the format `k` was handed out for.
    unsafe {
        if n == 1 {
            (k.gemv)(
                m.packed_bytes().as_ptr(),
                kp,
                l.rows_padded,
                xs.as_ptr(),
                rb,
                re,
                out.as_mut_ptr(),
            )
        } else {
            (k.gemm)(
                m.packed_bytes().as_ptr(),
                kp,
                l.rows_padded,
                xs.as_ptr(),
                n,
                rb,
                re,
                out.as_mut_ptr(),
            )
        }
    }
}

/// Runs kernel `k` (its int4 form where every activation fits) for `rows`, writing `y[j * rows.len() + r - rows.start]`. Rows inside
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
    let k = k.for_activations(x.as_slice());
    with_local_tables(k, m, x.as_slice(), x.n(), |tab| {
        run_with(k, m, x, rows, y, tab)
    })
}

/// [`run`] with the tables built (or not) by the caller.
fn run_with(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    rows: Range<usize>,
    y: &mut [i32],
    tab: Option<&Tables<'_>>,
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
    let call = |rb: usize, re: usize, out: &mut [i32]| run_tiles(k, m, xs, n, rb..re, out, tab);
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

/// Runs kernel `k` (its int4 form where every activation fits) over all rows of `m`, split over the pool in use ([`par::set_num_threads`];
/// by default rayon's, which honours `RAYON_NUM_THREADS`) in whole tiles, the calling thread working from the start
/// ([`crate::par`]); `y` is `n × rows`, row-major.
pub(crate) fn par_run(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    y: &mut [i32],
) {
    par_run_steps(k, m, x, y, None)
}

/// A step run on each chunk's finished accumulators of one activation row (the row `j`, the
/// chunk's rows, their part of `y`'s row `j`).
type ChunkStep<'a> = dyn Fn(usize, Range<usize>, &mut [i32]) + Sync + 'a;

/// [`par_run`] that also calls `then(j, rows, out)` on each chunk's finished accumulators of
/// each activation row `j` (`out` is row `j` of `y` for `rows`), on the thread that computed
/// them, while they are in its cache: the f32 products rescale there, in parallel, instead
/// of in a serial pass after the dispatch.
pub(crate) fn par_run_then(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    y: &mut [i32],
    then: impl Fn(usize, Range<usize>, &mut [i32]) + Sync,
) {
    par_run_steps(k, m, x, y, Some(&then))
}

/// [`par_run`] and [`par_run_then`].
fn par_run_steps(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    y: &mut [i32],
    then: Option<&ChunkStep<'_>>,
) {
    // The int4 kernels where every activation fits (one scan, here, for every chunk); the
    // tables are built once here, before the dispatch, and shared by every chunk.
    let k = k.for_activations(x.as_slice());
    with_local_tables(k, m, x.as_slice(), x.n(), |tab| {
        par_run_with(k, m, x, y, tab, then)
    })
}

fn par_run_with(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    y: &mut [i32],
    tab: Option<&Tables<'_>>,
    then: Option<&ChunkStep<'_>>,
) {
    let (rows, n, tile) = (m.rows(), x.n(), m.layout().row_tile);
    let work = rows.saturating_mul(m.cols()).saturating_mul(n);
    let threads = if work < PARALLEL_MIN_MACS {
        1
    } else {
        par::num_threads()
    };
    let per = chunks_per_thread(m);
    if n == 1 {
        return par::for_each_chunk_per(
            rows,
            tile,
            threads,
            per,
            |ranges| par::split_rows(y, 1, ranges),
            |r, out| {
                run_with(k, m, x, r.clone(), out, tab);
                if let Some(then) = then {
                    then(0, r, out);
                }
            },
        );
    }
    // n rows of output per row of m: the kernel writes a chunk's accumulators tile-major
    // into this thread's scratch, and the job copies them into its column block of each
    // output row (then runs `then` on it) while they are in its cache.
    let dst = par::Disjoint::new(y);
    par::for_each_chunk_per(
        rows,
        tile,
        threads,
        per,
        |ranges| vec![(); ranges.len()],
        |r, ()| {
            with_acc_scratch(n * r.len(), |acc| {
                run_with(k, m, x, r.clone(), acc, tab);
                scatter(acc, r.len(), r.clone(), rows, &dst, |j, live, piece| {
                    if let Some(then) = then {
                        then(j, live, piece);
                    }
                });
            })
        },
    );
}

/// Writes the tile-major accumulators `acc` of one chunk (activation row `j`'s `len` values
/// at `acc[j * len..]`, for the chunk's rows from its first on) into the output `dst`
/// (activation rows of `rows` each): the `live.len()` first values of each go to
/// `dst[j * rows + live]` (the rest are padding rows, dropped), and `then(j, live, piece)`
/// runs on each piece written. The chunks of a dispatch own disjoint row ranges, so the
/// pieces of different calls never overlap. `dst` must hold `acc.len() / len` rows.
pub(crate) fn scatter(
    acc: &[i32],
    len: usize,
    live: Range<usize>,
    rows: usize,
    dst: &par::Disjoint<'_, i32>,
    mut then: impl FnMut(usize, Range<usize>, &mut [i32]),
) {
    for (j, src) in acc.chunks_exact(len).enumerate() {
        // SAFETY: each chunk owns the rows `live`, which no other chunk's pieces include.
        let piece = unsafe { dst.part(j * rows + live.start..j * rows + live.end) };
        piece.copy_from_slice(&src[..live.len()]);
        then(j, live.clone(), piece);
    }
}

/// How many chunks a thread's share of `m`'s rows is cut into: the pool's default (several a
/// thread, so that late threads still find work), but for I2_S_COL one, as
/// long a run down each column as the thread's share allows. Its kernels walk every non-zero
/// column down a window of up to 16 row blocks (64 bytes each), so the default chunks (6912
/// rows in 16: one or two blocks) read 64-128 bytes a column before jumping to the next and
/// pay each column's setup for them. With them, 2 threads gained nothing on 2560x2560 warm
/// (54.9 µs against 54.1 on one) and lost cold (156.6 against 120.3), and 6912x2560 cold
/// gained 1.17x (report, 2026-11-28 15:15, Emerald-Rapids-class guest).
pub(crate) fn chunks_per_thread(m: &TernaryMatrix) -> usize {
    match m.format() {
        crate::format::Format::I2SCol => 1,
        _ => par::DEFAULT_CHUNKS_PER_THREAD,
    }
}

/// Runs `f` on a buffer of `len` int32s (contents arbitrary: the kernel writes them all),
/// this thread's kept one (up to 16 MiB).
fn with_acc_scratch<R>(len: usize, f: impl FnOnce(&mut [i32]) -> R) -> R {
    with_kept(&ACC, len, 4 << 20, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::kernels::{available, fits_i4, max_table_bytes};

    /// A call takes the int4 kernels exactly when every activation is in −8..=7, and the
    /// forms of one format never mix (tables built by one, walked by the other).
    #[test]
    #[cfg_attr(miri, ignore = "function pointers are not unique under Miri")]
    fn int4_kernels_exactly_when_values_fit() {
        assert!(fits_i4(&[-8, 7, 0]) && fits_i4(&[]) && fits_i4(&[0; 10000]));
        for bad in [8i8, -9, 127, -128] {
            let mut xs = vec![0i8; 9000];
            xs[8999] = bad;
            assert!(!fits_i4(&xs), "{bad}");
        }
        let mut seen = 0;
        for (s, f) in available().flat_map(|s| [(s, Format::TL1), (s, Format::TL2)]) {
            let (_, k) = s.kernels_for(f).unwrap();
            let Some(n) = k.i4_form() else { continue };
            seen += 1;
            let int4 = k.for_activations(&[-8, 7, 3]);
            assert!(std::ptr::fn_addr_eq(int4.gemv, n.gemv), "{}", s.name());
            assert!(!std::ptr::fn_addr_eq(int4.gemv, k.gemv), "{}", s.name());
            let t4 = int4.tables.map(|t| t.build as usize);
            assert_eq!(t4, n.tables.map(|t| t.build as usize), "{}", s.name());
            for bad in [8i8, -9] {
                let int8 = k.for_activations(&[0, bad, 0]);
                assert!(std::ptr::fn_addr_eq(int8.gemv, k.gemv), "{}", s.name());
                assert_eq!(
                    int8.tables.map(|t| t.build as usize),
                    k.tables.map(|t| t.build as usize)
                );
            }
        }
        #[cfg(target_arch = "x86_64")]
        assert!(seen > 0 || !std::arch::is_x86_feature_detected!("avx2"));
        #[cfg(not(target_arch = "x86_64"))]
        let _ = seen;
    }

    /// The one-pass tables exist for the SIMD TL kernels, fit the workspace's bound for any
    /// set, and give way to the bounded kernels past [`TABLE_MAX_BYTES`] (what
    /// `tests/tl_formats.rs` `beyond_table_budget_runs_bounded_passes` relies on).
    #[test]
    #[cfg_attr(miri, ignore = "only C kernel sets have tables, and Miri runs none")]
    fn table_sizes_and_budget() {
        let t: Vec<i8> = (0..66 * 5377).map(|i| (i % 3) as i8 - 1).collect();
        for f in [Format::TL1, Format::TL2] {
            let m = TernaryMatrix::from_ternary(&t, 66, 5377, 1.0, f).unwrap();
            let kp = m.layout().cols_padded;
            for s in available() {
                let (_, k) = s.kernels_for(f).unwrap();
                let Some(tk) = k.tables else {
                    assert!(table_bytes(k, &m, 1).is_none());
                    continue;
                };
                let per_row = tk.bytes(f, kp);
                assert!(
                    per_row > 0 && per_row <= max_table_bytes(f, kp),
                    "{}",
                    s.name()
                );
                assert_eq!(table_bytes(k, &m, 1), Some(per_row + TABLE_ALIGN));
                assert!(table_bytes(k, &m, 400).is_none(), "{}", s.name());
                // Too small a buffer: no tables, never a write past it.
                let xs = vec![1i8; kp];
                let mut small = vec![0u8; per_row];
                let aligned = small.as_ptr().align_offset(TABLE_ALIGN) == 0;
                assert_eq!(build_tables(k, &m, &xs, 1, &mut small).is_some(), aligned);
            }
        }
    }
}
