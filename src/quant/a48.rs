//! BitNet a4.8 activation quantizers (`docs/FORMATS.md` §11): int4 per token (absmean, the
//! paper's, or absmax) and TopK sparsification followed by the int8 absmax quantizer.
//!
//! Same conventions as the int8 quantizer: ties to even, multiply by the scale (never divide),
//! scales floored at [`SCALE_FLOOR`], NaN or infinity an error with nothing written.

use super::{quantize_activations, SCALE_FLOOR};
use crate::error::{check_len, Error, Result};

/// How [`quantize_activations_i4`] picks a row's scale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum I4Mode {
    /// BitNet a4.8 Eq. 7: `β = mean|x|`, `q = round(x · √7/β)`; inputs beyond about 3β clip.
    #[default]
    AbsMean = 0,
    /// `a = max|x|`, `q = round(x · 7/a)`: nothing clips, small values lose resolution.
    AbsMax = 1,
}

impl I4Mode {
    /// The mode with the C ABI's number (0 absmean, 1 absmax).
    pub fn from_id(id: i64) -> Result<I4Mode> {
        match id {
            0 => Ok(I4Mode::AbsMean),
            1 => Ok(I4Mode::AbsMax),
            _ => Err(Error::InvalidData(format!(
                "int4 mode {id} is not 0 (absmean) or 1 (absmax)"
            ))),
        }
    }
}

/// `√7` as f32 (`sqrtf(7.0f)`, correctly rounded).
#[inline]
fn sqrt7() -> f32 {
    7.0f32.sqrt()
}

/// The index of the first NaN or infinity in `x`, as the error the quantizers return.
fn check_finite(x: &[f32]) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            what: "activations",
            index,
        }),
        None => Ok(()),
    }
}

/// int4 quantization of one activation row: writes `q` (each in `-8..=7`, same length as
/// `x`) and returns the row's scale: `β = max(mean|x|, 1e-5)` (the mean summed in f64, then
/// rounded to f32) for [`I4Mode::AbsMean`], `a = max(max|x|, 1e-5)` for [`I4Mode::AbsMax`].
/// `q = clamp(round_half_even(x · s), -8, 7)` with `s = sqrtf(7)/β` or `7/a`, each computed
/// once in f32. The int4 values are ordinary int8 inputs of every product
/// ([`crate::gemv_i8`]); the output factor is [`output_factor_i4`].
///
/// ```
/// use bitnet_kernels::quant::{quantize_activations_i4, I4Mode};
/// let mut q = [0i8; 4];
/// let a = quantize_activations_i4(&[7.0, -3.5, 0.5, 1.5], &mut q, I4Mode::AbsMax).unwrap();
/// assert_eq!(a, 7.0);
/// assert_eq!(q, [7, -4, 0, 2]); // s = 1: -3.5 → -4, 0.5 → 0, 1.5 → 2 (ties to even)
/// ```
pub fn quantize_activations_i4(x: &[f32], q: &mut [i8], mode: I4Mode) -> Result<f32> {
    check_len("activation output", x.len(), q.len())?;
    check_finite(x)?;
    let (scale, s) = match mode {
        I4Mode::AbsMean => {
            let sum: f64 = x.iter().map(|&v| v.abs() as f64).sum();
            let beta = ((sum / x.len().max(1) as f64) as f32).max(SCALE_FLOOR);
            (beta, sqrt7() / beta)
        }
        I4Mode::AbsMax => {
            let a = x
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()))
                .max(SCALE_FLOOR);
            (a, 7.0f32 / a)
        }
    };
    for (d, &v) in q.iter_mut().zip(x) {
        *d = (v * s).round_ties_even().clamp(-8.0, 7.0) as i8;
    }
    Ok(scale)
}

