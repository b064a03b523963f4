//! [`super::v_weights3`] written with AVX-512 intrinsics: the same values bit for bit as the
//! plain body ([`super::v_weights3_wide`]), with every operation of `docs/FORMATS.md` §8 in
//! the same order (the exponential's fused steps, the unfused products and sums, the lanes).
//! Why by hand: compiled from the plain loops, the pass kept the running lanes and `u_t` in
//! memory, reloaded its constants every block, reduced each head's block maximum alone with
//! scalar shuffles, converted the fp16 scales into an array it then loaded back, and waited
//! on each block's divisions (`perf annotate`, 2026-11-28). Here a whole block of up to
//! [`HEADS_TOGETHER`] heads is taken in registers (four vectors a head), two heads'
//! exponentials step by step side by side, the heads' block maxima are reduced together (one
//! transposing tree for four heads) and their divisions are one vector division, and a block's
//! second half (codes, factors, rounding errors) is issued after the next block's first half.
//! A last block shorter than [`WBLOCK`] takes the plain per-block code
//! ([`super::weights_group`]): once per call.

use std::arch::x86_64::*;

use super::ahead::Ahead;
use super::exp_consts::*;
use super::{scales_f32, weights_group, Lanes, WeightsBlock, HEADS_TOGETHER, WBLOCK};

/// Whether the CPU has what [`v_weights3`] needs: AVX-512 F, BW, DQ and VBMI (Ice Lake, Zen 4
/// and later), and FMA.
pub(super) fn available() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vbmi") && has!("fma")
}

/// [`super::v_weights3`] (same arguments, same results).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) fn v_weights3(
    w8: &mut [i8],
    fs: &mut [f32],
    w: &[f32],
    ws: usize,
    vs: &[[u16; 2]],
    mx: Option<&[f32]>,
    base: &mut [f32],
    z: &mut [f32],
    ahead: &mut [Ahead; 3],
) {
    let nb = vs.len().div_ceil(WBLOCK);
    let mut lanes = vec![Lanes::EMPTY; base.len()];
    // Per group of heads, the first half of each whole block, whose second half waits until
    // the next block's first half is issued: the reduction and the division between the two
    // halves then overlap that work instead of stalling the block. Block b's in slot b mod 2.
    let empty = Half {
        b: 0,
        h0: 0,
        u: [[_mm512_setzero_ps(); V]; HEADS_TOGETHER],
        q: _mm512_setzero_ps(),
    };
    let mut halves = vec![[empty; 2]; base.len().div_ceil(HEADS_TOGETHER)];
    for (b, rows) in vs.chunks(WBLOCK).enumerate() {
        ahead.iter_mut().for_each(Ahead::step);
        let blk = WeightsBlock {
            w8: &mut *w8,
            fs: &mut *fs,
            w,
            ws,
            nb,
            b,
            k: rows.len(),
            mx,
        };
        if let Ok(rows) = <&[[u16; 2]; WBLOCK]>::try_from(rows) {
            let scales = scales64(rows);
            for (g, lanes) in lanes.chunks_mut(HEADS_TOGETHER).enumerate() {
                let [even, odd] = &mut halves[g];
                let (cur, prev) = if b % 2 == 0 { (even, odd) } else { (odd, even) };
                *cur = first_half(&blk, scales, g * HEADS_TOGETHER, lanes);
                if b > 0 {
                    second_half(blk.w8, blk.fs, nb, prev, lanes);
                }
            }
        } else {
            // The last block, shorter: padded with weight 0 (weights_group) and scale 0,
            // after the whole blocks' second halves (each head's e lanes in block order).
            if b > 0 {
                flush(&halves, (b - 1) % 2, &mut lanes, blk.w8, blk.fs, nb);
            }
            let (mut ms, mut ss) = ([0.0f32; WBLOCK], [0.0f32; WBLOCK]);
            scales_f32(rows, &mut ms, &mut ss);
            let mut blk = blk;
            for h0 in (0..lanes.len()).step_by(HEADS_TOGETHER) {
                let hn = (lanes.len() - h0).min(HEADS_TOGETHER);
                weights_group(&mut blk, (&ms, &ss), h0, &mut lanes[h0..h0 + hn]);
            }
        }
    }
    // The last block's second halves, when it is whole.
    if vs.len().is_multiple_of(WBLOCK) && nb > 0 {
        flush(&halves, (nb - 1) % 2, &mut lanes, w8, fs, nb);
    }
    for ((ln, bs), zs) in lanes.iter().zip(base).zip(z) {
        ln.finish(bs, zs);
    }
}

