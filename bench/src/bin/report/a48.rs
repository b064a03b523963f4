//! The BitNet a4.8 section: accuracy of the a4.8 activation quantizers against the f32
//! product, the lookup-table kernels with int4 activations against int8, and the
//! sparse-activation format (I2_S_COL) against dense I2_S.

use std::fmt::Write as _;

use bitnet_bench::cold::{cold_total, Rotation};
use bitnet_bench::data;
use bitnet_bench::lut::{time_variants, Variant, VARIANTS};
use bitnet_bench::registry;
use bitnet_bench::stats::{median, thread_cpu_us};
use bitnet_kernels::quant::{output_factor, output_factor_i4};
use bitnet_kernels::{kernels, Format, I4Mode, TernaryMatrix};

/// One activation quantizer's product `y` (f64) for the input `x`.
fn product(m: &TernaryMatrix, x: &[f32], which: usize) -> Vec<f64> {
    let mut q = vec![0i8; x.len()];
    let factor = match which {
        0 => output_factor(
            m.scale(),
            bitnet_kernels::quantize_activations(x, &mut q).unwrap(),
        ),
        1 | 2 => {
            let mode = if which == 1 {
                I4Mode::AbsMean
            } else {
                I4Mode::AbsMax
            };
            let s = bitnet_kernels::quantize_activations_i4(x, &mut q, mode).unwrap();
            output_factor_i4(m.scale(), s, mode)
        }
        _ => output_factor(
            m.scale(),
            bitnet_kernels::quantize_activations_topk(x, 0.5, &mut q).unwrap(),
        ),
    };
    let mut acc = vec![0i32; m.rows()];
    bitnet_kernels::gemv_i8(m, &q, &mut acc).unwrap();
    acc.iter().map(|&a| (a as f32 * factor) as f64).collect()
}

const QUANTIZERS: [&str; 4] = [
    "int8 absmax",
    "int4 absmean",
    "int4 absmax",
    "TopK 50 % + int8",
];

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
    let na: f64 = a.iter().map(|p| p * p).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|p| p * p).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn rel_mse(a: &[f64], r: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(r).map(|(p, q)| (p - q) * (p - q)).sum();
    num / r.iter().map(|q| q * q).sum::<f64>()
}

