//! The cache's number formats: fp16 scales, the sign-flipped Hadamard rotation and the
//! per-(token, head) min/step quantizer. `docs/FORMATS.md` §8 is the specification; every
//! step here follows it literally, because the codes are written only here and every kernel
//! set reads the same bytes.

use crate::error::{Error, Result};
use std::ops::Range;

/// The largest finite fp16 value: rotated K/V values beyond it cannot have an fp16 minimum.
pub(crate) const F16_MAX: f32 = 65504.0;

// fp16 scales: the crate's one exact conversion (round to nearest, ties to even).
pub(crate) use crate::format::ggml::{f16_to_f32, f32_to_f16};

/// The sign applied to element `j` before the Hadamard transform: `-1` when the top bit of
/// `splitmix64(j)` is set. Fixed for every cache, so caches are comparable across runs.
fn sign_of(j: usize) -> f32 {
    let mut z = (j as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z >> 63 == 1 {
        -1.0
    } else {
        1.0
    }
}

/// The rotation `R = H · S` of one head vector (`d` values): `S` flips the signs given by
/// [`sign_of`], `H` is block-diagonal with one orthonormal Walsh–Hadamard block per set bit of
/// `d`, largest first (`d = 33`: blocks 32 and 1). `R` is orthonormal, so attention on rotated
/// q, k, v equals attention on the originals, rotated.
#[derive(Clone, Debug)]
pub(crate) struct Rotation {
    signs: Vec<f32>,
}

impl Rotation {
    pub(crate) fn new(d: usize) -> Self {
        Rotation {
            signs: (0..d).map(sign_of).collect(),
        }
    }

    /// A head vector into the space its codes are made in (`docs/FORMATS.md` §8): divided by
    /// K's channel factors `ks` (V, and K before any factors: `None`), then rotated.
    pub(crate) fn rotate_in(&self, y: &mut [f32], ks: Option<&[f32]>) {
        if let Some(s) = ks {
            y.iter_mut().zip(s).for_each(|(x, s)| *x /= s);
        }
        self.forward(y);
    }

    /// The inverse of [`Rotation::rotate_in`]: rotated back, then times the factors `ks`.
    pub(crate) fn rotate_out(&self, y: &mut [f32], ks: Option<&[f32]>) {
        self.inverse(y);
        if let Some(s) = ks {
            y.iter_mut().zip(s).for_each(|(x, s)| *x *= s);
        }
    }

    /// The signs of `S`, one per value.
    pub(crate) fn signs(&self) -> &[f32] {
        &self.signs
    }

    /// The blocks `(start, len)` of `H`.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> {
        // The set bits of d, highest first (one step per block, not per bit).
        let (mut rest, mut start) = (self.signs.len(), 0);
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let len = 1usize << rest.ilog2();
                rest -= len;
                start += len;
                (start - len, len)
            })
        })
    }

    /// In-place fast Walsh–Hadamard transform of each block, scaled by `1/sqrt(len)`.
    fn hadamard(&self, x: &mut [f32]) {
        for (s, len) in self.blocks() {
            fwht(&mut x[s..s + len]);
        }
    }

    /// `x <- R x`.
    pub(crate) fn forward(&self, x: &mut [f32]) {
        x.iter_mut().zip(&self.signs).for_each(|(v, s)| *v *= s);
        self.hadamard(x);
    }

    /// `x <- R^T x` (the inverse).
    pub(crate) fn inverse(&self, x: &mut [f32]) {
        self.hadamard(x);
        x.iter_mut().zip(&self.signs).for_each(|(v, s)| *v *= s);
    }
}

/// The fast Walsh–Hadamard transform of one block (`len` a power of two), times `1/sqrt(len)`:
/// butterflies `(a, b) -> (a + b, a - b)` of span 1, 2, 4, ... Each span's butterflies are
/// independent of each other, so the order they run in does not change a bit. With AVX (and
/// `len >= 8`), every step in 8-wide vectors ([`fwht_avx`]); else [`fwht_wide`].
fn fwht(blk: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if blk.len() >= 8 && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX; the length is a power of two of at least 8.
        return unsafe { fwht_avx(blk) };
    }
    fwht_wide(blk)
}

