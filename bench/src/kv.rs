//! The baseline for the 3-bit KV cache: the same decode attention over an fp16 cache, with
//! AVX2 + FMA + F16C where the CPU has them (checked at run time), plain Rust elsewhere. The
//! loop streams each K and V row once per KV head and serves every query head of the group
//! from it, so it reads the cache once per call, as the 3-bit kernels do.

use half::f16;

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
            for t in 0..n {
                let row = &self.k[(t * self.n_kv + g) * d..][..d];
                for r in 0..ratio {
                    p[r * n + t] = dot(row, &qg[r * d..(r + 1) * d]) * scale;
                }
            }
            let mut z = vec![0.0f32; ratio];
            for r in 0..ratio {
                let row = &mut p[r * n..(r + 1) * n];
                let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for x in row.iter_mut() {
                    *x = (*x - mx).exp();
                    z[r] += *x;
                }
            }
            let og = &mut out[g * ratio * d..(g + 1) * ratio * d];
            og.fill(0.0);
            for t in 0..n {
                let row = &self.v[(t * self.n_kv + g) * d..][..d];
                for r in 0..ratio {
                    axpy(p[r * n + t] / z[r], row, &mut og[r * d..(r + 1) * d]);
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

fn dot(k: &[u16], q: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if k.len().is_multiple_of(8) && has_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); lengths are equal.
        return unsafe { x86::dot(k, q) };
    }
    k.iter()
        .zip(q)
        .map(|(&a, &b)| f16::from_bits(a).to_f32() * b)
        .sum()
}

fn axpy(a: f32, v: &[u16], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if v.len().is_multiple_of(8) && has_f16c() {
        // SAFETY: as in `dot`.
        return unsafe { x86::axpy(a, v, y) };
    }
    for (o, &b) in y.iter_mut().zip(v) {
        *o += a * f16::from_bits(b).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 + FMA + F16C; `k.len() == q.len()`, a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot(k: &[u16], q: &[f32]) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 2];
        for (i, (kc, qc)) in k.chunks_exact(8).zip(q.chunks_exact(8)).enumerate() {
            // SAFETY: 8 u16 and 8 f32 in bounds.
            let kv = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(kc.as_ptr().cast())) };
            let qv = unsafe { _mm256_loadu_ps(qc.as_ptr()) };
            acc[i & 1] = _mm256_fmadd_ps(kv, qv, acc[i & 1]);
        }
        let s = _mm256_add_ps(acc[0], acc[1]);
        let mut t = [0.0f32; 8];
        // SAFETY: 8 floats.
        unsafe { _mm256_storeu_ps(t.as_mut_ptr(), s) };
        t.iter().sum()
    }

    /// # Safety
    /// As [`dot`], with `y.len() == v.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn axpy(a: f32, v: &[u16], y: &mut [f32]) {
        let av = _mm256_set1_ps(a);
        for (vc, yc) in v.chunks_exact(8).zip(y.chunks_exact_mut(8)) {
            // SAFETY: 8 u16 and 8 f32 in bounds.
            unsafe {
                let x = _mm256_cvtph_ps(_mm_loadu_si128(vc.as_ptr().cast()));
                let o = _mm256_fmadd_ps(av, x, _mm256_loadu_ps(yc.as_ptr()));
                _mm256_storeu_ps(yc.as_mut_ptr(), o);
            }
        }
    }
}
