//! What the benches and the report share: the shapes, synthetic data, the kernel sets and
//! formats to measure (read from the registry, never listed by hand), DRAM rotation, and the
//! f32 baseline from the `gemm` crate. Included with `#[path]` by `benches/*.rs` and
//! `examples/report.rs`.
#![allow(dead_code)]

// Which formats and kernel sets to measure is exactly what the tests check: one definition.
#[path = "../../tests/common/mod.rs"]
mod common;
pub use common::{formats, kernel_sets};

use bitnet_kernels::baseline::DenseMatrix;

/// The shapes that matter (DESIGN.md §5), `(rows = out features, cols = in features, model)`.
pub const SHAPES: &[(usize, usize, &str)] = &[
    (2560, 2560, "2B4T"),
    (6912, 2560, "2B4T"),
    (2560, 6912, "2B4T"),
    (3200, 8640, "3B"),
    (8640, 3200, "3B"),
    (4096, 14336, "8B"),
    (14336, 4096, "8B"),
];

/// The GEMM sizes: activation rows multiplied at once.
pub const GEMM_N: &[usize] = &[8, 32, 128, 512];

/// Copies of a matrix are rotated until they total at least this many bytes (and at least
/// [`COLD_COPIES`] copies), so each call finds its weights in DRAM (the L3 here is 32 MiB).
pub const COLD_BYTES: usize = 512 << 20;

/// The fewest copies a DRAM rotation has. On this project's VM one allocation can stream at
/// a quarter of another's speed (measured: six copies of one 51 MB matrix read at 7–32 GB/s,
/// each the same on every pass: where the host put its memory), so a median over few copies
/// would measure the luck of placement.
pub const COLD_COPIES: usize = 4;

/// `"6912x2560"`.
pub fn shape_name(rows: usize, cols: usize) -> String {
    format!("{rows}x{cols}")
}

/// Parses `"6912x2560,2560x2560"` into shapes (model label `"custom"` for those not in
/// [`SHAPES`]).
pub fn parse_shapes(list: &str) -> Result<Vec<(usize, usize, &'static str)>, String> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (r, c) = s
                .trim()
                .split_once('x')
                .ok_or_else(|| format!("shape '{s}' is not ROWSxCOLS"))?;
            let (r, c): (usize, usize) = (
                r.parse().map_err(|_| format!("bad rows in '{s}'"))?,
                c.parse().map_err(|_| format!("bad cols in '{s}'"))?,
            );
            if r == 0 || c == 0 {
                return Err(format!("shape '{s}' has a zero dimension"));
            }
            let model = SHAPES
                .iter()
                .find(|&&(sr, sc, _)| (sr, sc) == (r, c))
                .map_or("custom", |s| s.2);
            Ok((r, c, model))
        })
        .collect()
}

/// A small, fast, deterministic generator (xorshift64*), so runs are comparable.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (any seed; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Gaussian `rows × cols` weights (std 0.02, like a trained layer's), row-major.
pub fn weights(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..rows * cols).map(|_| 0.02 * rng.normal()).collect()
}

/// Gaussian f32 activations, `n × cols`, row-major.
pub fn activations(n: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0xA5A5);
    (0..n * cols).map(|_| rng.normal()).collect()
}

/// Uniform int8 activations over the whole range (−128 included), `n × cols`.
pub fn activations_i8(n: usize, cols: usize, seed: u64) -> Vec<i8> {
    let mut rng = Rng::new(seed ^ 0x5A5A);
    (0..n * cols)
        .map(|_| (rng.uniform() * 256.0) as i32 as i8)
        .collect::<Vec<i8>>()
}

/// Clones of one value totalling at least [`COLD_BYTES`], visited round-robin: each call
/// finds its bytes evicted from every cache since its last visit.
pub struct Rotation<T> {
    copies: Vec<T>,
    next: usize,
}

impl<T: Clone> Rotation<T> {
    /// `value` plus enough clones that `copies × bytes_each >= total`, and at least
    /// [`COLD_COPIES`] copies.
    pub fn new(value: T, bytes_each: usize, total: usize) -> Self {
        let n = total.div_ceil(bytes_each.max(1)).max(COLD_COPIES);
        Self {
            copies: vec![value; n],
            next: 0,
        }
    }
    /// The next copy, round-robin.
    pub fn next(&mut self) -> &T {
        let i = self.next;
        self.next = (i + 1) % self.copies.len();
        &self.copies[i]
    }
    /// How many copies rotate.
    pub fn len(&self) -> usize {
        self.copies.len()
    }
}

/// `y = X Wᵀ` in f32 with the `gemm` crate (`w`: `rows × cols`, stored on huge pages like
/// the fp16 baseline; `x`: `n × cols`; `y`: `n × rows`; all row-major), on one thread or on
/// rayon's pool.
pub fn f32_gemm(w: &DenseMatrix<f32>, x: &[f32], n: usize, y: &mut [f32], par: bool) {
    let (rows, cols) = (w.rows(), w.cols());
    let (data, stride) = w.padded();
    assert!(x.len() == n * cols && y.len() == n * rows && data.len() >= rows * stride);
    let parallelism = if par {
        gemm_common::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm_common::Parallelism::None
    };
    // dst = Yᵀ (rows × n) = W (rows × cols) · Xᵀ (cols × n), with strides (col, row):
    // Yᵀ[r][j] = y[j*rows + r]; W[r][c] = data[r*stride + c]; Xᵀ[c][j] = x[j*cols + c].
    // SAFETY: the lengths were checked above, so every strided access is in bounds.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            rows,
            n,
            cols,
            y.as_mut_ptr(),
            rows as isize,
            1,
            false,
            data.as_ptr(),
            1,
            stride as isize,
            x.as_ptr(),
            cols as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The f32 baseline's name, as printed.
pub const F32_BASELINE: &str = "f32 (gemm crate)";

/// Median of a list of timings (seconds); the list is sorted in place.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// True when criterion will only run each benchmark once (`cargo test --benches`, which
/// `cargo test --all-targets` does, or `cargo bench -- --test`): criterion's own rule.
pub fn criterion_test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    !has("--bench") || has("--test")
}

/// The shapes a bench runs: `BITNET_BENCH_SHAPES` (`all`, or a list such as
/// `6912x2560,2560x2560`) if set; else one small shape in criterion's test mode (so that
/// `cargo test --all-targets` checks the benches in seconds); else `default`.
pub fn bench_shapes(default: &[(usize, usize, &'static str)]) -> Vec<(usize, usize, &'static str)> {
    match std::env::var("BITNET_BENCH_SHAPES") {
        Ok(s) if s == "all" => SHAPES.to_vec(),
        Ok(s) if !s.is_empty() => {
            parse_shapes(&s).unwrap_or_else(|e| panic!("BITNET_BENCH_SHAPES: {e}"))
        }
        _ if criterion_test_mode() => vec![(256, 512, "test")],
        _ => default.to_vec(),
    }
}

/// Bytes the DRAM rotation copies total: [`COLD_BYTES`], or 4 MiB in test mode (where
/// nothing is timed and only the code path matters).
pub fn cold_bytes() -> usize {
    if criterion_test_mode() {
        4 << 20
    } else {
        COLD_BYTES
    }
}

/// criterion set up for a 2-core machine: short warm-up and measurement, 10 samples, flat
/// sampling (each sample runs the same number of iterations, right for calls of
/// milliseconds), no plots. Command-line options (`--sample-size`, filters, ...) still win.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
        .sample_size(10)
        .without_plots()
        .configure_from_args()
}
