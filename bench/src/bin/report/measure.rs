//! The timed part of the report: per shape, the fp16 and f32 baselines, then every kernel
//! set on every format it has its own kernels for, GEMV warm and cold on one thread and on
//! all, and GEMM for several n.

use bitnet_bench::baseline::{self, f32_gemm, DenseMatrix, F32_BASELINE};
use bitnet_bench::cold::{cold_total, Rotation, COLD_BYTES};
use bitnet_bench::data::{self, GEMM_N};
use bitnet_bench::probe;
use bitnet_bench::registry::{self, Kernel};
use bitnet_bench::stats::{self, Timing};
use bitnet_kernels::{quantize_activations, TernaryMatrix};

use crate::accuracy::{accuracy, AccRow};
use crate::Budget;

/// GEMM sizes also measured on all threads (prefill of a long prompt).
pub const GEMM_N_ALL: &[usize] = &[512];

/// One untimed warm-up call, then timed calls for `budget_s` within the budget's rep limits;
/// the median.
fn measure(budget_s: f64, b: &Budget, f: impl FnMut()) -> Timing {
    stats::measure(budget_s, b.min_reps, b.max_reps, f)
}

/// Two calls timed in turns for twice a cell's budget (each gets about a cell's worth of
/// calls); the median of each ([`stats::measure_pair`]).
fn pair(budget_s: f64, b: &Budget, f: impl FnMut(bool)) -> (Timing, Timing) {
    stats::measure_pair(2.0 * budget_s, b.min_reps, b.max_reps, f)
}

/// GEMV timings of one kernel (or baseline) on one shape.
pub struct GemvRow {
    pub shape: usize,
    pub format: String,
    pub kernel: String,
    pub bytes: usize,
    /// warm and cold, 1 thread; warm and cold, all threads: the int8 kernel alone (int8
    /// activations prepared beforehand).
    pub t: [Timing; 4],
    /// The same four cells for the f32-in, f32-out call (`ternary_gemv`: quantize, kernel,
    /// rescale); not measured (reps 0) for baselines and the scalar reference beside SIMD.
    pub f32: [Timing; 4],
    pub exact: Option<bool>,
}

/// GEMM timings: 1 thread for each n of [`GEMM_N`], all threads for each of [`GEMM_N_ALL`].
pub struct GemmRow {
    pub shape: usize,
    pub format: String,
    pub kernel: String,
    pub one: Vec<Timing>,
    pub all: Vec<Timing>,
    /// The f32-in, f32-out call (`ternary_gemm`) on one thread with n = [`F32_GEMM_N`]
    /// (reps 0 where not measured, as for the baselines).
    pub f32_one: Timing,
}

/// The n of the f32 GEMM cell (prefill), measured beside the int8 one of the same n.
pub const F32_GEMM_N: usize = 128;

