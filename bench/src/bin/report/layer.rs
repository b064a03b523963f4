//! The decoder-layer section: one 2B-4T layer's seven I2_S products for 1 and 8 tokens,
//! cold (30 layers rotated, the model's ~520 MB of linear weights), on 1 and 2 threads,
//! as seven separate `ternary_gemm` calls and as the fused, allocation-free path
//! ([`bitnet_bench::layer`]), against the DRAM floor: the layer's packed bytes over the
//! streaming bandwidth measured on as many threads.

use std::fmt::Write;

use bitnet_bench::cold::{cold_total, Rotation, COLD_BYTES};
use bitnet_bench::layer::{Buffers, Layer};
use bitnet_bench::probe::{self, Limits};
use bitnet_bench::stats::{measure_turns, Timing};
use bitnet_kernels::{set_num_threads, Format};
use serde_json::{json, Value};

use super::Budget;

/// One cell: `n` tokens on `threads` threads.
pub struct LayerRow {
    pub n: usize,
    pub threads: usize,
    pub separate: Timing,
    pub fused: Timing,
    /// A plain read of the layer's packed bytes through the same dispatch
    /// ([`Layer::read`]), timed in turns with the other two.
    pub read: Timing,
    /// The layer's packed bytes over the streaming bandwidth on `threads` threads, seconds.
    pub floor_s: f64,
    /// The bandwidth used for the floor, GB/s.
    pub gb_per_s: f64,
}

/// The section's measurements, and the layer's packed bytes.
pub struct LayerSection {
    pub bytes: usize,
    pub rows: Vec<LayerRow>,
}

/// Measures the section. `limits` gives the 1-thread and all-thread DRAM bandwidth; the
/// 2-thread one is probed here when "all" is not 2.
pub fn measure(b: &Budget, limits: &Limits, all_threads: usize) -> LayerSection {
    eprintln!("decoder layer: packing 2B-4T shapes...");
    let layer = Layer::new(Format::I2S);
    let bytes = layer.packed_bytes();
    let mut rot = Rotation::new(layer, bytes, cold_total(COLD_BYTES));
    let bw2 = if all_threads == 2 {
        limits.dram_all.gb_per_s
    } else {
        probe::stream_read(b.probe_dram, 2, b.probe_samples).gb_per_s
    };
    let mut rows = Vec::new();
    for n in [1, 8] {
        let mut buf = Buffers::new(rot.get(0), n);
        for threads in [1, 2] {
            eprintln!("decoder layer: n = {n}, {threads} thread(s)...");
            set_num_threads(threads).expect("threads");
            let t = measure_turns(b.gemv_s * 6.0, b.min_reps, b.max_reps, 3, |way| {
                let l = rot.next();
                match way {
                    0 => buf.separate(l),
                    1 => buf.fused(l),
                    _ => l.read(threads),
                }
            });
            let (separate, fused, read) = (t[0], t[1], t[2]);
            let gb = if threads == 1 {
                limits.dram_1t.gb_per_s
            } else {
                bw2
            };
            rows.push(LayerRow {
                n,
                threads,
                separate,
                fused,
                read,
                floor_s: bytes as f64 / (gb * 1e9),
                gb_per_s: gb,
            });
        }
    }
    set_num_threads(0).expect("default threads");
    LayerSection { bytes, rows }
}

/// The section in markdown.
pub fn markdown(s: &LayerSection) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n### Decoder layer (2B-4T, I2_S, cold)\n\n\
         One layer's seven products (q 2560², k and v 640×2560, o 2560², gate and up \
         6912×2560, down 2560×6912; {:.1} MB packed), f32 in and out, activation quantization \
         included, weights from DRAM (layers rotated over {} MB). *Separate*: seven \
         `ternary_gemm` calls. *Fused*: q/k/v in one call, gate/up in one, o, down \
         (`matmul::products`, one workspace, no allocation). *Floor*: packed bytes / streaming \
         bandwidth on as many threads. *Read*: the same bytes read once through the same \
         dispatch with the bandwidth probe's loop (the layer with free kernels). Medians, the \
         three timed in turns.\n",
        s.bytes as f64 / 1e6,
        cold_total(COLD_BYTES) >> 20
    );
    let _ = writeln!(
        o,
        "| tokens | threads | separate µs | fused µs | fused speed-up | read µs | floor µs (GB/s) | fused / floor | fused / read |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for r in &s.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} ({:.1}) | {:.2} | {:.2} |",
            r.n,
            r.threads,
            r.separate.secs * 1e6,
            r.fused.secs * 1e6,
            r.separate.secs / r.fused.secs,
            r.read.secs * 1e6,
            r.floor_s * 1e6,
            r.gb_per_s,
            r.fused.secs / r.floor_s,
            r.fused.secs / r.read.secs
        );
    }
    o
}

/// The section as JSON.
pub fn to_json(s: &LayerSection) -> Value {
    json!({
        "format": "I2_S",
        "packed_bytes": s.bytes,
        "rows": s.rows.iter().map(|r| json!({
            "tokens": r.n,
            "threads": r.threads,
            "separate_s": r.separate.secs,
            "separate_reps": r.separate.reps,
            "fused_s": r.fused.secs,
            "fused_reps": r.fused.reps,
            "read_s": r.read.secs,
            "floor_s": r.floor_s,
            "floor_gb_per_s": r.gb_per_s,
        })).collect::<Vec<_>>(),
    })
}
