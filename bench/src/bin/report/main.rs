//! The benchmark report: what this machine can do with every kernel and format built in,
//! against an fp16 and an f32 baseline and the memory bandwidth, all measured in this run.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin report                  # full report, a couple of minutes
//! cargo run --release -p bitnet-bench --bin report -- --quick       # one shape, short budgets: seconds
//! cargo run --release -p bitnet-bench --bin report -- --json r.json # also write machine-readable results
//! cargo run --release -p bitnet-bench --bin report -- --shapes 6912x2560,2560x2560
//! cargo run --release -p bitnet-bench --bin report -- --layer-only  # probes + decoder layer
//! ```
//!
//! Progress goes to stderr; the report (markdown, paste-ready) to stdout at the end.
//! Kernel sets and formats come from the registry (`bitnet_bench::registry`), so new kernels
//! and formats appear here with no change to this program.
//!
//! [`measure`] times the kernels and baselines, [`accuracy`] compares outputs with f64
//! references, [`markdown`] and [`json`] write the results.

mod a48;
mod accuracy;
mod json;
mod layer;
mod markdown;
mod measure;

use std::time::Instant;

use bitnet_bench::{capi_calls, data, kv, probe};

/// How long to measure; the two modes differ only here.
pub struct Budget {
    /// Seconds of timed calls per GEMV cell (after one untimed warm-up call).
    pub gemv_s: f64,
    /// Seconds of timed calls per GEMM cell (at least `min_reps` calls all the same).
    pub gemm_s: f64,
    /// Timed calls per cell: at least / at most.
    pub min_reps: usize,
    pub max_reps: usize,
    /// A GEMM cell whose single call is predicted to take longer than this is skipped
    /// (prediction: the previous n's time scaled linearly, or the GEMV's time × n).
    pub call_limit_s: f64,
    /// The DRAM-sized and L3-sized probe buffers, and samples per probe.
    pub probe_dram: usize,
    pub probe_l3: usize,
    pub probe_samples: usize,
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

/// The KV-cache section (`bitnet_bench::kv`): the issue's decode shape from DRAM, and a
/// short version.
const KV_FULL: kv::KvBench = kv::KvBench {
    layers: 30,
    tokens: 4096,
    reps: 7,
    draws: 20,
    acc_tokens: 1024,
};
const KV_QUICK: kv::KvBench = kv::KvBench {
    layers: 4,
    tokens: 1024,
    reps: 3,
    draws: 2,
    acc_tokens: 256,
};

fn main() {
    let mut quick = false;
    let mut layer_only = false;
    let mut json_path = None;
    let mut shapes = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            // Only the BitNet a4.8 section (accuracy and sparse activations).
            "--a48-only" => {
                print!("{}", a48::section(quick));
                return;
            }
            // Only the memory probes and the decoder-layer section.
            "--layer-only" => layer_only = true,
            "--json" => {
                json_path = Some(args.next().unwrap_or_else(|| usage("--json needs a file")))
            }
            "--shapes" => {
                let list = args
                    .next()
                    .unwrap_or_else(|| usage("--shapes needs a list"));
                shapes = Some(data::parse_shapes(&list).unwrap_or_else(|e| usage(&e)));
            }
            "--bench" => {} // passed by `cargo bench`-style runners; harmless
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    let b = if quick { &QUICK } else { &FULL };
    let shapes = shapes.unwrap_or_else(|| {
        if quick {
            data::SHAPES[..1].to_vec()
        } else {
            data::SHAPES.to_vec()
        }
    });
    let started = Instant::now();
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let command = format!("cargo run --release -p bitnet-bench --bin report -- {command}")
        .trim_end_matches(" -- ")
        .to_string();

    let threads = rayon::current_num_threads();
    eprintln!("probing memory bandwidth (1 and {threads} threads)...");
    let limits = probe::limits(b.probe_dram, b.probe_l3, threads, b.probe_samples);
    if layer_only {
        let section = layer::measure(b, &limits, threads);
        println!(
            "{command}\n\nstreaming read (DRAM): {:.1} GB/s on 1 thread, {:.1} GB/s on {threads}",
            limits.dram_1t.gb_per_s, limits.dram_all.gb_per_s
        );
        print!("{}", layer::markdown(&section));
        return;
    }
    let mut r = measure::Report {
        shapes: shapes.clone(),
        limits,
        threads,
        gemv: Vec::new(),
        gemm: Vec::new(),
        acc: Vec::new(),
    };
    for (si, &(rows, cols, _)) in shapes.iter().enumerate() {
        measure::run_shape(&mut r, si, rows, cols, b);
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
    let section = layer::measure(b, &r.limits, threads);
    eprintln!("3-bit KV cache...");
    let kv_md = kv::section(
        if quick { &KV_QUICK } else { &KV_FULL },
        r.limits.dram_1t.gb_per_s,
    )
    .unwrap_or_else(|e| format!("## 3-bit KV cache\n\nfailed: {e}\n"));
    eprintln!("the C ABI against the Rust API...");
    let capi_md = capi_calls::markdown(&capi_calls::measure(quick), bitnet_kernels::num_threads());
    eprintln!("a4.8: accuracy, int4 lookup tables and sparse activations...");
    let a48_md = a48::section(quick);
    let elapsed = started.elapsed().as_secs_f64();
    let md = markdown::markdown(&r, b, quick, &command, elapsed);
    print!("{md}");
    print!("{}", layer::markdown(&section));
    print!("\n{kv_md}");
    print!("\n{capi_md}");
    print!("{a48_md}");
    if let Some(path) = json_path {
        let mut v = json::to_json(&r, quick, &command, elapsed);
        v["decoder_layer"] = layer::to_json(&section);
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
        "usage: cargo run --release -p bitnet-bench --bin report -- [--quick] [--json FILE] [--shapes RxC,...] [--a48-only] [--layer-only]"
    );
    std::process::exit(if err.is_empty() { 0 } else { 2 })
}
