//! [`super::v_weights3`] written with AVX-512 intrinsics: the same values bit for bit as the
//! plain body ([`super::v_weights3_wide`]), with every operation of `docs/FORMATS.md` §8 in
//! the same order (the exponential's fused steps, the unfused products and sums, the lanes).
//! Why by hand: compiled from the plain loops, the pass kept the running lanes and `u_t` in
//! memory, reloaded its constants every block, reduced each head's block maximum alone with
//! scalar shuffles, converted the fp16 scales into an array it then loaded back, and waited
//! on each block's divisions (`perf annotate`, 2026-11-28). Here a block of up to
//! [`HEADS_TOGETHER`] heads is taken two heads at a time (their exponentials step by step side
//! by side, their `u_t` stored for the second half at once), the heads' block maxima are
//! reduced together (one transposing tree for four heads) and their divisions are one vector
//! division, and a block's second half (codes, factors, rounding errors) is issued after the
//! next block's first half. The last block, when shorter than [`WBLOCK`], takes the same
//! vector code with masked loads and its scales padded with 0 (`perf annotate`, 2026-11-29:
//! a scalar last block took 7 % of the pass at 4095 positions).

use std::arch::x86_64::*;

use super::ahead::Ahead;
use super::exp_consts::*;
use super::{per_head, Lanes, VWeights, HEADS_TOGETHER, LANES, STACK_HEADS, WBLOCK};

/// Whether the CPU has what [`v_weights3`] needs: AVX-512 F, BW, DQ and VBMI (Ice Lake, Zen 4
/// and later), and FMA.
pub(super) fn available() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vbmi") && has!("fma")
}

/// [`super::v_weights3`] (same arguments, same results).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
pub(super) fn v_weights3(p: VWeights) {
    let VWeights {
        w8,
        fs,
        base,
        z,
        w,
        ws,
        vs,
        mx,
        ahead,
    } = p;
    let (n, heads) = (vs.len(), base.len());
    let nb = n.div_ceil(WBLOCK);
    // What the raw accesses below rely on (no product overflows: each bounds a slice).
    let fits = |len: usize, a: usize, b: usize, c: usize| {
        a.checked_mul(b)
            .and_then(|x| x.checked_add(c))
            .is_some_and(|x| len >= x)
    };
    assert!(
        z.len() == heads && fits(w8.len(), heads, nb * WBLOCK, 0) && fits(fs.len(), heads, nb, 0)
    );
    assert!(heads == 0 || fits(w.len(), heads - 1, ws, n));
    assert!(mx.is_none_or(|m| m.len() >= heads));
    #[rustfmt::skip]
    let low_bytes = std::hint::black_box(_mm512_set_epi32(
        0, 0, 0, 0, 0, 0, 0, 0,
        0x7c78_7470, 0x6c68_6460, 0x5c58_5450, 0x4c48_4440,
        0x3c38_3430, 0x2c28_2420, 0x1c18_1410, 0x0c08_0400,
    ));
    let mut out = Out {
        w8,
        fs,
        nb,
        low_bytes,
    };
    // On the stack for up to STACK_HEADS query heads a KV head (per_head): two allocations
    // per KV head were ~12 % of a 16-token `attend`.
    let (mut stack, mut heap) = ([Lanes::EMPTY; STACK_HEADS], Vec::new());
    let lanes = per_head(&mut stack, &mut heap, heads);
    // Per group of heads, the first half of each block, whose second half waits until the
    // next block's first half is issued: the reduction and the division between the two
    // halves then overlap that work instead of stalling the block. Block b's in slot b mod 2.
    let (mut stack, mut heap) = ([[Half::EMPTY; 2]; STACK_HEADS / HEADS_TOGETHER], Vec::new());
    let halves = per_head(&mut stack, &mut heap, heads.div_ceil(HEADS_TOGETHER));
    for b in 0..nb {
        ahead.iter_mut().for_each(Ahead::step);
        let t = b * WBLOCK;
        let rows = &vs[t..n.min(t + WBLOCK)];
        let blk = Block {
            w,
            ws,
            mx,
            t,
            k: rows.len(),
        };
        let scales = match <&[[u16; 2]; WBLOCK]>::try_from(rows) {
            Ok(rows) => scales64(rows),
            Err(_) => {
                // The last block, shorter: scale 0 past its end, as the plain body's.
                let mut pad = [[0u16; 2]; WBLOCK];
                pad[..rows.len()].copy_from_slice(rows);
                scales64(&pad)
            }
        };
        for (g, (lanes, hv)) in lanes
            .chunks_mut(HEADS_TOGETHER)
            .zip(halves.iter_mut())
            .enumerate()
        {
            let [even, odd] = hv;
            let (cur, prev) = if b % 2 == 0 { (even, odd) } else { (odd, even) };
            let h0 = g * HEADS_TOGETHER;
            first_half(&blk, &scales, h0, lanes, cur);
            if b > 0 {
                // SAFETY: block b - 1 < nb, heads h0 .. h0 + lanes.len() <= heads.
                unsafe { second_half(&mut out, b - 1, h0, prev, lanes) };
            }
        }
    }
    // The last block's second halves.
    if nb > 0 {
        for (g, (lanes, hv)) in lanes
            .chunks_mut(HEADS_TOGETHER)
            .zip(halves.iter())
            .enumerate()
        {
            // SAFETY: as in the loop.
            unsafe {
                second_half(
                    &mut out,
                    nb - 1,
                    g * HEADS_TOGETHER,
                    &hv[(nb - 1) % 2],
                    lanes,
                )
            };
        }
    }
    for ((ln, bs), zs) in lanes.iter().zip(base).zip(z) {
        ln.finish(bs, zs);
    }
}

