//! The benchmark report: what this machine can do with every kernel and format built in,
//! against an fp16 and an f32 baseline and the memory bandwidth, all measured in this run.
//!
//! ```sh
//! cargo run --release --example report                  # full report, a couple of minutes
//! cargo run --release --example report -- --quick       # one shape, short budgets: seconds
//! cargo run --release --example report -- --json r.json # also write machine-readable results
//! cargo run --release --example report -- --shapes 6912x2560,2560x2560
//! ```
//!
//! Progress goes to stderr; the report (markdown, paste-ready) to stdout at the end.
//! Kernel sets and formats come from the registry (`kernels::available()`, `Format::ALL`),
//! so new kernels and formats appear here with no change to this file.

#[path = "../benches/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::time::Instant;

use bitnet_kernels::baseline::DenseMatrix;
use bitnet_kernels::kernels::{self, KernelSet};
use bitnet_kernels::probe::{self, Bandwidth};
use bitnet_kernels::{quantize_activations, Format, TernaryMatrix};
use serde_json::{json, Value};
use support::{Rotation, COLD_BYTES, F32_BASELINE, GEMM_N};

/// GEMM sizes also measured on all threads (prefill of a long prompt).
const GEMM_N_ALL: &[usize] = &[512];

/// How long to measure; the two modes differ only here.
struct Budget {
    /// Seconds of timed calls per GEMV cell (after one untimed warm-up call).
    gemv_s: f64,
    /// Seconds of timed calls per GEMM cell (at least `min_reps` calls all the same).
    gemm_s: f64,
    /// Timed calls per cell: at least / at most.
    min_reps: usize,
    max_reps: usize,
    /// A GEMM cell whose single call is predicted to take longer than this is skipped
    /// (prediction: the previous n's time scaled linearly, or the GEMV's time × n).
    call_limit_s: f64,
    /// The DRAM-sized and L3-sized probe buffers, and samples per probe.
    probe_dram: usize,
    probe_l3: usize,
    probe_samples: usize,
}

const FULL: Budget = Budget {
    gemv_s: 0.2,
    gemm_s: 0.2,
    min_reps: 3,
    max_reps: 200,
    call_limit_s: 0.4,
    probe_dram: 1 << 30,
    probe_l3: 16 << 20,
    probe_samples: 200,
};

const QUICK: Budget = Budget {
    gemv_s: 0.03,
    gemm_s: 0.05,
    min_reps: 3,
    max_reps: 50,
    call_limit_s: 0.15,
    probe_dram: 256 << 20,
    probe_l3: 16 << 20,
    probe_samples: 60,
};

/// A median time and how many timed calls it came from.
#[derive(Clone, Copy)]
struct Timing {
    secs: f64,
    reps: usize,
}

impl Timing {
    const NONE: Timing = Timing {
        secs: f64::NAN,
        reps: 0,
    };
    fn json(self) -> Value {
        if self.reps == 0 {
            Value::Null
        } else {
            json!({ "median_us": self.secs * 1e6, "reps": self.reps })
        }
    }
}