/// Vectors of 16 lanes in a block.
const V: usize = WBLOCK / 16;

/// A whole block's minima and steps, in order.
type Scales = ([__m512; V], [__m512; V]);

/// The f32 minima and steps of a block's 64 fp16 `(min, step)` pairs ([`super::scales_f32`]'s
/// values: the conversion of a finite fp16 value is exact), straight into registers: per 32
/// pairs (two vectors), one `vpermt2b` gathers the 32 minima and one the 32 steps, then
/// `vcvtph2ps` widens each 16. (Converted into an array and loaded back, the block's loads
/// waited on its stores.)
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn scales64(rows: &[[u16; 2]; WBLOCK]) -> Scales {
    // Bytes 4i, 4i + 1 (the minimum of pair i of the two tables) for i in 0 .. 32; + 2 for
    // the steps.
    #[rustfmt::skip]
    let mins = _mm512_set_epi32(
        0x7d7c_7978, 0x7574_7170, 0x6d6c_6968, 0x6564_6160,
        0x5d5c_5958, 0x5554_5150, 0x4d4c_4948, 0x4544_4140,
        0x3d3c_3938, 0x3534_3130, 0x2d2c_2928, 0x2524_2120,
        0x1d1c_1918, 0x1514_1110, 0x0d0c_0908, 0x0504_0100,
    );
    let steps = _mm512_add_epi8(mins, _mm512_set1_epi8(2));
    let p = rows.as_ptr().cast::<u8>();
    let (mut ms, mut ss) = ([_mm512_setzero_ps(); V], [_mm512_setzero_ps(); V]);
    for h in 0..V / 2 {
        // SAFETY: rows holds 4 · WBLOCK = 256 bytes; unaligned loads of 64 at 128 · h and
        // 128 · h + 64 (h < 2).
        let (x, y) = unsafe {
            (
                _mm512_loadu_si512(p.add(128 * h).cast()),
                _mm512_loadu_si512(p.add(128 * h + 64).cast()),
            )
        };
        for (out, idx) in [(&mut ms, mins), (&mut ss, steps)] {
            let halves = _mm512_permutex2var_epi8(x, idx, y);
            out[2 * h] = _mm512_cvtph_ps(_mm512_castsi512_si256(halves));
            out[2 * h + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(halves));
        }
    }
    (ms, ss)
}

/// The second halves of the first halves in slot `slot`, in order of their groups.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn flush(
    halves: &[[Half; 2]],
    slot: usize,
    lanes: &mut [Lanes],
    w8: &mut [i8],
    fs: &mut [f32],
    nb: usize,
) {
    for (h, lanes) in halves.iter().zip(lanes.chunks_mut(HEADS_TOGETHER)) {
        second_half(w8, fs, nb, &h[slot], lanes);
    }
}

/// What the first half of a whole block leaves for the second, for up to
/// [`HEADS_TOGETHER`] heads: the block, the first head, the heads' `u_t` and the two quotients of each head
/// (`127 / a` and `a / 127` in lanes `4j` and `4j + 1`).
#[derive(Clone, Copy)]
struct Half {
    b: usize,
    h0: usize,
    u: [[__m512; V]; HEADS_TOGETHER],
    q: __m512,
}