/// Vectors of 16 lanes in a block.
const V: usize = WBLOCK / 16;

/// The outputs: head `r`'s codes of block `b` at `w8[(r · nb + b) · WBLOCK ..]`, its factor
/// at `fs[r · nb + b]` (lengths checked by [`v_weights3`]).
struct Out<'a> {
    w8: &'a mut [i8],
    fs: &'a mut [f32],
    nb: usize,
    /// The `vpermt2b` index that gathers the low byte of each lane of two vectors: byte 4i
    /// of the first (i < 16), then byte 4i of the second (16 + i). Hidden from the compiler
    /// ([`std::hint::black_box`]), which otherwise turned each `vpermt2b` of a constant index
    /// into four shuffles (`vpshufb`, `vpor`, `vpermd`, `vinserti64x4`) on the one shuffle port.
    low_bytes: __m512i,
}

/// One block's inputs: head `r`'s weights or scores at `w[r · ws + t ..]`, `k` of them
/// (`1 ..= WBLOCK`), with `mx` the scores' maxima.
struct Block<'a> {
    w: &'a [f32],
    ws: usize,
    mx: Option<&'a [f32]>,
    t: usize,
    k: usize,
}

/// A block's minima and steps, in order.
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

/// What the first half of a block leaves for the second, for up to [`HEADS_TOGETHER`] heads:
/// the heads' `u_t` (0 past the block's end) and the two quotients of each head (`127 / a`
/// and `a / 127` in lanes `4j` and `4j + 1`).
#[derive(Clone, Copy)]
struct Half {
    u: [[__m512; V]; HEADS_TOGETHER],
    q: __m512,
}

impl Half {
    /// Not yet written.
    // SAFETY: all-zero bits are a valid __m512 (+0.0 in every lane).
    const EMPTY: Half = unsafe { std::mem::zeroed() };
}

/// The first half of [`super::weights_group`] for the heads `h0 .. h0 + lanes.len()` (1 to
/// [`HEADS_TOGETHER`]) into `half`: the exponentials, their sums, `u_t`, and the heads' block
/// maxima and quotients.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn first_half(blk: &Block, scales: &Scales, h0: usize, lanes: &mut [Lanes], half: &mut Half) {
    let whole = blk.k == WBLOCK;
    match (lanes, whole) {
        ([a, b, c, d], true) => first_half_of::<4, false>(blk, scales, h0, [a, b, c, d], half),
        ([a, b, c, d], false) => first_half_of::<4, true>(blk, scales, h0, [a, b, c, d], half),
        ([a, b, c], _) => first_half_of::<3, true>(blk, scales, h0, [a, b, c], half),
        ([a, b], _) => first_half_of::<2, true>(blk, scales, h0, [a, b], half),
        ([a], _) => first_half_of::<1, true>(blk, scales, h0, [a], half),
        _ => unreachable!("1 to HEADS_TOGETHER heads"),
    }
}

