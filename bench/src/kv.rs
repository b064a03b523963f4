//! The 3-bit KV cache's benchmark: [`section`] (the report's KV section and `--bin
//! kv_report`: bytes, accuracy over many draws, µs per decode step against an fp16 cache and
//! the streaming bandwidth), and its baseline [`F16Cache`]: the same decode attention over an
//! fp16 cache, with AVX2 + FMA + F16C where the CPU has them (checked at run time), plain Rust
//! elsewhere. The baseline streams each K and V row once per KV head and serves every query
//! head of the group from it, so it reads the cache once per call, as the 3-bit kernels do.

use std::fmt::Write as _;

use bitnet_kernels::kernels;
use bitnet_kernels::kv::KvCache;
use half::f16;

use crate::data::{normals, Rng};
use crate::{machine, probe, stats};

/// One layer's fp16 K and V, token-major (`[token][kv head][head_dim]`).
pub struct F16Cache {
    n_kv: usize,
    d: usize,
    len: usize,
    k: Vec<u16>,
    v: Vec<u16>,
}

impl F16Cache {
    /// `k`, `v`: `len × n_kv × d` f32, rounded to fp16.
    pub fn new(k: &[f32], v: &[f32], n_kv: usize, d: usize) -> Self {
        let cvt = |x: &[f32]| x.iter().map(|&a| f16::from_f32(a).to_bits()).collect();
        F16Cache {
            n_kv,
            d,
            len: k.len() / (n_kv * d),
            k: cvt(k),
            v: cvt(v),
        }
    }

    /// Bytes of K and V.
    pub fn bytes(&self) -> usize {
        2 * (self.k.len() + self.v.len())
    }

    /// Decode attention for `n_heads` query heads (`q`, `out`: `n_heads × d`), softmax of
    /// `q·k / sqrt(d)` over every position, f32 arithmetic.
    pub fn attend(&self, q: &[f32], n_heads: usize, out: &mut [f32]) {
        let (d, n) = (self.d, self.len);
        let ratio = n_heads / self.n_kv;
        let scale = 1.0 / (d as f32).sqrt();
        let mut p = vec![0.0f32; ratio * n];
        for g in 0..self.n_kv {
            let qg = &q[g * ratio * d..(g + 1) * ratio * d];
            let stride = self.n_kv * d;
            let kg = &self.k[g * d..];
            let vg = &self.v[g * d..];
            #[cfg(target_arch = "x86_64")]
            let simd = d.is_multiple_of(8) && ratio <= 8 && has_f16c();
            #[cfg(not(target_arch = "x86_64"))]
            let simd = false;
            if simd {
                // SAFETY: AVX2 + FMA + F16C checked; rows t < n lie in kg at this stride;
                // p holds ratio × n scores.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    x86::scores(kg, stride, n, d, qg, ratio, scale, &mut p)
                };
            } else {
                for t in 0..n {
                    let row = &kg[t * stride..][..d];
                    for r in 0..ratio {
                        p[r * n + t] = row
                            .iter()
                            .zip(&qg[r * d..(r + 1) * d])
                            .map(|(&a, &b)| f16::from_bits(a).to_f32() * b)
                            .sum::<f32>()
                            * scale;
                    }
                }
            }
            for r in 0..ratio {
                let row = &mut p[r * n..(r + 1) * n];
                let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut z = 0.0f32;
                for x in row.iter_mut() {
                    *x = (*x - mx).exp();
                    z += *x;
                }
                row.iter_mut().for_each(|x| *x /= z);
            }
            let og = &mut out[g * ratio * d..(g + 1) * ratio * d];
            og.fill(0.0);
            if simd {
                // SAFETY: as above; og holds ratio × d outputs.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    x86::wsum(vg, stride, n, d, &p, ratio, og)
                };
            } else {
                for t in 0..n {
                    let row = &vg[t * stride..][..d];
                    for r in 0..ratio {
                        let w = p[r * n + t];
                        for (o, &b) in og[r * d..(r + 1) * d].iter_mut().zip(row) {
                            *o += w * f16::from_bits(b).to_f32();
                        }
                    }
                }
            }
        }
    }
}

/// The loop [`F16Cache::attend`] uses on this CPU: `"avx2+f16c+fma"` or `"scalar"`.
pub fn simd_name() -> &'static str {
    if has_f16c() {
        "avx2+f16c+fma"
    } else {
        "scalar"
    }
}

