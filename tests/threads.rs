//! Thread safety of the public API.
//!
//! 1. Many threads share one `TernaryMatrix` (through an `Arc`), each with its own inputs, all
//!    at once and repeatedly: every result equals the single-threaded one, bit for bit; on
//!    rayon's global pool, the crate's spinning pool and a rayon pool of its own.
//! 2. The row-range API (`KernelSet::gemv_i8_rows`, `gemm_i8_rows`, `gemv_f32_rows`,
//!    `ternary_gemv_rows`) driven from a plain `std::thread` pool covers a matrix exactly once
//!    with ragged ranges (not tile multiples) and equals the whole-matrix call.
//!
//! Under Miri (`cargo +nightly miri test --test threads`) the shapes shrink and only the
//! scalar kernel runs (Miri cannot call C); Miri then also checks for data races.

mod common;

use std::ops::Range;
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;

use bitnet_kernels::kernels::{KernelSet, SCALAR};
use bitnet_kernels::{
    gemm_i8, gemv_i8, set_thread_pool, ternary_gemm, ternary_gemv, ternary_gemv_rows, Format,
    TernaryMatrix, ThreadPoolKind,
};
use common::naive_gemm;

/// (rows, cols, threads, repetitions). Natively the matrix is just large enough
/// (1030 × 4100 > `PARALLEL_MIN_MACS`) that each call also splits over rayon's pool, so
/// rayon is driven from many outside threads at once.
fn shape() -> (usize, usize, usize, usize) {
    if cfg!(miri) {
        (9, 260, 3, 1)
    } else {
        (1030, 4100, 8, 3)
    }
}

/// Kernel sets to exercise: every one this machine can run with its own kernels for `f`
/// (only scalar under Miri, which cannot execute C).
fn sets(f: Format) -> Vec<&'static KernelSet> {
    if cfg!(miri) {
        vec![&SCALAR]
    } else {
        common::kernel_sets(f)
    }
}

/// Formats to exercise: every one this build packs (only I2_S under Miri: the thread-safety
/// of the API is the same for all, and TL's 64-row tiles make Miri too slow; `core_small`
/// covers the TL code under Miri).
fn formats() -> Vec<Format> {
    if cfg!(miri) {
        vec![Format::I2S]
    } else {
        common::formats()
    }
}

/// Deterministic trits with every value present and no period that matches a block size.
fn trits(rows: usize, cols: usize) -> Vec<i8> {
    (0..rows * cols)
        .map(|i| ((i * 7 + i / 5 + i / 1021) % 3) as i8 - 1)
        .collect()
}

/// Activation row `seed` (f32 and int8 versions), different for every thread; the int8 one
/// includes -128 and 127.
fn inputs(seed: usize, cols: usize) -> (Vec<f32>, Vec<i8>) {
    let xf = (0..cols)
        .map(|i| ((i * 37 + seed * 101) % 211) as f32 / 23.0 - 4.5 + seed as f32 * 0.01)
        .collect();
    let xi = (0..cols)
        .map(|i| ((i * 31 + seed * 17 + i / 7) % 256) as u8 as i8)
        .collect();
    (xf, xi)
}

fn bits(y: &[f32]) -> Vec<u32> {
    y.iter().map(|v| v.to_bits()).collect()
}

/// On rayon's global pool (the default), the crate's spinning pool (the callers then find it
/// busy and run alone, or one of them gets the workers) and a rayon pool of its own.
#[test]
fn many_threads_share_one_matrix() {
    // Miri: the default only (the pools' spinning would be slow there).
    let n = if cfg!(miri) { 1 } else { 3 };
    let settings = [
        (0, ThreadPoolKind::Rayon),
        (2, ThreadPoolKind::Spinning),
        (3, ThreadPoolKind::Rayon),
    ];
    for (t, kind) in settings.into_iter().take(n) {
        set_thread_pool(t, kind).unwrap();
        share_one_matrix();
    }
    set_thread_pool(0, ThreadPoolKind::Rayon).unwrap();
}

