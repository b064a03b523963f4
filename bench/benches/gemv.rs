//! GEMV (one activation row) benches: every kernel set that this CPU can run × every format
//! it has its own kernels for × the shapes of `bitnet_bench::data::SHAPES`, on one thread and on all (rayon),
//! with the weights cache-resident (`warm`: the same matrix each call) and DRAM-resident
//! (`cold`: rotating over copies totalling 512 MiB), against the fp16 and f32 baselines.
//! Throughput is the bytes of weights read, so criterion prints GB/s.
//!
//! ```sh
//! cargo bench -p bitnet-bench --bench gemv                   # everything (a few minutes)
//! cargo bench -p bitnet-bench --bench gemv -- 'I2_S/avx512/1t' # criterion's filter
//! BITNET_BENCH_SHAPES=6912x2560 cargo bench -p bitnet-bench --bench gemv  # chosen shapes
//! ```
//! Ids read `gemv/<shape>/<format>/<kernel>/<1t|all>/<warm|cold>`.

use bitnet_bench::baseline::{f32_gemm, DenseMatrix};
use bitnet_bench::cold::Rotation;
use bitnet_bench::{data, harness, registry};
use bitnet_kernels::TernaryMatrix;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Benches `call(matrix, one_thread)` warm and cold, on one thread and on all.
fn four<T: Clone>(
    g: &mut Group<'_>,
    id: &str,
    m: &T,
    bytes: usize,
    mut call: impl FnMut(&T, bool),
) {
    g.throughput(Throughput::BytesDecimal(bytes as u64));
    let mut rot = Rotation::new(m.clone(), bytes, harness::cold_bytes());
    for (threads, one) in [("1t", true), ("all", false)] {
        g.bench_function(format!("{id}/{threads}/warm"), |b| b.iter(|| call(m, one)));
        g.bench_function(format!("{id}/{threads}/cold"), |b| {
            b.iter(|| call(rot.next(), one))
        });
    }
}

fn main() {
    let mut c: Criterion = harness::criterion();
    for (rows, cols, _) in harness::bench_shapes(data::SHAPES) {
        let seed = (rows * 31 + cols) as u64;
        let w = data::weights(rows, cols, seed);
        let x = data::activations(1, cols, seed + 1);
        let xq = data::activations_i8(1, cols, seed + 2);
        let mut g = c.benchmark_group(format!("gemv/{}", data::shape_name(rows, cols)));
        g.sampling_mode(SamplingMode::Flat);

        let fp16 = DenseMatrix::<u16>::from_f32(&w, rows, cols);
        let mut y = vec![0.0f32; rows];
        four(
            &mut g,
            "fp16/baseline",
            &fp16,
            fp16.weight_bytes(),
            |m, one| {
                if one {
                    m.gemv_rows(&x, 0..rows, &mut y)
                } else {
                    m.gemv(&x, &mut y)
                }
            },
        );
        drop(fp16);
        let f32m = DenseMatrix::<f32>::from_f32(&w, rows, cols);
        four(&mut g, "f32/gemm", &f32m, f32m.weight_bytes(), |m, one| {
            f32_gemm(m, &x, 1, &mut y, !one)
        });
        drop(f32m);

        for format in registry::formats() {
            let m = TernaryMatrix::from_f32(&w, rows, cols, format).expect("packs");
            for ks in registry::kernel_sets(format) {
                let mut y = vec![0i32; rows];
                let id = format!("{}/{}", format.name(), ks.name());
                four(&mut g, &id, &m, m.packed_bytes().len(), |m, one| {
                    if one {
                        ks.gemv_i8_rows(m, &xq, 0..rows, &mut y)
                    } else {
                        ks.gemv_i8(m, &xq, &mut y)
                    }
                    .expect("gemv")
                });
            }
        }
        g.finish();
    }
    c.final_summary();
}