wide_fn! {
    /// [`fwht`] in plain Rust: spans 1, 2, 4 per 8 values (they stay within them), longer
    /// spans a whole half-block at a time, which vectorizes.
    fn fwht_wide(blk: &mut [f32]) {
        let len = blk.len();
        let mut h = 1;
        if len >= 8 {
            for c in blk.chunks_exact_mut(8) {
                let c: &mut [f32; 8] = c.try_into().expect("8 values");
                for span in [1, 2, 4] {
                    for i in (0..8).filter(|i| i & span == 0) {
                        let (a, b) = (c[i], c[i + span]);
                        c[i] = a + b;
                        c[i + span] = a - b;
                    }
                }
            }
            h = 8;
        }
        while h < len {
            for pair in blk.chunks_exact_mut(2 * h) {
                let (lo, hi) = pair.split_at_mut(h);
                for (a, b) in lo.iter_mut().zip(hi) {
                    (*a, *b) = (*a + *b, *a - *b);
                }
            }
            h *= 2;
        }
        let norm = 1.0 / (len as f32).sqrt();
        blk.iter_mut().for_each(|v| *v *= norm);
    }
}

/// [`fwht`] on AVX, every load and store one 8-value vector at a multiple of 8 (so each load
/// of a step is forwarded from the same-sized store of the step before). Spans 1, 2, 4 within
/// a vector: `y` = the values swapped with their partners (`i ^ span`), the lower of each pair
/// takes `x + y = a + b` and the upper `y − x = a − b`; longer spans pair whole vectors. The
/// same operations on the same operands as [`fwht_wide`], so the same bits.
///
/// # Safety
/// The CPU must have AVX; `blk.len()` is a power of two of at least 8.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx")]
unsafe fn fwht_avx(blk: &mut [f32]) {
    use std::arch::x86_64::*;
    let len = blk.len();
    debug_assert!(len.is_power_of_two() && len >= 8);
    let p = blk.as_mut_ptr();
    // SAFETY (every load and store below): at p + i for i a multiple of 8 below len.
    for i in (0..len).step_by(8) {
        let mut x = unsafe { _mm256_loadu_ps(p.add(i)) };
        let y = _mm256_permute_ps::<0b10_11_00_01>(x);
        x = _mm256_blend_ps::<0b1010_1010>(_mm256_add_ps(x, y), _mm256_sub_ps(y, x));
        let y = _mm256_permute_ps::<0b01_00_11_10>(x);
        x = _mm256_blend_ps::<0b1100_1100>(_mm256_add_ps(x, y), _mm256_sub_ps(y, x));
        let y = _mm256_permute2f128_ps::<1>(x, x);
        x = _mm256_blend_ps::<0b1111_0000>(_mm256_add_ps(x, y), _mm256_sub_ps(y, x));
        unsafe { _mm256_storeu_ps(p.add(i), x) };
    }
    let mut h = 8;
    while h < len {
        for lo in (0..len).step_by(2 * h) {
            for i in (lo..lo + h).step_by(8) {
                let (a, b) = unsafe { (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + h))) };
                unsafe {
                    _mm256_storeu_ps(p.add(i), _mm256_add_ps(a, b));
                    _mm256_storeu_ps(p.add(i + h), _mm256_sub_ps(a, b));
                }
            }
        }
        h *= 2;
    }
    let norm = _mm256_set1_ps(1.0 / (len as f32).sqrt());
    for i in (0..len).step_by(8) {
        unsafe { _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), norm)) };
    }
}

/// The shrink factors the quantizer tries below 8 bits (the cache's 3), in this order
/// (sixteenths of the half range).
const SHRINK: [f32; 5] = [1.0, 15.0 / 16.0, 14.0 / 16.0, 13.0 / 16.0, 12.0 / 16.0];

