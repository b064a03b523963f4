//! I2_S vs TL1 vs TL2 single-thread GEMV timing, in one process (ratios, not absolutes,
//! are what to compare on a noisy machine).
//!
//! ```text
//! cargo run --release -p bitnet-bench --bin tl_timing -- [ROWSxCOLS ...] [--reps N] [--cold-mib M]
//! ```
//! For each shape and format: median µs (thread CPU time) of `reps` GEMVs, *warm* (the same matrix every time,
//! cache-resident when it fits) and *cold* (rotating over at least four copies totalling
//! `cold-mib` MiB or more, default 128, four times the 32 MiB L3). Measurements of the formats are
//! interleaved call by call so that drift hits all of them alike (each warm call follows an
//! untimed call on the same matrix). The kernel set is the
//! active one (`BITNET_KERNEL` to force one), run through `KernelSet::gemv_i8_rows` on the
//! calling thread. Times are thread CPU time (`bitnet_bench::stats::thread_cpu_us`).

use bitnet_bench::cold::Rotation;
use bitnet_bench::data;
use bitnet_bench::registry;
use bitnet_bench::stats::{median, thread_cpu_us as cpu_us};
use bitnet_kernels::{Format, TernaryMatrix};

fn main() {
    let data::TimingArgs {
        shapes,
        reps,
        cold_mib,
    } = data::timing_args(
        200,
        &[(6912, 2560), (2560, 2560), (2560, 6912), (14336, 4096)],
    );
    let set = registry::active().expect("kernel set");
    println!(
        "kernel set {} (1 thread), median of {reps} GEMVs; cold = rotating over ≥ {cold_mib} MiB",
        set.name()
    );
    println!(
        "{:>12} {:>5} {:>8} {:>10} {:>9} {:>10} {:>9} {:>13}",
        "shape", "fmt", "MB", "warm µs", "GB/s", "cold µs", "GB/s", "vs I2_S w/c"
    );
    let formats = [Format::I2S, Format::TL1, Format::TL2];
    for (rows, cols) in shapes {
        let seed = (rows * 31 + cols) as u64;
        let t = data::trits(rows, cols, seed);
        let x = data::activations_i8(1, cols, seed);
        let base: Vec<TernaryMatrix> = formats
            .iter()
            .map(|&f| TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap())
            .collect();
        drop(t);
        let copies: Vec<Rotation<TernaryMatrix>> = base
            .iter()
            .map(|m| Rotation::new(m.clone(), m.packed_bytes().len(), cold_mib << 20))
            .collect();
        // Every format must give the same answer.
        let mut want = vec![0i32; rows];
        set.gemv_i8_rows(&base[0], &x, 0..rows, &mut want).unwrap();
        let mut y = vec![0i32; rows];
        for m in &base[1..] {
            set.gemv_i8_rows(m, &x, 0..rows, &mut y).unwrap();
            assert_eq!(y, want, "{} differs from I2_S", m.format().name());
        }
        let mut warm = vec![Vec::new(); formats.len()];
        let mut cold = vec![Vec::new(); formats.len()];
        for rep in 0..reps + 5 {
            for (i, m) in base.iter().enumerate() {
                // The previous format's cold call evicted this one: one untimed call first.
                set.gemv_i8_rows(m, &x, 0..rows, &mut y).unwrap();
                let t0 = cpu_us();
                set.gemv_i8_rows(m, &x, 0..rows, &mut y).unwrap();
                let w = cpu_us() - t0;
                let c = copies[i].get(rep);
                let t0 = cpu_us();
                set.gemv_i8_rows(c, &x, 0..rows, &mut y).unwrap();
                let cd = cpu_us() - t0;
                if rep >= 5 {
                    warm[i].push(w);
                    cold[i].push(cd);
                }
            }
        }
        let med: Vec<(f64, f64)> = (0..formats.len())
            .map(|i| (median(&mut warm[i]), median(&mut cold[i])))
            .collect();
        for (i, f) in formats.iter().enumerate() {
            let mb = base[i].packed_bytes().len() as f64 / 1e6;
            let (w, c) = med[i];
            println!(
                "{:>12} {:>5} {:>8.2} {:>10.1} {:>9.1} {:>10.1} {:>9.1} {:>6.2}/{:<6.2}",
                format!("{rows}x{cols}"),
                f.name(),
                mb,
                w,
                mb * 1e3 / w,
                c,
                mb * 1e3 / c,
                med[0].0 / w,
                med[0].1 / c
            );
        }
    }
}
