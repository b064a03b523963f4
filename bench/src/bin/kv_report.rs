//! The 3-bit KV cache against an fp16 cache: bytes, attention accuracy against f32 attention,
//! and µs per decode step (one layer's attention, the layers' caches taken in turn so they
//! come from DRAM). Markdown on stdout.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin kv_report                      # 30 layers, 4096 tokens
//! cargo run --release -p bitnet-bench --bin kv_report -- --layers 4 --tokens 1024 --reps 5
//! ```

use bitnet_bench::kv::F16Cache;
use bitnet_bench::{machine, stats};
use bitnet_kernels::kernels;
use bitnet_kernels::kv::KvCache;

/// Normal deviates (xorshift + Box–Muller), deterministic.
struct Rng(u64);
impl Rng {
    fn u(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let (a, b) = (self.u(), self.u());
                (-2.0 * a.ln()).sqrt() * (std::f32::consts::TAU * b).cos()
            })
            .collect()
    }
}

const HQ: usize = 20;
const HK: usize = 5;
const D: usize = 128;

/// f32 attention, f64 sums: the library's oracle at the 2B-4T head shape.
fn reference(k: &[f32], v: &[f32], q: &[f32], t: usize) -> Vec<f32> {
    bitnet_kernels::kv::reference_attention(k, v, q, t, HK, HQ, D)
}

/// Cosine and relative L2 error of `a` against `r`.
fn compare(a: &[f32], r: &[f32]) -> (f64, f64) {
    let (mut dot, mut na, mut nr, mut ne) = (0.0, 0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(r) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nr += y * y;
        ne += (x - y) * (x - y);
    }
    (dot / (na.sqrt() * nr.sqrt()), (ne / nr).sqrt())
}

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() -> bitnet_kernels::Result<()> {
    let layers = arg("--layers", 30).max(1);
    let tokens = arg("--tokens", 4096).max(1);
    let reps = arg("--reps", 10).max(1);
    println!("## 3-bit KV cache\n");
    println!(
        "{}; kernel sets: {}; {HQ} query / {HK} KV heads, head_dim {D}, 1 thread.\n",
        machine::cpu_model(),
        machine::kernels_available().join(", ")
    );

    // Accuracy: the issue's simulation, 1024 tokens.
    println!("| keys | cache | cosine | relative error |\n|---|---|---|---|");
    for outliers in [false, true] {
        let t = 1024;
        let mut rng = Rng(11);
        let mut k = rng.vec(t * HK * D);
        let v = rng.vec(t * HK * D);
        let q = rng.vec(HQ * D);
        if outliers {
            for row in k.chunks_exact_mut(D) {
                row[5] *= 15.0;
                row[77] *= 15.0;
            }
        }
        let want = reference(&k, &v, &q, t);
        for sink in [0, 1] {
            let mut c = KvCache::new(HK, D, t, sink)?;
            c.append(&k, &v, t)?;
            let mut out = vec![0.0; HQ * D];
            c.attend(&q, HQ, &mut out)?;
            let (cs, re) = compare(&out, &want);
            let keys = if outliers {
                "2 channels ×15"
            } else {
                "Gaussian"
            };
            println!("| {keys} | 3-bit, {sink} sink token | {cs:.4} | {re:.4} |");
        }
        let f = F16Cache::new(&k, &v, HK, D);
        let mut out = vec![0.0; HQ * D];
        f.attend(&q, HQ, &mut out);
        let (cs, re) = compare(&out, &want);
        let keys = if outliers {
            "2 channels ×15"
        } else {
            "Gaussian"
        };
        println!("| {keys} | fp16 (baseline) | {cs:.6} | {re:.6} |");
    }

    // Speed: `layers` caches of `tokens` tokens each.
    let mut rng = Rng(5);
    let k = rng.vec(tokens * HK * D);
    let v = rng.vec(tokens * HK * D);
    let q = rng.vec(HQ * D);
    let mut first = KvCache::new(HK, D, tokens, 1)?;
    first.append(&k, &v, tokens)?;
    let caches: Vec<KvCache> = (0..layers).map(|_| first.clone()).collect();
    let f16s: Vec<F16Cache> = (0..layers).map(|_| F16Cache::new(&k, &v, HK, D)).collect();
    let (b3, b16) = (first.bytes(), f16s[0].bytes());
    let values = (2 * tokens * HK * D) as f64;
    println!(
        "\nBytes per layer at {tokens} tokens: 3-bit {b3} ({:.3} bits a value), fp16 {b16}: {:.2}× smaller.\n",
        b3 as f64 * 8.0 / values,
        b16 as f64 / b3 as f64
    );
    let mut out = vec![0.0f32; HQ * D];
    let per_layer = |f: &mut dyn FnMut(usize)| {
        let s = stats::median_time(reps, || (0..layers).for_each(&mut *f));
        s / layers as f64
    };
    let t16 = per_layer(&mut |l| f16s[l].attend(&q, HQ, &mut out));
    println!("| cache | kernels | µs per layer | GB/s of cache | vs fp16 |\n|---|---|---|---|---|");
    println!(
        "| fp16 | {} | {:.1} | {:.1} | 1.00× |",
        bitnet_bench::kv::simd_name(),
        t16 * 1e6,
        b16 as f64 / t16 / 1e9
    );
    for set in kernels::available() {
        let t3 = per_layer(&mut |l| caches[l].attend_with(set, &q, HQ, &mut out).unwrap());
        println!(
            "| 3-bit | {} | {:.1} | {:.1} | {:.2}× |",
            set.name(),
            t3 * 1e6,
            b3 as f64 / t3 / 1e9,
            t16 / t3
        );
    }
    Ok(())
}