/// Quantizes one rotated row `y` to `levels + 1` codes (`levels` = 7 or 255 in the cache, any
/// `2^bits − 1` in [`super::roundtrip`]): returns the fp16 `(min, step)` and writes the codes.
/// Rows of fewer than 8 bits try every [`SHRINK`] factor and keep the first with the smallest
/// squared error; 8-bit rows use the full range. Errors on a value outside the fp16 range (the
/// caller has already rejected NaN and infinity).
pub(crate) fn quantize_row(y: &[f32], levels: u32, codes: &mut [u8]) -> Result<(u16, u16)> {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in y {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo < -F16_MAX || hi > F16_MAX {
        return Err(Error::InvalidData(format!(
            "a rotated K/V value ({}) is outside the fp16 range (±65504)",
            if hi > F16_MAX { hi } else { lo }
        )));
    }
    let mid = (lo + hi) / 2.0;
    let half = (hi - lo) / 2.0;
    let shrinks: &[f32] = if levels < 255 { &SHRINK } else { &SHRINK[..1] };
    let mut best: Option<(f32, u16, u16)> = None;
    for &f in shrinks {
        let m16 = f32_to_f16(mid - f * half);
        let s16 = f32_to_f16(2.0 * f * half / levels as f32);
        let (m, s) = (f16_to_f32(m16), f16_to_f32(s16));
        let mut err = 0.0f32;
        for &v in y {
            let c = code_of(v, m, s, levels);
            let e = m + s * c as f32 - v;
            err += e * e;
        }
        if best.is_none_or(|(be, _, _)| err < be) {
            best = Some((err, m16, s16));
        }
    }
    let (_, m16, s16) = best.expect("at least one shrink factor");
    let (m, s) = (f16_to_f32(m16), f16_to_f32(s16));
    for (c, &v) in codes.iter_mut().zip(y) {
        *c = code_of(v, m, s, levels) as u8;
    }
    Ok((m16, s16))
}

/// `clamp(round_half_even((v - m) / s), 0, levels)`; 0 when `s` is 0.
#[inline]
fn code_of(v: f32, m: f32, s: f32, levels: u32) -> u32 {
    if s == 0.0 {
        return 0;
    }
    ((v - m) / s).round_ties_even().clamp(0.0, levels as f32) as u32
}

/// Packs 3-bit codes, 8 to 3 bytes: code `i` of a group occupies bits `3i .. 3i+2` of the
/// group's little-endian 24-bit word. `codes.len()` is a multiple of 8. (The K and V blocks
/// hold such groups; tests pack plain rows with it.)
#[cfg(test)]
pub(crate) fn pack3(codes: &[u8], out: &mut [u8]) {
    for (g, o) in codes.chunks_exact(8).zip(out.chunks_exact_mut(3)) {
        let w = g
            .iter()
            .enumerate()
            .fold(0u32, |w, (i, &c)| w | (c as u32) << (3 * i));
        o.copy_from_slice(&w.to_le_bytes()[..3]);
    }
}

/// Code `j` of a packed 3-bit row.
#[inline]
pub(crate) fn code3(row: &[u8], j: usize) -> u8 {
    let g = &row[3 * (j / 8)..][..3];
    let w = g[0] as u32 | (g[1] as u32) << 8 | (g[2] as u32) << 16;
    ((w >> (3 * (j % 8))) & 7) as u8
}

/// Positions of a K block: each KV head's 3-bit K codes are stored token-major in blocks of
/// `KBLOCK` positions (`docs/FORMATS.md` §8), so a kernel's int32 lane `s` accumulates the dot
/// of slot `s` with no horizontal reduction.
pub(crate) const KBLOCK: usize = 16;

/// Positions of a V block: each KV head's 3-bit V codes are stored in blocks of `VBLOCK`
/// positions with the positions interleaved per channel (`docs/FORMATS.md` §8), so after the
/// unpack an int32 lane holds one channel's four positions' codes, what one `vpdpbusd` by the
/// four positions' int8 weights needs.
pub(crate) const VBLOCK: usize = 4;

/// The block layout of one head's 3-bit K or V codes (`docs/FORMATS.md` §8). Both are chunks
/// of 24 bytes (64 codes, code `b` at bits `3b .. 3b+2`, as [`code3`] reads them); they differ
/// in which (slot, channel) a code holds:
/// - K, blocks of [`KBLOCK`] positions, `2 · groups` chunks: chunk `ch / 4` holds channels
///   `4j .. 4j+3`, code `b = 4 · slot + ch mod 4`;
/// - V, blocks of [`VBLOCK`] positions, `ceil(groups / 2)` chunks (the channels padded with
///   code 0 to a multiple of 16): chunk `ch / 16`, code `b = 4 · (ch mod 16) + slot`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocks3 {
    /// Positions a block.
    pub(crate) per: usize,
    /// Bytes a block.
    pub(crate) bytes: usize,
    is_v: bool,
}