/// [`first_half`] for `H` heads: a fixed count, so that the heads' loops unroll and their
/// vectors need no array in memory. `MASKED`: the block may be shorter than [`WBLOCK`] (masked
/// loads, and its last `k mod 32` positions summed one by one, as the plain body does); the
/// rarer group sizes take it too, to keep the code small.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
fn first_half_of<const H: usize, const MASKED: bool>(
    blk: &Block,
    (ms, ss): &Scales,
    h0: usize,
    lanes: [&mut Lanes; H],
    half: &mut Half,
) {
    const { assert!(HEADS_TOGETHER == 4 && WBLOCK == 64 && LANES == 32 && H <= HEADS_TOGETHER) };
    let k = if MASKED { blk.k } else { WBLOCK };
    // Positions summed in the lanes (whole chunks of LANES), then the rest one by one.
    let full = k / LANES * LANES;
    // Lanes t < k of vector c.
    let live = |c: usize| -> __mmask16 {
        let m = (k.saturating_sub(16 * c)).min(16);
        ((1u32 << m) - 1) as __mmask16
    };
    // Per head, max |u_t| of each lane (the missing heads' 0).
    let mut amax = [_mm512_setzero_ps(); HEADS_TOGETHER];
    // A short block's weights, for the sums of its last positions (tail_sums).
    let mut tails = [[_mm512_setzero_ps(); V]; H];
    for j0 in (0..H).step_by(2) {
        // Heads j0 and j0 + 1 (if any): their weights or scores, then exponentials side by side.
        let two = j0 + 1 < H;
        let mut p = [[_mm512_setzero_ps(); V]; 2];
        for (i, p) in p.iter_mut().enumerate().take(1 + two as usize) {
            let r = h0 + j0 + i;
            // SAFETY: v_weights3 checked w.len() >= r · ws + n for every head r, and
            // t + k <= n; the masked loads read only the lanes t < k.
            let x = unsafe { blk.w.as_ptr().add(r * blk.ws + blk.t) };
            for (c, p) in p.iter_mut().enumerate() {
                *p = unsafe {
                    if MASKED {
                        _mm512_maskz_loadu_ps(live(c), x.add(16 * c))
                    } else {
                        _mm512_loadu_ps(x.add(16 * c))
                    }
                };
            }
            if let Some(mx) = blk.mx {
                let m = _mm512_set1_ps(mx[r]);
                for x in p.iter_mut() {
                    *x = _mm512_sub_ps(*x, m);
                }
            }
        }
        if blk.mx.is_some() {
            if two {
                let [a, b] = p;
                let e = exp_n([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]);
                p = [[e[0], e[1], e[2], e[3]], [e[4], e[5], e[6], e[7]]];
            } else {
                p[0] = exp_n(p[0]);
            }
        }
        for (i, p) in p.iter().enumerate().take(1 + two as usize) {
            let j = j0 + i;
            let ln = &mut *lanes[j];
            // Σ p_t and Σ p_t · m_t: position i into lane i mod 32 (vector i / 16 mod 2), the
            // block's first 32 positions before its last 32; the product rounded before the
            // sum.
            let mut zl = [load16(&ln.z[..16]), load16(&ln.z[16..])];
            let mut bl = [load16(&ln.b[..16]), load16(&ln.b[16..])];
            for c in 0..full / 16 {
                zl[c % 2] = _mm512_add_ps(zl[c % 2], p[c]);
                bl[c % 2] = _mm512_add_ps(bl[c % 2], _mm512_mul_ps(p[c], ms[c]));
            }
            store16(&mut ln.z[..16], zl[0]);
            store16(&mut ln.z[16..], zl[1]);
            store16(&mut ln.b[..16], bl[0]);
            store16(&mut ln.b[16..], bl[1]);
            if MASKED {
                tails[j] = *p;
            }
            let mut u = [_mm512_setzero_ps(); V];
            for c in 0..V {
                // Past k the step is 0 and p finite (a masked 0, or an exponential): u = +0,
                // the plain body's value.
                u[c] = _mm512_mul_ps(p[c], ss[c]);
                half.u[j][c] = u[c];
            }
            // max(|x|, |y|) with the sign bit cleared, as a tree (a maximum in any order):
            // the same value as the plain body's integer maximum of the bits of |u| (u is not
            // NaN: a finite weight or exponential times a finite step; ±0 both give +0).
            amax[j] = absmax(absmax(u[0], u[1]), absmax(u[2], u[3]));
        }
    }
    if MASKED && full < k {
        tail_sums(lanes, &tails, ms, full, k);
    }
    // Every head's a = max |u_t|: head j in 128-bit lane j, in all four of its lanes (for
    // non-negative f32 values, not NaN, the order of the bits is the order of the values).
    let a = _mm512_castsi512_ps(reduce4(amax.map(|x| _mm512_castps_si512(x))));
    // 127 / a in the even lanes (0 where a is not > 0), a / 127 in the odd ones: one division.
    let c127 = _mm512_set1_ps(127.0);
    let num = _mm512_mask_blend_ps(0xAAAA, c127, a);
    let den = _mm512_mask_blend_ps(0xAAAA, a, c127);
    let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, _mm512_setzero_ps()) | 0xAAAA;
    half.q = _mm512_maskz_div_ps(keep, num, den);
}

