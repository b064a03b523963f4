//! Where a short DRAM-resident ("cold") I2_S GEMV on 2 threads loses against the streaming
//! bandwidth (issue 13): for every report shape, in one run and in turns call by call (each
//! call on the next of copies totalling 256 MiB or twice the last-level cache, whichever is
//! larger, so weights come from DRAM), on the crate's
//! spinning pool with 2 threads (`set_num_threads(2)`):
//!
//! - `gemv f32`: `ternary_gemv`, the user's call (quantize, kernel on 2 threads, rescale);
//! - `gemv i8`: `gemv_i8`, the kernel alone on 2 threads;
//! - `read 2t`: a plain read of the same packed bytes through the same dispatch and chunks
//!   (`par::for_each_chunk`), no kernel: what dispatch, chunking and the short transfer
//!   leave of the bandwidth;
//! - `read 2t/2`: the same read in 2 chunks (one contiguous half a thread);
//! - `gemv 1t` and `read 1t`: the kernel (`gemv_i8_rows`) and the read on the calling thread;
//! - `f32 first`: `ternary_gemv` on 2 threads as the first call after the 1-thread ones (the
//!   pool's worker parked during them and was woken just before): what a wake-up adds; the
//!   `gemv f32` column is the call after it, with the worker spinning, as in a run of products;
//! - `1t 4K` and `2t 4K`: `gemv 1t` and `gemv i8` on copies allocated as the library
//!   allocates large matrices but advised `MADV_NOHUGEPAGE` (through
//!   `TernaryMatrix::from_shared`): the library's huge pages (2 MiB or more) A/B in one run.
//!
//! Each figure is a median µs and its share of the 2-thread (or 1-thread) streaming probe
//! (`probe::stream_read`, 8 MiB steps a thread, the better of a probe at the start and at
//! the end).
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin cold_timing                     # every report shape
//! cargo run --release -p bitnet-bench --bin cold_timing -- 6912x2560 --reps 301
//! ```
//!
//! On a shared machine 2-thread figures swing with the neighbours' load: compare the columns
//! of one run.

use std::sync::Arc;

use bitnet_bench::cold::{cold_total, read_matrix, Rotation};
use bitnet_bench::data;
use bitnet_bench::probe;
use bitnet_bench::stats::{median, time};
use bitnet_kernels::{
    gemv_i8, gemv_i8_rows, par, set_num_threads, ternary_gemv, Format, TernaryMatrix,
};

/// Bytes the cold copies of one shape total.
const COLD_BYTES: usize = 256 << 20;

/// This process's memory on transparent huge pages, MB (Linux; `None` elsewhere).
fn huge_mb() -> Option<f64> {
    let t = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let l = t.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kb: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}

/// An empty 2-thread dispatch, then 50 µs on the calling thread: the worker is awake and
/// spinning for the next call.
fn wake() {
    par::for_each_chunk(8, 1, 2, |r| vec![(); r.len()], |_, ()| {});
    let t = std::time::Instant::now();
    while t.elapsed().as_micros() < 50 {
        std::hint::spin_loop();
    }
}

const COLUMNS: [&str; 9] = [
    "gemv f32",
    "gemv i8",
    "read 2t",
    "read 2t/2",
    "2t 4K",
    "gemv 1t",
    "read 1t",
    "1t 4K",
    "f32 first",
];

/// Packed bytes allocated as the library allocates a large matrix (2 MiB-aligned, written
/// after the advice), but advised `MADV_NOHUGEPAGE`: the same memory on 4 KiB pages.
struct SmallPages {
    ptr: *mut u8,
    layout: std::alloc::Layout,
    len: usize,
}

// SAFETY: owned bytes, written only while building, then read-only.
unsafe impl Send for SmallPages {}
// SAFETY: as above.
unsafe impl Sync for SmallPages {}

