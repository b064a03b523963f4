//! The rotation of `attend`'s query and output vectors with AVX-512, the whole head vector in
//! registers: for `head_dim` a power of two from 16 to 256 (one Hadamard block of `N = d / 16`
//! vectors), the query head's channel factors, signs, transform and int8 quantization
//! ([`super::quantize_q_row`]) in one pass, and the output head's `(acc + C) / Z`, transform
//! and signs in one. The same operations on the same operands as [`super::quant::Rotation`]
//! and the plain passes, in the same order, so the same bits: each butterfly `(a + b, a − b)`
//! of a span, the spans 1 to `d / 2` in order, then the `1 / sqrt(d)` product. Why: through
//! memory (a load and a store of every vector per span, [`super::quant`]'s `fwht_avx`) the
//! 40 transforms of a 20-head call took about 180 cycles each, a fifth of a call over a short
//! cache (`perf record` of `kv_step --tokens 16`, 2026-11-29).

use std::arch::x86_64::*;

/// Whether the CPU has AVX-512F and FMA, and `d` is a length [`Rot512`] takes.
fn fits(d: usize) -> bool {
    d.is_power_of_two()
        && (16..=256).contains(&d)
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("fma")
}

/// The register rotation of one cache's head vectors (`head_dim` = 16 · `n`).
#[derive(Clone, Copy)]
pub(super) struct Rot512 {
    n: usize,
}

impl Rot512 {
    /// `Some` where the CPU has AVX-512F and FMA, and `d` is a power of two from 16 to 256.
    pub(super) fn new(d: usize) -> Option<Self> {
        fits(d).then_some(Rot512 { n: d / 16 })
    }

    /// One query head: `y = R (q ∘ ks)` (`ks` the channel factors, none before the first
    /// append), quantized into `out` as [`super::quantize_q_row`] does (its result: the absmax
    /// and the sum, `None` when `y` holds a NaN or infinity). `q`, `ks`, `signs` and `out` are
    /// `head_dim` long (`signs`: the rotation's).
    pub(super) fn q_row(
        self,
        q: &[f32],
        ks: Option<&[f32]>,
        signs: &[f32],
        out: &mut [i16],
    ) -> Option<(f32, i32)> {
        let d = 16 * self.n;
        assert!(q.len() == d && signs.len() == d && out.len() == d);
        assert!(ks.is_none_or(|k| k.len() == d));
        let ks = ks.map_or(std::ptr::null(), <[f32]>::as_ptr);
        let (q, s, o) = (q.as_ptr(), signs.as_ptr(), out.as_mut_ptr());
        // SAFETY: the CPU has AVX-512F and FMA (new); every pointer holds d = 16 · N values (checked
        // above), ks none or d.
        unsafe {
            match self.n {
                1 => q_row::<1>(q, ks, s, o),
                2 => q_row::<2>(q, ks, s, o),
                4 => q_row::<4>(q, ks, s, o),
                8 => q_row::<8>(q, ks, s, o),
                _ => q_row::<16>(q, ks, s, o),
            }
        }
    }

    /// One output head: `out = R^T ((acc + base) · inv)`; `acc`, `signs` and `out` are
    /// `head_dim` long.
    pub(super) fn out_row(self, acc: &[f32], base: f32, inv: f32, signs: &[f32], out: &mut [f32]) {
        let d = 16 * self.n;
        assert!(acc.len() == d && signs.len() == d && out.len() == d);
        let (a, s, o) = (acc.as_ptr(), signs.as_ptr(), out.as_mut_ptr());
        // SAFETY: the CPU has AVX-512F and FMA (new); every pointer holds d = 16 · N values.
        unsafe {
            match self.n {
                1 => out_row::<1>(a, base, inv, s, o),
                2 => out_row::<2>(a, base, inv, s, o),
                4 => out_row::<4>(a, base, inv, s, o),
                8 => out_row::<8>(a, base, inv, s, o),
                _ => out_row::<16>(a, base, inv, s, o),
            }
        }
    }
}

