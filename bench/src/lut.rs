//! Single-thread GEMV timing of the packed formats with int8 and with int4 activations,
//! interleaved call by call (so drift on a shared machine hits every variant alike): what
//! `--bin tl_timing` prints and the report's a4.8 section quotes. A variant with int4
//! activations runs the same call (`gemv_i8_rows`) on values in −8..=7, which the library
//! sends to the format's int4 kernels where it has them (TL2: one-byte tables).

use crate::cold::Rotation;
use crate::data;
use crate::registry::Kernel;
use crate::stats::{median, thread_cpu_us as cpu_us};
use bitnet_kernels::{Format, I4Mode, TernaryMatrix};

/// One timed combination: a format and the activations' width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    /// The matrix's packed format.
    pub format: Format,
    /// int4 activations (absmean-quantized Gaussians) instead of uniform int8.
    pub int4: bool,
}

/// The comparison both timing programs make: I2_S int8 (the reference), then TL1 and TL2, each
/// with int8 and with int4 activations.
pub const VARIANTS: [Variant; 5] = [
    Variant {
        format: Format::I2S,
        int4: false,
    },
    Variant {
        format: Format::TL1,
        int4: false,
    },
    Variant {
        format: Format::TL1,
        int4: true,
    },
    Variant {
        format: Format::TL2,
        int4: false,
    },
    Variant {
        format: Format::TL2,
        int4: true,
    },
];

impl Variant {
    /// `I2_S`, `TL2/i4`, ...
    pub fn label(self) -> String {
        format!(
            "{}{}",
            self.format.name(),
            if self.int4 { "/i4" } else { "" }
        )
    }
}

/// Medians of one variant.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// What was timed.
    pub variant: Variant,
    /// Packed bytes of the matrix, MB.
    pub mb: f64,
    /// Median thread-CPU µs, the same matrix every call.
    pub warm: f64,
    /// Median thread-CPU µs, rotating over copies totalling at least `cold_mib` MiB.
    pub cold: f64,
}

/// Times `variants` on one `rows × cols` matrix of random trits, `reps` interleaved rounds
/// (after 5 untimed), with set `k` on the calling thread. Every variant with the same
/// activations must give the same accumulators (asserted).
pub fn time_variants(
    k: Kernel,
    rows: usize,
    cols: usize,
    variants: &[Variant],
    reps: usize,
    cold_mib: usize,
) -> Vec<Timing> {
    let seed = (rows * 31 + cols) as u64;
    let t = data::trits(rows, cols, seed);
    let x8 = data::activations_i8(1, cols, seed);
    let mut x4 = vec![0i8; cols];
    bitnet_kernels::quantize_activations_i4(
        &data::activations(1, cols, seed),
        &mut x4,
        I4Mode::AbsMean,
    )
    .expect("finite activations");
    let mut formats: Vec<Format> = Vec::new();
    for v in variants {
        if !formats.contains(&v.format) {
            formats.push(v.format);
        }
    }
    let base: Vec<TernaryMatrix> = formats
        .iter()
        .map(|&f| TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap())
        .collect();
    drop(t);
    let copies: Vec<Rotation<TernaryMatrix>> = base
        .iter()
        .map(|m| Rotation::new(m.clone(), m.packed_bytes().len(), cold_mib << 20))
        .collect();
    let at = |v: &Variant| formats.iter().position(|&f| f == v.format).unwrap();
    let xs = |v: &Variant| if v.int4 { &x4 } else { &x8 };
    // Every format must give the same answer for the same activations.
    let mut y = vec![0i32; rows];
    for int4 in [false, true] {
        let mut want: Option<Vec<i32>> = None;
        for v in variants.iter().filter(|v| v.int4 == int4) {
            k.gemv_i8_rows(&base[at(v)], xs(v), 0..rows, &mut y)
                .unwrap();
            match &want {
                Some(w) => assert_eq!(&y, w, "{} differs", v.label()),
                None => want = Some(y.clone()),
            }
        }
    }
    let mut warm = vec![Vec::new(); variants.len()];
    let mut cold = vec![Vec::new(); variants.len()];
    for rep in 0..reps + 5 {
        for (i, v) in variants.iter().enumerate() {
            let (m, x) = (&base[at(v)], xs(v));
            // The previous variant's cold call evicted this one: one untimed call first.
            k.gemv_i8_rows(m, x, 0..rows, &mut y).unwrap();
            let t0 = cpu_us();
            k.gemv_i8_rows(m, x, 0..rows, &mut y).unwrap();
            let w = cpu_us() - t0;
            let c = copies[at(v)].get(rep);
            let t0 = cpu_us();
            k.gemv_i8_rows(c, x, 0..rows, &mut y).unwrap();
            let cd = cpu_us() - t0;
            if rep >= 5 {
                warm[i].push(w);
                cold[i].push(cd);
            }
        }
    }
    variants
        .iter()
        .enumerate()
        .map(|(i, &variant)| Timing {
            variant,
            mb: base[at(&variant)].packed_bytes().len() as f64 / 1e6,
            warm: median(&mut warm[i]),
            cold: median(&mut cold[i]),
        })
        .collect()
}
