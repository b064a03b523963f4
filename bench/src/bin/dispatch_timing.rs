//! The fixed cost of a threaded call (issue 13): the time of a no-op dispatch (the caller
//! plus one worker each claiming empty chunks), and the warm I2_S GEMV of 6912×2560 (f32 in
//! and out) on 1 and on 2 threads, timed in turns; on rayon's global pool and on the crate's
//! own pool (`set_num_threads`).
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin dispatch_timing            # 2 s a figure
//! cargo run --release -p bitnet-bench --bin dispatch_timing -- 0.5     # seconds a figure
//! ```
//!
//! On a shared machine thread timings swing with the neighbours' load: run it idle.

use bitnet_bench::data;
use bitnet_bench::stats::{measure, measure_pair};
use bitnet_kernels::{set_num_threads, ternary_gemv, ternary_gemv_rows, Format, TernaryMatrix};

fn main() {
    let budget: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seconds a figure"))
        .unwrap_or(2.0);
    let noop = || {
        bitnet_kernels::par::for_each_chunk(
            16,
            1,
            2,
            |ranges| vec![(); ranges.len()],
            |_, ()| std::hint::black_box(()),
        )
    };
    set_num_threads(0).expect("default");
    let t = measure(budget, 10, 1_000_000, noop);
    println!(
        "no-op dispatch, 2 threads, rayon's global pool: {:.2} µs ({} calls)",
        t.secs * 1e6,
        t.reps
    );
    set_num_threads(2).expect("2 threads");
    let t = measure(budget, 10, 1_000_000, noop);
    println!(
        "no-op dispatch, 2 threads, the crate's pool:    {:.2} µs ({} calls)",
        t.secs * 1e6,
        t.reps
    );

    let (rows, cols) = (6912, 2560);
    let m = TernaryMatrix::from_f32(&data::weights(rows, cols, 1), rows, cols, Format::I2S)
        .expect("packs");
    let x = data::activations(1, cols, 1);
    let mut y = vec![0.0f32; rows];
    for (name, two) in [("rayon's global pool", 0), ("the crate's pool", 2)] {
        // One thread: the row-range call on the whole matrix (the calling thread only, the
        // same kernel and steps); two: `ternary_gemv` on the pool set once here.
        set_num_threads(two).expect("threads");
        let (one, both) = measure_pair(budget, 10, 1_000_000, |second| {
            if second {
                ternary_gemv(&m, &x, &mut y).expect("gemv")
            } else {
                ternary_gemv_rows(&m, &x, 0..rows, &mut y).expect("gemv")
            }
        });
        println!(
            "I2_S {rows}x{cols} warm ternary_gemv: 1 thread {:.1} µs, 2 threads ({name}) {:.1} µs: {:.2}x",
            one.secs * 1e6,
            both.secs * 1e6,
            one.secs / both.secs
        );
    }
    set_num_threads(0).expect("default");
}
