//! The report as JSON (`--json FILE`), for scripts and CI: the same figures as the markdown,
//! unrounded.

use bitnet_bench::cold::{cold_total, COLD_BYTES};
use bitnet_bench::data::GEMM_N;
use bitnet_bench::machine;
use bitnet_bench::probe::Bandwidth;
use bitnet_bench::stats::Timing;
use serde_json::{json, Value};

use crate::measure::{Report, F32_GEMM_N, GEMM_N_ALL};

/// `{"median_us", "reps"}`, or null when the cell was not measured.
fn timing(t: Timing) -> Value {
    if t.reps == 0 {
        Value::Null
    } else {
        json!({ "median_us": t.secs * 1e6, "reps": t.reps })
    }
}

/// `a / b` (the f32 call's time over the int8 kernel's, measured in the same run), or null
/// when either was not measured.
fn ratio(a: Timing, b: Timing) -> Value {
    if a.reps == 0 || b.reps == 0 {
        Value::Null
    } else {
        json!(a.secs / b.secs)
    }
}

pub fn to_json(r: &Report, quick: bool, command: &str, elapsed: f64) -> Value {
    let shape = |si: usize| {
        let (rows, cols, model) = r.shapes[si];
        json!({ "rows": rows, "cols": cols, "model": model })
    };
    let bw = |b: &Bandwidth| json!({ "bytes": b.bytes, "threads": b.threads, "gb_per_s": b.gb_per_s, "best_gb_per_s": b.best_gb_per_s, "read_loop": b.read_loop.name() });
    json!({
        "date": machine::utc_now(),
        "command": command,
        "quick": quick,
        "elapsed_s": elapsed,
        "cpu": { "model": machine::cpu_model(), "features": machine::cpu_features() },
        "threads": r.threads,
        "kernels_available": machine::kernels_available(),
        "kernel_chosen": machine::kernel_chosen(),
        "cold_rotation_bytes": cold_total(COLD_BYTES),
        "bandwidth": {
            "dram_1t": bw(&r.limits.dram_1t), "dram_all": bw(&r.limits.dram_all),
            "l3_1t": bw(&r.limits.l3_1t), "l3_all": bw(&r.limits.l3_all),
        },
        "gemv": r.gemv.iter().map(|g| json!({
            "shape": shape(g.shape), "format": g.format, "kernel": g.kernel, "weight_bytes": g.bytes,
            "warm_1t": timing(g.t[0]), "cold_1t": timing(g.t[1]),
            "warm_all": timing(g.t[2]), "cold_all": timing(g.t[3]),
            "exact_vs_scalar": g.exact,
            "f32_warm_1t": timing(g.f32[0]), "f32_cold_1t": timing(g.f32[1]),
            "f32_warm_all": timing(g.f32[2]), "f32_cold_all": timing(g.f32[3]),
            "f32_over_int8_warm_1t": ratio(g.f32[0], g.t[0]),
        })).collect::<Vec<_>>(),
        "gemm": r.gemm.iter().map(|g| json!({
            "shape": shape(g.shape), "format": g.format, "kernel": g.kernel,
            "one_thread_n": GEMM_N,
            "one_thread": g.one.iter().map(|&t| timing(t)).collect::<Vec<_>>(),
            "all_threads_n": GEMM_N_ALL,
            "all_threads": g.all.iter().map(|&t| timing(t)).collect::<Vec<_>>(),
            "f32_one_thread_n": F32_GEMM_N,
            "f32_one_thread": timing(g.f32_one),
            "f32_over_int8_one_thread": GEMM_N.iter().position(|&n| n == F32_GEMM_N)
                .map_or(Value::Null, |i| ratio(g.f32_one, g.one[i])),
        })).collect::<Vec<_>>(),
        "accuracy": r.acc.iter().map(|a| json!({
            "shape": shape(a.shape), "format": a.format.name(), "packed_bytes": a.packed,
            "fp16_bytes": r.shapes[a.shape].0 * r.shapes[a.shape].1 * 2,
            "max_rel_err_vs_dequantized": a.err_deq, "cosine_vs_f32": a.cos,
            "rel_mse_vs_f32": a.rel_mse, "cosine_ternary_weights_only": a.cos_w_only,
        })).collect::<Vec<_>>(),
    })
}
