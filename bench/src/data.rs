//! The shapes measured and the synthetic data they are filled with: deterministic, so runs
//! are comparable.

/// The shapes that matter, `(rows = out features, cols = in features, model)`: the layers of
/// BitNet b1.58 2B-4T (q/o, gate/up, down), of the 3B model and of an 8B-class model.
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

/// The command line of the timing programs (`tl_timing`, `sparse_timing`): shapes as
/// `ROWSxCOLS`, `--reps N` and `--cold-mib M`.
pub struct TimingArgs {
    /// The shapes (rows, cols) given, or the program's defaults.
    pub shapes: Vec<(usize, usize)>,
    /// GEMVs timed per figure.
    pub reps: usize,
    /// The size of the cold rotation: `--cold-mib M` as given, by default 128 MiB raised to
    /// twice the last-level cache ([`crate::cold::cold_total`]).
    pub cold_mib: usize,
}

/// The number after `--name` among the process's arguments, or `default` where it is
/// missing; panics on a value that is not a number.
pub fn flag(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Parses the process's arguments as [`TimingArgs`] with these defaults; panics with a usage
/// message on a bad argument.
pub fn timing_args(reps: usize, shapes: &[(usize, usize)]) -> TimingArgs {
    let mut a = TimingArgs {
        shapes: Vec::new(),
        reps,
        cold_mib: crate::cold::cold_total(128 << 20) >> 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                let name = std::env::args().next().unwrap_or_default();
                println!(
                    "usage: {name} [ROWSxCOLS ...] [--reps N] [--cold-mib M]\n  \
                     defaults: {} reps, shapes {}, cold rotation {} MiB (twice the last-level \
                     cache when that is larger than 128 MiB)",
                    a.reps,
                    shapes
                        .iter()
                        .map(|(r, c)| format!("{r}x{c}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    a.cold_mib
                );
                std::process::exit(0);
            }
            "--reps" => a.reps = args.next().and_then(|s| s.parse().ok()).expect("--reps N"),
            "--cold-mib" => {
                a.cold_mib = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--cold-mib M")
            }
            s => {
                let (r, c) = s.split_once('x').expect("shape ROWSxCOLS");
                a.shapes
                    .push((r.parse::<usize>().unwrap(), c.parse::<usize>().unwrap()));
            }
        }
    }
    if a.shapes.is_empty() {
        a.shapes = shapes.to_vec();
    }
    a
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

/// `n` standard normal deviates from `rng`.
pub fn normals(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
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

/// Uniform trits in {-1, 0, 1}, `rows × cols`, row-major.
pub fn trits(rows: usize, cols: usize, seed: u64) -> Vec<i8> {
    let mut rng = Rng::new(seed ^ 0x3C3C);
    (0..rows * cols)
        .map(|_| (rng.uniform() * 3.0) as i8 - 1)
        .collect()
}

/// Heavy-tailed f32 activations, `n × cols`: a standard normal times `exp(normal)` (a
/// log-normal scale mixture: a few entries many times the typical size, like the outlier
/// channels of a transformer's hidden state).
pub fn activations_heavy(n: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0x7E7E);
    (0..n * cols)
        .map(|_| rng.normal() * rng.normal().exp())
        .collect()
}

/// Sets `round(zeros · x.len())` entries of `x` to zero at pseudo-random positions (a seeded
/// shuffle), for sparse-activation measurements.
pub fn sparsify(x: &mut [i8], zeros: f64, seed: u64) {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    let mut rng = Rng::new(seed);
    for i in (1..idx.len()).rev() {
        let j = ((rng.uniform() * (i + 1) as f64) as usize).min(i);
        idx.swap(i, j);
    }
    let k = ((zeros * x.len() as f64).round() as usize).min(x.len());
    for &i in &idx[..k] {
        x[i] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(
            parse_shapes("6912x2560, 5x7").unwrap(),
            [(6912, 2560, "2B4T"), (5, 7, "custom")]
        );
        assert!(parse_shapes("5x0").is_err());
        assert!(parse_shapes("5").is_err());
    }

    #[test]
    fn data_is_deterministic_and_in_range() {
        assert_eq!(weights(3, 4, 1), weights(3, 4, 1));
        let t = trits(10, 100, 2);
        assert!(t.iter().all(|v| (-1..=1).contains(v)));
        assert!((-1..=1).all(|v| t.contains(&v)));
        let q = activations_i8(1, 4096, 3);
        assert!(q.contains(&-128) && q.contains(&127));
    }
}
