//! A small timing harness for the I2_S kernels (not the criterion benches): single-thread
//! GEMV warm (one matrix, cache-resident) and cold (rotating over copies larger than the L3),
//! 2-thread GEMV cold through rayon, GEMM G MAC/s, and a streaming-read probe of a 1 GiB
//! buffer in the same run, so that ratios are comparable on a noisy machine. "/buf" is the
//! median over reps of the cold GEMV's packed bytes/s over the bytes/s of a streaming read
//! of as many bytes from the 1 GiB buffer, timed right after it (same thread count);
//! "/copy" the same against a plain read of another cold copy of the packed matrix.
//!
//! ```text
//! cargo run --release --example i2s_timing -- [rows cols [gemm_n gemm_rows gemm_cols]]
//! ```
//! Defaults: 6912 2560, GEMM 128 x 2560 x 2560. `REPS` sets the repetitions (median taken).

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bitnet_kernels::kernels::{available, KernelSet};
use bitnet_kernels::{Format, TernaryMatrix};
use rayon::prelude::*;

/// Median seconds of `reps` calls of `f` (after one warm-up call).
fn median(reps: usize, f: impl FnMut()) -> f64 {
    sorted_times(reps, f)[reps / 2]
}

/// Seconds of `reps` calls of `f` (after one warm-up call), fastest first.
fn sorted_times(reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t
}

/// A deterministic pseudo-random generator (xorshift), enough for test data.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Sum of `c` read once, with 8 independent chains so the adds never limit the loads.
fn sum(c: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for ch in c.chunks_exact(8) {
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(ch[i]);
        }
    }
    acc.iter().fold(0u64, |a, &b| a.wrapping_add(b))
}

/// Reads `c` once, split over the current rayon pool's threads.
fn stream(c: &[u64]) {
    let part = c.len().div_ceil(rayon::current_num_threads());
    let s: u64 = c.par_chunks(part).map(sum).reduce(|| 0, u64::wrapping_add);
    black_box(s);
}

/// Streaming-read GB/s of the whole of `buf` (median pass) on the current pool.
fn stream_gbs(buf: &[u64], reps: usize) -> f64 {
    (buf.len() * 8) as f64 / median(reps, || stream(buf)) / 1e9
}

