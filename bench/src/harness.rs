//! Criterion set-up shared by `benches/gemv.rs` and `benches/gemm.rs`.

use crate::cold::{cold_total, COLD_BYTES};
use crate::data::{parse_shapes, SHAPES};

/// True when criterion will only run each benchmark once (`cargo test --benches`, which
/// `cargo test --all-targets` does, or `cargo bench -- --test`): criterion's own rule.
pub fn criterion_test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    !has("--bench") || has("--test")
}

/// The shapes a bench runs: `BITNET_BENCH_SHAPES` (`all`, or a list such as
/// `6912x2560,2560x2560`) if set; else one small shape in criterion's test mode (so that
/// `cargo test --all-targets` checks the benches in seconds); else `default`.
pub fn bench_shapes(default: &[(usize, usize, &'static str)]) -> Vec<(usize, usize, &'static str)> {
    match std::env::var("BITNET_BENCH_SHAPES") {
        Ok(s) if s == "all" => SHAPES.to_vec(),
        Ok(s) if !s.is_empty() => {
            parse_shapes(&s).unwrap_or_else(|e| panic!("BITNET_BENCH_SHAPES: {e}"))
        }
        _ if criterion_test_mode() => vec![(256, 512, "test")],
        _ => default.to_vec(),
    }
}

/// Bytes the DRAM rotation copies total: [`COLD_BYTES`], or 4 MiB in test mode (where
/// nothing is timed and only the code path matters).
pub fn cold_bytes() -> usize {
    if criterion_test_mode() {
        4 << 20
    } else {
        cold_total(COLD_BYTES)
    }
}

/// criterion set up for a 2-core machine: short warm-up and measurement, 10 samples, flat
/// sampling (each sample runs the same number of iterations, right for calls of
/// milliseconds), no plots. Command-line options (`--sample-size`, filters, ...) still win.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
        .sample_size(10)
        .without_plots()
        .configure_from_args()
}
