//! Every kernel set's 3-bit KV-cache kernels against the scalar reference: scores (whose
//! integer parts the kernels compute) bit for bit, weighted V sums within the bound of
//! docs/FORMATS.md §8, attention within the same bound.

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
            513usize..700
        ],
        prop_oneof![Just(1usize), Just(4), Just(8), 1usize..6],
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kernels_match_scalar((d, ratio, hk, sink, t, seed) in case()) {
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
        c.weighted_v_with(&SCALAR, &w, hq, 0..t, &mut want_v).unwrap();
        // The bound of FORMATS.md §8 for the rotated sums, carried through the orthonormal
        // rotation back as an L2 bound per head: 2·n·2^-24·Σ|w·s|·7 per element, times sqrt(d).
        let mut sref = vec![0.0f32; hq * d];
        let abs_w: Vec<f32> = w.iter().map(|x| x.abs()).collect();
        c.weighted_v_with(&SCALAR, &abs_w, hq, 0..t, &mut sref).unwrap();
        for set in kernels::available() {
            let mut got = vec![0.0f32; hq * t];
            c.scores_with(set, &q, hq, 0..t, &mut got).unwrap();
            prop_assert_eq!(&got, &want, "{} scores", set.name());
            let mut got_v = vec![0.0f32; hq * d];
            c.weighted_v_with(set, &w, hq, 0..t, &mut got_v).unwrap();
            for h in 0..hq {
                let err: f32 = (0..d).map(|j| (got_v[h * d + j] - want_v[h * d + j]).powi(2)).sum::<f32>().sqrt();
                let scale: f32 = (0..d).map(|j| want_v[h * d + j].abs() + sref[h * d + j].abs()).fold(0.0, f32::max);
                let bound = 2.0 * (t as f32 + 2.0) * 2f32.powi(-24) * (d as f32).sqrt() * (scale * 8.0 + 1e-3) ;
                prop_assert!(err <= bound, "{} head {}: {} > {}", set.name(), h, err, bound);
            }
            let (mut a, mut b) = (vec![0.0f32; hq * d], vec![0.0f32; hq * d]);
            c.attend_with(set, &q, hq, &mut a).unwrap();
            c.attend_with(&SCALAR, &q, hq, &mut b).unwrap();
            for (x, y) in a.iter().zip(&b) {
                prop_assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{} attend: {} vs {}", set.name(), x, y);
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