/// The first half of [`super::weights_group`] for a whole block (`blk.k == WBLOCK`) and the
/// heads `h0 .. h0 + lanes.len()` (1 to [`HEADS_TOGETHER`]): the exponentials, their sums, `u_t`,
/// and the heads' block maxima and quotients.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn first_half(blk: &WeightsBlock, scales: Scales, h0: usize, lanes: &mut [Lanes]) -> Half {
    match lanes {
        [a] => first_half_of::<1>(blk, scales, h0, [a]),
        [a, b] => first_half_of::<2>(blk, scales, h0, [a, b]),
        [a, b, c] => first_half_of::<3>(blk, scales, h0, [a, b, c]),
        [a, b, c, d] => first_half_of::<4>(blk, scales, h0, [a, b, c, d]),
        _ => unreachable!("1 to HEADS_TOGETHER heads"),
    }
}

/// The second half: the codes and factors of `half`'s block into `w8` and `fs` (head `r`'s
/// at `r · nb + b`), the weights' rounding errors into the lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn second_half(w8: &mut [i8], fs: &mut [f32], nb: usize, half: &Half, lanes: &mut [Lanes]) {
    let round = _mm512_set1_ps(ROUND);
    // Byte 4i of the first table (i < 16), then byte 4i of the second (16 + i).
    #[rustfmt::skip]
    let low_bytes = _mm512_set_epi32(
        0, 0, 0, 0, 0, 0, 0, 0,
        0x7c78_7470, 0x6c68_6460, 0x5c58_5450, 0x4c48_4440,
        0x3c38_3430, 0x2c28_2420, 0x1c18_1410, 0x0c08_0400,
    );
    for (j, ln) in lanes.iter_mut().enumerate() {
        let u = &half.u[j];
        let inv = _mm512_permutexvar_ps(_mm512_set1_epi32(4 * j as i32), half.q);
        let f = _mm512_permutexvar_ps(_mm512_set1_epi32(4 * j as i32 + 1), half.q);
        let i = (half.h0 + j) * nb + half.b;
        fs[i] = _mm512_cvtss_f32(f);
        let o: &mut [i8; WBLOCK] = (&mut w8[i * WBLOCK..][..WBLOCK])
            .try_into()
            .expect("a block");
        // o_t = round_half_even(u_t · (127 / a)): adding 1.5 · 2^23 leaves the integer in the
        // low bits; e lane t mod 16 += f · o_t − u_t, the four vectors in order.
        let mut e = load16(&ln.e);
        let mut tv = [_mm512_setzero_ps(); V];
        for c in 0..V {
            tv[c] = _mm512_add_ps(_mm512_mul_ps(u[c], inv), round);
        }
        for c in 0..V {
            let d = _mm512_sub_ps(_mm512_mul_ps(f, _mm512_sub_ps(tv[c], round)), u[c]);
            e = _mm512_add_ps(e, d);
        }
        store16(&mut ln.e, e);
        // The codes: the low byte of each lane, two vectors' at a time into 32 bytes.
        for c in (0..V).step_by(2) {
            let x = _mm512_castps_si512(tv[c]);
            let y = _mm512_castps_si512(tv[c + 1]);
            let b = _mm512_castsi512_si256(_mm512_permutex2var_epi8(x, low_bytes, y));
            // SAFETY: o holds WBLOCK = 16 · V bytes; an unaligned store of 32 at 16 · c.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().add(16 * c).cast(), b) };
        }
    }
}