/// One untimed warm-up call, then timed calls until the budget is spent (within the rep
/// limits); the median.
fn measure(budget_s: f64, b: &Budget, mut f: impl FnMut()) -> Timing {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < b.min_reps
        || (times.len() < b.max_reps && start.elapsed().as_secs_f64() < budget_s)
    {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    Timing {
        secs: support::median(&mut times),
        reps: times.len(),
    }
}

/// GEMV timings of one kernel (or baseline) on one shape.
struct GemvRow {
    shape: usize,
    format: String,
    kernel: String,
    bytes: usize,
    /// warm and cold, 1 thread; warm and cold, all threads.
    t: [Timing; 4],
    exact: Option<bool>,
}

/// GEMM timings: 1 thread for each n of [`GEMM_N`], all threads for each of [`GEMM_N_ALL`].
struct GemmRow {
    shape: usize,
    format: String,
    kernel: String,
    one: Vec<Timing>,
    all: Vec<Timing>,
}

/// Footprint and accuracy of one format on one shape.
struct AccRow {
    shape: usize,
    format: Format,
    packed: usize,
    /// max |y − y_deq| / max |y_deq|, y_deq = f64 product of dequantized W and x.
    err_deq: f64,
    /// Against the unquantized f32 product W x: cosine similarity and relative MSE.
    cos: f64,
    rel_mse: f64,
    /// Dequantized W times unquantized x, against W x: the weights' share of the loss.
    cos_w_only: f64,
}

struct Report {
    shapes: Vec<(usize, usize, &'static str)>,
    limits: probe::Limits,
    threads: usize,
    gemv: Vec<GemvRow>,
    gemm: Vec<GemmRow>,
    acc: Vec<AccRow>,
}

fn main() {
    let mut quick = false;
    let mut json_path = None;
    let mut shapes = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => {
                json_path = Some(args.next().unwrap_or_else(|| usage("--json needs a file")))
            }
            "--shapes" => {
                let list = args
                    .next()
                    .unwrap_or_else(|| usage("--shapes needs a list"));
                shapes = Some(support::parse_shapes(&list).unwrap_or_else(|e| usage(&e)));
            }
            "--bench" => {} // passed by `cargo bench`-style runners; harmless
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    let b = if quick { &QUICK } else { &FULL };
    let shapes = shapes.unwrap_or_else(|| {
        if quick {
            support::SHAPES[..1].to_vec()
        } else {
            support::SHAPES.to_vec()
        }
    });
    let started = Instant::now();
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let command = format!("cargo run --release --example report -- {command}")
        .trim_end_matches(" -- ")
        .to_string();

    let threads = rayon::current_num_threads();
    eprintln!("probing memory bandwidth (1 and {threads} threads)...");
    let limits = probe::limits(b.probe_dram, b.probe_l3, threads, b.probe_samples);
    let mut r = Report {
        shapes: shapes.clone(),
        limits,
        threads,
        gemv: Vec::new(),
        gemm: Vec::new(),
        acc: Vec::new(),
    };
    for (si, &(rows, cols, _)) in shapes.iter().enumerate() {
        run_shape(&mut r, si, rows, cols, b);
    }
    // Probe again at the end and keep the faster: the machine may have been busier at
    // the start, and noise only ever makes a read slower.
    eprintln!("probing memory bandwidth again...");
    r.limits = r.limits.max(probe::limits(
        b.probe_dram,
        b.probe_l3,
        threads,
        b.probe_samples,
    ));
    let elapsed = started.elapsed().as_secs_f64();
    let md = markdown(&r, b, quick, &command, elapsed);
    print!("{md}");
    if let Some(path) = json_path {
        let v = to_json(&r, quick, &command, elapsed);
        let text = serde_json::to_string_pretty(&v).expect("serializable");
        std::fs::write(&path, text + "\n").unwrap_or_else(|e| {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        });
        eprintln!("wrote {path}");
    }
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("error: {err}");
    }
    eprintln!(
        "usage: cargo run --release --example report -- [--quick] [--json FILE] [--shapes RxC,...]"
    );
    std::process::exit(if err.is_empty() { 0 } else { 2 })
}

fn run_shape(r: &mut Report, si: usize, rows: usize, cols: usize, b: &Budget) {
    let name = support::shape_name(rows, cols);
    eprintln!("{name}: generating weights and activations...");
    let seed = (rows * 31 + cols) as u64;
    let w = support::weights(rows, cols, seed);
    let x = support::activations(1, cols, seed);
    let mut xq = vec![0i8; cols];
    let a = quantize_activations(&x, &mut xq).expect("finite activations");
    let nmax = *GEMM_N.iter().max().unwrap_or(&1);
    let xg = support::activations(nmax, cols, seed + 1);
    let mut xgq = vec![0i8; nmax * cols];
    for (d, s) in xgq.chunks_exact_mut(cols).zip(xg.chunks_exact(cols)) {
        quantize_activations(s, d).expect("finite activations");
    }

    // Baselines: fp16 (this crate's loop) and f32 (the gemm crate).
    let fp16 = DenseMatrix::<u16>::from_f32(&w, rows, cols);
    let fp16_bytes = fp16.weight_bytes();
    eprintln!("{name}: fp16 baseline...");
    let mut y = vec![0.0f32; rows];
    let mut rot = Rotation::new(fp16.clone(), fp16_bytes, COLD_BYTES);
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
        kernel: format!("baseline ({})", bitnet_kernels::baseline::simd_name()),
        bytes: fp16_bytes,
        t,
        exact: None,
    });
    drop(fp16);

    eprintln!("{name}: f32 baseline...");
    let f32m = DenseMatrix::<f32>::from_f32(&w, rows, cols);
    let f32_bytes = f32m.weight_bytes();
    let mut rot = Rotation::new(f32m.clone(), f32_bytes, COLD_BYTES);
    let f32g = |w: &DenseMatrix<f32>, y: &mut [f32], par| support::f32_gemm(w, &x, 1, y, par);
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
        exact: None,
    });
    let wr = &f32m;
    let (one, all) = gemm_cells(b, f32_gemv[0].secs, r.threads, |n, par| {
        let mut y = vec![0.0f32; n * rows];
        let x = &xg[..n * cols];
        move || support::f32_gemm(wr, x, n, &mut y, par)
    });
    r.gemm.push(GemmRow {
        shape: si,
        format: "f32".into(),
        kernel: F32_BASELINE.into(),
        one,
        all,
    });

    for format in support::formats() {
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
        kernels::SCALAR
            .gemv_i8_rows(&m, &xq, 0..rows, &mut want)
            .expect("the scalar reference runs every format that packs");
        let mut rot = Rotation::new(m.clone(), packed, COLD_BYTES);
        let sets = support::kernel_sets(format);
        for &ks in &sets {
            // The scalar reference is measured in full only where it is the format's only
            // kernel; beside SIMD kernels it gets the 1-thread warm GEMV (its speed, for
            // scale) and the exactness check, which saves most of the report's time.
            let reference_only = ks.name() == kernels::SCALAR.name() && sets.len() > 1;
            eprintln!("{name} {} {}: GEMV...", format.name(), ks.name());
            let mut y = vec![0i32; rows];
            ks.gemv_i8_rows(&m, &xq, 0..rows, &mut y).expect("gemv");
            let exact = y == want;
            let g1 = |m: &TernaryMatrix, y: &mut [i32]| ks.gemv_i8_rows(m, &xq, 0..rows, y);
            let ga = |m: &TernaryMatrix, y: &mut [i32]| ks.gemv_i8(m, &xq, y);
            let mut t = [Timing::NONE; 4];
            t[0] = measure(b.gemv_s, b, || g1(&m, &mut y).expect("gemv"));
            if !reference_only {
                t[1] = measure(b.gemv_s, b, || g1(rot.next(), &mut y).expect("gemv"));
                t[2] = measure(b.gemv_s, b, || ga(&m, &mut y).expect("gemv"));
                t[3] = measure(b.gemv_s, b, || ga(rot.next(), &mut y).expect("gemv"));
            }
            r.gemv.push(GemvRow {
                shape: si,
                format: format.name().into(),
                kernel: ks.name().into(),
                bytes: packed,
                t,
                exact: Some(exact),
            });
            if reference_only {
                continue;
            }
            eprintln!("{name} {} {}: GEMM...", format.name(), ks.name());
            let (one, all) = gemm_cells(b, t[0].secs, r.threads, |n, par| {
                gemm_call(ks, &m, &xgq[..n * cols], n, par)
            });
            r.gemm.push(GemmRow {
                shape: si,
                format: format.name().into(),
                kernel: ks.name().into(),
                one,
                all,
            });
        }
    }
}