fn share_one_matrix() {
    let (rows, cols, threads, reps) = shape();
    let t = trits(rows, cols);
    for f in formats() {
        let m = Arc::new(TernaryMatrix::from_ternary(&t, rows, cols, 0.37, f).unwrap());
        // Single-threaded expectations, computed before any thread starts: int8 results from
        // the naive product, f32 results from the one-thread row-range call.
        let want: Vec<_> = (0..threads)
            .map(|s| {
                let (xf, xi) = inputs(s, cols);
                let mut yf = vec![0.0f32; rows];
                ternary_gemv_rows(&m, &xf, 0..rows, &mut yf).unwrap();
                (
                    xf,
                    xi.clone(),
                    bits(&yf),
                    naive_gemm(&t, rows, cols, &xi, 1),
                )
            })
            .collect();
        let want = Arc::new(want);
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|s| {
                let (m, want, barrier) = (Arc::clone(&m), Arc::clone(&want), Arc::clone(&barrier));
                thread::spawn(move || {
                    let (xf, xi, yf_want, yi_want) = &want[s];
                    // The next thread's row too, for a two-row GEMM.
                    let (xf2, xi2, yf2_want, yi2_want) = &want[(s + 1) % want.len()];
                    let x2: Vec<i8> = xi.iter().chain(xi2).copied().collect();
                    let xf2: Vec<f32> = xf.iter().chain(xf2).copied().collect();
                    barrier.wait(); // start together, so the calls really overlap
                    for _ in 0..reps {
                        let mut yf = vec![f32::NAN; rows];
                        ternary_gemv(&m, xf, &mut yf).unwrap();
                        assert_eq!(&bits(&yf), yf_want, "ternary_gemv, thread {s}");
                        let mut yf = vec![f32::NAN; 2 * rows];
                        ternary_gemm(&m, &xf2, 2, &mut yf).unwrap();
                        assert_eq!(&bits(&yf[..rows]), yf_want, "ternary_gemm, thread {s}");
                        assert_eq!(&bits(&yf[rows..]), yf2_want, "ternary_gemm, thread {s}");
                        let mut yi = vec![i32::MIN; rows];
                        gemv_i8(&m, xi, &mut yi).unwrap();
                        assert_eq!(&yi, yi_want, "gemv_i8, thread {s}");
                        let mut yi = vec![i32::MIN; 2 * rows];
                        gemm_i8(&m, &x2, 2, &mut yi).unwrap();
                        assert_eq!(&yi[..rows], yi_want, "gemm_i8, thread {s}");
                        assert_eq!(&yi[rows..], yi2_want, "gemm_i8, thread {s}");
                        for k in sets(m.format()) {
                            let mut yi = vec![i32::MIN; rows];
                            k.gemv_i8(&m, xi, &mut yi).unwrap();
                            assert_eq!(&yi, yi_want, "{} gemv_i8, thread {s}", k.name());
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a worker thread panicked");
        }
    }
}

/// Ragged row ranges covering `0..rows` once: lengths 1, 2, 3, 5, 7, 11, 13, 1, 2, ...
/// (so they start and end inside tiles, and some are shorter than a tile).
fn ragged_ranges(rows: usize) -> Vec<Range<usize>> {
    const LENS: [usize; 7] = [1, 2, 3, 5, 7, 11, 13];
    let scale = if rows > 500 { 9 } else { 1 }; // fewer, longer ranges for a big matrix
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0.. {
        if start >= rows {
            break;
        }
        let end = (start + LENS[i % LENS.len()] * scale + i % 2).min(rows);
        out.push(start..end);
        start = end;
    }
    out
}

/// One finished job of the pool: its range and its outputs.
struct Done {
    range: Range<usize>,
    gemv_i8: Vec<i32>,
    gemm_i8: Vec<i32>,
    gemv_f32: Vec<f32>,
}

/// A plain pool of `workers` threads taking row ranges from one shared channel and sending
/// back their results; returns them in completion order.
fn run_pool(
    workers: usize,
    k: &'static KernelSet,
    m: &Arc<TernaryMatrix>,
    xi: &Arc<Vec<i8>>,
    xf: &Arc<Vec<f32>>,
    jobs: Vec<Range<usize>>,
) -> Vec<Done> {
    let (job_tx, job_rx) = mpsc::channel::<Range<usize>>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let n = 3;
    let cols = m.cols();
    let pool: Vec<_> = (0..workers)
        .map(|_| {
            let (job_rx, done_tx) = (Arc::clone(&job_rx), done_tx.clone());
            let (m, xi, xf) = (Arc::clone(m), Arc::clone(xi), Arc::clone(xf));
            thread::spawn(move || loop {
                let job = job_rx.lock().unwrap().recv();
                let Ok(range) = job else { break };
                let len = range.len();
                let mut gemv = vec![i32::MIN; len];
                k.gemv_i8_rows(&m, &xi[..cols], range.clone(), &mut gemv)
                    .unwrap();
                let mut gemm = vec![i32::MIN; n * len];
                k.gemm_i8_rows(&m, &xi, n, range.clone(), &mut gemm)
                    .unwrap();
                let mut f = vec![f32::NAN; len];
                k.gemv_f32_rows(&m, &xf, range.clone(), &mut f).unwrap();
                let done = Done {
                    range,
                    gemv_i8: gemv,
                    gemm_i8: gemm,
                    gemv_f32: f,
                };
                done_tx.send(done).unwrap();
            })
        })
        .collect();
    drop(done_tx);
    let count = jobs.len();
    for j in jobs {
        job_tx.send(j).unwrap();
    }
    drop(job_tx); // workers stop when the queue is empty
    let done: Vec<Done> = done_rx.iter().collect();
    for h in pool {
        h.join().expect("a pool thread panicked");
    }
    assert_eq!(done.len(), count, "every job reports back once");
    done
}

#[test]
fn row_ranges_from_a_thread_pool_cover_the_matrix_once() {
    let (rows, cols, workers, _) = shape();
    let workers = workers.min(4);
    let n = 3;
    let t = trits(rows, cols);
    let xi: Vec<i8> = (0..n).flat_map(|s| inputs(s, cols).1).collect();
    let xf = inputs(7, cols).0;
    let want_i8 = naive_gemm(&t, rows, cols, &xi, n);
    let (xi, xf) = (Arc::new(xi), Arc::new(xf));
    let ranges = ragged_ranges(rows);
    assert!(ranges.len() > workers, "more jobs than workers");
    for f in formats() {
        let m = Arc::new(TernaryMatrix::from_ternary(&t, rows, cols, 1.5, f).unwrap());
        for k in sets(f) {
            // The whole-matrix calls the pieces must reproduce.
            let mut whole_i8 = vec![0i32; n * rows];
            k.gemm_i8(&m, &xi, n, &mut whole_i8).unwrap();
            assert_eq!(whole_i8, want_i8, "{} whole gemm", k.name());
            let mut whole_f32 = vec![0.0f32; rows];
            k.gemm_f32(&m, &xf, 1, &mut whole_f32).unwrap();

            let mut hits = vec![0u32; rows];
            let mut gemv = vec![i32::MIN; rows];
            let mut gemm = vec![i32::MIN; n * rows];
            let mut yf = vec![f32::NAN; rows];
            for d in run_pool(workers, k, &m, &xi, &xf, ranges.clone()) {
                let (r, len) = (d.range.clone(), d.range.len());
                for h in &mut hits[r.clone()] {
                    *h += 1;
                }
                gemv[r.clone()].copy_from_slice(&d.gemv_i8);
                yf[r.clone()].copy_from_slice(&d.gemv_f32);
                for j in 0..n {
                    gemm[j * rows + r.start..j * rows + r.end]
                        .copy_from_slice(&d.gemm_i8[j * len..(j + 1) * len]);
                }
            }
            assert!(
                hits.iter().all(|&h| h == 1),
                "{}: rows not covered once",
                k.name()
            );
            assert_eq!(gemv, want_i8[..rows], "{} gemv_i8_rows", k.name());
            assert_eq!(gemm, want_i8, "{} gemm_i8_rows", k.name());
            assert_eq!(bits(&yf), bits(&whole_f32), "{} gemv_f32_rows", k.name());
        }
    }
}

/// Scoped threads, each writing straight into its own disjoint part of the caller's output
/// (`split_at_mut`), through the free functions that use the active kernel.
#[test]
fn scoped_threads_fill_disjoint_parts_of_one_output() {
    let (rows, cols, threads, _) = shape();
    let t = trits(rows, cols);
    let (xf, xi) = inputs(3, cols);
    for f in formats() {
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 0.25, f).unwrap();
        let mut whole = vec![0.0f32; rows];
        ternary_gemv(&m, &xf, &mut whole).unwrap();
        let mut whole_i8 = vec![0i32; rows];
        gemv_i8(&m, &xi, &mut whole_i8).unwrap();
        // `threads` nearly equal parts, boundaries not on tile multiples.
        let cuts: Vec<usize> = (0..=threads).map(|p| rows * p / threads).collect();
        let mut y = vec![f32::NAN; rows];
        let mut yi = vec![i32::MIN; rows];
        thread::scope(|s| {
            let (mut rest, mut rest_i) = (&mut y[..], &mut yi[..]);
            for w in cuts.windows(2) {
                let (a, b) = (w[0], w[1]);
                let (part, tail) = rest.split_at_mut(b - a);
                let (part_i, tail_i) = rest_i.split_at_mut(b - a);
                (rest, rest_i) = (tail, tail_i);
                let (m, xf, xi) = (&m, &xf, &xi);
                s.spawn(move || {
                    ternary_gemv_rows(m, xf, a..b, part).unwrap();
                    bitnet_kernels::gemv_i8_rows(m, xi, a..b, part_i).unwrap();
                });
            }
        });
        assert_eq!(bits(&y), bits(&whole), "{}", f.name());
        assert_eq!(yi, whole_i8, "{}", f.name());
    }
}
