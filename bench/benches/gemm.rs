//! GEMM (several activation rows at once, prefill) benches: every kernel set × format it
//! has its own kernels for × n = 8, 32, 128, 512 on the BitNet b1.58 2B4T shapes (all
//! shapes of `bitnet_bench::data::SHAPES` with `BITNET_BENCH_SHAPES=all`), on one thread and on all, weights
//! cache-resident, against the `gemm` crate's f32 sgemm. Throughput is multiply-adds, so
//! criterion's `Gelem/s` reads as G MAC/s.
//!
//! A cell whose single call would take over half a second (the scalar reference at large
//! n) is skipped with a note, so `cargo bench` stays usable on 2 cores.
//!
//! ```sh
//! cargo bench -p bitnet-bench --bench gemm
//! cargo bench -p bitnet-bench --bench gemm -- 'n=128/I2_S'
//! ```
//! Ids read `gemm/<shape>/n=<n>/<format>/<kernel>/<1t|all>`.

use std::time::Instant;

use bitnet_bench::baseline::{f32_gemm, DenseMatrix};
use bitnet_bench::data::{self, GEMM_N};
use bitnet_bench::{harness, registry};
use bitnet_kernels::TernaryMatrix;
use criterion::{Criterion, SamplingMode, Throughput};

/// Longest single call worth benching (criterion takes at least 10 samples).
const CALL_LIMIT_S: f64 = 0.5;

/// Benches `call` under `id` unless one call, timed once, exceeds [`CALL_LIMIT_S`]
/// (in test mode every cell runs once: only the code path matters).
fn bench_or_skip(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: String,
    mut call: impl FnMut(),
) {
    if !harness::criterion_test_mode() {
        let t = Instant::now();
        call();
        let secs = t.elapsed().as_secs_f64();
        if secs > CALL_LIMIT_S {
            eprintln!("skipping {id}: one call took {secs:.2} s (limit {CALL_LIMIT_S} s)");
            return;
        }
    }
    g.bench_function(id, |b| b.iter(&mut call));
}

fn main() {
    let mut c: Criterion = harness::criterion();
    let nmax = *GEMM_N.iter().max().unwrap_or(&1);
    for (rows, cols, _) in harness::bench_shapes(&data::SHAPES[..3]) {
        let seed = (rows * 31 + cols) as u64;
        let w = data::weights(rows, cols, seed);
        let x = data::activations(nmax, cols, seed + 1);
        let xq = data::activations_i8(nmax, cols, seed + 2);
        let f32m = DenseMatrix::<f32>::from_f32(&w, rows, cols);
        let packed: Vec<TernaryMatrix> = registry::formats()
            .into_iter()
            .map(|f| TernaryMatrix::from_f32(&w, rows, cols, f).expect("packs"))
            .collect();
        for &n in GEMM_N {
            let shape = data::shape_name(rows, cols);
            let mut g = c.benchmark_group(format!("gemm/{shape}/n={n}"));
            g.sampling_mode(SamplingMode::Flat);
            g.throughput(Throughput::Elements((rows * cols * n) as u64));
            let (x, xq) = (&x[..n * cols], &xq[..n * cols]);
            for (threads, one) in [("1t", true), ("all", false)] {
                let mut y = vec![0.0f32; n * rows];
                bench_or_skip(&mut g, format!("f32/gemm/{threads}"), || {
                    f32_gemm(&f32m, x, n, &mut y, !one)
                });
                for m in &packed {
                    for ks in registry::kernel_sets(m.format()) {
                        let mut y = vec![0i32; n * rows];
                        let id = format!("{}/{}/{threads}", m.format().name(), ks.name());
                        bench_or_skip(&mut g, id, || {
                            if one {
                                ks.gemm_i8_rows(m, xq, n, 0..rows, &mut y)
                            } else {
                                ks.gemm_i8(m, xq, n, &mut y)
                            }
                            .expect("gemm")
                        });
                    }
                }
            }
            g.finish();
        }
    }
    c.final_summary();
}