/// A GEMM call of kernel set `ks` on `n` int8 rows, on one thread or on rayon's pool.
fn gemm_call<'a>(
    ks: &'static KernelSet,
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

/// BitLinear output against f64 references (see [`AccRow`]).
fn accuracy(si: usize, m: &TernaryMatrix, w: &[f32], x: &[f32], xq: &[i8], a: f32) -> AccRow {
    let (rows, cols) = (m.rows(), m.cols());
    let mut y = vec![0.0f32; rows];
    bitnet_kernels::ternary_gemv(m, x, &mut y).expect("ternary_gemv");
    let t = m.to_ternary();
    let s = m.scale() as f64;
    let xd: Vec<f64> = xq.iter().map(|&q| q as f64 * (a as f64 / 127.0)).collect();
    let (mut deq, mut full, mut wonly) = (vec![0f64; rows], vec![0f64; rows], vec![0f64; rows]);
    for r in 0..rows {
        let (tr, wr) = (&t[r * cols..][..cols], &w[r * cols..][..cols]);
        let (mut d, mut f, mut o) = (0f64, 0f64, 0f64);
        for j in 0..cols {
            let tw = tr[j] as f64 * s;
            d += tw * xd[j];
            f += wr[j] as f64 * x[j] as f64;
            o += tw * x[j] as f64;
        }
        (deq[r], full[r], wonly[r]) = (d, f, o);
    }
    let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    let max_abs = deq.iter().fold(0f64, |acc, v| acc.max(v.abs()));
    let max_err = y64
        .iter()
        .zip(&deq)
        .fold(0f64, |acc, (p, q)| acc.max((p - q).abs()));
    AccRow {
        shape: si,
        format: m.format(),
        packed: m.packed_bytes().len(),
        err_deq: max_err / max_abs.max(f64::MIN_POSITIVE),
        cos: cosine(&y64, &full),
        rel_mse: rel_mse(&y64, &full),
        cos_w_only: cosine(&wonly, &full),
    }
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
    let na: f64 = a.iter().map(|p| p * p).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|p| p * p).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn rel_mse(a: &[f64], reference: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(reference)
        .map(|(p, q)| (p - q) * (p - q))
        .sum();
    num / reference.iter().map(|q| q * q).sum::<f64>()
}