fn has_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx2") && has!("fma") && has!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `p[r·n + t] = scale · q_r·k_t` for `t < n`, `r < ratio`: each K row is converted once,
    /// 8 values at a time, and serves every query head of the group.
    ///
    /// # Safety
    /// AVX2 + FMA + F16C; `d % 8 == 0`, `ratio <= 8`; `k` holds rows `t·stride .. + d` for
    /// `t < n`, `q` `ratio × d`, `p` `ratio × n`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn scores(
        k: &[u16],
        stride: usize,
        n: usize,
        d: usize,
        q: &[f32],
        ratio: usize,
        scale: f32,
        p: &mut [f32],
    ) {
        for t in 0..n {
            let row = &k[t * stride..][..d];
            let mut acc = [_mm256_setzero_ps(); 8];
            for j in (0..d).step_by(8) {
                // SAFETY: 8 u16 of the row and 8 f32 of each q row, in bounds.
                let x = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(row[j..].as_ptr().cast())) };
                for (r, a) in acc.iter_mut().enumerate().take(ratio) {
                    let qv = unsafe { _mm256_loadu_ps(q[r * d + j..].as_ptr()) };
                    *a = _mm256_fmadd_ps(x, qv, *a);
                }
            }
            for (r, a) in acc.iter().enumerate().take(ratio) {
                let mut s = [0.0f32; 8];
                // SAFETY: 8 floats.
                unsafe { _mm256_storeu_ps(s.as_mut_ptr(), *a) };
                p[r * n + t] = s.iter().sum::<f32>() * scale;
            }
        }
    }

    /// `out[r·d + j] += Σ_t p[r·n + t] · v_t[j]`.
    ///
    /// # Safety
    /// As [`scores`], with `out` `ratio × d`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn wsum(
        v: &[u16],
        stride: usize,
        n: usize,
        d: usize,
        p: &[f32],
        ratio: usize,
        out: &mut [f32],
    ) {
        for t in 0..n {
            let row = &v[t * stride..][..d];
            for j in (0..d).step_by(8) {
                // SAFETY: 8 u16 of the row and 8 f32 of each output row, in bounds.
                let x = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(row[j..].as_ptr().cast())) };
                for r in 0..ratio {
                    let o = out[r * d + j..].as_mut_ptr();
                    unsafe {
                        let w = _mm256_set1_ps(p[r * n + t]);
                        _mm256_storeu_ps(o, _mm256_fmadd_ps(w, x, _mm256_loadu_ps(o)));
                    }
                }
            }
        }
    }
}

/// The 2B-4T attention shape: query heads, KV heads, head_dim.
const HQ: usize = 20;
const HK: usize = 5;
const D: usize = 128;

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

/// What [`section`] measures.
#[derive(Clone, Copy, Debug)]
pub struct KvBench {
    /// Layers whose caches are read in turn (enough that they come from DRAM).
    pub layers: usize,
    /// Cached tokens per layer.
    pub tokens: usize,
    /// Timed rounds; each times every cache kind once over all layers, interleaved.
    pub reps: usize,
    /// Random draws of K, V, q for the accuracy table (1024 tokens each).
    pub draws: usize,
    /// Tokens of each accuracy draw.
    pub acc_tokens: usize,
}

/// The markdown KV-cache section: bytes, attention accuracy against f32 attention (min and
/// median over `draws` draws, Gaussian keys and keys with two channels ×15, 3-bit with and
/// without the 8-bit sink, fp16), and µs per layer of one decode step for the fp16 cache and
/// every kernel set, with GB/s of cache bytes and the share of `stream_gb_s` (the one-thread
/// streaming-read rate).
pub fn section(b: &KvBench, stream_gb_s: f64) -> bitnet_kernels::Result<String> {
    let mut o = String::new();
    let _ = writeln!(o, "## 3-bit KV cache\n");
    let _ = writeln!(
        o,
        "{}; kernel sets: {}; {HQ} query / {HK} KV heads, head_dim {D}, 1 thread.\n",
        machine::cpu_model(),
        machine::kernels_available().join(", ")
    );
    accuracy(&mut o, b)?;
    speed(&mut o, b, stream_gb_s)?;
    Ok(o)
}