/// One butterfly span within each vector (`span` 1, 2, 4 or 8 lanes) in one fused
/// multiply-add: `y` holds every lane's partner (`i ^ span`), `sign` is +1 in the lower lane of
/// each pair and −1 in the upper, and `x · sign + y` is `b + a = a + b` in the lower, `a + (−b)
/// = a − b` in the upper: the product by ±1 is exact, so the one rounding is the sum's, the
/// bits of the add and the subtraction (half the operations of both and a blend).
#[inline(always)]
fn inner(x: __m512, y: __m512, sign: __m512) -> __m512 {
    // SAFETY: only called, inlined, from the AVX-512F and FMA functions below.
    unsafe { _mm512_fmadd_ps(x, sign, y) }
}

/// +1 in the lanes whose bit `span` is clear (the lower of each pair), −1 where it is set.
#[inline(always)]
fn signs_of(upper: __mmask16) -> __m512 {
    // SAFETY: as for inner.
    unsafe { _mm512_mask_blend_ps(upper, _mm512_set1_ps(1.0), _mm512_set1_ps(-1.0)) }
}

/// The normalized Walsh–Hadamard transform of `16 · N` values held in `v` (value `j` in lane
/// `j mod 16` of vector `j / 16`): spans 1, 2, 4, 8 within the vectors, then whole vectors.
/// Inlined (as are the intrinsics, then) into its AVX-512F callers, so that `v` stays in
/// registers.
#[inline(always)]
fn fwht<const N: usize>(v: &mut [__m512; N]) {
    // SAFETY: only called, inlined, from the AVX-512F and FMA functions below.
    unsafe {
        // (Not a map over the masks: a closure is compiled without the callers' features.)
        let s = [
            signs_of(0xAAAA),
            signs_of(0xCCCC),
            signs_of(0xF0F0),
            signs_of(0xFF00),
        ];
        for x in v.iter_mut() {
            *x = inner(*x, _mm512_permute_ps::<0b10_11_00_01>(*x), s[0]);
            *x = inner(*x, _mm512_permute_ps::<0b01_00_11_10>(*x), s[1]);
            *x = inner(*x, _mm512_shuffle_f32x4::<0b10_11_00_01>(*x, *x), s[2]);
            *x = inner(*x, _mm512_shuffle_f32x4::<0b01_00_11_10>(*x, *x), s[3]);
        }
        let mut h = 1;
        while h < N {
            for lo in (0..N).step_by(2 * h) {
                for i in lo..lo + h {
                    let (a, b) = (v[i], v[i + h]);
                    v[i] = _mm512_add_ps(a, b);
                    v[i + h] = _mm512_sub_ps(a, b);
                }
            }
            h *= 2;
        }
        let norm = _mm512_set1_ps(1.0 / ((16 * N) as f32).sqrt());
        for x in v.iter_mut() {
            *x = _mm512_mul_ps(*x, norm);
        }
    }
}

/// [`Rot512::q_row`] on `16 · N` values.
///
/// # Safety
/// The CPU has AVX-512F and FMA; `q`, `s` and `o` hold `16 · N` values, `ks` is null or does.
#[target_feature(enable = "avx512f,fma")]
unsafe fn q_row<const N: usize>(
    q: *const f32,
    ks: *const f32,
    s: *const f32,
    o: *mut i16,
) -> Option<(f32, i32)> {
    const ROUND: f32 = 12_582_912.0;
    let mut v = [_mm512_setzero_ps(); N];
    // SAFETY: 16 · N values at each pointer (the caller's contract).
    unsafe {
        for (i, x) in v.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(q.add(16 * i));
            if !ks.is_null() {
                *x = _mm512_mul_ps(*x, _mm512_loadu_ps(ks.add(16 * i)));
            }
            *x = _mm512_mul_ps(*x, _mm512_loadu_ps(s.add(16 * i)));
        }
    }
    fwht(&mut v);
    // The largest magnitude's bits (abs_bits_max): NaN and infinity lie above every finite
    // value.
    let mag = _mm512_set1_epi32(0x7fff_ffff);
    let bits = v.iter().fold(_mm512_setzero_si512(), |m, &x| {
        _mm512_max_epu32(m, _mm512_and_si512(_mm512_castps_si512(x), mag))
    });
    let bits = _mm512_reduce_max_epu32(bits);
    if bits >= f32::INFINITY.to_bits() {
        return None;
    }
    let a = f32::from_bits(bits).max(crate::quant::SCALE_FLOOR);
    let scale = _mm512_set1_ps(127.0f32 / a);
    let round = _mm512_set1_ps(ROUND);
    // The codes c_j = round_half_even(y_j · s) are the bits of t_j = y_j · s + 1.5 · 2^23 less
    // 0x4B40_0000. quantize_q_row clamps them to [−128, 127], which never binds: |y_j| <= a, so
    // |y_j · s| <= 127 · (1 + 2^-24)^2 < 127.5 and |c_j| <= 127. So the low 16 bits of t_j's
    // bits are c_j as int16 (0x4B40_0000 has none set), and the codes' sum is that of the bits
    // less 16 · N · 0x4B40_0000 (in wrapping int32: the true sum fits).
    let mut sum = _mm512_setzero_si512();
    for (i, &x) in v.iter().enumerate() {
        let t = _mm512_castps_si512(_mm512_add_ps(_mm512_mul_ps(x, scale), round));
        sum = _mm512_add_epi32(sum, t);
        // SAFETY: o holds 16 · N values.
        unsafe { _mm256_storeu_si256(o.add(16 * i).cast(), _mm512_cvtepi32_epi16(t)) };
    }
    let bias = (16 * N as i32).wrapping_mul(0x4B40_0000);
    Some((a, _mm512_reduce_add_epi32(sum).wrapping_sub(bias)))
}

