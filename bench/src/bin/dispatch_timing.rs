//! The fixed cost of a threaded call (issue 13), A/B between the pools a user can pick, in
//! the same run: the time of a no-op dispatch (the caller plus one worker each claiming empty
//! chunks), and the warm I2_S GEMV (f32 in and out) of 6912×2560 and 2560×2560 on 1 thread
//! against 2 threads; on rayon's global pool (the default), a rayon pool of the crate's own
//! and the crate's spinning pool (`set_thread_pool`). The pools are measured in turn, several
//! rounds, each figure the median over the rounds of the round's median; the speed-up is
//! the median of the rounds' ratios (1 and 2 threads timed call by call in turns); then the
//! 2-thread call timed alone, calls in a row, as an engine makes them. Last, two
//! user threads calling the 6912×2560 GEMV at the same time, per pool.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin dispatch_timing             # 5 rounds, 0.4 s a figure
//! cargo run --release -p bitnet-bench --bin dispatch_timing -- 0.2 9    # seconds a figure, rounds
//! ```
//!
//! On a shared machine thread timings swing with the neighbours' load: run it idle.

use bitnet_bench::data;
use bitnet_bench::stats::{measure, measure_pair};
use bitnet_kernels::{
    set_thread_pool, ternary_gemv, ternary_gemv_rows, Format, TernaryMatrix, ThreadPoolKind,
};
use std::time::Instant;

/// The pools compared: a name and how to set 2 threads on it.
const POOLS: [(&str, usize, ThreadPoolKind); 3] = [
    ("rayon global", 0, ThreadPoolKind::Rayon),
    ("rayon own", 2, ThreadPoolKind::Rayon),
    ("spinning", 2, ThreadPoolKind::Spinning),
];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let budget: f64 = args
        .next()
        .map_or(0.4, |s| s.parse().expect("seconds a figure"));
    let rounds: usize = args.next().map_or(5, |s| s.parse().expect("rounds"));
    let noop = || {
        bitnet_kernels::par::for_each_chunk(
            16,
            1,
            2,
            |ranges| vec![(); ranges.len()],
            |_, ()| std::hint::black_box(()),
        )
    };
    let shapes = [(6912, 2560), (2560, 2560)];
    let mats: Vec<(TernaryMatrix, Vec<f32>)> = shapes
        .iter()
        .map(|&(rows, cols)| {
            let m = TernaryMatrix::from_f32(&data::weights(rows, cols, 1), rows, cols, Format::I2S)
                .expect("packs");
            (m, data::activations(1, cols, 1))
        })
        .collect();
    // [pool][figure] over rounds: no-op µs, then per shape (1 thread µs, 2 threads µs, ratio,
    // 2 threads back to back µs).
    let figures = 1 + 4 * shapes.len();
    let mut got = vec![vec![Vec::new(); figures]; POOLS.len()];
    for _ in 0..rounds {
        for (p, &(_, n, kind)) in POOLS.iter().enumerate() {
            set_thread_pool(n, kind).expect("threads");
            let t = measure(budget, 10, 1_000_000, noop);
            got[p][0].push(t.secs * 1e6);
            for (s, (m, x)) in mats.iter().enumerate() {
                let mut y = vec![0.0f32; m.rows()];
                // One thread: the row-range call on the whole matrix (the calling thread
                // only, the same kernel and steps); two: `ternary_gemv` on the pool.
                let (one, both) = measure_pair(budget, 10, 1_000_000, |second| {
                    if second {
                        ternary_gemv(m, x, &mut y).expect("gemv")
                    } else {
                        ternary_gemv_rows(m, x, 0..m.rows(), &mut y).expect("gemv")
                    }
                });
                got[p][1 + 4 * s].push(one.secs * 1e6);
                got[p][2 + 4 * s].push(both.secs * 1e6);
                got[p][3 + 4 * s].push(one.secs / both.secs);
                // Calls in a row, as an engine's products come (workers still spinning).
                let t = measure(budget, 10, 1_000_000, || {
                    ternary_gemv(m, x, &mut y).expect("gemv")
                });
                got[p][4 + 4 * s].push(t.secs * 1e6);
            }
        }
    }
    println!("{rounds} rounds, {budget} s a figure; medians over rounds");
    for (p, &(name, ..)) in POOLS.iter().enumerate() {
        let mut line = format!(
            "{name:>12}: no-op dispatch {:.2} µs",
            median(&mut got[p][0])
        );
        for (s, &(rows, cols)) in shapes.iter().enumerate() {
            line += &format!(
                "\n    I2_S {rows}x{cols} warm: 1 thread {:.1} µs, 2 threads {:.1} µs, {:.2}x; \
                 2 threads in a row {:.1} µs",
                median(&mut got[p][1 + 4 * s]),
                median(&mut got[p][2 + 4 * s]),
                median(&mut got[p][3 + 4 * s]),
                median(&mut got[p][4 + 4 * s])
            );
        }
        println!("{line}");
    }

    // Two user threads at once, each its own GEMVs on one shared matrix.
    let (m, x) = &mats[0];
    let calls = ((budget * 1e6 / 100.0) as usize).max(200);
    for &(name, n, kind) in &POOLS {
        set_thread_pool(n, kind).expect("threads");
        let start = Instant::now();
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    let mut y = vec![0.0f32; m.rows()];
                    for _ in 0..calls {
                        ternary_gemv(m, x, &mut y).expect("gemv");
                    }
                });
            }
        });
        let per = start.elapsed().as_secs_f64() / (2 * calls) as f64;
        println!(
            "{name:>12}: 2 user threads each calling the 6912x2560 GEMV: {:.1} µs a call ({} calls each)",
            per * 1e6,
            calls
        );
    }
    set_thread_pool(0, ThreadPoolKind::Rayon).expect("default");
}