/// [`first_half`] for `H` heads: a fixed count, so that the heads' loops unroll and their
/// vectors need no array in memory.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn first_half_of<const H: usize>(
    blk: &WeightsBlock,
    (ms, ss): Scales,
    h0: usize,
    lanes: [&mut Lanes; H],
) -> Half {
    const { assert!(HEADS_TOGETHER == 4 && WBLOCK == 64 && H <= HEADS_TOGETHER) };
    assert!(blk.k == WBLOCK);
    let t = blk.b * WBLOCK;
    let mut u = [[_mm512_setzero_ps(); V]; HEADS_TOGETHER];
    // Per head, max |u_t| of each lane (the missing heads' 0).
    let mut amax = [_mm512_setzero_ps(); HEADS_TOGETHER];
    // The heads' weights (or scores), two heads at a time: their exponentials side by side.
    let mut p = [[_mm512_setzero_ps(); V]; H];
    for (j, p) in p.iter_mut().enumerate() {
        let r = h0 + j;
        let x: &[f32; WBLOCK] = blk.w[r * blk.ws + t..][..WBLOCK]
            .try_into()
            .expect("a block");
        *p = load64(x);
        if let Some(mx) = blk.mx {
            let m = _mm512_set1_ps(mx[r]);
            for x in p.iter_mut() {
                *x = _mm512_sub_ps(*x, m);
            }
        }
    }
    if blk.mx.is_some() {
        for j in (0..H).step_by(2) {
            if j + 1 < H {
                let (a, b) = (p[j], p[j + 1]);
                let e = exp_n([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]);
                p[j] = [e[0], e[1], e[2], e[3]];
                p[j + 1] = [e[4], e[5], e[6], e[7]];
            } else {
                p[j] = exp_n(p[j]);
            }
        }
    }
    for j in 0..H {
        let (p, ln) = (&p[j], &mut *lanes[j]);
        // Σ p_t and Σ p_t · m_t: position i into lane i mod 32 (vector i / 16 mod 2), the
        // block's first 32 positions before its last 32; the product rounded before the sum.
        let mut zl = [load16(&ln.z[..16]), load16(&ln.z[16..])];
        let mut bl = [load16(&ln.b[..16]), load16(&ln.b[16..])];
        for c in 0..V {
            zl[c % 2] = _mm512_add_ps(zl[c % 2], p[c]);
            bl[c % 2] = _mm512_add_ps(bl[c % 2], _mm512_mul_ps(p[c], ms[c]));
        }
        store16(&mut ln.z[..16], zl[0]);
        store16(&mut ln.z[16..], zl[1]);
        store16(&mut ln.b[..16], bl[0]);
        store16(&mut ln.b[16..], bl[1]);
        for c in 0..V {
            u[j][c] = _mm512_mul_ps(p[c], ss[c]);
            // max(|amax|, |u|) with the sign bit cleared: the same value as the plain body's
            // integer maximum of the bits of |u| (u is not NaN: a finite weight or exponential
            // times a finite step; ±0 both give +0).
            amax[j] = _mm512_range_ps::<0b1011>(amax[j], u[j][c]);
        }
    }
    // Every head's a = max |u_t|: head j in 128-bit lane j, in all four of its lanes (for
    // non-negative f32 values, not NaN, the order of the bits is the order of the values).
    let a = _mm512_castsi512_ps(reduce4(amax.map(|x| _mm512_castps_si512(x))));
    // 127 / a in the even lanes (0 where a is not > 0), a / 127 in the odd ones: one division.
    let c127 = _mm512_set1_ps(127.0);
    let num = _mm512_mask_blend_ps(0xAAAA, c127, a);
    let den = _mm512_mask_blend_ps(0xAAAA, a, c127);
    let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, _mm512_setzero_ps()) | 0xAAAA;
    let q = _mm512_maskz_div_ps(keep, num, den);
    Half { b: blk.b, h0, u, q }
}

/// The unsigned maxima of the 16 lanes of each of four vectors: vector j's in every lane of
/// 128-bit lane j. Two transposing steps (halves, then quarters, of two vectors at once), then
/// two within each 128-bit lane: 8 shuffles and 5 maxima for the four.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce4(m: [__m512i; 4]) -> __m512i {
    let (ab, cd) = (halves(m[0], m[1]), halves(m[2], m[3]));
    // [ab0 ab2 cd0 cd2] and [ab1 ab3 cd1 cd3]: a, b, c, d in lanes 0, 1, 2, 3.
    let x = _mm512_max_epu32(
        _mm512_shuffle_i32x4::<0x88>(ab, cd),
        _mm512_shuffle_i32x4::<0xDD>(ab, cd),
    );
    let x = _mm512_max_epu32(x, _mm512_shuffle_epi32::<0x4E>(x));
    _mm512_max_epu32(x, _mm512_shuffle_epi32::<0xB1>(x))
}

