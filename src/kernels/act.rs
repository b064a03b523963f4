//! The activation steps around a kernel, per kernel set: absmax int8 quantization of one f32
//! row and the rescale of int32 accumulators to f32 (`docs/FORMATS.md` §1).
//!
//! Each SIMD version returns exactly what the scalar one does, bit for bit, for every input:
//! the same `max|x|` (a maximum is exact in any order), the same product `x * s` (one IEEE
//! multiplication, no fused operation), rounding to nearest with ties to even (`vroundps`
//! with an explicit rounding mode, `fcvtns`), and a clamp to `[-128, 127]` done by saturating
//! narrowing (every rounded value is an integer, so the clamp before or after the conversion
//! is the same). The first non-finite element is found by a scalar scan of the vector that
//! held it, so the error's index is the scalar one's.
//!
//! They are plain Rust (`std::arch`), not C: the work is a few dozen instructions, and Rust
//! keeps the error path in one language. Each is safe to call on any CPU: it asks
//! [`super::cpu`] (a cached flag) and falls back to the scalar version where the instructions
//! are missing, so a set's entry can never run an instruction the CPU lacks.

use crate::error::{Error, Result};
use crate::quant::{quantize_activations, SCALE_FLOOR};

/// Quantizes one row `x` into `q` (`q.len() == x.len()`) and returns `a = max(max|x|, 1e-5)`;
/// on a non-finite element returns [`Error::NonFinite`] with the first one's index and writes
/// nothing. Exactly [`crate::quant::quantize_activations`].
pub(crate) type QuantizeRow = fn(x: &[f32], q: &mut [i8]) -> Result<f32>;

/// On entry each element of `y` holds the bits of an int32 accumulator; on return
/// `y[i] = acc[i] as f32 * factor`. In place, so a product needs no accumulator buffer.
pub(crate) type RescaleInPlace = fn(y: &mut [f32], factor: f32);

/// The rescale for a matrix with one scale per output row: on entry each element of `y`
/// holds the bits of an int32 accumulator; on return
/// `y[i] = acc[i] as f32 * (scales[i] * act)`, where `act = a / 127` is the activation row's
/// factor. Two roundings in that order, no fused multiply-add. `scales.len() == y.len()`
/// (asserted).
pub(crate) type RescaleRowsInPlace = fn(y: &mut [f32], scales: &[f32], act: f32);

/// A kernel set's activation steps.
#[derive(Clone, Copy)]
pub(crate) struct ActKernels {
    pub(crate) quantize: QuantizeRow,
    pub(crate) rescale: RescaleInPlace,
    pub(crate) rescale_rows: RescaleRowsInPlace,
}

/// The reference: [`quantize_activations`] and plain loops.
pub(crate) const SCALAR: ActKernels = ActKernels {
    quantize: quantize_scalar,
    rescale: rescale_scalar,
    rescale_rows: rescale_rows_scalar,
};

fn quantize_scalar(x: &[f32], q: &mut [i8]) -> Result<f32> {
    quantize_activations(x, q)
}

fn rescale_scalar(y: &mut [f32], factor: f32) {
    for v in y {
        *v = (v.to_bits() as i32) as f32 * factor;
    }
}

fn rescale_rows_scalar(y: &mut [f32], scales: &[f32], act: f32) {
    assert_eq!(y.len(), scales.len(), "rescale_rows: lengths differ");
    for (v, &s) in y.iter_mut().zip(scales) {
        *v = (v.to_bits() as i32) as f32 * (s * act);
    }
}

/// The error for the first non-finite element of `x` at or after `from` (the caller has seen
/// that there is one there and none before).
#[cold]
fn first_non_finite(x: &[f32], from: usize) -> Error {
    let index = from
        + x[from..]
            .iter()
            .position(|v| !v.is_finite())
            .expect("a non-finite element was seen");
    Error::NonFinite {
        what: "activations",
        index,
    }
}

/// The end of a vector max pass: folds the elements from `from` on (the tail the vectors
/// left) into `amax`, and returns `a = max(amax, 1e-5)` and the scale `127 / a`; a
/// non-finite element in the tail is an error with its index.
#[inline(always)]
fn absmax_tail(x: &[f32], from: usize, mut amax: f32) -> Result<(f32, f32)> {
    for (j, &v) in x.iter().enumerate().skip(from) {
        if !v.is_finite() {
            return Err(first_non_finite(x, j));
        }
        amax = amax.max(v.abs());
    }
    let a = amax.max(SCALE_FLOOR);
    Ok((a, 127.0f32 / a))
}

