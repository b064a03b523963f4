//! BitNet b1.58 quantizers, exactly as `docs/FORMATS.md` §1 defines them.
//!
//! Weights: absmean ternarization with one f32 scale per matrix.
//! Activations: absmax int8 with one scale per row of x (per token).
//! Rounding is ties-to-even everywhere (`f32::round_ties_even`), and activations are
//! multiplied by `127 / a`, never divided by `a / 127`: the two differ at ties, and every
//! implementation must agree on the same one.

use crate::error::{Error, Result};

mod a48;
pub(crate) use a48::act_factor_i4;
pub use a48::{
    output_factor_i4, quantize_activations_i4, quantize_activations_topk, topk_count, I4Mode,
};

/// The smallest scale either quantizer will use (the official code's clamp).
pub const SCALE_FLOOR: f32 = 1e-5;

/// Absmean ternarization of a row-major `rows × cols` f32 matrix.
///
/// Returns the trits (`-1`, `0` or `1`, row-major, `rows * cols` of them) and the scale `m`,
/// so that the dequantized weight is `t * m`.
///
/// ```
/// let (t, m) = bitnet_kernels::quantize_weights(&[0.5, -1.5, 0.1, 2.0], 2, 2).unwrap();
/// assert_eq!(m, 1.025);
/// assert_eq!(t, vec![0, -1, 0, 1]);
/// ```
pub fn quantize_weights(w: &[f32], rows: usize, cols: usize) -> Result<(Vec<i8>, f32)> {
    crate::format::check_shape(rows, cols)?;
    crate::error::check_len("weights", rows * cols, w.len())?;
    let mut sum = 0.0f64;
    for (index, &v) in w.iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: "weights",
                index,
            });
        }
        sum += v.abs() as f64;
    }
    let m = ((sum / w.len() as f64) as f32).max(SCALE_FLOOR);
    let inv = 1.0f32 / m;
    let t = w
        .iter()
        .map(|&v| (v * inv).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    Ok((t, m))
}

/// Absmax int8 quantization of one activation row.
///
/// Writes `q` (same length as `x`) and returns `a = max(max|x|, 1e-5)`; the row's
/// dequantization factor is `a / 127`.
///
/// ```
/// let mut q = [0i8; 3];
/// let a = bitnet_kernels::quantize_activations(&[1.0, -0.5, 0.25], &mut q).unwrap();
/// assert_eq!(a, 1.0);
/// assert_eq!(q, [127, -64, 32]); // -63.5 is a tie: it goes to the even -64
/// ```
pub fn quantize_activations(x: &[f32], q: &mut [i8]) -> Result<f32> {
    crate::error::check_len("activation output", x.len(), q.len())?;
    let mut amax = 0.0f32;
    for (index, &v) in x.iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: "activations",
                index,
            });
        }
        amax = amax.max(v.abs());
    }
    let a = amax.max(SCALE_FLOOR);
    let s = 127.0f32 / a;
    for (d, &v) in q.iter_mut().zip(x) {
        *d = (v * s).round_ties_even().clamp(-128.0, 127.0) as i8;
    }
    Ok(a)
}

/// The factor that turns an exact int32 accumulator into the BitLinear output:
/// `y = acc as f32 * output_factor(m, a)`, computed once per row of x.
#[inline]
pub fn output_factor(weight_scale: f32, act_absmax: f32) -> f32 {
    weight_scale * act_factor(act_absmax)
}

/// An activation row's part of the output factor, `a / 127`: computed once per row of x,
/// then multiplied by each weight row's scale (`output_factor`).
#[inline]
pub(crate) fn act_factor(act_absmax: f32) -> f32 {
    act_absmax / 127.0f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_ties_go_to_even() {
        // mean |W| = 2, inv = 0.5: ±0.5 ties to 0 (not ±1), ±1.5 ties to ±2 and clamps to ±1.
        let (t, m) = quantize_weights(&[1.0, -1.0, 3.0, -3.0], 2, 2).unwrap();
        assert_eq!(m, 2.0);
        assert_eq!(t, vec![0, 0, 1, -1]);
    }

    #[test]
    fn weight_mean_is_summed_in_f64() {
        // In f32, 16777216 + 1 + 1 stays 16777216 (mean 4194304); in f64 the mean is 4194304.5.
        let (_, m) = quantize_weights(&[16777216.0, 1.0, 1.0, 0.0], 1, 4).unwrap();
        assert_eq!(m, 4194304.5);
    }

    #[test]
    fn weight_scale_is_clamped() {
        let (t, m) = quantize_weights(&[0.0; 6], 2, 3).unwrap();
        assert_eq!((t, m), (vec![0; 6], SCALE_FLOOR));
        // mean 1e-7 clamps to 1e-5, so 1e-7 * 1e5 = 0.01 rounds to 0.
        let (t, m) = quantize_weights(&[1e-7, -1e-7], 1, 2).unwrap();
        assert_eq!((t, m), (vec![0, 0], SCALE_FLOOR));
    }

    #[test]
    fn non_finite_weights_are_errors() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(
                quantize_weights(&[1.0, bad], 1, 2),
                Err(Error::NonFinite {
                    what: "weights",
                    index: 1
                })
            );
        }
        assert!(matches!(
            quantize_weights(&[1.0], 1, 2),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn activation_ties_go_to_even() {
        // a = 254, s = 127 / 254 = 0.5 exactly: 0.5 → 0, 1.5 → 2, -2.5 → -2.
        let mut q = [0i8; 4];
        let a = quantize_activations(&[254.0, 1.0, 3.0, -5.0], &mut q).unwrap();
        assert_eq!(a, 254.0);
        assert_eq!(q, [127, 0, 2, -2]);
    }

    #[test]
    fn activations_multiply_by_127_over_a() {
        // a = 2, s = 63.5: 1.0 → 63.5 → 64 (tie to even), 0.5 → 31.75 → 32.
        let mut q = [0i8; 4];
        quantize_activations(&[2.0, 1.0, -1.0, 0.5], &mut q).unwrap();
        assert_eq!(q, [127, 64, -64, 32]);
    }

    #[test]
    fn activation_floor_keeps_tiny_rows() {
        let mut q = [1i8; 3];
        assert_eq!(
            quantize_activations(&[0.0; 3], &mut q).unwrap(),
            SCALE_FLOOR
        );
        assert_eq!(q, [0, 0, 0]);
        // a clamps to 1e-5: s = 1.27e7, so 1e-7 → 1.27 → 1 and -2e-7 → -2.54 → -3.
        let mut q = [0i8; 2];
        quantize_activations(&[1e-7, -2e-7], &mut q).unwrap();
        assert_eq!(q, [1, -3]);
    }

    #[test]
    fn non_finite_activations_are_errors() {
        let mut q = [0i8; 2];
        assert_eq!(
            quantize_activations(&[f32::NAN, 1.0], &mut q),
            Err(Error::NonFinite {
                what: "activations",
                index: 0
            })
        );
        assert_eq!(q, [0, 0], "nothing written on failure");
    }
}