/// Everything measured in one run.
pub struct Report {
    pub shapes: Vec<(usize, usize, &'static str)>,
    pub limits: probe::Limits,
    pub threads: usize,
    pub gemv: Vec<GemvRow>,
    pub gemm: Vec<GemmRow>,
    pub acc: Vec<AccRow>,
}

pub fn run_shape(r: &mut Report, si: usize, rows: usize, cols: usize, b: &Budget) {
    let name = data::shape_name(rows, cols);
    eprintln!("{name}: generating weights and activations...");
    let seed = (rows * 31 + cols) as u64;
    let w = data::weights(rows, cols, seed);
    let x = data::activations(1, cols, seed);
    let mut xq = vec![0i8; cols];
    let a = quantize_activations(&x, &mut xq).expect("finite activations");
    let nmax = *GEMM_N.iter().max().unwrap_or(&1);
    let xg = data::activations(nmax, cols, seed + 1);
    let mut xgq = vec![0i8; nmax * cols];
    for (d, s) in xgq.chunks_exact_mut(cols).zip(xg.chunks_exact(cols)) {
        quantize_activations(s, d).expect("finite activations");
    }

    // Baselines: fp16 (this crate's loop) and f32 (the gemm crate).
    let fp16 = DenseMatrix::<u16>::from_f32(&w, rows, cols);
    let fp16_bytes = fp16.weight_bytes();
    eprintln!("{name}: fp16 baseline...");
    let mut y = vec![0.0f32; rows];
    let mut rot = Rotation::new(fp16.clone(), fp16_bytes, cold_total(COLD_BYTES));
    let t = [
        measure(b.gemv_s, b, || fp16.gemv_rows(&x, 0..rows, &mut y)),
        measure(b.gemv_s, b, || rot.next().gemv_rows(&x, 0..rows, &mut y)),
        measure(b.gemv_s, b, || fp16.gemv(&x, &mut y)),
        measure(b.gemv_s, b, || rot.next().gemv(&x, &mut y)),
    ];
    drop(rot);
    r.gemv.push(GemvRow {
        shape: si,
        format: "fp16".into(),
        kernel: format!("baseline ({})", baseline::simd_name()),
        bytes: fp16_bytes,
        t,
        f32: [Timing::NONE; 4],
        exact: None,
    });
    drop(fp16);

    eprintln!("{name}: f32 baseline...");
    let f32m = DenseMatrix::<f32>::from_f32(&w, rows, cols);
    let f32_bytes = f32m.weight_bytes();
    let mut rot = Rotation::new(f32m.clone(), f32_bytes, cold_total(COLD_BYTES));
    let f32g = |w: &DenseMatrix<f32>, y: &mut [f32], par| f32_gemm(w, &x, 1, y, par);
    let t = [
        measure(b.gemv_s, b, || f32g(&f32m, &mut y, false)),
        measure(b.gemv_s, b, || f32g(rot.next(), &mut y, false)),
        measure(b.gemv_s, b, || f32g(&f32m, &mut y, true)),
        measure(b.gemv_s, b, || f32g(rot.next(), &mut y, true)),
    ];
    drop(rot);
    let f32_gemv = t;
    r.gemv.push(GemvRow {
        shape: si,
        format: "f32".into(),
        kernel: F32_BASELINE.into(),
        bytes: f32_bytes,
        t,
        f32: [Timing::NONE; 4],
        exact: None,
    });
    let wr = &f32m;
    let (one, all) = gemm_cells(b, f32_gemv[0].secs, r.threads, |n, par| {
        let mut y = vec![0.0f32; n * rows];
        let x = &xg[..n * cols];
        move || f32_gemm(wr, x, n, &mut y, par)
    });
    r.gemm.push(GemmRow {
        shape: si,
        format: "f32".into(),
        kernel: F32_BASELINE.into(),
        one,
        all,
        f32_one: Timing::NONE,
    });

    for format in registry::formats() {
        let m = match TernaryMatrix::from_f32(&w, rows, cols, format) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{name} {}: cannot pack: {e}", format.name());
                continue;
            }
        };
        r.acc.push(accuracy(si, &m, &w, &x, &xq, a));
        let packed = m.packed_bytes().len();
        let mut want = vec![0i32; rows];
        registry::scalar()
            .gemv_i8_rows(&m, &xq, 0..rows, &mut want)
            .expect("the scalar reference runs every format that packs");
        let mut rot = Rotation::new(m.clone(), packed, cold_total(COLD_BYTES));
        let sets = registry::kernel_sets(format);
        for &ks in &sets {
            // The scalar reference is measured in full only where it is the format's only
            // kernel; beside SIMD kernels it gets the 1-thread warm GEMV (its speed, for
            // scale) and the exactness check, which saves most of the report's time.
            let reference_only = ks.is_scalar() && sets.len() > 1;
            eprintln!("{name} {} {}: GEMV...", format.name(), ks.name());
            let mut y = vec![0i32; rows];
            ks.gemv_i8_rows(&m, &xq, 0..rows, &mut y).expect("gemv");
            let exact = y == want;
            let g1 = |m: &TernaryMatrix, y: &mut [i32]| ks.gemv_i8_rows(m, &xq, 0..rows, y);
            let ga = |m: &TernaryMatrix, y: &mut [i32]| ks.gemv_i8(m, &xq, y);
            let mut t = [Timing::NONE; 4];
            let mut tf = [Timing::NONE; 4];
            if reference_only {
                t[0] = measure(b.gemv_s, b, || g1(&m, &mut y).expect("gemv"));
            } else {
                // Each cell times the int8 kernel and the f32 call (`ternary_gemv`: quantize,
                // kernel, rescale) in turns, so their ratio is measured under the same load.
                let mut yf = vec![0.0f32; rows];
                let f1 = |m: &TernaryMatrix, y: &mut [f32]| ks.gemm_f32_rows(m, &x, 1, 0..rows, y);
                let fa = |m: &TernaryMatrix, y: &mut [f32]| ks.gemm_f32(m, &x, 1, y);
                (t[0], tf[0]) = pair(b.gemv_s, b, |f32| {
                    if f32 {
                        f1(&m, &mut yf).expect("gemv f32")
                    } else {
                        g1(&m, &mut y).expect("gemv")
                    }
                });
                (t[1], tf[1]) = pair(b.gemv_s, b, |f32| {
                    if f32 {
                        f1(rot.next(), &mut yf).expect("gemv f32")
                    } else {
                        g1(rot.next(), &mut y).expect("gemv")
                    }
                });
                (t[2], tf[2]) = pair(b.gemv_s, b, |f32| {
                    if f32 {
                        fa(&m, &mut yf).expect("gemv f32")
                    } else {
                        ga(&m, &mut y).expect("gemv")
                    }
                });
                (t[3], tf[3]) = pair(b.gemv_s, b, |f32| {
                    if f32 {
                        fa(rot.next(), &mut yf).expect("gemv f32")
                    } else {
                        ga(rot.next(), &mut y).expect("gemv")
                    }
                });
            }
            r.gemv.push(GemvRow {
                shape: si,
                format: format.name().into(),
                kernel: ks.name().into(),
                bytes: packed,
                t,
                f32: tf,
                exact: Some(exact),
            });
            if reference_only {
                continue;
            }
            eprintln!("{name} {} {}: GEMM...", format.name(), ks.name());
            let (one, all) = gemm_cells(b, t[0].secs, r.threads, |n, par| {
                gemm_call(ks, &m, &xgq[..n * cols], n, par)
            });
            // The f32 GEMM where its int8 cell was measured (so within the call limit),
            // timed in turns with the int8 kernel again; that pair's int8 median replaces the
            // cell's, so the ratio of the two comes from the same moments.
            let nf = F32_GEMM_N;
            let mut one = one;
            let f32_one = match GEMM_N.iter().position(|&n| n == nf) {
                Some(i) if one[i].reps > 0 && xg.len() >= nf * cols => {
                    let mut yf = vec![0.0f32; nf * rows];
                    let x = &xg[..nf * cols];
                    let mut int8 = gemm_call(ks, &m, &xgq[..nf * cols], nf, false);
                    let (ti, tf) = pair(b.gemm_s, b, |f32| {
                        if f32 {
                            ks.gemm_f32_rows(&m, x, nf, 0..rows, &mut yf)
                                .expect("gemm f32")
                        } else {
                            int8()
                        }
                    });
                    one[i] = ti;
                    tf
                }
                _ => Timing::NONE,
            };
            r.gemm.push(GemmRow {
                shape: si,
                format: format.name().into(),
                kernel: ks.name().into(),
                one,
                all,
                f32_one,
            });
        }
    }
}