impl AsRef<[u8]> for SmallPages {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes of the allocation.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for SmallPages {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `on_small_pages`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// A copy of `m` (I2_S, scale 1) whose packed bytes stay on 4 KiB pages.
fn on_small_pages(m: &TernaryMatrix) -> TernaryMatrix {
    let b = m.packed_bytes();
    let size = b.len().next_multiple_of(64);
    let layout = std::alloc::Layout::from_size_align(size, 2 << 20).expect("layout");
    // SAFETY: non-zero size.
    let ptr = unsafe { std::alloc::alloc(layout) };
    assert!(!ptr.is_null(), "out of memory");
    #[cfg(target_os = "linux")]
    // SAFETY: a hint on whole pages of this allocation; it changes no contents.
    unsafe {
        libc::madvise(ptr.cast(), size / 4096 * 4096, libc::MADV_NOHUGEPAGE)
    };
    // SAFETY: `size >= b.len()` bytes allocated at `ptr`, not overlapping `b`.
    unsafe {
        std::ptr::write_bytes(ptr, 0, size);
        std::ptr::copy_nonoverlapping(b.as_ptr(), ptr, b.len());
    }
    let buf = Arc::new(SmallPages {
        ptr,
        layout,
        len: b.len(),
    });
    TernaryMatrix::from_shared(buf, 0, m.rows(), m.cols(), 1.0, Format::I2S).expect("same bytes")
}

fn main() {
    let mut shapes = data::SHAPES.to_vec();
    let mut reps = 151usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--reps" {
            reps = args.next().and_then(|s| s.parse().ok()).expect("--reps N");
        } else {
            shapes = data::parse_shapes(&a).expect("shapes: RxC,RxC");
        }
    }
    set_num_threads(2).expect("2 threads");
    let probe_bytes = cold_total(256 << 20);
    let bw = |t| probe::stream_read(probe_bytes, t, 60).gb_per_s;
    let (mut bw1, mut bw2) = (bw(1), bw(2));
    let mut rows_out = Vec::new();
    for &(rows, cols, _) in &shapes {
        let trits = data::trits(rows, cols, 42);
        let m = TernaryMatrix::from_ternary(&trits, rows, cols, 1.0, Format::I2S).expect("packs");
        let bytes = m.packed_bytes().len();
        let before = huge_mb();
        let small: Vec<TernaryMatrix> = (0..cold_total(COLD_BYTES).div_ceil(bytes).max(4))
            .map(|_| on_small_pages(&m))
            .collect();
        let copies = Rotation::new(m, bytes, cold_total(COLD_BYTES));
        let huge = huge_mb()
            .zip(before)
            .map(|(a, b)| (a - b) / (bytes * copies.len()) as f64 * 1e6);
        let xf = data::activations(1, cols, 7);
        let xi = data::activations_i8(1, cols, 7);
        let (mut yf, mut yi) = (vec![0f32; rows], vec![0i32; rows]);
        let mut t: [Vec<f64>; 9] = Default::default();
        let (mut c, mut c4) = (0usize, 0usize);
        let mut next4 = || {
            c4 += 1;
            &small[c4 % small.len()]
        };
        let mut next = || {
            c += 1;
            copies.get(c)
        };
        for rep in 0..reps + 1 {
            let one = [
                time(|| gemv_i8_rows(next(), &xi, 0..rows, &mut yi).expect("gemv")),
                time(|| read_matrix(next(), rows, 1)),
                time(|| gemv_i8_rows(next4(), &xi, 0..rows, &mut yi).expect("gemv")),
            ];
            // A long 1-thread call lets the pool's worker park (after `pool::SPIN`): wake it
            // and give it time to spin again, as in an engine's run of products.
            wake();
            let first = time(|| ternary_gemv(next(), &xf, &mut yf).expect("gemv"));
            let s = [
                time(|| ternary_gemv(next(), &xf, &mut yf).expect("gemv")),
                time(|| gemv_i8(next(), &xi, &mut yi).expect("gemv")),
                time(|| read_matrix(next(), 4, 2)),
                time(|| read_matrix(next(), rows.div_ceil(2), 2)),
                time(|| gemv_i8(next4(), &xi, &mut yi).expect("gemv")),
                one[0],
                one[1],
                one[2],
                first,
            ];
            if rep > 0 {
                for (v, s) in t.iter_mut().zip(s) {
                    v.push(s);
                }
            }
        }
        let med: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
        rows_out.push((rows, cols, bytes, huge, med));
    }
    bw1 = bw1.max(bw(1));
    bw2 = bw2.max(bw(2));
    println!(
        "cold I2_S, {reps} calls a cell in turns, medians; streaming probe: 1 thread {bw1:.1} GB/s, \
         2 threads {bw2:.1} GB/s; µs (% of the probe on as many threads); \
         huge: the copies' share on transparent huge pages (AnonHugePages)"
    );
    print!("| shape | MB | huge |");
    for c in COLUMNS {
        print!(" {c} |");
    }
    println!("\n|---|---|---|{}", "---|".repeat(COLUMNS.len()));
    for (rows, cols, bytes, huge, med) in rows_out {
        let huge = huge.map_or("?".into(), |h| format!("{:.0} %", 100.0 * h));
        print!("| {rows}x{cols} | {:.2} | {huge} |", bytes as f64 / 1e6);
        for (i, s) in med.iter().enumerate() {
            let gb = if (5..8).contains(&i) { bw1 } else { bw2 };
            print!(
                " {:.1} ({:.0} %) |",
                s * 1e6,
                100.0 * bytes as f64 / s / 1e9 / gb
            );
        }
        println!();
    }
    set_num_threads(0).expect("default");
}
