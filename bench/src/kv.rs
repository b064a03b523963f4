//! The 3-bit KV cache's benchmark: [`section`] (the report's KV section and `--bin
//! kv_report`: bytes, accuracy over many draws, µs per decode step against an fp16 cache and
//! the streaming bandwidth), and its baseline [`F16Cache`]: the same decode attention over an
//! fp16 cache, with AVX-512F, or AVX2 + FMA + F16C, where the CPU has them (checked at run
//! time), plain Rust elsewhere. Like the 3-bit kernels, the baseline reads each KV head's rows
//! as one stream, converts each row once for every query head of the group, and reads the
//! cache once per call.

use std::fmt::Write as _;

use bitnet_kernels::kernels;
use bitnet_kernels::kv::{softmax_exp, KvCache};
use half::f16;

use crate::baseline::{simd_level, Simd};
use crate::data::{normals, Rng};
use crate::{machine, probe, stats};

/// One layer's fp16 K and V, head-major as the 3-bit cache stores its rows
/// (`[kv head][token][head_dim]`): each KV head's K and V are two contiguous streams.
pub struct F16Cache {
    n_kv: usize,
    d: usize,
    len: usize,
    k: Vec<u16>,
    v: Vec<u16>,
}

impl F16Cache {
    /// `k`, `v`: `len × n_kv × d` f32 (token-major, as [`KvCache::append`] takes them),
    /// rounded to fp16.
    pub fn new(k: &[f32], v: &[f32], n_kv: usize, d: usize) -> Self {
        let len = k.len() / (n_kv * d);
        let cvt = |x: &[f32]| {
            let mut o = Vec::with_capacity(x.len());
            for g in 0..n_kv {
                for t in 0..len {
                    let row = &x[(t * n_kv + g) * d..][..d];
                    o.extend(row.iter().map(|&a| f16::from_f32(a).to_bits()));
                }
            }
            o
        };
        F16Cache {
            n_kv,
            d,
            len,
            k: cvt(k),
            v: cvt(v),
        }
    }

    /// Bytes of K and V.
    pub fn bytes(&self) -> usize {
        2 * (self.k.len() + self.v.len())
    }

    /// Decode attention for `n_heads` query heads (`q`, `out`: `n_heads × d`), softmax of
    /// `q·k / sqrt(d)` over every position, f32 arithmetic. Per KV head: the scores of up to
    /// four query heads of its group per pass over K (each K row converted once for all of
    /// them), the crate's softmax ([`softmax_exp`]), then the weighted sum of V, each V row
    /// converted once for up to four heads, and the division by the softmax sum.
    pub fn attend(&self, q: &[f32], n_heads: usize, out: &mut [f32]) {
        let (d, n) = (self.d, self.len);
        let ratio = n_heads / self.n_kv;
        let scale = 1.0 / (d as f32).sqrt();
        let simd = loop_level(d);
        let mut p = vec![0.0f32; ratio * n];
        for g in 0..self.n_kv {
            let kg = &self.k[g * n * d..][..n * d];
            let vg = &self.v[g * n * d..][..n * d];
            let qg = &q[g * ratio * d..][..ratio * d];
            let og = &mut out[g * ratio * d..][..ratio * d];
            for h0 in (0..ratio).step_by(4) {
                let nh = (ratio - h0).min(4);
                let (qh, ph) = (&qg[h0 * d..][..nh * d], &mut p[h0 * n..][..nh * n]);
                scores(simd, kg, n, d, qh, nh, scale, ph);
            }
            let z: Vec<f32> = p.chunks_exact_mut(n).map(softmax_exp).collect();
            og.fill(0.0);
            for h0 in (0..ratio).step_by(4) {
                let nh = (ratio - h0).min(4);
                let (ph, oh) = (&p[h0 * n..][..nh * n], &mut og[h0 * d..][..nh * d]);
                wsum(simd, vg, n, d, ph, nh, oh);
            }
            for (o, z) in og.chunks_exact_mut(d).zip(&z) {
                let inv = 1.0 / z;
                o.iter_mut().for_each(|x| *x *= inv);
            }
        }
    }
}

