//! Every kernel set's 3-bit KV-cache kernels against the scalar reference, bit for bit: scores
//! (whose integer parts the kernels compute), weighted V sums (exact integer block sums, one
//! FMA per block: docs/FORMATS.md §8) and attention.

use bitnet_kernels::kernels::{self, SCALAR};
use bitnet_kernels::kv::KvCache;
use proptest::prelude::*;

fn case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, u64)> {
    (
        prop_oneof![
            Just(1usize),
            Just(7),
            Just(33),
            Just(64),
            Just(100),
            Just(128),
            1usize..200,
            // past one 512-channel slice of the AVX-512 kernel, whole and ragged
            Just(1024),
            Just(640), // a second slice of two whole chunks (AVX-512: q held in registers)
            513usize..700
        ],
        // GQA ratios; 12: past the 8 query heads whose scratch the passes keep on the stack.
        prop_oneof![Just(1usize), Just(4), Just(8), Just(12), 1usize..6],
        1usize..4,                                   // KV heads
        prop_oneof![Just(0usize), Just(1), Just(3)], // sink
        prop_oneof![1usize..50, 63usize..200],       // tokens: one and several 64-token blocks
        any::<u64>(),
    )
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
        })
        .collect()
}

/// One case: every set against the scalar reference, bit for bit.
fn check(
    d: usize,
    ratio: usize,
    hk: usize,
    sink: usize,
    t: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let hq = hk * ratio;
    let mut c = KvCache::new(hk, d, t, sink).unwrap();
    let k = data(t * hk * d, seed);
    let v = data(t * hk * d, seed ^ 0x55);
    c.append(&k, &v, t).unwrap();
    let q = data(hq * d, seed ^ 0xaa);
    let mut want = vec![0.0f32; hq * t];
    c.scores_with(&SCALAR, &q, hq, 0..t, &mut want).unwrap();
    let w: Vec<f32> = data(hq * t, seed ^ 0x77);
    let mut want_v = vec![0.0f32; hq * d];
    c.weighted_v_with(&SCALAR, &w, hq, 0..t, &mut want_v)
        .unwrap();
    let mut want_a = vec![0.0f32; hq * d];
    c.attend_with(&SCALAR, &q, hq, &mut want_a).unwrap();
    for set in kernels::available() {
        let mut got = vec![0.0f32; hq * t];
        c.scores_with(set, &q, hq, 0..t, &mut got).unwrap();
        prop_assert_eq!(&got, &want, "{} scores", set.name());
        // The V sum's integer parts are exact and its one FMA per block and element is
        // the reference's: bit for bit (FORMATS.md §8).
        let mut got_v = vec![0.0f32; hq * d];
        c.weighted_v_with(set, &w, hq, 0..t, &mut got_v).unwrap();
        prop_assert_eq!(&got_v, &want_v, "{} weighted_v", set.name());
        let mut a = vec![0.0f32; hq * d];
        c.attend_with(set, &q, hq, &mut a).unwrap();
        prop_assert_eq!(&a, &want_a, "{} attend", set.name());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kernels_match_scalar((d, ratio, hk, sink, t, seed) in case()) {
        check(d, ratio, hk, sink, t, seed)?;
    }
}

/// Past the AVX-512 dot's 512-channel slice every time (the proptest draws these shapes only
/// now and then): whole and ragged slices, 1 to 4 query heads, one token and a few.
#[test]
fn past_one_slice() {
    for d in [1024, 600, 1000] {
        for ratio in 1..=4 {
            for t in [1, 5] {
                check(d, ratio, 1, 0, t, (d * 10 + ratio + t) as u64).unwrap();
            }
        }
    }
}

/// The sets this machine runs, so a log shows what the property covered.
#[test]
fn sets_under_test() {
    let names: Vec<&str> = kernels::available().map(|k| k.name()).collect();
    eprintln!("kv kernels tested: {names:?}");
    assert!(names.contains(&"scalar"));
}

/// K is stored in blocks of 16 positions (FORMATS.md §8): a cache appended one token at a
/// time fills each block slot by slot, and the scores of any range (starting in the sink,
/// mid-block, on a block boundary, ending anywhere) are those of the whole range at the same
/// positions, bit for bit, on every set.
#[test]
fn block_ranges_and_token_appends() {
    for (d, ratio, hk, sink, t) in [(33, 4, 2, 1, 53), (128, 4, 1, 0, 40), (8, 1, 3, 3, 35)] {
        let hq = hk * ratio;
        let mut c = KvCache::new(hk, d, t, sink).unwrap();
        let k = data(t * hk * d, d as u64);
        let v = data(t * hk * d, d as u64 ^ 0x55);
        for i in 0..t {
            let r = i * hk * d..(i + 1) * hk * d;
            c.append(&k[r.clone()], &v[r], 1).unwrap();
        }
        let q = data(hq * d, d as u64 ^ 0xaa);
        let mut whole = vec![0.0f32; hq * t];
        c.scores_with(&SCALAR, &q, hq, 0..t, &mut whole).unwrap();
        let cuts = [0, 1, 2, 3, 5, 15, 16, 17, 19, 31, 32, 33, t - 1, t];
        for set in kernels::available() {
            let mut got = vec![0.0f32; hq * t];
            c.scores_with(set, &q, hq, 0..t, &mut got).unwrap();
            assert_eq!(got, whole, "{} whole", set.name());
            for &a in &cuts {
                for &b in &cuts {
                    if a >= b || b > t {
                        continue;
                    }
                    let n = b - a;
                    let mut part = vec![0.0f32; hq * n];
                    c.scores_with(set, &q, hq, a..b, &mut part).unwrap();
                    for h in 0..hq {
                        assert_eq!(
                            part[h * n..][..n],
                            whole[h * t + a..][..n],
                            "{} d {d} range {a}..{b} head {h}",
                            set.name()
                        );
                    }
                }
            }
        }
    }
}

/// V is stored in blocks of 4 positions, interleaved per channel (FORMATS.md §8): a cache
/// appended one token at a time fills each block slot by slot, and `weighted_v` over any
/// range (starting in the sink, mid-block, so that V blocks straddle the 64-position weight
/// blocks, or on a boundary; ending anywhere; one to three weight blocks) is the scalar
/// reference's bit for bit on every set, and that reference is the weighted sum of the
/// dequantized V rows but for the int8 weights' rounding (a wrong slot or channel is off by
/// the whole sum).
#[test]
fn v_block_ranges_and_token_appends() {
    for (d, ratio, hk, sink, t) in [
        (33, 4, 2, 1, 140),
        (128, 4, 1, 0, 135),
        (8, 1, 3, 3, 70),
        (24, 5, 1, 0, 71),
    ] {
        let hq = hk * ratio;
        let mut c = KvCache::new(hk, d, t, sink).unwrap();
        let k = data(t * hk * d, d as u64 ^ 0x11);
        let v = data(t * hk * d, d as u64 ^ 0x55);
        for i in 0..t {
            let r = i * hk * d..(i + 1) * hk * d;
            c.append(&k[r.clone()], &v[r], 1).unwrap();
        }
        // Positive weights, as softmax's: the sum is not small against its terms.
        let w: Vec<f32> = data(hq * t, d as u64 ^ 0x77)
            .iter()
            .map(|x| x.abs() + 0.1)
            .collect();
        let mut vd = vec![0.0f32; t * hk * d];
        let mut kk = vec![0.0f32; hk * d];
        for (pos, row) in vd.chunks_exact_mut(hk * d).enumerate() {
            c.dequantize(pos, &mut kk, row).unwrap();
        }
        let cuts = [
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            63,
            64,
            65,
            66,
            67,
            69,
            t - 2,
            t - 1,
            t,
        ];
        for &a in &cuts {
            for &b in &cuts {
                if a >= b || b > t {
                    continue;
                }
                let n = b - a;
                let wr: Vec<f32> = (0..hq)
                    .flat_map(|h| w[h * t + a..h * t + b].to_vec())
                    .collect();
                let mut want = vec![0.0f32; hq * d];
                c.weighted_v_with(&SCALAR, &wr, hq, a..b, &mut want)
                    .unwrap();
                for h in 0..hq {
                    let g = h / ratio;
                    let r: Vec<f64> = (0..d)
                        .map(|j| {
                            (a..b)
                                .map(|i| wr[h * n + i - a] as f64 * vd[(i * hk + g) * d + j] as f64)
                                .sum()
                        })
                        .collect();
                    let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                    let err = r
                        .iter()
                        .zip(&want[h * d..][..d])
                        .map(|(x, &y)| (x - y as f64).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    assert!(
                        err <= 0.02 * norm + 1e-4,
                        "d {d} range {a}..{b} head {h}: {err} vs {norm}"
                    );
                }
                for set in kernels::available() {
                    let mut got = vec![0.0f32; hq * d];
                    c.weighted_v_with(set, &wr, hq, a..b, &mut got).unwrap();
                    assert_eq!(got, want, "{} d {d} range {a}..{b}", set.name());
                }
            }
        }
    }
}