/// The factor that turns the exact int32 accumulator of int4 activations into the output:
/// `y = acc as f32 * output_factor_i4(m, scale, mode)`, which is, in f32 and in this order,
/// `m * (β / sqrtf(7))` for absmean and `m * (a / 7)` for absmax.
#[inline]
pub fn output_factor_i4(weight_scale: f32, scale: f32, mode: I4Mode) -> f32 {
    weight_scale * act_factor_i4(scale, mode)
}

/// The activation part of [`output_factor_i4`]: `β / sqrtf(7)` (absmean) or `a / 7`
/// (absmax); a per-row-scaled matrix multiplies each row's scale by it.
#[inline]
pub(crate) fn act_factor_i4(scale: f32, mode: I4Mode) -> f32 {
    match mode {
        I4Mode::AbsMean => scale / sqrt7(),
        I4Mode::AbsMax => scale / 7.0f32,
    }
}

/// How many entries TopK keeps of a row of `len`: `k = ⌈ratio · len⌉`, the product taken in
/// f64 (exact for every f32 ratio and `len < 2^29`). `ratio` must lie in `(0, 1]`.
pub fn topk_count(len: usize, ratio: f32) -> Result<usize> {
    if ratio.is_nan() {
        return Err(Error::NonFinite {
            what: "ratio",
            index: 0,
        });
    }
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(Error::InvalidData(format!(
            "the TopK ratio must lie in (0, 1], got {ratio}"
        )));
    }
    Ok(((ratio as f64 * len as f64).ceil() as usize).min(len))
}