/// The section, as markdown. `quick` shortens the timings.
pub fn section(quick: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n### BitNet a4.8 activations\n");
    // Accuracy: one 2560x2560 layer of Gaussian weights, one activation row of each kind.
    let (rows, cols) = (2560, 2560);
    let w = data::weights(rows, cols, 14);
    let m = TernaryMatrix::from_f32(&w, rows, cols, Format::I2S).unwrap();
    let t = m.to_ternary();
    let _ = writeln!(
        o,
        "Accuracy of the activation quantizers ({rows}x{cols}, Gaussian weights std 0.02, one \
         activation row of {cols}): cosine and relative MSE of the BitLinear output against the \
         f32 product `W x` (f64 sums), and against ternary-weights-times-f32-x (the activation \
         quantizer's own loss). Heavy-tailed: normal · exp(normal).\n"
    );
    let _ = writeln!(
        o,
        "| activations | quantizer | cos vs W x | rel MSE vs W x | cos vs T x | rel MSE vs T x |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|");
    for (dist, x) in [
        ("Gaussian", data::activations(1, cols, 14)),
        ("heavy-tailed", data::activations_heavy(1, cols, 14)),
    ] {
        let mut full = vec![0f64; rows];
        let mut tern = vec![0f64; rows];
        for r in 0..rows {
            for j in 0..cols {
                full[r] += w[r * cols + j] as f64 * x[j] as f64;
                tern[r] += t[r * cols + j] as f64 * m.scale() as f64 * x[j] as f64;
            }
        }
        for (i, name) in QUANTIZERS.iter().enumerate() {
            let y = product(&m, &x, i);
            let _ = writeln!(
                o,
                "| {dist} | {name} | {:.5} | {:.4} | {:.5} | {:.4} |",
                cosine(&y, &full),
                rel_mse(&y, &full),
                cosine(&y, &tern),
                rel_mse(&y, &tern)
            );
        }
    }
    let reps = if quick { 10 } else { 60 };
    // The cold rotation: 128 MiB, or twice the last-level cache where that is larger.
    let cold_mib = cold_total(128 << 20) >> 20;
    // Speed: the lookup-table kernels with int4 activations against int8, one thread.
    let k = registry::active().expect("kernel set");
    let _ = writeln!(
        o,
        "\nLookup-table kernels with int4 activations (docs/FORMATS.md §13: TL1 / TL2 with \
         one-byte tables, taken by the same call when every activation is in −8..7): kernel set {}, 1 \
         thread, median of {reps} interleaved calls (thread CPU µs); int8 = uniform int8, int4 \
         = absmean int4 of Gaussians; cold = rotating over ≥ {cold_mib} MiB of copies.\n",
        k.name()
    );
    let _ = writeln!(
        o,
        "| shape | format / activations | MB | warm µs | cold µs | × its int8 warm | × I2_S int8 warm | × I2_S int8 cold |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|");
    let v = |format, int4| Variant { format, int4 };
    let variants = VARIANTS;
    for (rows, cols) in [(6912, 2560), (2560, 6912)] {
        let t = time_variants(k, rows, cols, &variants, reps, cold_mib);
        for m in &t {
            let int8 = t
                .iter()
                .find(|r| r.variant == v(m.variant.format, false))
                .expect("every format is also timed with int8");
            let _ = writeln!(
                o,
                "| {rows}x{cols} | {} {} | {:.2} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} |",
                m.variant.format.name(),
                if m.variant.int4 { "int4" } else { "int8" },
                m.mb,
                m.warm,
                m.cold,
                int8.warm / m.warm,
                t[0].warm / m.warm,
                t[0].cold / m.cold
            );
        }
    }
    // Speed: I2_S_COL against I2_S, one thread, a4.8's zero fractions.
    let set = kernels::active().expect("kernel set");
    let _ = writeln!(
        o,
        "\nSparse activations: dense I2_S against I2_S_COL (reads only the columns whose \
         activation is non-zero), kernel set {} (I2_S_COL on {}), 1 thread, median of {reps} \
         interleaved calls (thread CPU µs); cold = rotating over ≥ {cold_mib} MiB of copies. \
         Speed-up = I2_S time / I2_S_COL time.\n",
        set.name(),
        set.runs_on(Format::I2SCol).unwrap_or("none")
    );
    let _ = writeln!(
        o,
        "| shape | zeros | I2_S warm | I2_S_COL warm | × warm | I2_S cold | I2_S_COL cold | × cold |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (rows, cols) in [(2560, 2560), (2560, 6912)] {
        let t = data::trits(rows, cols, 7);
        let dense = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2S).unwrap();
        let col = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2SCol).unwrap();
        drop(t);
        let cd = Rotation::new(dense.clone(), dense.packed_bytes().len(), cold_mib << 20);
        let cc = Rotation::new(col.clone(), col.packed_bytes().len(), cold_mib << 20);
        for zeros in [0.5, 0.7, 0.84] {
            let mut x = data::activations_i8(1, cols, 7);
            for v in x.iter_mut().filter(|v| **v == 0) {
                *v = 1;
            }
            data::sparsify(&mut x, zeros, 11);
            let mut y = vec![0i32; rows];
            let mut y2 = vec![0i32; rows];
            set.gemv_i8_rows(&dense, &x, 0..rows, &mut y).unwrap();
            set.gemv_i8_rows(&col, &x, 0..rows, &mut y2).unwrap();
            assert_eq!(y, y2, "I2_S_COL differs from I2_S");
            let mut s: [Vec<f64>; 4] = Default::default();
            let time = |mm: &TernaryMatrix, y: &mut [i32]| {
                let t0 = thread_cpu_us();
                set.gemv_i8_rows(mm, &x, 0..rows, y).unwrap();
                thread_cpu_us() - t0
            };
            for rep in 0..reps + 2 {
                time(&dense, &mut y);
                let a = time(&dense, &mut y);
                time(&col, &mut y);
                let b = time(&col, &mut y);
                let c = time(cd.get(rep), &mut y);
                let d = time(cc.get(rep), &mut y);
                if rep >= 2 {
                    for (v, t) in s.iter_mut().zip([a, b, c, d]) {
                        v.push(t);
                    }
                }
            }
            let [a, b, c, d] = s.map(|mut v| median(&mut v));
            let _ = writeln!(
                o,
                "| {rows}x{cols} | {:.0} % | {a:.1} | {b:.1} | {:.2} | {c:.1} | {d:.1} | {:.2} |",
                zeros * 100.0,
                a / b,
                c / d
            );
        }
    }
    let _ = writeln!(
        o,
        "\nThe rule (docs/FORMATS.md §12): pack a projection as I2_S_COL when its input is \
         expected to be at least about 30 % zeros (AVX-512 and AVX2; from DRAM it matched or beat dense I2_S at every density measured)."
    );
    o
}