/// The positions `full .. k` of a short block added to each head's lane tails one by one, in
/// order (the plain body's order for the last `k mod 32` positions): the heads' chains of
/// dependent additions side by side. Once per call.
#[cold]
#[inline(never)]
#[target_feature(enable = "avx512f")]
fn tail_sums<const H: usize>(
    lanes: [&mut Lanes; H],
    p: &[[__m512; V]; H],
    ms: &[__m512; V],
    full: usize,
    k: usize,
) {
    let (mut pa, mut ma) = ([[0.0f32; WBLOCK]; H], [0.0f32; WBLOCK]);
    for c in 0..V {
        for j in 0..H {
            store16(&mut pa[j][16 * c..], p[j][c]);
        }
        store16(&mut ma[16 * c..], ms[c]);
    }
    let (mut zt, mut bt) = (
        lanes.each_ref().map(|l| l.zt),
        lanes.each_ref().map(|l| l.bt),
    );
    for i in full..k {
        for j in 0..H {
            zt[j] += pa[j][i];
            bt[j] += pa[j][i] * ma[i];
        }
    }
    for (j, ln) in lanes.into_iter().enumerate() {
        (ln.zt, ln.bt) = (zt[j], bt[j]);
    }
}

/// The second half of block `b` for the heads `h0 .. h0 + lanes.len()`, from their first
/// `half`: the codes and factors into `out`, the weights' rounding errors into the lanes.
///
/// # Safety
/// `b < out.nb` and `h0 + lanes.len()` at most the heads [`v_weights3`] checked `out` for.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,fma")]
unsafe fn second_half(out: &mut Out, b: usize, h0: usize, half: &Half, lanes: &mut [Lanes]) {
    let round = _mm512_set1_ps(ROUND);
    let low_bytes = out.low_bytes;
    for (j, ln) in lanes.iter_mut().enumerate() {
        let u = &half.u[j];
        let inv = _mm512_permutexvar_ps(_mm512_set1_epi32(4 * j as i32), half.q);
        let f = _mm512_permutexvar_ps(_mm512_set1_epi32(4 * j as i32 + 1), half.q);
        let i = (h0 + j) * out.nb + b;
        // SAFETY: (the caller's) i < heads · nb <= fs.len(), and (i + 1) · WBLOCK <= w8.len().
        let o = unsafe {
            out.fs.as_mut_ptr().add(i).write(_mm512_cvtss_f32(f));
            out.w8.as_mut_ptr().add(i * WBLOCK)
        };
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
            unsafe { _mm256_storeu_si256(o.add(16 * c).cast(), b) };
        }
    }
}

/// `max(|x|, |y|)` with the sign bit cleared, one `vrangeps`.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn absmax(x: __m512, y: __m512) -> __m512 {
    _mm512_range_ps::<0b1011>(x, y)
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
    let last = POLY.len() - 1;
    let mut p = [_mm512_set1_ps(POLY[0]); K];
    for &k in &POLY[1..last] {
        for c in 0..K {
            p[c] = _mm512_fmadd_ps(p[c], r[c], _mm512_set1_ps(k));
        }
    }
    // 2^n · p as n added to p's exponent field (t's bits shifted left by 23), 0 below EXP_MIN.
    let mut e = [_mm512_setzero_ps(); K];
    for c in 0..K {
        let p = _mm512_fmadd_ps(p[c], r[c], _mm512_set1_ps(POLY[last]));
        let sh = _mm512_slli_epi32::<23>(_mm512_castps_si512(t[c]));
        e[c] = maskz_add_epi32(keep[c], _mm512_castps_si512(p), sh);
    }
    e
}

/// `_mm512_maskz_add_epi32` as one zero-masked `vpaddd` (the intrinsic was compiled to an add
/// and a separate zero-masking move: one more vector operation per 16 exponentials).
#[inline]
#[target_feature(enable = "avx512f")]
fn maskz_add_epi32(k: __mmask16, a: __m512i, b: __m512i) -> __m512 {
    let sum: __m512;
    // SAFETY: one AVX-512F instruction (the caller's target features) on registers only.
    unsafe {
        std::arch::asm!(
            "vpaddd {s}{{{k}}}{{z}}, {a}, {b}",
            s = lateout(zmm_reg) sum,
            k = in(kreg) k,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    sum
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