/// The loops [`F16Cache::attend`] takes for `head_dim = d` on this CPU: AVX-512F (its
/// `vcvtph2ps` and FMA) when `d` is a multiple of 64, AVX2 + FMA + F16C when a multiple of
/// 16, else plain Rust.
fn loop_level(d: usize) -> Simd {
    match simd_level() {
        Simd::Avx512 if d.is_multiple_of(64) => Simd::Avx512,
        Simd::Avx512 | Simd::Avx2 if d.is_multiple_of(16) => Simd::Avx2,
        _ => Simd::None,
    }
}

/// The loops [`F16Cache::attend`] uses at the report's head_dim (128) on this CPU:
/// `"avx512"`, `"avx2+f16c+fma"` or `"scalar"`.
pub fn simd_name() -> &'static str {
    crate::baseline::simd_name()
}

/// Calls `$f::<NH>` for `NH = $nh` (1 to 4).
#[cfg(target_arch = "x86_64")]
macro_rules! by_heads {
    ($nh:expr, $f:ident($($a:expr),*)) => {
        match $nh {
            1 => $f::<1>($($a),*),
            2 => $f::<2>($($a),*),
            3 => $f::<3>($($a),*),
            _ => $f::<4>($($a),*),
        }
    };
}

/// `p[h·n + t] = scale · q_h·k_t` for `h < nh` (1 to 4), `t < n`; `k`: `n × d`, `q`: `nh × d`.
#[allow(clippy::too_many_arguments, unused_unsafe)]
fn scores(
    simd: Simd,
    k: &[u16],
    n: usize,
    d: usize,
    q: &[f32],
    nh: usize,
    scale: f32,
    p: &mut [f32],
) {
    assert!(k.len() == n * d && q.len() == nh * d && p.len() == nh * n && (1..=4).contains(&nh));
    match simd {
        // SAFETY: loop_level checked the features and d's multiple; the assert the lengths.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { by_heads!(nh, scores512(k, n, d, q, scale, p)) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { by_heads!(nh, scores256(k, n, d, q, scale, p)) },
        _ => {
            for t in 0..n {
                let row = &k[t * d..][..d];
                for h in 0..nh {
                    let qh = &q[h * d..][..d];
                    let s: f32 = row
                        .iter()
                        .zip(qh)
                        .map(|(&a, &b)| f16::from_bits(a).to_f32() * b)
                        .sum();
                    p[h * n + t] = s * scale;
                }
            }
        }
    }
}

