//! Which 3-bit packing decodes faster in the K dot (the issue's "8 codes in 3 bytes or 10 in a
//! 32-bit word — measure which decodes faster"): the dot of 16 positions' codes with four query
//! heads' int8 q, the AVX-512 inner loop of `bitnet_kv3_scores_avx512vbmi`, over the same
//! codes stored both ways, timed in turns.
//!
//! - **8 in 3 bytes** (the cache's layout, docs/FORMATS.md §8): a 24-byte chunk holds 4 channels
//!   of the block's 16 positions; per chunk a masked load, a `vpermb` (a group's 3 bytes into
//!   each 64-bit lane), a `vpmultishiftqb` (code i to byte i) and an AND of 7, then one
//!   `vpdpbusd` per head: 7 vector operations per 64 codes, two of them (`vpermb`,
//!   `vpmultishiftqb`) on one port only.
//! - **10 in a 32-bit word** (bits 30, 31 unused): each 64-bit lane of a plain 64-byte load
//!   already holds whole codes (20 of them), so `vpmultishiftqb` reads the load directly: per
//!   pair of loads (5 chunks' worth of 64 codes) five extractions (the fifth merges the last 4
//!   codes of both loads' lanes under a byte mask), five ANDs and 20 `vpdpbusd`: 6.2 operations
//!   per 64 codes, 1.2 on the single port. At head_dim 128 a block of 16 positions is 13 loads
//!   (832 bytes, 3.25 bits a code) instead of 768 bytes (3 bits).
//!
//! Both loops are checked against a scalar dot before they are timed. Prints ns per 64 codes
//! (the median of interleaved rounds) for a block set that stays in L1/L2 and one that fills
//! most of L2.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin kv_decode
//! ```

// The packing and the reference serve only the x86 timing.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use bitnet_bench::data::Rng;
use bitnet_bench::stats;

/// Channels (head_dim) and positions per block.
const D: usize = 128;
const SLOTS: usize = 16;
/// Chunks of 4 channels × 16 positions per block.
const UNITS: usize = D / 4;
/// Bytes per block: 8 codes in 3 bytes, and 10 codes in a 32-bit word (6 pairs of loads and
/// one single load of 64 bytes).
const BYTES_A: usize = 3 * D * SLOTS / 8;
const LOADS_B: usize = 13;
const BYTES_B: usize = 64 * LOADS_B;

/// Where code `i` (0..4) of channel quad `u` of slot `s` sits in the 10-in-32 layout: (the
/// block's 32-bit word, the code's index in it), following the decode in `dot_b`.
fn place_b(s: usize, u: usize, i: usize) -> (usize, usize) {
    let (k, odd) = (s / 2, s % 2 == 1);
    // The words A and B of 64-bit lane k of load l.
    let word = |l: usize, b: bool| 16 * l + 2 * k + b as usize;
    let (pair, r) = if u < 30 { (u / 5, u % 5) } else { (6, u - 30) };
    let (x, y) = (2 * pair, 2 * pair + 1);
    let l = if r == 2 || r == 3 { y } else { x };
    match (r, odd) {
        // ms(c1): bytes 0..8 = codes 0..8 of word A.
        (0 | 2, false) => (word(l, false), i),
        (0 | 2, true) => (word(l, false), 4 + i),
        // ms(c2): codes 8, 9 of A, then codes 0..6 of B.
        (1 | 3, false) if i < 2 => (word(l, false), 8 + i),
        (1 | 3, false) => (word(l, true), i - 2),
        (1 | 3, true) => (word(l, true), 2 + i),
        // ms(c3) of x, merged with ms(c3) of y in bytes 4..8: codes 6..10 of B.
        (4, false) => (word(x, true), 6 + i),
        (4, true) => (word(y, true), 6 + i),
        _ => unreachable!(),
    }
}

/// Packs `codes[block][slot][channel]` both ways.
fn pack(codes: &[u8], blocks: usize) -> (Vec<u8>, Vec<u8>) {
    let mut a = vec![0u8; blocks * BYTES_A + 64];
    let mut b = vec![0u32; blocks * BYTES_B / 4 + 16];
    for blk in 0..blocks {
        for s in 0..SLOTS {
            for j in 0..D {
                let c = codes[(blk * SLOTS + s) * D + j] as u32;
                // FORMATS §8: chunk j / 4, code 4 · slot + j % 4 at bit 3 · code.
                let bit = 8 * (blk * BYTES_A + 24 * (j / 4)) + 3 * (4 * s + j % 4);
                let v = c << (bit % 8);
                a[bit / 8] |= v as u8;
                a[bit / 8 + 1] |= (v >> 8) as u8;
                let (w, i) = place_b(s, j / 4, j % 4);
                b[blk * BYTES_B / 4 + w] |= c << (3 * i);
            }
        }
    }
    (a, bytemuck::cast_slice(&b).to_vec())
}