impl Blocks3 {
    /// K's layout for rows of `groups` 3-byte groups.
    pub(crate) fn k(groups: usize) -> Self {
        Blocks3 {
            per: KBLOCK,
            bytes: 48 * groups,
            is_v: false,
        }
    }

    /// V's layout for rows of `groups` 3-byte groups.
    pub(crate) fn v(groups: usize) -> Self {
        Blocks3 {
            per: VBLOCK,
            bytes: 24 * groups.div_ceil(2),
            is_v: true,
        }
    }

    /// The byte range of the block holding position `i` (counted from the first 3-bit one).
    pub(crate) fn block(self, i: usize) -> Range<usize> {
        let a = i / self.per * self.bytes;
        a..a + self.bytes
    }

    /// The byte range of the whole blocks holding positions `i .. i + n`.
    pub(crate) fn span(self, i: usize, n: usize) -> Range<usize> {
        i / self.per * self.bytes..(i + n).div_ceil(self.per) * self.bytes
    }

    /// Bytes of `n` positions' whole blocks.
    pub(crate) fn bytes_of(self, n: usize) -> usize {
        n.div_ceil(self.per) * self.bytes
    }

    /// The chunk (its first byte) and code index within it of channel `ch` in slot `slot`.
    fn at(self, slot: usize, ch: usize) -> (usize, usize) {
        if self.is_v {
            (24 * (ch / 16), 4 * (ch % 16) + slot)
        } else {
            (24 * (ch / 4), 4 * slot + ch % 4)
        }
    }

    /// Writes one row's codes (`8 · groups` of them) into slot `slot` of `block`, whose slot is
    /// still all zero.
    pub(crate) fn pack(self, codes: &[u8], slot: usize, block: &mut [u8]) {
        for (ch, &c) in codes.iter().enumerate() {
            let (chunk, b) = self.at(slot, ch);
            let at = chunk + 3 * (b / 8);
            let w = (c as u32) << (3 * (b % 8));
            for (o, x) in block[at..at + 3].iter_mut().zip(w.to_le_bytes()) {
                *o |= x;
            }
        }
    }

    /// Code of channel `ch` in slot `slot` of `block`.
    #[inline]
    pub(crate) fn code(self, block: &[u8], slot: usize, ch: usize) -> u8 {
        let (chunk, b) = self.at(slot, ch);
        code3(&block[chunk..][..24], b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_orthonormal() {
        for d in [1, 7, 33, 64, 100, 128] {
            let r = Rotation::new(d);
            let x: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut y = x.clone();
            r.forward(&mut y);
            let nx: f32 = x.iter().map(|v| v * v).sum();
            let ny: f32 = y.iter().map(|v| v * v).sum();
            assert!((nx - ny).abs() <= 1e-5 * nx, "{d}");
            r.inverse(&mut y);
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() <= 1e-5, "{d}");
            }
        }
    }

