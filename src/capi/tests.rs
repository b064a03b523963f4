use std::ffi::{c_int, CStr};

use super::status::{boundary, status_call, BitnetStatus};
use super::*;
use crate::error::Error;
use crate::format::{Format, TernaryMatrix};

fn last_error() -> String {
    // SAFETY: bitnet_last_error returns this thread's NUL-terminated buffer.
    unsafe { CStr::from_ptr(bitnet_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

fn message(s: c_int) -> &'static str {
    // SAFETY: bitnet_status_message always returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(bitnet_status_message(s)) }
        .to_str()
        .unwrap()
}

#[test]
fn version_is_the_crates() {
    // SAFETY: bitnet_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(bitnet_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn every_error_has_its_own_status() {
    let errors = [
        Error::InvalidShape(String::new()),
        Error::LengthMismatch {
            what: "x",
            expected: 1,
            got: 2,
        },
        Error::InvalidFormat(7),
        Error::InvalidData(String::new()),
        Error::NonFinite {
            what: "x",
            index: 0,
        },
        Error::KernelUnavailable(String::new()),
        Error::Unsupported(String::new()),
        Error::Alloc,
        Error::Internal(String::new()),
        Error::Io(String::new()),
    ];
    let mut seen: Vec<_> = errors.iter().map(|e| status_of(e) as c_int).collect();
    seen.push(BitnetStatus::Ok as c_int);
    seen.push(BitnetStatus::NullPointer as c_int);
    seen.push(BitnetStatus::MisalignedPointer as c_int);
    seen.push(BitnetStatus::NotFound as c_int);
    seen.sort();
    let all: Vec<_> = BitnetStatus::ALL.iter().map(|s| *s as c_int).collect();
    assert_eq!(seen, all, "each status exactly once, codes 0..=13 in order");
    // The codes are an ABI: appended, never renumbered.
    assert_eq!(all, (0..14).collect::<Vec<_>>());
    assert_eq!(BitnetStatus::Internal as c_int, 10);
    assert_eq!(BitnetStatus::MisalignedPointer as c_int, 11);
    assert_eq!(BitnetStatus::Io as c_int, 12);
    assert_eq!(BitnetStatus::NotFound as c_int, 13);
}

#[test]
fn messages_are_distinct_and_cover_unknown_codes() {
    let mut all: Vec<_> = (-1..15).map(message).collect();
    assert_eq!(all[0], "unknown status code");
    assert_eq!(all[15], "unknown status code");
    assert_eq!(message(c_int::MIN), "unknown status code");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 15, "14 distinct messages + the unknown one");
}

/// The message is the kind, the detail the specifics: joined, no word of the message is
/// said again at the start of the detail.
#[test]
fn details_do_not_repeat_the_message() {
    let errors = [
        Error::InvalidShape("n is 0".into()),
        Error::LengthMismatch {
            what: "x",
            expected: 1,
            got: 2,
        },
        Error::InvalidFormat(7),
        Error::InvalidData("trits[5] = 2 is not -1, 0 or 1".into()),
        Error::NonFinite {
            what: "x",
            index: 17,
        },
        Error::NonFinite {
            what: "scale",
            index: 0,
        },
        Error::KernelUnavailable("no kernel named 'x'".into()),
        Error::Unsupported("no TL2 kernel".into()),
        Error::Alloc,
        Error::Internal("boom".into()),
    ];
    for e in errors {
        let msg = message(status_of(&e) as c_int);
        let detail = super::status::detail_of(&e);
        let first = msg.split_whitespace().next().unwrap();
        assert!(
            !detail.to_lowercase().starts_with(&first.to_lowercase()),
            "{msg}: {detail}"
        );
    }
    let nf = Error::NonFinite {
        what: "x",
        index: 17,
    };
    assert_eq!(super::status::detail_of(&nf), "x[17] is NaN or infinity");
    let scale = Error::NonFinite {
        what: "scale",
        index: 0,
    };
    assert_eq!(super::status::detail_of(&scale), "scale is NaN or infinity");
}

#[test]
fn panics_become_internal_with_detail() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let s = status_call(|| panic!("boom {}", 42));
    let v = boundary(|_| 7u8, || panic!("bang"));
    std::panic::set_hook(prev);
    assert_eq!(s, BitnetStatus::Internal);
    assert_eq!(v, 7);
    let last = last_error();
    assert!(last.contains("bang"), "{last:?}");
}

#[test]
fn misaligned_and_oversized_pointers_are_rejected() {
    let buf = [0f32; 4];
    let p = (buf.as_ptr() as *const u8).wrapping_add(1) as *const f32;
    let mut y = [0f32; 1];
    let mut t = [1i8; 1];
    let mut m = std::ptr::null_mut();
    // SAFETY: valid trits and out pointer.
    let st = unsafe { bitnet_matrix_from_ternary(t.as_ptr(), 1, 1, 1.0, 0, &mut m) };
    assert_eq!(st, BitnetStatus::Ok);
    // SAFETY: every pointer is either valid or rejected before use.
    unsafe {
        assert_eq!(
            bitnet_gemv_f32(m, p, 1, y.as_mut_ptr(), 1),
            BitnetStatus::MisalignedPointer
        );
        assert!(last_error().starts_with("x = 0x"), "{}", last_error());
        assert!(last_error().ends_with("is not a multiple of 4 bytes"));
        // usize::MAX floats: not the shape's length, so no slice is ever formed.
        assert_eq!(
            bitnet_gemv_f32(m, buf.as_ptr(), usize::MAX, y.as_mut_ptr(), 1),
            BitnetStatus::LengthMismatch
        );
        assert_eq!(
            bitnet_quantize_activations(buf.as_ptr(), usize::MAX / 2, t.as_mut_ptr(), &mut y[0]),
            BitnetStatus::InvalidShape
        );
        bitnet_matrix_free(m);
    }
    assert_eq!(t, [1]);
    assert_eq!(y, [0.0]);
}