/// The four heads' dots of every slot, scalar: `out[block][head][slot]`.
fn dot_ref(codes: &[u8], q: &[i8], blocks: usize) -> Vec<i32> {
    let mut out = vec![0i32; blocks * 4 * SLOTS];
    for blk in 0..blocks {
        for h in 0..4 {
            for s in 0..SLOTS {
                out[(blk * 4 + h) * SLOTS + s] = (0..D)
                    .map(|j| codes[(blk * SLOTS + s) * D + j] as i32 * q[h * D + j] as i32)
                    .sum();
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
            && is_x86_feature_detected!("avx512vnni")
    }

    /// acc += codes · the int32 `q[i]` broadcast (one `vpdpbusd`); no bounds check (`i` <
    /// `4 · UNITS`, checked by the callers' assertion), which would put a compare and branch
    /// beside every `vpdpbusd`.
    #[inline(always)]
    unsafe fn dp(acc: &mut __m512i, x: __m512i, q: &[i32], i: usize) {
        *acc = _mm512_dpbusd_epi32(*acc, x, _mm512_set1_epi32(*q.get_unchecked(i)));
    }

    /// The 8-in-3 dot: `qd[h * UNITS + u]` is head h's int8 quad of channels 4u..4u+3.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub unsafe fn dot_a(a: &[u8], qd: &[i32], blocks: usize, out: &mut [i32]) {
        assert!(
            qd.len() >= 4 * UNITS
                && a.len() >= blocks * BYTES_A + 64
                && out.len() >= blocks * 4 * SLOTS
        );
        let mut p = [0u8; 64];
        let mut c = [0u8; 64];
        for k in 0..8 {
            for i in 0..8 {
                p[8 * k + i] = (3 * k + i.min(2)) as u8;
                c[8 * k + i] = (3 * i) as u8;
            }
        }
        let (perm, ctl) = (
            _mm512_loadu_si512(p.as_ptr().cast()),
            _mm512_loadu_si512(c.as_ptr().cast()),
        );
        let seven = _mm512_set1_epi8(7);
        let m: __mmask64 = (1 << 24) - 1;
        for blk in 0..blocks {
            let base = a.as_ptr().add(blk * BYTES_A);
            let mut acc = [_mm512_setzero_si512(); 8];
            for j in (0..UNITS).step_by(2) {
                let unpack = |u: usize| {
                    let b = _mm512_maskz_loadu_epi8(m, base.add(24 * u).cast());
                    _mm512_and_si512(
                        _mm512_multishift_epi64_epi8(ctl, _mm512_permutexvar_epi8(perm, b)),
                        seven,
                    )
                };
                let (x0, x1) = (unpack(j), unpack(j + 1));
                for h in 0..4 {
                    dp(&mut acc[2 * h], x0, qd, h * UNITS + j);
                    dp(&mut acc[2 * h + 1], x1, qd, h * UNITS + j + 1);
                }
            }
            for h in 0..4 {
                let v = _mm512_add_epi32(acc[2 * h], acc[2 * h + 1]);
                _mm512_storeu_si512(out.as_mut_ptr().add((blk * 4 + h) * SLOTS).cast(), v);
            }
        }
    }

    /// The 10-in-32 dot (see `place_b`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub unsafe fn dot_b(b: &[u8], qd: &[i32], blocks: usize, out: &mut [i32]) {
        assert!(
            qd.len() >= 4 * UNITS && b.len() >= blocks * BYTES_B && out.len() >= blocks * 4 * SLOTS
        );
        let ctl = |o: [u8; 8]| _mm512_set1_epi64(i64::from_le_bytes(o));
        let c1 = ctl([0, 3, 6, 9, 12, 15, 18, 21]);
        let c2 = ctl([24, 27, 32, 35, 38, 41, 44, 47]);
        let c3 = ctl([50, 53, 56, 59, 50, 53, 56, 59]);
        let hi: __mmask64 = 0xF0F0_F0F0_F0F0_F0F0;
        let seven = _mm512_set1_epi8(7);
        let and7 = |x| _mm512_and_si512(x, seven);
        for blk in 0..blocks {
            let base = b.as_ptr().add(blk * BYTES_B);
            let mut acc = [_mm512_setzero_si512(); 8];
            for pair in 0..6 {
                let x = _mm512_loadu_si512(base.add(128 * pair).cast());
                let y = _mm512_loadu_si512(base.add(128 * pair + 64).cast());
                let u = [
                    and7(_mm512_multishift_epi64_epi8(c1, x)),
                    and7(_mm512_multishift_epi64_epi8(c2, x)),
                    and7(_mm512_multishift_epi64_epi8(c1, y)),
                    and7(_mm512_multishift_epi64_epi8(c2, y)),
                    and7(_mm512_mask_multishift_epi64_epi8(
                        _mm512_multishift_epi64_epi8(c3, x),
                        hi,
                        c3,
                        y,
                    )),
                ];
                for (r, &xu) in u.iter().enumerate() {
                    for h in 0..4 {
                        dp(&mut acc[2 * h + (r & 1)], xu, qd, h * UNITS + 5 * pair + r);
                    }
                }
            }
            let z = _mm512_loadu_si512(base.add(128 * 6).cast());
            let (z0, z1) = (
                and7(_mm512_multishift_epi64_epi8(c1, z)),
                and7(_mm512_multishift_epi64_epi8(c2, z)),
            );
            for h in 0..4 {
                dp(&mut acc[2 * h], z0, qd, h * UNITS + 30);
                dp(&mut acc[2 * h + 1], z1, qd, h * UNITS + 31);
            }
            for h in 0..4 {
                let v = _mm512_add_epi32(acc[2 * h], acc[2 * h + 1]);
                _mm512_storeu_si512(out.as_mut_ptr().add((blk * 4 + h) * SLOTS).cast(), v);
            }
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        return run();
    }
    println!("kv_decode: needs AVX-512 F/BW/VBMI/VNNI (x86-64); nothing measured");
}

#[cfg(target_arch = "x86_64")]
fn run() {
    let mut rng = Rng::new(7);
    let q: Vec<i8> = (0..4 * D)
        .map(|_| (rng.uniform() * 256.0 - 128.0) as i8)
        .collect();
    let qd: Vec<i32> = q
        .chunks(4)
        .map(|c| i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]))
        .collect();
    println!("K dot of 16 positions × {D} channels by 4 query heads (AVX-512 VNNI/VBMI), ns per 64 codes, median of interleaved rounds:\n");
    println!("| positions | 8 in 3 bytes | 10 in 32 bits | ratio | bytes per block (8 in 3 / 10 in 32) |");
    println!("|---|---|---|---|---|");
    for tokens in [256usize, 4096] {
        let blocks = tokens / SLOTS;
        let codes: Vec<u8> = (0..blocks * SLOTS * D)
            .map(|_| (rng.uniform() * 8.0) as u8)
            .collect();
        let (a, b) = pack(&codes, blocks);
        let want = dot_ref(&codes, &q, blocks);
        let mut out = vec![0i32; blocks * 4 * SLOTS];
        // SAFETY: available() checked the CPU; the buffers hold `blocks` blocks (and slack).
        unsafe {
            x86::dot_a(&a, &qd, blocks, &mut out);
            assert_eq!(out, want, "8-in-3 decode");
            out.fill(0);
            x86::dot_b(&b, &qd, blocks, &mut out);
            assert_eq!(out, want, "10-in-32 decode");
        }
        let reps = 4 * 1024 * 1024 / tokens;
        let t = stats::measure_turns(3.0, 15, 400, 2, |i| {
            for _ in 0..reps {
                // SAFETY: as above.
                unsafe {
                    if i == 0 {
                        x86::dot_a(std::hint::black_box(&a), &qd, blocks, &mut out)
                    } else {
                        x86::dot_b(std::hint::black_box(&b), &qd, blocks, &mut out)
                    }
                }
            }
            std::hint::black_box(&out);
        });
        let per = |s: f64| s / reps as f64 / (blocks * UNITS) as f64 * 1e9;
        let (ta, tb) = (per(t[0].secs), per(t[1].secs));
        println!(
            "| {tokens} | {ta:.3} | {tb:.3} | {:.2} | {BYTES_A} / {BYTES_B} |",
            tb / ta
        );
    }
}