/// `out[h·d + j] += Σ_t w[h·n + t] · v_t[j]` for `h < nh` (1 to 4); `v`: `n × d`.
#[allow(unused_unsafe)]
fn wsum(simd: Simd, v: &[u16], n: usize, d: usize, w: &[f32], nh: usize, out: &mut [f32]) {
    assert!(v.len() == n * d && w.len() == nh * n && out.len() == nh * d && (1..=4).contains(&nh));
    match simd {
        // SAFETY: loop_level checked the features and d's multiple; the assert the lengths.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { by_heads!(nh, wsum512(v, n, d, w, out)) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { by_heads!(nh, wsum256(v, n, d, w, out)) },
        _ => {
            for t in 0..n {
                let row = &v[t * d..][..d];
                for h in 0..nh {
                    let wt = w[h * n + t];
                    for (o, &b) in out[h * d..][..d].iter_mut().zip(row) {
                        *o += wt * f16::from_bits(b).to_f32();
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
use x86::{scores256, scores512, wsum256, wsum512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::baseline::prefetch_on;

    /// How far ahead (bytes) the loops prefetch into L2 (`prefetcht1`), as the fp16 GEMV
    /// baseline and the I2_S kernels do on Intel. Against `prefetcht0` 1 KiB ahead (the former
    /// choice), 30 layers × 4096 tokens from DRAM, four rounds each in turns (2026-11-29 01:18,
    /// idle but for the other vCPU): 1084–1148 µs a layer against 1012–1125 (T1) and
    /// 1022–1240 (`prefetcht0` 4 KiB); docs/performance.md, the KV section.
    const PF_AHEAD: usize = 4096;

    /// The loops of one vector width (`$lanes` f32 a vector): `$scores` takes `$tn` tokens a
    /// pass (`4·$tn` accumulators: token × up to 4 heads, reduced together by `$hsum`), each K
    /// vector converted once for every head; `$wsum` keeps `$cv` vectors of up to four heads'
    /// sums in registers over blocks of 32 tokens (whose rows stay in L1 between the blocks
    /// of channels), each V vector converted once for every head.
    ///
    /// Safety of each: the CPU has `$feat`; `d` a multiple of `$lanes · $cv`; `k`, `v`:
    /// `n × d`; `q`: `NH × d`; `p`, `w`: `NH × n`; `out`: `NH × d`.
    macro_rules! loops {
        ($($scores:ident, $wsum:ident: $feat:literal, $v:ty, lanes $lanes:literal,
           tokens $tn:literal, chunk $cv:literal, $zero:ident, $fma:ident, $set1:ident,
           $loadf:ident, $storef:ident, $hsum:ident, |$p:ident| $cvt:expr;)*) => {$(
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $scores<const NH: usize>(
                k: &[u16],
                n: usize,
                d: usize,
                q: &[f32],
                scale: f32,
                p: &mut [f32],
            ) {
                /// `TN` tokens from `k` (row t at `k + t·d`), sums to `p + h·n + t`.
                #[target_feature(enable = $feat)]
                #[inline]
                unsafe fn block<const TN: usize, const NH: usize>(
                    k: *const u16,
                    d: usize,
                    q: *const f32,
                    scale: f32,
                    p: *mut f32,
                    n: usize,
                ) {
                    let mut acc = [$zero(); 4 * $tn];
                    for j in (0..d).step_by($lanes) {
                        let mut qv = [$zero(); NH];
                        for (h, x) in qv.iter_mut().enumerate() {
                            *x = $loadf(q.add(h * d + j));
                        }
                        for t in 0..TN {
                            let $p = k.add(t * d + j);
                            let x = $cvt;
                            for h in 0..NH {
                                acc[4 * t + h] = $fma(x, qv[h], acc[4 * t + h]);
                            }
                        }
                    }
                    let mut s = [0.0f32; 4 * $tn];
                    $storef(s.as_mut_ptr(), $hsum(&acc));
                    for t in 0..TN {
                        for h in 0..NH {
                            *p.add(h * n + t) = s[4 * t + h] * scale;
                        }
                    }
                }
                let (kp, qp, pp) = (k.as_ptr(), q.as_ptr(), p.as_mut_ptr());
                let pf = prefetch_on();
                let mut t = 0;
                while t + $tn <= n {
                    if pf {
                        // The block's rows PF_AHEAD bytes ahead into L2 (prefetch_on: Intel
                        // only; a hint, never dereferenced, so the address may pass the end).
                        for l in (0..$tn * d * 2).step_by(64) {
                            _mm_prefetch::<_MM_HINT_T1>(kp.add(t * d).cast::<i8>().wrapping_add(PF_AHEAD + l));
                        }
                    }
                    block::<$tn, NH>(kp.add(t * d), d, qp, scale, pp.add(t), n);
                    t += $tn;
                }
                while t < n {
                    block::<1, NH>(kp.add(t * d), d, qp, scale, pp.add(t), n);
                    t += 1;
                }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $wsum<const NH: usize>(
                v: &[u16],
                n: usize,
                d: usize,
                w: &[f32],
                out: &mut [f32],
            ) {
                const TB: usize = 32;
                let (vp, wp, op) = (v.as_ptr(), w.as_ptr(), out.as_mut_ptr());
                let pf = prefetch_on();
                for t0 in (0..n).step_by(TB) {
                    let tb = (n - t0).min(TB);
                    for j in (0..d).step_by($lanes * $cv) {
                        let mut a = [[$zero(); $cv]; NH];
                        for (h, a) in a.iter_mut().enumerate() {
                            for (c, a) in a.iter_mut().enumerate() {
                                *a = $loadf(op.add(h * d + j + c * $lanes));
                            }
                        }
                        for t in t0..t0 + tb {
                            if pf && j == 0 {
                                // Each row PF_AHEAD bytes ahead, in the first block of channels.
                                for l in (0..d * 2).step_by(64) {
                                    _mm_prefetch::<_MM_HINT_T1>(vp.add(t * d).cast::<i8>().wrapping_add(PF_AHEAD + l));
                                }
                            }
                            let mut x = [$zero(); $cv];
                            for (c, x) in x.iter_mut().enumerate() {
                                let $p = vp.add(t * d + j + c * $lanes);
                                *x = $cvt;
                            }
                            for (h, a) in a.iter_mut().enumerate() {
                                let wv = $set1(*wp.add(h * n + t));
                                for (a, &x) in a.iter_mut().zip(&x) {
                                    *a = $fma(wv, x, *a);
                                }
                            }
                        }
                        for (h, a) in a.iter().enumerate() {
                            for (c, &a) in a.iter().enumerate() {
                                $storef(op.add(h * d + j + c * $lanes), a);
                            }
                        }
                    }
                }
            }
        )*};
    }

    loops! {
        scores512, wsum512: "avx512f", __m512, lanes 16, tokens 4, chunk 4, _mm512_setzero_ps,
            _mm512_fmadd_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, hsum16,
            |p| _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        scores256, wsum256: "avx2,fma,f16c", __m256, lanes 8, tokens 2, chunk 2, _mm256_setzero_ps,
            _mm256_fmadd_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, hsum8,
            |p| _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
    }

    /// Lane `i` = the sum of `a[i]`'s lanes: pairs interleaved and added (32-bit, then
    /// 64-bit unpacks), leaving per 128-bit block the partial sums of four vectors; two rounds
    /// of block shuffles add the blocks.
    #[target_feature(enable = "avx512f")]
    fn hsum16(a: &[__m512; 16]) -> __m512 {
        let b: [__m512; 8] = std::array::from_fn(|i| {
            _mm512_add_ps(
                _mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]),
            )
        });
        let c: [__m512; 4] = std::array::from_fn(|i| {
            let (x, y) = (_mm512_castps_pd(b[2 * i]), _mm512_castps_pd(b[2 * i + 1]));
            _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)),
            )
        });
        let d: [__m512; 2] = std::array::from_fn(|i| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(c[2 * i], c[2 * i + 1]),
                _mm512_shuffle_f32x4::<0xdd>(c[2 * i], c[2 * i + 1]),
            )
        });
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(d[0], d[1]),
            _mm512_shuffle_f32x4::<0xdd>(d[0], d[1]),
        )
    }

    /// Lane `i` = the sum of `a[i]`'s lanes: two rounds of `vhaddps`, then the 128-bit
    /// halves added.
    #[target_feature(enable = "avx2")]
    fn hsum8(a: &[__m256; 8]) -> __m256 {
        let t0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let t1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(t0, t1),
            _mm256_permute2f128_ps::<0x31>(t0, t1),
        )
    }
}