/// A GEMM call of kernel set `ks` on `n` int8 rows, on one thread or on rayon's pool.
fn gemm_call<'a>(
    ks: Kernel,
    m: &'a TernaryMatrix,
    x: &'a [i8],
    n: usize,
    par: bool,
) -> impl FnMut() + 'a {
    let rows = m.rows();
    let mut y = vec![0i32; n * rows];
    move || {
        if par {
            ks.gemm_i8(m, x, n, &mut y)
        } else {
            ks.gemm_i8_rows(m, x, n, 0..rows, &mut y)
        }
        .expect("gemm")
    }
}

/// Times `make(n, parallel)()` on one thread for every n of [`GEMM_N`], and on all threads
/// for [`GEMM_N_ALL`] only, skipping cells whose one call is predicted to exceed the budget's
/// limit: from the previous n's time scaled linearly, or from the GEMV × n before any GEMM
/// is measured (all threads: the 1-thread prediction divided by the thread count).
fn gemm_cells<F: FnMut()>(
    b: &Budget,
    gemv_one_s: f64,
    threads: usize,
    mut make: impl FnMut(usize, bool) -> F,
) -> (Vec<Timing>, Vec<Timing>) {
    let mut cell = |n: usize, par: bool, predicted: f64| {
        if predicted.is_finite() && predicted <= b.call_limit_s {
            measure(b.gemm_s, b, make(n, par))
        } else {
            Timing::NONE
        }
    };
    let (mut prev_n, mut prev_s) = (1usize, gemv_one_s);
    let mut one = Vec::new();
    for &n in GEMM_N {
        let t = cell(n, false, prev_s * n as f64 / prev_n as f64);
        if t.reps > 0 {
            (prev_n, prev_s) = (n, t.secs);
        }
        one.push(t);
    }
    let all = GEMM_N_ALL
        .iter()
        .map(|&n| cell(n, true, prev_s * n as f64 / prev_n as f64 / threads as f64))
        .collect();
    (one, all)
}
