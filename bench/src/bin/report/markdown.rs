//! The report as markdown, paste-ready: machine, bandwidth, GEMV and GEMM tables, footprint
//! and accuracy, and the headlines.

use std::fmt::Write as _;

use bitnet_bench::baseline::{self, F32_BASELINE};
use bitnet_bench::cold::{cold_total, COLD_BYTES, COLD_COPIES};
use bitnet_bench::data::{self, GEMM_N};
use bitnet_bench::machine;
use bitnet_bench::probe::{self, Bandwidth};
use bitnet_bench::registry;
use bitnet_bench::stats::Timing;

use crate::measure::{Report, F32_GEMM_N, GEMM_N_ALL};
use crate::Budget;

pub fn markdown(r: &Report, b: &Budget, quick: bool, command: &str, elapsed: f64) -> String {
    let mut o = String::new();
    let sname = |si: usize| {
        let (rows, cols, model) = r.shapes[si];
        format!("{} ({model})", data::shape_name(rows, cols))
    };
    let avail = machine::kernels_available();
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
        machine::utc_now()
    );
    let _ = writeln!(
        o,
        "- CPU: {}; features: {}",
        machine::cpu_model(),
        machine::cpu_features().join(" ")
    );
    let _ = writeln!(
        o,
        "- kernel sets available (best first): {}; chosen: **{}**{}; threads: {n} (rayon)",
        avail.join(", "),
        machine::kernel_chosen(),
        std::env::var("BITNET_KERNEL").map_or(String::new(), |v| format!(" (BITNET_KERNEL={v})"))
    );
    let formats: Vec<String> = registry::formats()
        .iter()
        .map(|&f| {
            let sets: Vec<&str> = registry::kernel_sets(f).iter().map(|k| k.name()).collect();
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
        "- baselines: fp16 = `bitnet_bench::baseline` ({} loop, F16C conversion + FMA); {F32_BASELINE} = `gemm-f32` 0.18 sgemm",
        baseline::simd_name()
    );
    let _ = writeln!(
        o,
        "- method: median of ≥ {} timed calls after one warm-up ({:.2} s budget a GEMV cell, {:.2} s a GEMM cell); \
         warm = the same matrix every call; cold = rotating over ≥ {} copies totalling ≥ {} MiB; \
         GEMV/GEMM tables: int8 activations prepared beforehand (kernel time only); \
         \"f32 in, f32 out\": the calls users make (`ternary_gemv` / `ternary_gemm` with that set: quantize, kernel, rescale), \
         timed in turns with its int8 cell (twice the budget), so their ratio sees the same load; this machine is shared and noisy (±20–30 %)\n",
        b.min_reps,
        b.gemv_s,
        b.gemm_s,
        COLD_COPIES,
        cold_total(COLD_BYTES) >> 20
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
        "### f32 in, f32 out against the int8 kernel it calls (µs, median; ratio = f32 call / int8 kernel, same run)\n"
    );
    let _ = writeln!(
        o,
        "| shape | format | kernel | warm 1t f32 | int8 | ratio | cold 1t f32 | int8 | ratio | warm {n}t f32 | int8 | ratio | GEMM n={F32_GEMM_N} 1t f32 | int8 | ratio |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for g in r.gemv.iter().filter(|g| g.f32[0].reps > 0) {
        let _ = write!(o, "| {} | {} | {} |", sname(g.shape), g.format, g.kernel);
        for i in [0, 1, 2] {
            let _ = write!(
                o,
                " {} | {} | {} |",
                us(g.f32[i]),
                us(g.t[i]),
                over(g.f32[i], g.t[i])
            );
        }
        let gm = r
            .gemm
            .iter()
            .find(|m| m.shape == g.shape && m.format == g.format && m.kernel == g.kernel);
        let k = GEMM_N.iter().position(|&gn| gn == F32_GEMM_N);
        match (gm, k) {
            (Some(gm), Some(k)) => {
                let _ = writeln!(
                    o,
                    " {} | {} | {} |",
                    us(gm.f32_one),
                    us(gm.one[k]),
                    over(gm.f32_one, gm.one[k])
                );
            }
            _ => {
                let _ = writeln!(o, " — | — | — |");
            }
        }
    }
    let _ = writeln!(o);

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
    for format in registry::formats() {
        let Some(g) = r
            .gemv
            .iter()
            .find(|g| g.shape == si && g.format == format.name())
        else {
            continue;
        };
        let l = &r.limits;
        // The f32 call users make where it was measured, else the kernel alone.
        let (t, what) = if g.f32[0].reps > 0 {
            (g.f32, "`ternary_gemv` (f32 in, f32 out)")
        } else {
            (g.t, "int8 kernel")
        };
        out.push(format!(
            "{} `{}` {rows}x{cols} {what}, 1 thread: warm {} µs = {} fp16, {} f32 (int8 kernel alone {} µs: f32 call {}); \
             cold {} µs = {} of the 1-thread DRAM bandwidth, {} fp16; \
             {} threads cold: {} µs = {} of the {}-thread bandwidth, {} fp16",
            format.name(),
            g.kernel,
            us(t[0]),
            ratio(fp.t[0], t[0]),
            ratio(f3.t[0], t[0]),
            us(g.t[0]),
            over(t[0], g.t[0]),
            us(t[1]),
            pct(gbps(g.bytes, t[1].secs) / l.dram_1t.gb_per_s),
            ratio(fp.t[1], t[1]),
            r.threads,
            us(t[3]),
            pct(gbps(g.bytes, t[3].secs) / l.dram_all.gb_per_s),
            r.threads,
            ratio(fp.t[3], t[3]),
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
                let f = g.f32_one;
                out.push(if f.reps > 0 && F32_GEMM_N == 128 {
                    format!(
                        "GEMM {} `{}` 2560x2560, n = 128, 1 thread, `ternary_gemm` (f32 in, f32 out): {:.2} ms = {:.0} G MAC/s \
                         (int8 kernel alone {:.2} ms = {:.0} G MAC/s: f32 call {})",
                        g.format,
                        g.kernel,
                        f.secs * 1e3,
                        macs / f.secs / 1e9,
                        t.secs * 1e3,
                        macs / t.secs / 1e9,
                        over(f, t)
                    )
                } else {
                    // A baseline row (dense f32 in) or a kernel whose f32 call was not timed.
                    let what = if f.reps > 0 || g.format == "f32" || g.format == "fp16" {
                        "dense baseline"
                    } else {
                        "int8 kernel"
                    };
                    format!(
                        "GEMM {} `{}` 2560x2560, n = 128, 1 thread, {what}: {:.2} ms = {:.0} G MAC/s",
                        g.format,
                        g.kernel,
                        t.secs * 1e3,
                        macs / t.secs / 1e9
                    )
                });
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
                format!("{} ({})", data::shape_name(rr, cc), pct(f))
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

/// GB/s of `bytes` read in `secs`.
pub fn gbps(bytes: usize, secs: f64) -> f64 {
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

/// The f32 call's time over the int8 kernel's, as `1.03×`.
fn over(f: Timing, k: Timing) -> String {
    if f.reps == 0 || k.reps == 0 {
        "—".into()
    } else {
        format!("{:.2}×", f.secs / k.secs)
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0} %", v * 100.0)
    } else {
        "—".into()
    }
}