/// TopK + int8 (BitNet a4.8 Eq. 1): keeps the `k = ⌈ratio · len⌉` entries of `x` with the
/// largest `|x|` (ties broken by the lower index, so the result is deterministic), zeroes the
/// rest, and quantizes with the int8 absmax quantizer ([`quantize_activations`]). Returns
/// `a = max(max|x|, 1e-5)`: the maximum is always kept, so the scale is the same as without
/// the mask, and the output factor is [`super::output_factor`]`(m, a)`. Linear time on
/// average (a selection, not a sort).
///
/// ```
/// use bitnet_kernels::quant::quantize_activations_topk;
/// let mut q = [0i8; 5];
/// // k = ⌈0.5 · 5⌉ = 3: |-2| and the first of the two 1.0s are kept with 4.0.
/// let a = quantize_activations_topk(&[1.0, 4.0, -2.0, 1.0, 0.5], 0.5, &mut q).unwrap();
/// assert_eq!(a, 4.0);
/// assert_eq!(q, [32, 127, -64, 0, 0]);
/// ```
pub fn quantize_activations_topk(x: &[f32], ratio: f32, q: &mut [i8]) -> Result<f32> {
    check_len("activation output", x.len(), q.len())?;
    check_finite(x)?;
    let k = topk_count(x.len(), ratio)?;
    let a = quantize_activations(x, q)?;
    if k < x.len() {
        // Order: larger |x| first, then lower index; a total order on finite values, so the
        // k-th element and the set before it are unique.
        let mut idx: Vec<u32> = (0..x.len() as u32).collect();
        let key = |&i: &u32| (x[i as usize].abs(), i);
        idx.select_nth_unstable_by(k, |p, r| {
            let ((vp, ip), (vr, ir)) = (key(p), key(r));
            vr.total_cmp(&vp).then(ip.cmp(&ir))
        });
        for &i in &idx[k..] {
            q[i as usize] = 0;
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absmean_hand_worked() {
        // mean|x| = (7 + 7 + 7 + 7) / 4 = 7: s = sqrtf(7)/7 = 0.37796447; x·s rounded.
        let x = [7.0f32, -7.0, 7.0, -7.0];
        let mut q = [0i8; 4];
        let b = quantize_activations_i4(&x, &mut q, I4Mode::AbsMean).unwrap();
        assert_eq!(b, 7.0);
        // 7 · 0.37796447 = 2.6457512 → 3
        assert_eq!(q, [3, -3, 3, -3]);
        // Clipping: one large value, β = (100 + 3·0) / 4 = 25, s = 0.10583005;
        // 100 · s = 10.583 → clamps to 7.
        let x = [100.0f32, 0.0, 0.0, -100.0];
        let b = quantize_activations_i4(&x, &mut q, I4Mode::AbsMean).unwrap();
        assert_eq!(b, 50.0);
        let s = 7.0f32.sqrt() / 50.0;
        assert_eq!(100.0 * s, 5.2915025);
        assert_eq!(q, [5, 0, 0, -5]);
        let x = [400.0f32, 0.0, 0.0, 0.0];
        quantize_activations_i4(&x, &mut q, I4Mode::AbsMean).unwrap();
        assert_eq!(q, [7, 0, 0, 0], "2·√7 ≈ 5.29 · ... clips at 7");
        let x = [-400.0f32, 0.0, 0.0, 0.0];
        quantize_activations_i4(&x, &mut q, I4Mode::AbsMean).unwrap();
        assert_eq!(q, [-8, 0, 0, 0], "negative side clips at -8");
    }

    #[test]
    fn absmean_ties_go_to_even() {
        // β = sqrtf(7)/2 exactly (a halving is exact), so s = sqrtf(7)/β = 2 exactly and
        // 0.25, 0.75, -1.25 land on the ties 0.5, 1.5, -2.5. The first entry makes the mean
        // come out at β: 2·sqrtf(7) - 2.25 is exact in f32, and so is the f64 sum.
        let r7 = 7.0f32.sqrt();
        let x = [2.0 * r7 - 2.25, 0.25, 0.75, -1.25];
        let mut q = [0i8; 4];
        let b = quantize_activations_i4(&x, &mut q, I4Mode::AbsMean).unwrap();
        assert_eq!(b, r7 / 2.0);
        assert_eq!(r7 / b, 2.0);
        assert_eq!(q, [6, 0, 2, -2]); // 6.08 → 6, 0.5 → 0, 1.5 → 2, -2.5 → -2
    }

    #[test]
    fn absmean_is_summed_in_f64_and_floored() {
        // In f32, 16777216 + 1 + 1 stays 16777216; in f64 the mean is 4194304.5.
        let mut q = [0i8; 4];
        let b =
            quantize_activations_i4(&[16777216.0, 1.0, 1.0, 0.0], &mut q, I4Mode::AbsMean).unwrap();
        assert_eq!(b, 4194304.5);
        let b = quantize_activations_i4(&[0.0; 4], &mut q, I4Mode::AbsMean).unwrap();
        assert_eq!((b, q), (SCALE_FLOOR, [0; 4]));
        let b = quantize_activations_i4(&[1e-7, -1e-7, 0.0, 0.0], &mut q, I4Mode::AbsMax).unwrap();
        assert_eq!(b, SCALE_FLOOR);
        // s = 7e5: 1e-7 · 7e5 = 0.07 → 0.
        assert_eq!(q, [0; 4]);
    }

    #[test]
    fn absmax_ties_go_to_even() {
        // a = 14, s = 0.5 exactly: 1 → 0.5 → 0, 3 → 1.5 → 2, -5 → -2.5 → -2, -14 → -7.
        let mut q = [0i8; 5];
        let a = quantize_activations_i4(&[14.0, 1.0, 3.0, -5.0, -14.0], &mut q, I4Mode::AbsMax)
            .unwrap();
        assert_eq!(a, 14.0);
        assert_eq!(q, [7, 0, 2, -2, -7]);
        assert_eq!(output_factor_i4(2.0, 14.0, I4Mode::AbsMax), 4.0);
        assert_eq!(
            output_factor_i4(2.0, 7.0, I4Mode::AbsMean),
            2.0 * (7.0 / 7.0f32.sqrt())
        );
    }

    #[test]
    fn non_finite_is_an_error_and_nothing_is_written() {
        for mode in [I4Mode::AbsMean, I4Mode::AbsMax] {
            let mut q = [5i8; 3];
            assert_eq!(
                quantize_activations_i4(&[1.0, 2.0, f32::NAN], &mut q, mode),
                Err(Error::NonFinite {
                    what: "activations",
                    index: 2
                })
            );
            assert_eq!(q, [5; 3]);
        }
        let mut q = [5i8; 3];
        assert!(quantize_activations_topk(&[f32::INFINITY, 1.0, 2.0], 0.5, &mut q).is_err());
        assert_eq!(q, [5; 3]);
        assert!(matches!(
            quantize_activations_topk(&[1.0, 2.0, 3.0], f32::NAN, &mut q),
            Err(Error::NonFinite { what: "ratio", .. })
        ));
        for bad in [0.0, -0.5, 1.5] {
            assert!(matches!(
                quantize_activations_topk(&[1.0, 2.0, 3.0], bad, &mut q),
                Err(Error::InvalidData(_))
            ));
        }
        assert!(matches!(
            quantize_activations_i4(&[1.0], &mut q, I4Mode::AbsMax),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(I4Mode::from_id(2).is_err());
        assert_eq!(I4Mode::from_id(1).unwrap(), I4Mode::AbsMax);
    }

    #[test]
    fn topk_ties_keep_the_lower_index() {
        // Six equal magnitudes, k = ⌈0.5 · 6⌉ = 3: indices 0, 1, 2 survive.
        let x = [-1.0f32, 1.0, -1.0, 1.0, -1.0, 1.0];
        let mut q = [0i8; 6];
        let a = quantize_activations_topk(&x, 0.5, &mut q).unwrap();
        assert_eq!(a, 1.0);
        assert_eq!(q, [-127, 127, -127, 0, 0, 0]);
        // k = ⌈0.3 · 7⌉ = ⌈2.1000000089⌉ = 3; |x| order: 9 (i5), 3 (i1), then 2 at i0 and i4:
        // i0 wins the tie.
        let x = [2.0f32, -3.0, 1.0, 0.0, -2.0, 9.0, 0.5];
        let mut q = [0i8; 7];
        quantize_activations_topk(&x, 0.3, &mut q).unwrap();
        let mut full = [0i8; 7];
        quantize_activations(&x, &mut full).unwrap();
        assert_eq!(q, [full[0], full[1], 0, 0, 0, full[5], 0]);
        // ratio 1 keeps everything: the int8 quantizer itself.
        quantize_activations_topk(&x, 1.0, &mut q).unwrap();
        assert_eq!(q, full);
        assert_eq!(topk_count(7, 0.3).unwrap(), 3);
        assert_eq!(topk_count(4, 0.5).unwrap(), 2);
        assert_eq!(topk_count(5, 0.5).unwrap(), 3);
        assert_eq!(topk_count(1, 1e-30).unwrap(), 1);
    }

    /// TopK against a full sort by (|x| desc, index asc) on pseudo-random rows with many ties.
    #[test]
    fn topk_matches_a_sort() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        // Shorter rows under Miri, where each sort is slow; the tie rule shows from len 2 on.
        let lens = if cfg!(miri) { 1..40usize } else { 1..200 };
        for len in lens {
            let x: Vec<f32> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ((seed % 9) as f32 - 4.0) * 0.5
                })
                .collect();
            for ratio in [0.1f32, 0.5, 0.7, 0.84, 1.0] {
                let k = topk_count(len, ratio).unwrap();
                let mut order: Vec<usize> = (0..len).collect();
                order.sort_by(|&p, &r| x[r].abs().total_cmp(&x[p].abs()).then(p.cmp(&r)));
                let mut full = vec![0i8; len];
                quantize_activations(&x, &mut full).unwrap();
                let mut want = vec![0i8; len];
                for &i in &order[..k] {
                    want[i] = full[i];
                }
                let mut q = vec![0i8; len];
                quantize_activations_topk(&x, ratio, &mut q).unwrap();
                assert_eq!(q, want, "len {len} ratio {ratio}");
            }
        }
    }
}
