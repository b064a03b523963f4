//! A small timing harness for the I2_S kernels (not the criterion benches): single-thread
//! GEMV warm (one matrix, cache-resident) and cold (rotating over copies larger than the L3),
//! 2-thread GEMV cold through rayon, GEMM G MAC/s, and a streaming-read probe of a 1 GiB
//! buffer in the same run, so that ratios are comparable on a noisy machine. "/buf" is the
//! median over reps of the cold GEMV's packed bytes/s over the bytes/s of a streaming read
//! of as many bytes from the 1 GiB buffer, timed right after it (same thread count);
//! "/copy" the same against a plain read of another cold copy of the packed matrix.
//!
//! ```text
//! cargo run --release -p bitnet-bench --bin i2s_timing -- [rows cols [gemm_n gemm_rows gemm_cols]]
//! ```
//! Defaults: 6912 2560, GEMM 128 x 2560 x 2560. `REPS` sets the repetitions (median taken).

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bitnet_bench::cold::Rotation;
use bitnet_bench::data;
use bitnet_bench::registry;
use bitnet_bench::stats::{median, median_time, sorted_times, time};
use bitnet_kernels::{Format, TernaryMatrix};
use rayon::prelude::*;

/// Bytes the cold copies total: 256 MiB, eight times this project's 32 MiB L3.
const COLD_BYTES: usize = 256 << 20;

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
    (buf.len() * 8) as f64 / median_time(reps, || stream(buf)) / 1e9
}

/// Cold runs of `f` (which rotates over copies), each followed by two reads of as many
/// bytes, so all three see the machine at the same moment (other processes' memory traffic
/// moves them all): a streaming read of a rotating slice of the 1 GiB `buf`, and a plain
/// read of another cold copy (`other`). Returns the median seconds of `f` and the medians
/// over reps of (f's bytes/s) / (each read's bytes/s).
fn cold_paired<'a>(
    reps: usize,
    bytes: usize,
    buf: &[u64],
    mut f: impl FnMut(),
    mut other: impl FnMut() -> &'a [u64],
) -> (f64, f64, f64) {
    let words = bytes / 8;
    let (mut ts, mut r_buf, mut r_copy, mut off) = (vec![], vec![], vec![], 0);
    for _ in 0..reps {
        let tg = time(&mut f);
        off = (off + words) % (buf.len() - words);
        r_buf.push(time(&mut || stream(&buf[off..off + words])) / tg);
        let o = other();
        r_copy.push(time(&mut || stream(o)) / tg);
        ts.push(tg);
    }
    (median(&mut ts), median(&mut r_buf), median(&mut r_copy))
}

/// A matrix's packed bytes as u64 words, for the plain-read probe (whole words only;
/// `cast_slice` checks the alignment, and packed bytes are 64-byte aligned).
fn words(c: &TernaryMatrix) -> &[u64] {
    let b = c.packed_bytes();
    bytemuck::cast_slice(&b[..b.len() / 8 * 8])
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
    let trits = data::trits(rows, cols, 42);
    let x = data::activations_i8(1, cols, 42);
    let m = TernaryMatrix::from_ternary(&trits, rows, cols, 1.0, Format::I2S).unwrap();
    let bytes = m.packed_bytes().len();
    // Copies filling at least COLD_BYTES, so each GEMV of the rotation reads from DRAM.
    let copies = Rotation::new(m.clone(), bytes, COLD_BYTES);
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
    let sets: Vec<registry::Kernel> = registry::kernel_sets(Format::I2S)
        .into_iter()
        .filter(|k| !k.is_scalar())
        .collect();
    let mut y = vec![0i32; rows];
    let n = copies.len();
    for k in sets {
        let warm = median_time(reps, || k.gemv_i8_rows(&m, &x, 0..rows, &mut y).unwrap());
        // Cold: one thread on a row range (the calling thread), or the whole-matrix call
        // that splits rows over the pool's threads.
        let i = AtomicUsize::new(0);
        let cold_run = |pool: &rayon::ThreadPool, whole: bool| {
            let mut y = vec![0i32; rows];
            let mut gemv = || {
                let c = copies.get(i.fetch_add(1, Relaxed));
                if whole {
                    k.gemv_i8(c, &x, &mut y).unwrap()
                } else {
                    k.gemv_i8_rows(c, &x, 0..rows, &mut y).unwrap()
                }
            };
            let other = || words(copies.get(i.load(Relaxed) + n / 2));
            pool.install(|| cold_paired(reps, bytes, &buf, &mut gemv, other))
        };
        let (cold, rb, rc) = cold_run(&pool1, false);
        let (cold2, rb2, rc2) = cold_run(&pool2, true);
        let gt = data::trits(gr, gc, 43);
        let gm = TernaryMatrix::from_ternary(&gt, gr, gc, 1.0, Format::I2S).unwrap();
        let gx = data::activations_i8(gn, gc, 43);
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