/// The scalar quantization step of one element, for the tails the vectors leave.
#[inline(always)]
fn quantize_one(v: f32, s: f32) -> i8 {
    (v * s).round_ties_even().clamp(-128.0, 127.0) as i8
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{AVX2, AVX512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{absmax_tail, first_non_finite, quantize_one, ActKernels, SCALAR};
    use crate::error::Result;
    use crate::kernels::cpu;

    /// AVX2: 8 lanes.
    pub(crate) const AVX2: ActKernels = ActKernels {
        quantize,
        rescale,
        rescale_rows,
    };

    /// AVX-512 F/BW: the quantizer in 16 lanes, with the rounding in the conversion and the
    /// saturation in one narrowing store (`vcvtps2dq {rn-sae}`, `vpmovsdb`): the second pass
    /// is 4 instructions per 16 values against AVX2's 21 per 32. Measured (Emerald-Rapids-class guest, 2026-11-28): 128 rows of
    /// 2560 in 52.0 µs against 66.5 with AVX2; at that size reading the f32 rows (1.3 MB, from
    /// L3) is most of it. The rescale stays AVX2's (a multiply per element).
    pub(crate) const AVX512: ActKernels = ActKernels {
        quantize: quantize_wide,
        rescale,
        rescale_rows,
    };

    fn quantize_wide(x: &[f32], q: &mut [i8]) -> Result<f32> {
        assert_eq!(x.len(), q.len(), "quantize: lengths differ");
        if !cpu::avx512() {
            return quantize(x, q);
        }
        // SAFETY: the CPU has AVX-512 F and BW (checked above); the lengths are equal.
        unsafe { quantize_avx512(x, q) }
    }

    fn quantize(x: &[f32], q: &mut [i8]) -> Result<f32> {
        assert_eq!(x.len(), q.len(), "quantize: lengths differ");
        if !cpu::avx2() {
            return (SCALAR.quantize)(x, q);
        }
        // SAFETY: the CPU has AVX2 (checked above); the lengths are equal (asserted).
        unsafe { quantize_avx2(x, q) }
    }

    fn rescale(y: &mut [f32], factor: f32) {
        if !cpu::avx2() {
            return (SCALAR.rescale)(y, factor);
        }
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { rescale_avx2(y, factor) }
    }

    fn rescale_rows(y: &mut [f32], scales: &[f32], act: f32) {
        assert_eq!(y.len(), scales.len(), "rescale_rows: lengths differ");
        if !cpu::avx2() {
            return (SCALAR.rescale_rows)(y, scales, act);
        }
        // SAFETY: the CPU has AVX2 (checked above); the lengths are equal (asserted).
        unsafe { rescale_rows_avx2(y, scales, act) }
    }

    /// # Safety
    /// The CPU has AVX2, and `q.len() == x.len()`.
    #[target_feature(enable = "avx2")]
    unsafe fn quantize_avx2(x: &[f32], q: &mut [i8]) -> Result<f32> {
        let n = x.len();
        let xp = x.as_ptr();
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let fmax = _mm256_set1_ps(f32::MAX);
        // Pass 1: max |x|, and whether every element is finite (`|v| <= MAX` is false for
        // NaN, an unordered compare, and for ±Inf).
        let (mut m0, mut m1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n = x.len().
            let (v0, v1) = unsafe {
                (
                    _mm256_and_ps(_mm256_loadu_ps(xp.add(i)), abs_mask),
                    _mm256_and_ps(_mm256_loadu_ps(xp.add(i + 8)), abs_mask),
                )
            };
            let ok = _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_LE_OQ>(v0, fmax),
                _mm256_cmp_ps::<_CMP_LE_OQ>(v1, fmax),
            );
            if _mm256_movemask_ps(ok) != 0xff {
                return Err(first_non_finite(x, i));
            }
            m0 = _mm256_max_ps(m0, v0);
            m1 = _mm256_max_ps(m1, v1);
            i += 16;
        }
        let m = _mm256_max_ps(m0, m1);
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
        let (a, s) = absmax_tail(x, i, _mm_cvtss_f32(m))?;

        // Pass 2: q = sat8(round_even(x * s)), 32 at a time.
        let vs = _mm256_set1_ps(s);
        let qp = q.as_mut_ptr();
        // After the two packs the 4-byte groups are ordered r0a r1a r2a r3a r0b r1b r2b r3b
        // (a: elements 0..4 of a vector, b: 4..8); this puts them back in element order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut i = 0;
        while i + 32 <= n {
            let r = |o: usize| {
                // SAFETY: i + o + 8 <= i + 32 <= n = x.len().
                let v = unsafe { _mm256_loadu_ps(xp.add(i + o)) };
                let v = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(v, vs),
                );
                // Exact: v is an integer of magnitude <= 128 (|x| <= a, so |x * s| <= 127
                // up to rounding).
                _mm256_cvtps_epi32(v)
            };
            let lo = _mm256_packs_epi32(r(0), r(8));
            let hi = _mm256_packs_epi32(r(16), r(24));
            let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(lo, hi), order);
            // SAFETY: i + 32 <= n = q.len() (the caller's contract).
            unsafe { _mm256_storeu_si256(qp.add(i).cast(), b) };
            i += 32;
        }
        for (d, &v) in q[i..].iter_mut().zip(&x[i..]) {
            *d = quantize_one(v, s);
        }
        Ok(a)
    }

    /// # Safety
    /// The CPU has AVX-512 F and BW, and `q.len() == x.len()`.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn quantize_avx512(x: &[f32], q: &mut [i8]) -> Result<f32> {
        let n = x.len();
        let xp = x.as_ptr();
        let fmax = _mm512_set1_ps(f32::MAX);
        // Pass 1: max |x|, and whether every element is finite (`|v| <= MAX` is false for
        // NaN, an unordered compare, and for ±Inf).
        let (mut m0, mut m1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: i + 32 <= n = x.len().
            let (v0, v1) = unsafe {
                (
                    _mm512_abs_ps(_mm512_loadu_ps(xp.add(i))),
                    _mm512_abs_ps(_mm512_loadu_ps(xp.add(i + 16))),
                )
            };
            let ok = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v0, fmax)
                & _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v1, fmax);
            if ok != 0xffff {
                return Err(first_non_finite(x, i));
            }
            m0 = _mm512_max_ps(m0, v0);
            m1 = _mm512_max_ps(m1, v1);
            i += 32;
        }
        // A maximum is exact in any order.
        let (a, s) = absmax_tail(x, i, _mm512_reduce_max_ps(_mm512_max_ps(m0, m1)))?;

        // Pass 2: q = sat8(round_even(x * s)), 16 at a time: the conversion rounds to nearest
        // even (embedded rounding, no exception), the narrowing store saturates.
        let vs = _mm512_set1_ps(s);
        let qp = q.as_mut_ptr();
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n = x.len() = q.len().
            unsafe {
                let v = _mm512_mul_ps(_mm512_loadu_ps(xp.add(i)), vs);
                let r = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    v,
                );
                _mm_storeu_si128(qp.add(i).cast(), _mm512_cvtsepi32_epi8(r));
            }
            i += 16;
        }
        for (d, &v) in q[i..].iter_mut().zip(&x[i..]) {
            *d = quantize_one(v, s);
        }
        Ok(a)
    }

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn rescale_avx2(y: &mut [f32], factor: f32) {
        let n = y.len();
        let p = y.as_mut_ptr();
        let f = _mm256_set1_ps(factor);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n = y.len(); the bits are read as int32 and written back as
            // f32, both plain 4-byte values. `vcvtdq2ps` rounds to nearest even, as `as f32`.
            unsafe {
                let a = _mm256_loadu_si256(p.add(i).cast());
                _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_cvtepi32_ps(a), f));
            }
            i += 8;
        }
        (SCALAR.rescale)(&mut y[i..], factor);
    }

    /// # Safety
    /// The CPU has AVX2, and `scales.len() == y.len()`.
    #[target_feature(enable = "avx2")]
    unsafe fn rescale_rows_avx2(y: &mut [f32], scales: &[f32], act: f32) {
        let n = y.len();
        let (p, sp) = (y.as_mut_ptr(), scales.as_ptr());
        let a = _mm256_set1_ps(act);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n = y.len() = scales.len(). Two separate multiplications (no
            // FMA), in the scalar order: (s * act), then acc * that.
            unsafe {
                let acc = _mm256_loadu_si256(p.add(i).cast());
                let f = _mm256_mul_ps(_mm256_loadu_ps(sp.add(i)), a);
                _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_cvtepi32_ps(acc), f));
            }
            i += 8;
        }
        (SCALAR.rescale_rows)(&mut y[i..], &scales[i..], act);
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) use arm::NEON;

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::{absmax_tail, first_non_finite, quantize_one, ActKernels, SCALAR};
    use crate::error::Result;
    use crate::kernels::cpu;

    /// Advanced SIMD, 4 lanes: every AArch64 set.
    pub(crate) const NEON: ActKernels = ActKernels {
        quantize,
        rescale,
        rescale_rows,
    };

    fn quantize(x: &[f32], q: &mut [i8]) -> Result<f32> {
        assert_eq!(x.len(), q.len(), "quantize: lengths differ");
        if !cpu::neon() {
            return (SCALAR.quantize)(x, q);
        }
        // SAFETY: the CPU has Advanced SIMD (checked above); the lengths are equal.
        unsafe { quantize_neon(x, q) }
    }

    fn rescale(y: &mut [f32], factor: f32) {
        if !cpu::neon() {
            return (SCALAR.rescale)(y, factor);
        }
        // SAFETY: the CPU has Advanced SIMD (checked above).
        unsafe { rescale_neon(y, factor) }
    }

    fn rescale_rows(y: &mut [f32], scales: &[f32], act: f32) {
        assert_eq!(y.len(), scales.len(), "rescale_rows: lengths differ");
        if !cpu::neon() {
            return (SCALAR.rescale_rows)(y, scales, act);
        }
        // SAFETY: the CPU has Advanced SIMD (checked above); the lengths are equal.
        unsafe { rescale_rows_neon(y, scales, act) }
    }

    /// # Safety
    /// The CPU has Advanced SIMD, and `q.len() == x.len()`.
    #[target_feature(enable = "neon")]
    unsafe fn quantize_neon(x: &[f32], q: &mut [i8]) -> Result<f32> {
        let n = x.len();
        let xp = x.as_ptr();
        let fmax = vdupq_n_f32(f32::MAX);
        // Pass 1: max |x| and finiteness (`|v| <= MAX` is false for NaN and ±Inf).
        let (mut m0, mut m1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n = x.len().
            let (v0, v1) = unsafe {
                (
                    vabsq_f32(vld1q_f32(xp.add(i))),
                    vabsq_f32(vld1q_f32(xp.add(i + 4))),
                )
            };
            let ok = vandq_u32(vcleq_f32(v0, fmax), vcleq_f32(v1, fmax));
            if vminvq_u32(ok) == 0 {
                return Err(first_non_finite(x, i));
            }
            m0 = vmaxq_f32(m0, v0);
            m1 = vmaxq_f32(m1, v1);
            i += 8;
        }
        let (a, s) = absmax_tail(x, i, vmaxvq_f32(vmaxq_f32(m0, m1)))?;

        // Pass 2: `fcvtns` rounds to nearest with ties to even (whatever FPCR says), and the
        // two saturating narrows clamp to [-128, 127].
        let vs = vdupq_n_f32(s);
        let qp = q.as_mut_ptr();
        let mut i = 0;
        while i + 16 <= n {
            let r = |o: usize| {
                // SAFETY: i + o + 4 <= i + 16 <= n = x.len().
                let v = unsafe { vld1q_f32(xp.add(i + o)) };
                vcvtnq_s32_f32(vmulq_f32(v, vs))
            };
            let lo = vcombine_s16(vqmovn_s32(r(0)), vqmovn_s32(r(4)));
            let hi = vcombine_s16(vqmovn_s32(r(8)), vqmovn_s32(r(12)));
            let b = vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi));
            // SAFETY: i + 16 <= n = q.len() (the caller's contract).
            unsafe { vst1q_s8(qp.add(i), b) };
            i += 16;
        }
        for (d, &v) in q[i..].iter_mut().zip(&x[i..]) {
            *d = quantize_one(v, s);
        }
        Ok(a)
    }

    /// # Safety
    /// The CPU has Advanced SIMD.
    #[target_feature(enable = "neon")]
    unsafe fn rescale_neon(y: &mut [f32], factor: f32) {
        let n = y.len();
        let p = y.as_mut_ptr();
        let mut i = 0;
        while i + 4 <= n {
            // SAFETY: i + 4 <= n = y.len(); the bits are read as int32 and written back as
            // f32. `scvtf` rounds by FPCR, which Rust requires to be round-to-nearest-even,
            // the rounding of `as f32`.
            unsafe {
                let a = vld1q_s32(p.add(i).cast());
                vst1q_f32(p.add(i), vmulq_n_f32(vcvtq_f32_s32(a), factor));
            }
            i += 4;
        }
        (SCALAR.rescale)(&mut y[i..], factor);
    }

    /// # Safety
    /// The CPU has Advanced SIMD, and `scales.len() == y.len()`.
    #[target_feature(enable = "neon")]
    unsafe fn rescale_rows_neon(y: &mut [f32], scales: &[f32], act: f32) {
        let n = y.len();
        let (p, sp) = (y.as_mut_ptr(), scales.as_ptr());
        let mut i = 0;
        while i + 4 <= n {
            // SAFETY: i + 4 <= n = y.len() = scales.len(). Two separate multiplications (no
            // fused `fmla`), in the scalar order.
            unsafe {
                let acc = vld1q_s32(p.add(i).cast());
                let f = vmulq_n_f32(vld1q_f32(sp.add(i)), act);
                vst1q_f32(p.add(i), vmulq_f32(vcvtq_f32_s32(acc), f));
            }
            i += 4;
        }
        (SCALAR.rescale_rows)(&mut y[i..], &scales[i..], act);
    }
}