    /// `fwht` (AVX where the CPU has it) and `fwht_wide` (compiled for the widest vectors the
    /// CPU has) against the butterflies written out span by span, bit for bit, at every block
    /// length up to 512.
    #[test]
    fn fwht_matches_butterflies() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for len in (0..10).map(|b| 1usize << b) {
            let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
            let mut want = x.clone();
            let mut h = 1;
            while h < len {
                for i in (0..len).filter(|i| i & h == 0) {
                    let (a, b) = (want[i], want[i + h]);
                    (want[i], want[i + h]) = (a + b, a - b);
                }
                h *= 2;
            }
            let norm = 1.0 / (len as f32).sqrt();
            want.iter_mut().for_each(|v| *v *= norm);
            let (mut got, mut wide) = (x.clone(), x);
            fwht(&mut got);
            assert_eq!(bits(&got), bits(&want), "len {len}");
            fwht_wide(&mut wide);
            assert_eq!(bits(&wide), bits(&want), "len {len}");
        }
    }

    /// The K block layout, bit by bit as docs/FORMATS.md §8 states it: slot `s`, channel `c`
    /// at bit `3 · (4s + c mod 4)` of chunk `c / 4` (24 bytes each); every other bit 0.
    #[test]
    fn k_blocks_place_codes() {
        let groups = 3;
        let code = |s: usize, c: usize| ((s * 5 + c * 3 + s * c) % 8) as u8;
        let k = Blocks3::k(groups);
        let mut block = vec![0u8; k.bytes];
        // Slots filled out of order, one partial: missing slots stay code 0.
        for s in [3, 0, 15, 1, 8, 2, 9, 14] {
            let codes: Vec<u8> = (0..8 * groups).map(|c| code(s, c)).collect();
            k.pack(&codes, s, &mut block);
        }
        let bit = |i: usize| (block[i / 8] >> (i % 8)) & 1;
        for s in 0..KBLOCK {
            for c in 0..8 * groups {
                let want = if [3, 0, 15, 1, 8, 2, 9, 14].contains(&s) {
                    code(s, c)
                } else {
                    0
                };
                let at = 8 * 24 * (c / 4) + 3 * (4 * s + c % 4);
                let got = bit(at) | bit(at + 1) << 1 | bit(at + 2) << 2;
                assert_eq!(got, want, "slot {s} channel {c}");
                assert_eq!(k.code(&block, s, c), want);
            }
        }
    }

    /// The V block layout, bit by bit as docs/FORMATS.md §8 states it: slot `s`, channel `c`
    /// at bit `3 · (4 (c mod 16) + s)` of chunk `c / 16` (24 bytes each); every other bit 0
    /// (the padding channels of an odd number of groups included).
    #[test]
    fn v_blocks_place_codes() {
        for groups in [1, 3, 4] {
            let code = |s: usize, c: usize| ((s * 5 + c * 3 + s * c + 1) % 8) as u8;
            let v = Blocks3::v(groups);
            let mut block = vec![0u8; v.bytes];
            let filled = [2, 0, 3];
            for s in filled {
                let codes: Vec<u8> = (0..8 * groups).map(|c| code(s, c)).collect();
                v.pack(&codes, s, &mut block);
            }
            let bit = |i: usize| (block[i / 8] >> (i % 8)) & 1;
            for s in 0..VBLOCK {
                for c in 0..16 * groups.div_ceil(2) {
                    let want = if filled.contains(&s) && c < 8 * groups {
                        code(s, c)
                    } else {
                        0
                    };
                    let at = 8 * 24 * (c / 16) + 3 * (4 * (c % 16) + s);
                    let got = bit(at) | bit(at + 1) << 1 | bit(at + 2) << 2;
                    assert_eq!(got, want, "groups {groups} slot {s} channel {c}");
                    assert_eq!(v.code(&block, s, c), want);
                }
            }
        }
    }

    #[test]
    fn pack3_places_codes() {
        let codes: Vec<u8> = (0..16).map(|i| (i * 5 % 8) as u8).collect();
        let mut p = [0u8; 6];
        pack3(&codes, &mut p);
        for (j, &c) in codes.iter().enumerate() {
            assert_eq!(code3(&p, j), c);
        }
    }
}
