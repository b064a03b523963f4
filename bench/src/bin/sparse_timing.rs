//! Sparse activations (BitNet a4.8): the column-major I2_S_COL GEMV, which reads only the
//! columns whose activation is non-zero, against the dense I2_S GEMV, single thread, at
//! several fractions of zero activations.
//!
//! ```text
//! cargo run --release -p bitnet-bench --bin sparse_timing -- [ROWSxCOLS ...] [--reps N] [--cold-mib M]
//! ```
//! Medians of `reps` calls (thread CPU time), warm (the same matrix every time) and cold
//! (rotating over copies totalling at least `cold-mib` MiB, default 128, four times the L3),
//! the two formats interleaved call by call so drift hits both alike. The zero positions are
//! random (a fixed seed); the exact count is `round(zeros · cols)`. Both formats must give the
//! same accumulators (checked). `read c µs`: a plain read (the bandwidth probe's loop,
//! `probe::read_bytes`) of only the non-zero columns' bytes of a cold I2_S_COL copy, in the
//! kernel's order: what the access pattern alone costs; `pattern ×` is dense I2_S cold over it,
//! the most any I2_S_COL kernel could gain from DRAM at that density.

use bitnet_bench::cold::Rotation;
use bitnet_bench::data;
use bitnet_bench::probe::{self, ReadLoop};
use bitnet_bench::stats::{median, thread_cpu_us as cpu_us};
use bitnet_kernels::{Format, KernelSet, TernaryMatrix};

/// The zero fractions measured: a4.8's o-proj (50 %), up (71 %) and down (84 %) inputs, and
/// a sweep around the crossover.
pub const ZEROS: &[f64] = &[0.0, 0.3, 0.5, 0.6, 0.7, 0.84, 0.9, 0.95];

fn time(set: &KernelSet, m: &TernaryMatrix, x: &[i8], y: &mut [i32]) -> f64 {
    let t0 = cpu_us();
    set.gemv_i8_rows(m, x, 0..m.rows(), y).unwrap();
    cpu_us() - t0
}

/// Reads the bytes of the columns `x` keeps (non-zero) of an I2_S_COL matrix, one column's
/// contiguous run after another in column order.
fn read_columns(m: &TernaryMatrix, x: &[i8]) -> f64 {
    let b = m.packed_bytes();
    let run = m.layout().rows_padded / 4;
    let t0 = cpu_us();
    let mut sink = 0u64;
    for (c, _) in x.iter().enumerate().filter(|(_, v)| **v != 0) {
        sink ^= probe::read_bytes(&b[c * run..(c + 1) * run], ReadLoop::Plain);
    }
    std::hint::black_box(sink);
    cpu_us() - t0
}

fn main() {
    let data::TimingArgs {
        shapes,
        reps,
        cold_mib,
    } = data::timing_args(100, &[(2560, 2560), (2560, 6912)]);
    let set: &KernelSet = bitnet_kernels::kernels::active().expect("kernel set");
    println!(
        "kernel set {} (1 thread; I2_S_COL runs on {}), median of {reps} GEMVs; cold = rotating over ≥ {cold_mib} MiB",
        set.name(),
        set.runs_on(Format::I2SCol).unwrap()
    );
    println!(
        "{:>11} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>9}",
        "shape",
        "zeros",
        "I2_S w µs",
        "COL w µs",
        "I2_S c µs",
        "COL c µs",
        "warm ×",
        "cold ×",
        "read c µs",
        "pattern ×"
    );
    for (rows, cols) in shapes {
        let seed = (rows * 31 + cols) as u64;
        let t = data::trits(rows, cols, seed);
        let dense = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2S).unwrap();
        let col = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2SCol).unwrap();
        drop(t);
        let cd = Rotation::new(dense.clone(), dense.packed_bytes().len(), cold_mib << 20);
        let cc = Rotation::new(col.clone(), col.packed_bytes().len(), cold_mib << 20);
        for &z in ZEROS {
            let mut x = data::activations_i8(1, cols, seed);
            // activations_i8 may hold zeros of its own: make every kept entry non-zero.
            for v in x.iter_mut().filter(|v| **v == 0) {
                *v = 1;
            }
            data::sparsify(&mut x, z, seed ^ 0x5eed);
            let (mut y, mut y2) = (vec![0i32; rows], vec![0i32; rows]);
            set.gemv_i8_rows(&dense, &x, 0..rows, &mut y).unwrap();
            set.gemv_i8_rows(&col, &x, 0..rows, &mut y2).unwrap();
            assert_eq!(y, y2, "I2_S_COL differs from I2_S");
            let mut s: [Vec<f64>; 5] = Default::default();
            for rep in 0..reps + 3 {
                set.gemv_i8_rows(&dense, &x, 0..rows, &mut y).unwrap();
                let a = time(set, &dense, &x, &mut y);
                set.gemv_i8_rows(&col, &x, 0..rows, &mut y).unwrap();
                let b = time(set, &col, &x, &mut y);
                let c = time(set, cd.get(rep), &x, &mut y);
                let d = time(set, cc.get(rep), &x, &mut y);
                // Half the rotation away: the copy the COL call reads next is not warmed by
                // this read, and this one is evicted again before the COL call reaches it.
                let e = read_columns(cc.get(rep + cc.len() / 2), &x);
                if rep >= 3 {
                    for (v, t) in s.iter_mut().zip([a, b, c, d, e]) {
                        v.push(t);
                    }
                }
            }
            let [a, b, c, d, e] = s.map(|mut v| median(&mut v));
            println!(
                "{:>11} {:>5.0}% {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>8.2} {:>10.1} {:>9.2}",
                format!("{rows}x{cols}"),
                z * 100.0,
                a,
                b,
                c,
                d,
                a / b,
                c / d,
                e,
                c / e
            );
        }
    }
}
