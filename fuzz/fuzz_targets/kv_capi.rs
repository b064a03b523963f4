//! The KV-cache C calls driven with fuzzer-chosen shapes, token counts, head counts,
//! positions and floats (NaN, infinities, huge values included), each call checked:
//! - the status is a known code and never `BITNET_STATUS_INTERNAL`;
//! - a failed append leaves the length and byte count as they were; a failed read leaves its
//!   outputs at their sentinel;
//! - a successful call's results equal the Rust API's on the same cache, bit for bit.
#![no_main]

mod common;

use std::ptr::null_mut;

use bitnet_kernels::capi::*;
use bitnet_kernels::kv::KvCache;
use common::Bytes;
use libfuzzer_sys::fuzz_target;

const OK: i32 = BitnetStatus::Ok as i32;
const INTERNAL: i32 = BitnetStatus::Internal as i32;
const SENTINEL: f32 = 1234.5;

/// Mostly ordinary values, sometimes any bit pattern.
fn value(b: &mut Bytes) -> f32 {
    if b.u8() % 32 == 0 {
        b.f32()
    } else {
        (b.u8() as i8) as f32 / 16.0
    }
}

fn check(st: i32) {
    assert!((0..=11).contains(&st), "unknown status {st}");
    assert_ne!(st, INTERNAL, "a panic reached the boundary");
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let hk = 1 + b.u8() as usize % 3;
    let d = 1 + b.u8() as usize % 70;
    let cap = 1 + b.u8() as usize % 12;
    let sink = b.u8() as usize % 3;
    let mut c = null_mut();
    // SAFETY: `c` is writable.
    let st = unsafe { bitnet_kv_new(hk, d, cap, sink, &mut c) };
    check(st);
    assert_eq!(st, OK);
    let mut mirror = KvCache::new(hk, d, cap, sink).unwrap();
    for _ in 0..1 + b.u8() % 8 {
        match b.u8() % 4 {
            0 | 1 => {
                let n = b.u8() as usize % 4;
                let k: Vec<f32> = (0..n * hk * d).map(|_| value(&mut b)).collect();
                let v: Vec<f32> = (0..n * hk * d).map(|_| value(&mut b)).collect();
                let (len, bytes) = unsafe { (bitnet_kv_len(c), bitnet_kv_bytes(c)) };
                // SAFETY: k and v hold n × hk × d floats; c is live and unshared.
                let st = unsafe { bitnet_kv_append(c, k.as_ptr(), v.as_ptr(), n) };
                check(st);
                let want = mirror.append(&k, &v, n);
                assert_eq!(st == OK, want.is_ok());
                if st != OK {
                    assert_eq!(
                        unsafe { (bitnet_kv_len(c), bitnet_kv_bytes(c)) },
                        (len, bytes)
                    );
                }
            }
            2 => {
                let hq = hk * (b.u8() as usize % 5);
                let hq = if b.u8() % 8 == 0 { hq + 1 } else { hq };
                let q: Vec<f32> = (0..hq * d).map(|_| value(&mut b)).collect();
                let mut out = vec![SENTINEL; hq * d];
                // SAFETY: q and out hold hq × d floats.
                let st = unsafe { bitnet_kv_attend(c, q.as_ptr(), hq, out.as_mut_ptr()) };
                check(st);
                let mut want = vec![SENTINEL; hq * d];
                let r = mirror.attend(&q, hq, &mut want);
                assert_eq!(st == OK, r.is_ok());
                if st == OK {
                    assert_eq!(
                        out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                    );
                } else {
                    assert!(out.iter().all(|&x| x == SENTINEL));
                }
            }
            _ => {
                let pos = b.u8() as usize % (cap + 2);
                let mut k = vec![SENTINEL; hk * d];
                let mut v = vec![SENTINEL; hk * d];
                // SAFETY: k and v hold hk × d floats.
                let st = unsafe { bitnet_kv_dequantize(c, pos, k.as_mut_ptr(), v.as_mut_ptr()) };
                check(st);
                assert_eq!(st == OK, pos < mirror.len());
                if st != OK {
                    assert!(k.iter().chain(&v).all(|&x| x == SENTINEL));
                }
            }
        }
        assert_eq!(unsafe { bitnet_kv_len(c) }, mirror.len());
    }
    // SAFETY: made above, freed once.
    unsafe { bitnet_kv_free(c) };
});