// ---------------------------------------------------------------------------------------
// Output

/// GB/s of `bytes` read in `secs`.
fn gbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

fn us(t: Timing) -> String {
    if t.reps == 0 {
        "—".into()
    } else if t.secs < 1e-2 {
        format!("{:.1}", t.secs * 1e6)
    } else {
        format!("{:.0}", t.secs * 1e6)
    }
}

fn ratio(base: Timing, t: Timing) -> String {
    let v = base.secs / t.secs;
    if v.is_finite() {
        format!("{v:.1}×")
    } else {
        "—".into()
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0} %", v * 100.0)
    } else {
        "—".into()
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| format!("unknown ({})", std::env::consts::ARCH))
}

fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        for (name, yes) in [
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("f16c", has!("f16c")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vl", has!("avx512vl")),
            ("avx512vnni", has!("avx512vnni")),
            ("avx512vbmi", has!("avx512vbmi")),
            ("avxvnni", has!("avxvnni")),
        ] {
            if yes {
                v.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        for (name, yes) in [("neon", has!("neon")), ("dotprod", has!("dotprod"))] {
            if yes {
                v.push(name);
            }
        }
    }
    v
}

/// `2026-11-23 10:49 UTC`, from the system clock (civil-from-days, no time-zone database).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn active_kernel() -> String {
    match kernels::kernel_name() {
        Ok(k) => k.to_string(),
        Err(e) => format!("error: {e}"),
    }
}

