//! The three ways to call one warm GEMM, timed in turns in one run (medians, ms): f32 in and
//! out (`ternary_gemm`), int8 rows (`gemm_i8`) from a buffer `offset` bytes past a cache line,
//! and rows quantized once (`gemm_i8_quantized`). Shows what the f32 path adds over the int8
//! one, and what a caller's misaligned int8 rows cost (the products copy them onto a cache
//! line first).
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin gemm_calls -- [rows cols n threads offset [format]]
//! ```
//! Defaults: 6912 2560 128, 1 thread, offset 16, I2_S (`format`: a `Format` name, e.g. I2_S_COL).

use bitnet_bench::data;
use bitnet_bench::stats::measure_turns;
use bitnet_kernels::{
    gemm_i8, gemm_i8_quantized, set_num_threads, ternary_gemm, Format, QuantizedActivations,
    TernaryMatrix,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<usize> = args
        .iter()
        .take(5)
        .map(|s| s.parse().expect("a number"))
        .collect();
    let format = args.get(5).map_or(Format::I2S, |name| {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("no format {name}"))
    });
    let arg = |i: usize, d: usize| a.get(i).copied().unwrap_or(d);
    let (rows, cols, n, threads, offset) = (
        arg(0, 6912),
        arg(1, 2560),
        arg(2, 128),
        arg(3, 1),
        arg(4, 16),
    );
    set_num_threads(threads).expect("threads");
    let m =
        TernaryMatrix::from_f32(&data::weights(rows, cols, 1), rows, cols, format).expect("pack");
    let x = data::activations(n, cols, 2);
    let q = QuantizedActivations::quantize(&x, n, cols).expect("quantize");
    // The same int8 rows, `offset` bytes past a cache line.
    let mut buf = vec![0i8; n * cols + 128];
    let at = buf.as_ptr().align_offset(64) + offset % 64;
    for j in 0..n {
        buf[at + j * cols..at + (j + 1) * cols].copy_from_slice(q.row(j));
    }
    let xi = &buf[at..at + n * cols];
    let (mut yf, mut yi, mut yq) = (
        vec![0f32; n * rows],
        vec![0i32; n * rows],
        vec![0i32; n * rows],
    );
    let t = measure_turns(2.0, 5, 51, 3, |way| match way {
        0 => ternary_gemm(&m, &x, n, &mut yf).expect("f32"),
        1 => gemm_i8(&m, xi, n, &mut yi).expect("i8"),
        _ => gemm_i8_quantized(&m, &q, &mut yq).expect("quantized"),
    });
    assert_eq!(yi, yq, "int8 results differ");
    let ms = |i: usize| t[i].secs * 1e3;
    println!(
        "{} {rows}x{cols}, n = {n}, {threads} thread(s), int8 rows {} bytes past a line: \
         ternary_gemm {:.3} ms, gemm_i8 {:.3} ms, gemm_i8_quantized {:.3} ms ({} reps each)",
        format.name(),
        offset % 64,
        ms(0),
        ms(1),
        ms(2),
        t[0].reps
    );
}