/// Cold runs of `f` (which rotates over copies), each followed by two reads of as many
/// bytes, so all three see the machine at the same moment (other processes' memory traffic
/// moves them all): a streaming read of a rotating slice of the 1 GiB `buf`, and a plain
/// read of another cold copy (`other`). Returns the median seconds of `f` and the medians
/// over reps of (f's bytes/s) / (each read's bytes/s).
fn cold_paired(
    reps: usize,
    bytes: usize,
    buf: &[u64],
    mut f: impl FnMut(),
    mut other: impl FnMut() -> &'static [u64],
) -> (f64, f64, f64) {
    let words = bytes / 8;
    let (mut ts, mut r_buf, mut r_copy, mut off) = (vec![], vec![], vec![], 0);
    let time = |g: &mut dyn FnMut()| {
        let s = Instant::now();
        g();
        s.elapsed().as_secs_f64()
    };
    for _ in 0..reps {
        let tg = time(&mut f);
        off = (off + words) % (buf.len() - words);
        r_buf.push(time(&mut || stream(&buf[off..off + words])) / tg);
        let o = other();
        r_copy.push(time(&mut || stream(o)) / tg);
        ts.push(tg);
    }
    let mid = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    (mid(ts), mid(r_buf), mid(r_copy))
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("numeric arguments"))
        .collect();
    let (rows, cols) = (*a.first().unwrap_or(&6912), *a.get(1).unwrap_or(&2560));
    let (gn, gr, gc) = (
        *a.get(2).unwrap_or(&128),
        *a.get(3).unwrap_or(&2560),
        *a.get(4).unwrap_or(&2560),
    );
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(101);
    let mut r = rng(42);
    let trits: Vec<i8> = (0..rows * cols).map(|_| (r() % 3) as i8 - 1).collect();
    let x: Vec<i8> = (0..cols).map(|_| r() as i8).collect();
    let m = TernaryMatrix::from_ternary(&trits, rows, cols, 1.0, Format::I2S).unwrap();
    let bytes = m.packed_bytes().len();
    // Copies filling at least 256 MiB, so each GEMV of the rotation reads from DRAM.
    let copies: Vec<TernaryMatrix> = (0..(256usize << 20).div_ceil(bytes).max(2))
        .map(|_| m.clone())
        .collect();
    let buf: Vec<u64> = (0..(1usize << 27)).map(|i| i as u64).collect(); // 1 GiB
    let pool1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let pool2 = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let bw1 = pool1.install(|| stream_gbs(&buf, 5));
    let bw2 = pool2.install(|| stream_gbs(&buf, 5));
    println!(
        "GEMV {rows}x{cols}: {:.2} MB packed, {} copies for cold; streaming read 1 GiB: \
         {bw1:.1} GB/s (1 thread), {bw2:.1} GB/s (2 threads); {reps} reps, medians",
        bytes as f64 / 1e6,
        copies.len()
    );
    println!(
        "{:<7} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "kernel",
        "warm µs",
        "cold µs",
        "/buf",
        "/copy",
        "2T cold",
        "/buf",
        "/copy",
        "GMAC/s",
        "GEMM ms",
        "best ms"
    );
    // The scalar reference is far too slow to time here.
    let sets: Vec<&KernelSet> = available()
        .filter(|k| k.name() != "scalar" && k.has_own(Format::I2S))
        .collect();
    let mut y = vec![0i32; rows];
    // The copies as u64 words, for the plain-read probe (leaked: they live to the end).
    let words: &'static [&'static [u64]] = Vec::leak(
        copies
            .iter()
            .map(|c| {
                let b = c.packed_bytes();
                // SAFETY: packed bytes are 64-byte aligned and live as long as `copies`,
                // which is never dropped before the process ends (leaked below).
                unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<u64>(), b.len() / 8) }
            })
            .collect(),
    );
    let copies: &'static [TernaryMatrix] = Vec::leak(copies);
    let n = copies.len();
    for k in sets {
        let warm = median(reps, || k.gemv_i8_rows(&m, &x, 0..rows, &mut y).unwrap());
        // Cold: one thread on a row range (the calling thread), or the whole-matrix call
        // that splits rows over the pool's threads.
        let i = std::sync::atomic::AtomicUsize::new(0);
        let cold_run = |pool: &rayon::ThreadPool, whole: bool| {
            let mut y = vec![0i32; rows];
            let mut gemv = || {
                let c = &copies[i.fetch_add(1, Relaxed) % n];
                if whole {
                    k.gemv_i8(c, &x, &mut y).unwrap()
                } else {
                    k.gemv_i8_rows(c, &x, 0..rows, &mut y).unwrap()
                }
            };
            let other = || words[(i.load(Relaxed) + n / 2) % n];
            pool.install(|| cold_paired(reps, bytes, &buf, &mut gemv, other))
        };
        let (cold, rb, rc) = cold_run(&pool1, false);
        let (cold2, rb2, rc2) = cold_run(&pool2, true);
        let gt: Vec<i8> = (0..gr * gc).map(|_| (r() % 3) as i8 - 1).collect();
        let gm = TernaryMatrix::from_ternary(&gt, gr, gc, 1.0, Format::I2S).unwrap();
        let gx: Vec<i8> = (0..gn * gc).map(|_| r() as i8).collect();
        let mut gy = vec![0i32; gn * gr];
        // Median and fastest: on a shared core a multi-ms run is often time-sliced.
        let gt = sorted_times(reps.min(21), || {
            k.gemm_i8_rows(&gm, &gx, gn, 0..gr, &mut gy).unwrap()
        });
        let (gemm, best) = (gt[gt.len() / 2], gt[0]);
        println!(
            "{:<7} {:>8.1} {:>8.1} {:>6.0}% {:>6.0}% {:>8.1} {:>6.0}% {:>6.0}% {:>8.0} {:>8.2} {:>8.2}",
            k.name(),
            warm * 1e6,
            cold * 1e6,
            100.0 * rb,
            100.0 * rc,
            cold2 * 1e6,
            100.0 * rb2,
            100.0 * rc2,
            (gn * gr * gc) as f64 / gemm / 1e9,
            gemm * 1e3,
            best * 1e3,
        );
    }
}