fn markdown(r: &Report, b: &Budget, quick: bool, command: &str, elapsed: f64) -> String {
    let mut o = String::new();
    let sname = |si: usize| {
        let (rows, cols, model) = r.shapes[si];
        format!("{} ({model})", support::shape_name(rows, cols))
    };
    let avail: Vec<&str> = kernels::available().map(|k| k.name()).collect();
    let l = &r.limits;
    let n = r.threads;
    let _ = writeln!(
        o,
        "## Benchmark report{}\n",
        if quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        o,
        "- date: {}; command: `{command}`; run time {elapsed:.0} s",
        utc_now()
    );
    let _ = writeln!(
        o,
        "- CPU: {}; features: {}",
        cpu_model(),
        cpu_features().join(" ")
    );
    let _ = writeln!(
        o,
        "- kernel sets available (best first): {}; chosen: **{}**{}; threads: {n} (rayon)",
        avail.join(", "),
        active_kernel(),
        std::env::var("BITNET_KERNEL").map_or(String::new(), |v| format!(" (BITNET_KERNEL={v})"))
    );
    let formats: Vec<String> = support::formats()
        .iter()
        .map(|&f| {
            let sets: Vec<&str> = support::kernel_sets(f).iter().map(|k| k.name()).collect();
            format!("{} ({})", f.name(), sets.join(", "))
        })
        .collect();
    let _ = writeln!(
        o,
        "- formats (kernel sets with their own kernels): {}",
        formats.join("; ")
    );
    let _ = writeln!(
        o,
        "- baselines: fp16 = `bitnet_kernels::baseline` ({} loop, F16C conversion + FMA); {F32_BASELINE} = `gemm-f32` 0.18 sgemm",
        bitnet_kernels::baseline::simd_name()
    );
    let _ = writeln!(
        o,
        "- method: median of ≥ {} timed calls after one warm-up ({:.2} s budget a GEMV cell, {:.2} s a GEMM cell); \
         warm = the same matrix every call; cold = rotating over ≥ {} copies totalling ≥ {} MiB; \
         int8 activations prepared beforehand (kernel time only); this machine is shared and noisy (±20–30 %)\n",
        b.min_reps,
        b.gemv_s,
        b.gemm_s,
        support::COLD_COPIES,
        COLD_BYTES >> 20
    );

    let _ = writeln!(
        o,
        "### Memory bandwidth (streaming read, {} loads, with and without software prefetch, the faster kept; median of {} steps of 8 MiB a thread, the better of a probe at the start and one at the end of the run)\n",
        probe::read_loop_name(),
        b.probe_samples
    );
    let _ = writeln!(o, "| buffer | 1 thread | {n} threads |\n|---|---|---|");
    let bw = |x: &Bandwidth| format!("{:.1} GB/s ({})", x.gb_per_s, x.read_loop.name());
    let _ = writeln!(
        o,
        "| {} MiB (DRAM) | {} | {} |",
        l.dram_1t.bytes >> 20,
        bw(&l.dram_1t),
        bw(&l.dram_all)
    );
    let _ = writeln!(
        o,
        "| {} MiB (L3) | {} | {} |\n",
        l.l3_1t.bytes >> 20,
        bw(&l.l3_1t),
        bw(&l.l3_all)
    );

    for (title, off, dram) in [
        ("1 thread", 0, l.dram_1t.gb_per_s),
        (&*format!("{n} threads"), 2, l.dram_all.gb_per_s),
    ] {
        let _ = writeln!(o, "### GEMV, {title} (µs, median)\n");
        let _ = writeln!(
            o,
            "| shape | format | kernel | weights MB | warm µs | vs fp16 | vs f32 | cold µs | cold GB/s | of DRAM BW | vs fp16 | vs f32 | exact |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for g in &r.gemv {
            let base = |fmt: &str| {
                r.gemv
                    .iter()
                    .find(|b| b.shape == g.shape && b.format == fmt)
            };
            let (fp, f3) = (base("fp16").unwrap(), base("f32").unwrap());
            let (warm, cold) = (g.t[off], g.t[off + 1]);
            let cold_gbps = gbps(g.bytes, cold.secs);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                sname(g.shape),
                g.format,
                g.kernel,
                g.bytes as f64 / 1e6,
                us(warm),
                ratio(fp.t[off], warm),
                ratio(f3.t[off], warm),
                us(cold),
                if cold.reps == 0 {
                    "—".into()
                } else {
                    format!("{cold_gbps:.1}")
                },
                pct(cold_gbps / dram),
                ratio(fp.t[off + 1], cold),
                ratio(f3.t[off + 1], cold),
                g.exact.map_or("—", |e| if e { "yes" } else { "**NO**" }),
            );
        }
        let _ = writeln!(o);
    }

    let _ = writeln!(
        o,
        "### GEMM (G MAC/s, warm; int8 activation rows × packed weights)\n"
    );
    let mut head = String::from("| shape | format | kernel |");
    let mut rule = String::from("|---|---|---|");
    for (threads, sizes) in [("1 thread", GEMM_N), (&*format!("{n} threads"), GEMM_N_ALL)] {
        for &gn in sizes {
            let _ = write!(head, " n={gn}, {threads} |");
            rule.push_str("---|");
        }
    }
    let _ = writeln!(o, "{head}\n{rule}");
    for g in &r.gemm {
        let (rows, cols, _) = r.shapes[g.shape];
        let _ = write!(o, "| {} | {} | {} |", sname(g.shape), g.format, g.kernel);
        let sizes = GEMM_N.iter().chain(GEMM_N_ALL);
        for (t, &gn) in g.one.iter().chain(&g.all).zip(sizes) {
            let macs = (rows * cols * gn) as f64;
            if t.reps == 0 {
                let _ = write!(o, " skip |");
            } else {
                let _ = write!(o, " {:.1} |", macs / t.secs / 1e9);
            }
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "\n`skip`: one call was predicted to take over {:.2} s (from the previous n, or from the GEMV × n). \
         The scalar reference gets no GEMM row (nor cold / all-thread GEMV cells) where SIMD kernels exist for the format.\n",
        b.call_limit_s
    );

    let _ = writeln!(
        o,
        "### Footprint and accuracy (BitLinear f32 output, one activation row)\n"
    );
    let _ = writeln!(
        o,
        "| shape | format | packed MB | fp16 MB | smaller than fp16 | max err vs dequantized (rel.) | cosine vs f32 | rel. MSE vs f32 | cosine, ternary W only |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for a in &r.acc {
        let (rows, cols, _) = r.shapes[a.shape];
        let fp16 = rows * cols * 2;
        let _ = writeln!(
            o,
            "| {} | {} | {:.2} | {:.2} | {:.2}× | {:.1e} | {:.4} | {:.4} | {:.4} |",
            sname(a.shape),
            a.format.name(),
            a.packed as f64 / 1e6,
            fp16 as f64 / 1e6,
            fp16 as f64 / a.packed as f64,
            a.err_deq,
            a.cos,
            a.rel_mse,
            a.cos_w_only
        );
    }
    let _ = writeln!(
        o,
        "\nWeights: Gaussian (std 0.02), activations: Gaussian, both synthetic; a model trained for ternary weights \
         (BitNet b1.58) loses far less than these random weights do. \"max err vs dequantized\": against the f64 \
         product of the dequantized weights (trit × scale) and dequantized activations (int8 × absmax/127), \
         relative to the largest output: float rounding only.\n"
    );

    let _ = writeln!(o, "### Headlines\n");
    for line in headlines(r) {
        let _ = writeln!(o, "- {line}");
    }
    o
}

