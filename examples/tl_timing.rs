//! I2_S vs TL1 vs TL2 single-thread GEMV timing, in one process (ratios, not absolutes,
//! are what to compare on a noisy machine).
//!
//! ```text
//! cargo run --release --example tl_timing -- [ROWSxCOLS ...] [--reps N] [--cold-mib M]
//! ```
//! For each shape and format: median µs (thread CPU time) of `reps` GEMVs, *warm* (the same matrix every time,
//! cache-resident when it fits) and *cold* (rotating over copies totalling more than
//! `cold-mib` MiB, default 128, four times the 32 MiB L3). Measurements of the formats are
//! interleaved call by call so that drift hits all of them alike (each warm call follows an
//! untimed call on the same matrix). The kernel set is the
//! active one (`BITNET_KERNEL` to force one), run through `KernelSet::gemv_i8_rows` on the
//! calling thread.

use bitnet_kernels::kernels;
use bitnet_kernels::{Format, TernaryMatrix};

/// This thread's CPU time in µs: unlike wall time it does not count the time the thread
/// was preempted, which on a shared 2-core machine is most of the noise.
fn cpu_us() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut shapes = Vec::new();
    let (mut reps, mut cold_mib) = (200usize, 128usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().and_then(|s| s.parse().ok()).expect("--reps N"),
            "--cold-mib" => {
                cold_mib = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--cold-mib M")
            }
            s => {
                let (r, c) = s.split_once('x').expect("shape ROWSxCOLS");
                shapes.push((r.parse::<usize>().unwrap(), c.parse::<usize>().unwrap()));
            }
        }
    }
    if shapes.is_empty() {
        shapes = vec![(6912, 2560), (2560, 2560), (2560, 6912), (14336, 4096)];
    }
    let set = kernels::active().expect("kernel set");
    println!(
        "kernel set {} (1 thread), median of {reps} GEMVs; cold = rotating over > {cold_mib} MiB",
        set.name()
    );
    println!(
        "{:>12} {:>5} {:>8} {:>10} {:>9} {:>10} {:>9} {:>13}",
        "shape", "fmt", "MB", "warm µs", "GB/s", "cold µs", "GB/s", "vs I2_S w/c"
    );
    let formats = [Format::I2S, Format::TL1, Format::TL2];
    for (rows, cols) in shapes {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let t: Vec<i8> = (0..rows * cols).map(|_| (next() % 3) as i8 - 1).collect();
        let x: Vec<i8> = (0..cols).map(|_| next() as u8 as i8).collect();
        let base: Vec<TernaryMatrix> = formats
            .iter()
            .map(|&f| TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap())
            .collect();
        drop(t);
        let copies: Vec<Vec<TernaryMatrix>> = base
            .iter()
            .map(|m| {
                let n = (cold_mib << 20) / m.packed_bytes().len() + 1;
                (0..n).map(|_| m.clone()).collect()
            })
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
                let c = &copies[i][rep % copies[i].len()];
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