/// [`Rot512::out_row`] on `16 · N` values.
///
/// # Safety
/// The CPU has AVX-512F and FMA; `acc`, `s` and `o` hold `16 · N` values.
#[target_feature(enable = "avx512f,fma")]
unsafe fn out_row<const N: usize>(
    acc: *const f32,
    base: f32,
    inv: f32,
    s: *const f32,
    o: *mut f32,
) {
    let mut v = [_mm512_setzero_ps(); N];
    let (base, inv) = (_mm512_set1_ps(base), _mm512_set1_ps(inv));
    // SAFETY: 16 · N values at each pointer (the caller's contract).
    unsafe {
        for (i, x) in v.iter_mut().enumerate() {
            *x = _mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(acc.add(16 * i)), base), inv);
        }
    }
    fwht(&mut v);
    // SAFETY: as above.
    unsafe {
        for (i, &x) in v.iter().enumerate() {
            _mm512_storeu_ps(
                o.add(16 * i),
                _mm512_mul_ps(x, _mm512_loadu_ps(s.add(16 * i))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::quant::Rotation;
    use super::*;

    /// Against the rotation and `quantize_q_row` through memory, bit for bit, at every length
    /// it takes, with and without channel factors, and a row that overflows (None both ways).
    #[test]
    fn matches_the_rotation() {
        for d in [16, 32, 64, 128, 256] {
            let Some(r) = Rot512::new(d) else { return };
            let rot = Rotation::new(d);
            let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
            let ks: Vec<f32> = (0..d).map(|i| 1.0 + (i % 5) as f32 * 0.25).collect();
            // Also rows whose codes reach ±127 in many places (one value: every rotated value
            // has the same magnitude), all zero and below the scale floor (a = SCALE_FLOOR).
            let one_hot: Vec<f32> = (0..d).map(|i| if i == 3 { -2.5 } else { 0.0 }).collect();
            let tiny: Vec<f32> = q.iter().map(|x| x * 1e-9).collect();
            let rows = [
                (&q, None),
                (&q, Some(&ks[..])),
                (&one_hot, None),
                (&tiny, None),
            ];
            for (q, k) in rows.into_iter().chain([(&vec![0.0; d], None)]) {
                let mut y = q.to_vec();
                if let Some(k) = k {
                    y.iter_mut().zip(k).for_each(|(x, s)| *x *= s);
                }
                rot.forward(&mut y);
                let (mut want, mut got) = (vec![0i16; d], vec![0i16; d]);
                let w = super::super::quantize_q_row(&y, &mut want);
                assert_eq!(r.q_row(q, k, rot.signs(), &mut got), w, "d {d}");
                assert_eq!(got, want, "d {d}");
            }
            let big = vec![f32::MAX; d];
            assert_eq!(r.q_row(&big, None, rot.signs(), &mut vec![0; d]), None);
            let (base, inv) = (0.375f32, 1.0 / 3.0f32);
            let mut want: Vec<f32> = q.iter().map(|&a| (a + base) * inv).collect();
            rot.inverse(&mut want);
            let mut got = vec![0.0f32; d];
            r.out_row(&q, base, inv, rot.signs(), &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "d {d}");
        }
    }
}