/// For each format, the best kernel set's figures on the first shape measured that is
/// `6912x2560` if present, else the first shape.
fn headlines(r: &Report) -> Vec<String> {
    let si = r
        .shapes
        .iter()
        .position(|&(rows, cols, _)| (rows, cols) == (6912, 2560))
        .unwrap_or(0);
    let (rows, cols, _) = r.shapes[si];
    let base = |f: &str| r.gemv.iter().find(|g| g.shape == si && g.format == f);
    let (Some(fp), Some(f3)) = (base("fp16"), base("f32")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for format in support::formats() {
        let Some(g) = r
            .gemv
            .iter()
            .find(|g| g.shape == si && g.format == format.name())
        else {
            continue;
        };
        let l = &r.limits;
        out.push(format!(
            "{} `{}` {rows}x{cols} GEMV, 1 thread: warm {} µs = {} fp16, {} f32; cold {} µs = {} of the 1-thread DRAM bandwidth, {} fp16; \
             {} threads cold: {} µs = {} of the {}-thread bandwidth, {} fp16",
            format.name(),
            g.kernel,
            us(g.t[0]),
            ratio(fp.t[0], g.t[0]),
            ratio(f3.t[0], g.t[0]),
            us(g.t[1]),
            pct(gbps(g.bytes, g.t[1].secs) / l.dram_1t.gb_per_s),
            ratio(fp.t[1], g.t[1]),
            r.threads,
            us(g.t[3]),
            pct(gbps(g.bytes, g.t[3].secs) / l.dram_all.gb_per_s),
            r.threads,
            ratio(fp.t[3], g.t[3]),
        ));
    }
    // Prefill: GEMM n = 128 on one thread, on 2560x2560 if measured (issue 2's target).
    let gi = r
        .shapes
        .iter()
        .position(|&(rr, cc, _)| (rr, cc) == (2560, 2560));
    let n128 = GEMM_N.iter().position(|&n| n == 128);
    if let (Some(gi), Some(k)) = (gi, n128) {
        for g in r.gemm.iter().filter(|g| g.shape == gi) {
            let t = g.one[k];
            if t.reps > 0
                && !out
                    .iter()
                    .any(|l| l.starts_with(&format!("GEMM {} ", g.format)))
            {
                let macs = (2560 * 2560 * 128) as f64;
                out.push(format!(
                    "GEMM {} `{}` 2560x2560, n = 128, 1 thread: {:.2} ms = {:.0} G MAC/s",
                    g.format,
                    g.kernel,
                    t.secs * 1e3,
                    macs / t.secs / 1e9
                ));
            }
        }
    }
    out.push(format!(
        "fp16 baseline cold {rows}x{cols}: {:.1} GB/s = {} of the 1-thread DRAM bandwidth ({} threads: {})",
        gbps(fp.bytes, fp.t[1].secs),
        pct(gbps(fp.bytes, fp.t[1].secs) / r.limits.dram_1t.gb_per_s),
        r.threads,
        pct(gbps(fp.bytes, fp.t[3].secs) / r.limits.dram_all.gb_per_s),
    ));
    // A baseline far from the bandwidth limit flatters every speed-up over it: say where.
    let weak: Vec<String> = r
        .gemv
        .iter()
        .filter(|g| g.format == "fp16")
        .filter_map(|g| {
            let f = gbps(g.bytes, g.t[1].secs) / r.limits.dram_1t.gb_per_s;
            (f < 0.8).then(|| {
                let (rr, cc, _) = r.shapes[g.shape];
                format!("{} ({})", support::shape_name(rr, cc), pct(f))
            })
        })
        .collect();
    out.push(if weak.is_empty() {
        "fp16 baseline cold, 1 thread: at least 80 % of the DRAM bandwidth on every shape".into()
    } else {
        format!(
            "fp16 baseline cold, 1 thread, below 80 % of the DRAM bandwidth on {}: \
             speed-ups over fp16 there overstate the gain (compare with the bandwidth instead)",
            weak.join(", ")
        )
    });
    out
}

fn to_json(r: &Report, quick: bool, command: &str, elapsed: f64) -> Value {
    let shape = |si: usize| {
        let (rows, cols, model) = r.shapes[si];
        json!({ "rows": rows, "cols": cols, "model": model })
    };
    let bw = |b: &Bandwidth| json!({ "bytes": b.bytes, "threads": b.threads, "gb_per_s": b.gb_per_s, "best_gb_per_s": b.best_gb_per_s, "read_loop": b.read_loop.name() });
    json!({
        "date": utc_now(),
        "command": command,
        "quick": quick,
        "elapsed_s": elapsed,
        "cpu": { "model": cpu_model(), "features": cpu_features() },
        "threads": r.threads,
        "kernels_available": kernels::available().map(|k| k.name()).collect::<Vec<_>>(),
        "kernel_chosen": active_kernel(),
        "cold_rotation_bytes": COLD_BYTES,
        "bandwidth": {
            "dram_1t": bw(&r.limits.dram_1t), "dram_all": bw(&r.limits.dram_all),
            "l3_1t": bw(&r.limits.l3_1t), "l3_all": bw(&r.limits.l3_all),
        },
        "gemv": r.gemv.iter().map(|g| json!({
            "shape": shape(g.shape), "format": g.format, "kernel": g.kernel, "weight_bytes": g.bytes,
            "warm_1t": g.t[0].json(), "cold_1t": g.t[1].json(),
            "warm_all": g.t[2].json(), "cold_all": g.t[3].json(),
            "exact_vs_scalar": g.exact,
        })).collect::<Vec<_>>(),
        "gemm": r.gemm.iter().map(|g| json!({
            "shape": shape(g.shape), "format": g.format, "kernel": g.kernel,
            "one_thread_n": GEMM_N,
            "one_thread": g.one.iter().map(|t| t.json()).collect::<Vec<_>>(),
            "all_threads_n": GEMM_N_ALL,
            "all_threads": g.all.iter().map(|t| t.json()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "accuracy": r.acc.iter().map(|a| json!({
            "shape": shape(a.shape), "format": a.format.name(), "packed_bytes": a.packed,
            "fp16_bytes": r.shapes[a.shape].0 * r.shapes[a.shape].1 * 2,
            "max_rel_err_vs_dequantized": a.err_deq, "cosine_vs_f32": a.cos,
            "rel_mse_vs_f32": a.rel_mse, "cosine_ternary_weights_only": a.cos_w_only,
        })).collect::<Vec<_>>(),
    })
}