/// The 2B-4T attention shape: query heads, KV heads, head_dim.
/// The 2B-4T attention shape the speed section times: query heads, KV heads, head_dim.
pub const HQ: usize = 20;
/// KV heads.
pub const HK: usize = 5;
/// head_dim.
pub const D: usize = 128;

/// The speed section's data: `tokens` random K and V rows appended to one 3-bit cache (one
/// sink token), copied to `layers` caches, and the random K, V and q (fixed seed).
pub struct DecodeData {
    /// One cache a layer, all equal.
    pub caches: Vec<KvCache>,
    /// The K rows appended (`tokens × HK × D`).
    pub k: Vec<f32>,
    /// The V rows appended.
    pub v: Vec<f32>,
    /// One token's query (`HQ × D`).
    pub q: Vec<f32>,
}

/// [`DecodeData`] for `layers` layers of `tokens` cached tokens.
pub fn decode_data(layers: usize, tokens: usize) -> bitnet_kernels::Result<DecodeData> {
    let mut rng = Rng::new(5);
    let k = normals(&mut rng, tokens * HK * D);
    let v = normals(&mut rng, tokens * HK * D);
    let q = normals(&mut rng, HQ * D);
    let mut first = KvCache::new(HK, D, tokens, 1)?;
    first.append(&k, &v, tokens)?;
    let caches = (0..layers).map(|_| first.clone()).collect();
    Ok(DecodeData { caches, k, v, q })
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
/// median over `draws` draws, Gaussian keys and keys with two channels ×15: the 3-bit cache
/// with and without the 8-bit sink, K and V alone quantized at 3 and 4 bits, fp16), and µs per
/// layer of one decode step for the fp16 cache and every kernel set, with GB/s of cache bytes
/// and the share of `stream_gb_s` (the one-thread streaming-read rate).
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

/// The accuracy table's rows: what each computes attention from.
const ACC_ROWS: [&str; 6] = [
    "3-bit, no sink",
    "3-bit, 1 sink token",
    "3-bit, no sink (K, V only)",
    "4-bit, no sink (K, V only)",
    "4-bit, 1 sink token (K, V only)",
    "fp16 (baseline)",
];

fn accuracy(o: &mut String, b: &KvBench) -> bitnet_kernels::Result<()> {
    let t = b.acc_tokens;
    let _ = writeln!(
        o,
        "Attention output against f32 attention (f64 sums), {t} tokens, {} draws: min / median. \
         The 3-bit rows without a mark are `KvCache::attend`; the rows marked \"K, V only\" put K and V \
         through the cache's quantizer at that width (`kv::roundtrip`) and attend in f64, without \
         `attend`'s int8 q and int8 V weights: the format's own error. 4-bit is the same scheme with \
         15 levels (4.25 bits a value at head_dim {D}), not a cache type of this crate.\n",
        b.draws
    );
    let _ = writeln!(
        o,
        "| keys | cache | cosine min / median | relative error median / max |\n|---|---|---|---|"
    );
    for outliers in [false, true] {
        let mut cos = vec![Vec::new(); ACC_ROWS.len()];
        let mut rel = vec![Vec::new(); ACC_ROWS.len()];
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
            let attention = |k: &[f32], v: &[f32]| {
                bitnet_kernels::kv::reference_attention(k, v, &q, t, HK, HQ, D)
            };
            let want = attention(&k, &v);
            let mut out = vec![0.0; HQ * D];
            let mut push = |row: usize, out: &[f32]| {
                let (cs, re) = compare(out, &want);
                cos[row].push(cs);
                rel[row].push(re);
            };
            for sink in [0, 1] {
                let mut c = KvCache::new(HK, D, t, sink)?;
                c.append(&k, &v, t)?;
                c.attend(&q, HQ, &mut out)?;
                push(sink, &out);
            }
            for (row, bits, sink) in [(2, 3, 0), (3, 4, 0), (4, 4, 1)] {
                let (kq, vq) = bitnet_kernels::kv::roundtrip(&k, &v, t, HK, D, sink, bits)?;
                push(row, &attention(&kq, &vq));
            }
            F16Cache::new(&k, &v, HK, D).attend(&q, HQ, &mut out);
            push(5, &out);
        }
        let keys = if outliers {
            "2 channels ×15"
        } else {
            "Gaussian"
        };
        for (i, name) in ACC_ROWS.iter().enumerate() {
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
    let DecodeData { caches, k, v, q } = decode_data(layers, tokens)?;
    let f16s: Vec<F16Cache> = (0..layers).map(|_| F16Cache::new(&k, &v, HK, D)).collect();
    let (b3, b16) = (caches[0].bytes(), f16s[0].bytes());
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
    probe::stream_read(crate::cold::cold_total(bytes), 1, samples).gb_per_s
}
