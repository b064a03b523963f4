//! I2_S vs TL1 vs TL2 (and TL1 / TL2 with int4 activations, `TL1/i4`, `TL2/i4`) single-thread GEMV timing, in one process (ratios, not absolutes,
//! are what to compare on a noisy machine).
//!
//! ```text
//! cargo run --release -p bitnet-bench --bin tl_timing -- [ROWSxCOLS ...] [--reps N] [--cold-mib M]
//! ```
//! For each shape and format: median µs (thread CPU time) of `reps` GEMVs, *warm* (the same matrix every time,
//! cache-resident when it fits) and *cold* (rotating over at least four copies totalling
//! `cold-mib` MiB or more, default 128, four times the 32 MiB L3). Measurements of the formats are
//! interleaved call by call so that drift hits all of them alike (each warm call follows an
//! untimed call on the same matrix). The kernel set is the
//! active one (`BITNET_KERNEL` to force one), run through `KernelSet::gemv_i8_rows` on the
//! calling thread. Times are thread CPU time (`bitnet_bench::stats::thread_cpu_us`).
//! Before each shape's rows, the streaming probe's read of a buffer as large as its I2_S matrix,
//! repeated so it stays in cache (L2 or L3, whichever holds it): the warm columns' limit when
//! the weights come from that level.

use bitnet_bench::data;
use bitnet_bench::lut::{time_variants, VARIANTS};
use bitnet_bench::probe;
use bitnet_bench::registry;

fn main() {
    let data::TimingArgs {
        shapes,
        reps,
        cold_mib,
    } = data::timing_args(
        200,
        &[(6912, 2560), (2560, 2560), (2560, 6912), (14336, 4096)],
    );
    let set = registry::active().expect("kernel set");
    println!(
        "kernel set {} (1 thread), median of {reps} GEMVs; cold = rotating over ≥ {cold_mib} MiB; \
         /i4 = int4 activations",
        set.name()
    );
    println!(
        "{:>12} {:>7} {:>8} {:>10} {:>9} {:>10} {:>9} {:>13}",
        "shape", "fmt", "MB", "warm µs", "GB/s", "cold µs", "GB/s", "vs I2_S w/c"
    );
    let variants = VARIANTS;
    for (rows, cols) in shapes {
        let med = time_variants(set, rows, cols, &variants, reps, cold_mib);
        let warm_read = probe::stream_read((med[0].mb * 1e6) as usize, 1, 200);
        println!(
            "{:>12} a read of {:.2} MB kept in cache (probe, {}): {:.1} GB/s",
            format!("{rows}x{cols}"),
            med[0].mb,
            warm_read.read_loop.name(),
            warm_read.gb_per_s
        );
        for m in &med {
            println!(
                "{:>12} {:>7} {:>8.2} {:>10.1} {:>9.1} {:>10.1} {:>9.1} {:>6.2}/{:<6.2}",
                format!("{rows}x{cols}"),
                m.variant.label(),
                m.mb,
                m.warm,
                m.mb * 1e3 / m.warm,
                m.cold,
                m.mb * 1e3 / m.cold,
                med[0].warm / m.warm,
                med[0].cold / m.cold
            );
        }
    }
}
