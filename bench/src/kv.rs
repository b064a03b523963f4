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
