//! Import speed of the external ternary tensor formats: MB/s of packed input for
//! `TernaryMatrix::from_ggml` (TQ1_0, TQ2_0, bitnet.cpp I2_S) and `from_hf_packed`, into each
//! of this crate's formats, on one thread (imports are single-threaded).
//!
//! ```text
//! cargo run --release -p bitnet-bench --bin import_timing -- [rows cols]
//! ```
//! Defaults: 6912 2560 (the 2B-4T gate/up projection). Each figure is the median over `REPS`
//! calls (default 9, after one warm-up call) of the thread's CPU time, not wall time: on a
//! shared machine preemption is most of the noise, and an import runs on one thread
//! (the time the kernel spends faulting in fresh pages is counted, as it is CPU time); `FORMATS` limits the target formats (e.g. `FORMATS=i2s`).

use std::hint::black_box;

use bitnet_bench::data::Rng;
use bitnet_bench::stats::{median, thread_cpu_us};
use bitnet_kernels::format::ggml::{GGML_TYPE_I2_S, GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0};
use bitnet_kernels::{Format, HfScale, TernaryMatrix};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("rows and cols are numbers"))
        .collect();
    let (rows, cols) = match args[..] {
        [r, c] => (r, c),
        [] => (6912, 2560),
        _ => panic!("usage: import_timing [rows cols]"),
    };
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let formats: Vec<Format> = match std::env::var("FORMATS") {
        Ok(list) => list
            .split(',')
            .map(|f| f.parse().expect("a format name"))
            .collect(),
        Err(_) => Format::ALL.to_vec(),
    };
    let mut rng = Rng::new(7);
    let trits: Vec<i8> = (0..rows * cols)
        .map(|_| (rng.uniform() * 3.0) as i8 - 1)
        .collect();
    let m = TernaryMatrix::from_ternary(&trits, rows, cols, 0.5, Format::I2S).unwrap();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("TQ1_0", m.to_ggml(GGML_TYPE_TQ1_0).unwrap()),
        ("TQ2_0", m.to_ggml(GGML_TYPE_TQ2_0).unwrap()),
        ("I2_S blob", m.to_ggml(GGML_TYPE_I2_S).unwrap()),
        ("HF packed", m.to_hf_packed().unwrap()),
    ];
    println!("import of a {rows} x {cols} tensor, MB/s of packed input (median of {reps}, thread CPU time)");
    let mut head = format!("{:<10} {:>10}", "input", "MB");
    for f in &formats {
        head += &format!(" {:>10}", f.name());
    }
    println!("{head}");
    for (name, bytes) in &inputs {
        let mut line = format!("{name:<10} {:>10.2}", bytes.len() as f64 / 1e6);
        for &f in &formats {
            let import = || match *name {
                "TQ1_0" => TernaryMatrix::from_ggml(GGML_TYPE_TQ1_0, bytes, rows, cols, f),
                "TQ2_0" => TernaryMatrix::from_ggml(GGML_TYPE_TQ2_0, bytes, rows, cols, f),
                "I2_S blob" => TernaryMatrix::from_ggml(GGML_TYPE_I2_S, bytes, rows, cols, f),
                _ => TernaryMatrix::from_hf_packed(bytes, rows, cols, 0.5, HfScale::Multiply, f),
            };
            // Exact, and what the timed calls return.
            assert_eq!(import().unwrap().to_ternary(), trits, "{name} -> {f}");
            black_box(import().unwrap());
            let mut times: Vec<f64> = (0..reps)
                .map(|_| {
                    let t0 = thread_cpu_us();
                    black_box(import().unwrap());
                    (thread_cpu_us() - t0) * 1e-6
                })
                .collect();
            let t = median(&mut times);
            line += &format!(" {:>10.0}", bytes.len() as f64 / t / 1e6);
        }
        println!("{line}");
    }
}