fn accuracy(o: &mut String, b: &KvBench) -> bitnet_kernels::Result<()> {
    let t = b.acc_tokens;
    let _ = writeln!(
        o,
        "Attention output against f32 attention (f64 sums), {t} tokens, {} draws: min / median.\n",
        b.draws
    );
    let _ = writeln!(
        o,
        "| keys | cache | cosine min / median | relative error median / max |\n|---|---|---|---|"
    );
    for outliers in [false, true] {
        // cache kinds: 3-bit no sink, 3-bit 1 sink, fp16
        let mut cos = vec![Vec::new(); 3];
        let mut rel = vec![Vec::new(); 3];
        for draw in 0..b.draws {
            let mut rng = Rng::new(11 + draw as u64);
            let mut k = normals(&mut rng, t * HK * D);
            let v = normals(&mut rng, t * HK * D);
            let q = normals(&mut rng, HQ * D);
            if outliers {
                for row in k.chunks_exact_mut(D) {
                    row[5] *= 15.0;
                    row[77] *= 15.0;
                }
            }
            let want = bitnet_kernels::kv::reference_attention(&k, &v, &q, t, HK, HQ, D);
            let mut out = vec![0.0; HQ * D];
            for sink in [0, 1] {
                let mut c = KvCache::new(HK, D, t, sink)?;
                c.append(&k, &v, t)?;
                c.attend(&q, HQ, &mut out)?;
                let (cs, re) = compare(&out, &want);
                cos[sink].push(cs);
                rel[sink].push(re);
            }
            F16Cache::new(&k, &v, HK, D).attend(&q, HQ, &mut out);
            let (cs, re) = compare(&out, &want);
            cos[2].push(cs);
            rel[2].push(re);
        }
        let keys = if outliers {
            "2 channels ×15"
        } else {
            "Gaussian"
        };
        for (i, name) in ["3-bit, no sink", "3-bit, 1 sink token", "fp16 (baseline)"]
            .iter()
            .enumerate()
        {
            let (c, r) = (&mut cos[i], &mut rel[i]);
            let (cmed, rmed) = (stats::median(c), stats::median(r));
            let _ = writeln!(
                o,
                "| {keys} | {name} | {:.4} / {cmed:.4} | {rmed:.4} / {:.4} |",
                c[0],
                r[r.len() - 1]
            );
        }
    }
    Ok(())
}

fn speed(o: &mut String, b: &KvBench, stream_gb_s: f64) -> bitnet_kernels::Result<()> {
    let (layers, tokens) = (b.layers, b.tokens);
    let mut rng = Rng::new(5);
    let k = normals(&mut rng, tokens * HK * D);
    let v = normals(&mut rng, tokens * HK * D);
    let q = normals(&mut rng, HQ * D);
    let mut first = KvCache::new(HK, D, tokens, 1)?;
    first.append(&k, &v, tokens)?;
    let caches: Vec<KvCache> = (0..layers).map(|_| first.clone()).collect();
    let f16s: Vec<F16Cache> = (0..layers).map(|_| F16Cache::new(&k, &v, HK, D)).collect();
    let (b3, b16) = (first.bytes(), f16s[0].bytes());
    let values = (2 * tokens * HK * D) as f64;
    let _ = writeln!(
        o,
        "\nBytes per layer at {tokens} tokens (1 sink token): 3-bit {b3} ({:.3} bits a value), fp16 {b16}: {:.2}× smaller.\n",
        b3 as f64 * 8.0 / values,
        b16 as f64 / b3 as f64
    );
    let sets: Vec<_> = kernels::available().collect();
    let mut out = vec![0.0f32; HQ * D];
    // Rounds interleave the caches (fp16, then each set), so a busy spell on a shared
    // machine slows all of them alike; each figure is the median over rounds of one pass
    // over every layer, divided by the layers.
    let mut t16 = Vec::new();
    let mut t3 = vec![Vec::new(); sets.len()];
    for rep in 0..=b.reps {
        let a = stats::time(|| (0..layers).for_each(|l| f16s[l].attend(&q, HQ, &mut out)));
        let mut ts = Vec::new();
        for set in &sets {
            ts.push(stats::time(|| {
                (0..layers).for_each(|l| caches[l].attend_with(set, &q, HQ, &mut out).unwrap())
            }));
        }
        if rep > 0 {
            // round 0 warms up
            t16.push(a / layers as f64);
            ts.into_iter()
                .zip(&mut t3)
                .for_each(|(t, v)| v.push(t / layers as f64));
        }
    }
    let t16 = stats::median(&mut t16);
    let _ = writeln!(
        o,
        "{layers} layers' caches read in turn, median of {} interleaved rounds; streaming read, 1 thread: {stream_gb_s:.1} GB/s.\n",
        b.reps
    );
    let _ = writeln!(
        o,
        "| cache | kernels | µs per layer | GB/s of cache | share of streaming | vs fp16 |\n|---|---|---|---|---|---|"
    );
    let row = |o: &mut String, cache: &str, name: &str, t: f64, bytes: usize| {
        let gbs = bytes as f64 / t / 1e9;
        let _ = writeln!(
            o,
            "| {cache} | {name} | {:.1} | {gbs:.1} | {:.0} % | {:.2}× |",
            t * 1e6,
            100.0 * gbs / stream_gb_s,
            t16 / t
        );
    };
    row(o, "fp16", simd_name(), t16, b16);
    for (set, t) in sets.iter().zip(&mut t3) {
        row(o, "3-bit", set.name(), stats::median(t), b3);
    }
    Ok(())
}

/// The one-thread streaming-read rate for [`section`], from a buffer of `bytes`.
pub fn stream_gb_s(bytes: usize, samples: usize) -> f64 {
    probe::stream_read(bytes, 1, samples).gb_per_s
}