/// A NaN is reported at its index in the whole C buffer, under the C parameter's name, and
/// a bad trit with its index and value.
#[test]
fn details_name_the_c_parameter_and_index() {
    let t = [1i8, 0, -1, 1, 0, -1];
    let mut m = std::ptr::null_mut();
    // SAFETY: valid trits and out pointer.
    let st = unsafe { bitnet_matrix_from_ternary(t.as_ptr(), 2, 3, 0.5, 0, &mut m) };
    assert_eq!(st, BitnetStatus::Ok);
    let mut x = [0.5f32; 6];
    x[4] = f32::NAN; // row 1, column 1 of x
    let mut y = [0f32; 4];
    // SAFETY: a live handle, buffers of the stated lengths.
    let st = unsafe { bitnet_gemm_f32(m, x.as_ptr(), 6, 2, y.as_mut_ptr(), 4) };
    assert_eq!(st, BitnetStatus::NonFinite);
    assert_eq!(last_error(), "x[4] is NaN or infinity");
    assert_eq!(y, [0.0; 4], "nothing written");
    // SAFETY: as above; y holds 2 * (2 - 1) floats.
    let st = unsafe { bitnet_gemm_f32_rows(m, x.as_ptr(), 6, 2, 1, 2, y.as_mut_ptr(), 2) };
    assert_eq!(st, BitnetStatus::NonFinite);
    assert_eq!(last_error(), "x[4] is NaN or infinity");
    // SAFETY: as above, with one length wrong.
    let st = unsafe { bitnet_gemm_f32(m, x.as_ptr(), 5, 2, y.as_mut_ptr(), 4) };
    assert_eq!(st, BitnetStatus::LengthMismatch);
    assert_eq!(last_error(), "x_len is 5, expected 6 (n * cols)");

    let bad = [1i8, 0, 2, 1, 0, -1];
    let mut m2 = std::ptr::null_mut();
    // SAFETY: valid buffers of the stated lengths.
    let st = unsafe { bitnet_matrix_from_ternary(bad.as_ptr(), 2, 3, 0.5, 0, &mut m2) };
    assert_eq!(st, BitnetStatus::InvalidData);
    assert_eq!(last_error(), "trits[2] = 2 is not -1, 0 or 1");
    for scale in [0.0f32, -1.0] {
        // SAFETY: as above.
        let st = unsafe { bitnet_matrix_from_ternary(t.as_ptr(), 2, 3, scale, 0, &mut m2) };
        assert_eq!(st, BitnetStatus::InvalidData);
        assert!(
            last_error().ends_with("is not positive"),
            "{}",
            last_error()
        );
    }
    assert!(m2.is_null());
    // SAFETY: freed once.
    unsafe { bitnet_matrix_free(m) };
}

/// The cost of the boundary (panic guard, checks, the temporary that makes outputs
/// write-only-on-success, the copy out): the C call against the Rust call it wraps,
/// single-threaded, alternating batches in one process, medians.
#[test]
#[ignore = "timing: cargo test --release --lib capi::tests::boundary_overhead -- --ignored --nocapture"]
fn boundary_overhead() {
    use std::time::Instant;
    println!("kernel {}", crate::kernel_name().unwrap());
    for (rows, cols) in [(4, 256), (256, 1024), (2560, 2560)] {
        let t: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 7919) % 3) as i8 - 1)
            .collect();
        let h = BitnetMatrix {
            inner: TernaryMatrix::from_ternary(&t, rows, cols, 0.5, Format::I2S).unwrap(),
        };
        let xi: Vec<i8> = (0..cols).map(|i| (i * 31 % 255) as i8).collect();
        let xf: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut yi, mut yf) = (vec![0i32; rows], vec![0f32; rows]);
        let reps = (20_000_000 / (rows * cols)).clamp(3, 100_000);
        let batch = |f: &mut dyn FnMut()| {
            let t0 = Instant::now();
            for _ in 0..reps {
                f();
            }
            t0.elapsed().as_secs_f64() * 1e9 / reps as f64
        };
        let (mut ri, mut ci, mut rf, mut cf) = (vec![], vec![], vec![], vec![]);
        for _ in 0..15 {
            ri.push(batch(&mut || {
                crate::gemv_i8_rows(&h.inner, &xi, 0..rows, &mut yi).unwrap()
            }));
            // SAFETY: a live handle and buffers of the stated lengths.
            ci.push(batch(&mut || unsafe {
                bitnet_gemv_i8_rows(&h, xi.as_ptr(), cols, 0, rows, yi.as_mut_ptr(), rows);
            }));
            rf.push(batch(&mut || {
                crate::ternary_gemv_rows(&h.inner, &xf, 0..rows, &mut yf).unwrap()
            }));
            // SAFETY: a live handle and buffers of the stated lengths.
            cf.push(batch(&mut || unsafe {
                bitnet_gemv_f32_rows(&h, xf.as_ptr(), cols, 0, rows, yf.as_mut_ptr(), rows);
            }));
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (ri, ci, rf, cf) = (med(&mut ri), med(&mut ci), med(&mut rf), med(&mut cf));
        println!(
            "{rows:>5} x {cols:<5} int8: rust {ri:>10.0} ns, C {ci:>10.0} ns ({:+.1}%) | \
             f32: rust {rf:>10.0} ns, C {cf:>10.0} ns ({:+.1}%)",
            (ci / ri - 1.0) * 100.0,
            (cf / rf - 1.0) * 100.0
        );
    }
}
