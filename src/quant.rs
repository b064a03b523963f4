//! BitNet b1.58 quantizers, exactly as `FORMATS.md` §1 defines them.
//!
//! Weights: absmean ternarization with one f32 scale per matrix.
//! Activations: absmax int8 with one scale per row of x (per token).
//! Rounding is ties-to-even everywhere (`f32::round_ties_even`), and activations are
//! multiplied by `127 / a`, never divided by `a / 127`: the two differ at ties, and every
//! implementation must agree on the same one.

use crate::error::{Error, Result};

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
    for &v in w {
        if !v.is_finite() {
            return Err(Error::NonFinite);
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
    for &v in x {
        if !v.is_finite() {
            return Err(Error::NonFinite);
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
    weight_scale * (act_absmax / 127.0f32)
}
