//! The cache's quantization at other code widths, for accuracy studies: K and V quantized as
//! a cache would quantize them (`docs/FORMATS.md` §8: the K channel factors, the rotation, the
//! per-row minimum and step with the shrink search, the sink tokens at 8 bits) with `bits`-bit
//! codes, then read back. Nothing here is stored or has kernels: [`KvCache`](super::KvCache)
//! stores 3 bits; this answers what 4 bits (or 2) would cost in accuracy, on the caller's data.

use super::quant::{f16_to_f32, quantize_row, Rotation};
use super::{channel_scales, first_non_finite, MAX_HEAD_DIM};
use crate::error::{check_len, Error, Result};

/// K and V (`n_tokens × n_kv_heads × head_dim` each, post-RoPE) quantized with `bits`-bit codes
/// (2 to 8: `L = 2^bits − 1` levels) and dequantized back into the caller's space, the first
/// `n_sink` tokens with 8-bit codes, all tokens taken as one append (the K channel factors come
/// from all of them). Every step is `docs/FORMATS.md` §8's, with `L` in place of 7 (widths
/// below 8 bits try the five shrink factors), so `bits = 3` returns exactly what
/// [`KvCache::dequantize`](super::KvCache::dequantize) returns after the same append.
///
/// ```
/// use bitnet_kernels::kv::roundtrip;
/// let (t, heads, d) = (4, 2, 64);
/// let k: Vec<f32> = (0..t * heads * d).map(|i| (i as f32 * 0.37).sin()).collect();
/// let v: Vec<f32> = (0..t * heads * d).map(|i| (i as f32 * 0.11).cos()).collect();
/// let err = |x: &[f32]| x.iter().zip(&k).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
/// let (k3, _) = roundtrip(&k, &v, t, heads, d, 0, 3)?;
/// let (k4, _) = roundtrip(&k, &v, t, heads, d, 0, 4)?;
/// assert!(err(&k4) < err(&k3));
/// # Ok::<(), bitnet_kernels::Error>(())
/// ```
pub fn roundtrip(
    k: &[f32],
    v: &[f32],
    n_tokens: usize,
    n_kv_heads: usize,
    head_dim: usize,
    n_sink: usize,
    bits: u32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    if !(2..=8).contains(&bits) {
        return Err(Error::InvalidShape(format!("bits = {bits}: 2 to 8")));
    }
    if n_kv_heads == 0 || head_dim == 0 || head_dim > MAX_HEAD_DIM {
        return Err(Error::InvalidShape(format!(
            "n_kv_heads = {n_kv_heads}, head_dim = {head_dim}: at least 1, head_dim at most {MAX_HEAD_DIM}"
        )));
    }
    let d = head_dim;
    let need = n_tokens
        .checked_mul(n_kv_heads * d)
        .ok_or_else(|| Error::InvalidShape(format!("n_tokens = {n_tokens} overflows")))?;
    check_len("k", need, k.len())?;
    check_len("v", need, v.len())?;
    first_non_finite(k, "k")?;
    first_non_finite(v, "v")?;
    let kscale = channel_scales(k, n_kv_heads, d);
    let rot = Rotation::new(d);
    let levels = (1u32 << bits) - 1;
    let (mut ko, mut vo) = (k.to_vec(), v.to_vec());
    let mut codes = vec![0u8; d];
    for (t, (kt, vt)) in ko
        .chunks_exact_mut(n_kv_heads * d)
        .zip(vo.chunks_exact_mut(n_kv_heads * d))
        .enumerate()
    {
        let l = if t < n_sink { 255 } else { levels };
        for (h, (kh, vh)) in kt
            .chunks_exact_mut(d)
            .zip(vt.chunks_exact_mut(d))
            .enumerate()
        {
            let s = &kscale[h * d..(h + 1) * d];
            for (y, ks) in [(kh, Some(s)), (vh, None)] {
                rot.rotate_in(y, ks);
                let (m16, s16) = quantize_row(y, l, &mut codes)?;
                let (m, st) = (f16_to_f32(m16), f16_to_f32(s16));
                y.iter_mut()
                    .zip(&codes)
                    .for_each(|(x, &c)| *x = m + st * c as f32);
                rot.rotate_out(y, ks);
            }
        }
    }
    Ok((ko, vo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KvCache;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    }

    #[test]
    fn three_bits_are_the_caches_values() {
        // head_dim 24 (three groups, blocks 16 + 8), an outlier channel, with and without a sink.
        let (t, hk, d) = (6, 2, 24);
        let mut k = data(t * hk * d, 1);
        let v = data(t * hk * d, 2);
        k.chunks_exact_mut(d).for_each(|r| r[3] *= 15.0);
        for sink in [0, 2] {
            let (kr, vr) = roundtrip(&k, &v, t, hk, d, sink, 3).unwrap();
            let mut c = KvCache::new(hk, d, t, sink).unwrap();
            c.append(&k, &v, t).unwrap();
            let (mut kc, mut vc) = (vec![0.0; hk * d], vec![0.0; hk * d]);
            for p in 0..t {
                c.dequantize(p, &mut kc, &mut vc).unwrap();
                let r = p * hk * d..(p + 1) * hk * d;
                assert_eq!(kr[r.clone()], kc[..], "k, sink {sink}, position {p}");
                assert_eq!(vr[r], vc[..], "v, sink {sink}, position {p}");
            }
        }
    }

    #[test]
    fn more_bits_less_error() {
        let (t, hk, d) = (8, 1, 32);
        let (k, v) = (data(t * hk * d, 3), data(t * hk * d, 4));
        let err = |bits| {
            let (kr, vr) = roundtrip(&k, &v, t, hk, d, 0, bits).unwrap();
            let e =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
            e(&kr, &k) + e(&vr, &v)
        };
        let (e2, e3, e4, e8) = (err(2), err(3), err(4), err(8));
        // Each bit about halves the step: the squared error falls about fourfold.
        assert!(
            e3 < 0.5 * e2 && e4 < 0.5 * e3 && e8 < 0.01 * e4,
            "{e2} {e3} {e4} {e8}"
        );
    }

    #[test]
    fn refuses_bad_input() {
        let (k, v) = (vec![0.5f32; 16], vec![0.5f32; 16]);
        assert!(roundtrip(&k, &v, 2, 1, 8, 0, 1).is_err());
        assert!(roundtrip(&k, &v, 2, 1, 8, 0, 9).is_err());
        assert!(roundtrip(&k, &v, 3, 1, 8, 0, 3).is_err());
        assert!(roundtrip(&k, &v, 2, 0, 8, 0, 3).is_err());
        let mut bad = k.clone();
        bad[5] = f32::NAN;
        assert!(matches!(
            roundtrip(&bad, &v, 2, 1, 8, 0, 3),
            Err(Error::NonFinite {
                what: "k",
                index: 5
            })
        ));
    }
}