/// The maxima of `a`'s and `b`'s 256-bit halves: `a`'s in 128-bit lanes 0-1, `b`'s in 2-3
/// (`[a0 a1 b0 b1]` against `[a2 a3 b2 b3]`).
#[inline]
#[target_feature(enable = "avx512f")]
fn halves(a: __m512i, b: __m512i) -> __m512i {
    _mm512_max_epu32(
        _mm512_shuffle_i32x4::<0x44>(a, b),
        _mm512_shuffle_i32x4::<0xEE>(a, b),
    )
}

/// [`super::exp_nonpositive`] of `K` vectors: the same steps, each fused multiply-add one
/// `vfmadd` (`fma(−n, c, x)` as `vfnmadd(n, c, x)`: the negation is exact). Each step is
/// taken for every vector before the next, so that `K` independent chains of dependent steps
/// sit side by side in program order: the scheduler, which holds about one head's block of
/// steps, then has `K` to choose from (one vector's chain after another's, or one head's four,
/// kept the two vector ports partly idle).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn exp_n<const K: usize>(x: [__m512; K]) -> [__m512; K] {
    let (min, round) = (_mm512_set1_ps(EXP_MIN), _mm512_set1_ps(ROUND));
    // !(x < min): the lanes that are not 0 (a NaN x included, as in the plain body).
    let keep = x.map(|x| _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, min));
    // max(x, min) is min for a NaN x, as f32::max.
    let x = x.map(|x| _mm512_max_ps(x, min));
    let t = x.map(|x| _mm512_fmadd_ps(x, _mm512_set1_ps(LOG2E), round));
    let n = t.map(|t| _mm512_sub_ps(t, round));
    let mut r = [_mm512_setzero_ps(); K];
    for c in 0..K {
        r[c] = _mm512_fnmadd_ps(n[c], _mm512_set1_ps(LN2_HI), x[c]);
    }
    for c in 0..K {
        r[c] = _mm512_fnmadd_ps(n[c], _mm512_set1_ps(LN2_LO), r[c]);
    }
    let mut p = [_mm512_set1_ps(POLY[0]); K];
    for &k in &POLY[1..] {
        for c in 0..K {
            p[c] = _mm512_fmadd_ps(p[c], r[c], _mm512_set1_ps(k));
        }
    }
    // 2^n · p as n added to p's exponent field (t's bits shifted left by 23), 0 below EXP_MIN.
    let mut e = [_mm512_setzero_ps(); K];
    for c in 0..K {
        let sh = _mm512_slli_epi32::<23>(_mm512_castps_si512(t[c]));
        let sum = _mm512_maskz_add_epi32(keep[c], _mm512_castps_si512(p[c]), sh);
        e[c] = _mm512_castsi512_ps(sum);
    }
    e
}

/// A block's 64 values as four vectors.
#[inline]
#[target_feature(enable = "avx512f")]
fn load64(x: &[f32; WBLOCK]) -> [__m512; V] {
    const { assert!(V == 4) };
    let p = x.as_ptr();
    // SAFETY: x holds 16 · V values; unaligned loads of 16 at 0, 16, 32, 48.
    unsafe {
        [
            _mm512_loadu_ps(p),
            _mm512_loadu_ps(p.add(16)),
            _mm512_loadu_ps(p.add(32)),
            _mm512_loadu_ps(p.add(48)),
        ]
    }
}

/// The first 16 values of `x` as a vector.
#[inline]
#[target_feature(enable = "avx512f")]
fn load16(x: &[f32]) -> __m512 {
    let x: &[f32; 16] = x[..16].try_into().expect("16 values");
    // SAFETY: x holds 16 values; an unaligned load.
    unsafe { _mm512_loadu_ps(x.as_ptr()) }
}

/// `v` into the first 16 values of `x`.
#[inline]
#[target_feature(enable = "avx512f")]
fn store16(x: &mut [f32], v: __m512) {
    let x: &mut [f32; 16] = (&mut x[..16]).try_into().expect("16 values");
    // SAFETY: x holds 16 values; an unaligned store.
    unsafe { _mm512_storeu_ps(x.as_mut_ptr(), v) }
}
