//! AArch64 dispatch: the NEON sets are registered in the right order, follow the CPU's
//! features, and obey `BITNET_KERNEL`. CI runs this under qemu with the default CPU (`max`:
//! dotprod present) and with `QEMU_CPU=cortex-a72` (no dotprod), naming in
//! `BITNET_EXPECT_SETS` the sets that CPU must run, so a detection that silently drops a
//! variant (and with it that variant's coverage in kernels_vs_scalar) fails here.
#![cfg(target_arch = "aarch64")]

use bitnet_kernels::kernels::{self, KERNELS};
use bitnet_kernels::{Format, TernaryMatrix};

#[test]
fn neon_sets_are_ordered_and_follow_cpu_features() {
    let names: Vec<_> = KERNELS.iter().map(|k| k.name()).collect();
    let pos = |n: &str| names.iter().position(|&x| x == n);
    let (dot, plain, scalar) = (pos("neon-dotprod"), pos("neon"), pos("scalar"));
    assert!(
        dot.is_some() && plain.is_some(),
        "NEON sets missing: {names:?}"
    );
    assert!(dot < plain && plain < scalar, "registry order: {names:?}");
    let has_dot = std::arch::is_aarch64_feature_detected!("dotprod");
    assert_eq!(kernels::by_name("neon-dotprod").is_ok(), has_dot);
    assert!(kernels::by_name("neon").is_ok());
    let best = kernels::available().next().unwrap().name();
    assert_eq!(best, if has_dot { "neon-dotprod" } else { "neon" });
    for k in kernels::available().filter(|k| k.name().starts_with("neon")) {
        assert!(k.has_own(Format::I2S), "{} lacks I2_S", k.name());
    }
    // TL1 / TL2 are plain-NEON `tbl` kernels, which the dotprod set reaches by fallback.
    let neon = kernels::by_name("neon").unwrap();
    for f in [Format::TL1, Format::TL2] {
        assert!(neon.has_own(f), "neon lacks {}", f.name());
        let from = kernels::available().next().unwrap().runs_on(f).unwrap();
        assert_eq!(from, "neon", "{} runs on {from}", f.name());
    }
}

#[test]
fn expected_sets_are_available() {
    let Ok(list) = std::env::var("BITNET_EXPECT_SETS") else {
        return;
    };
    for name in list.split(',').filter(|s| !s.is_empty()) {
        let k = kernels::by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(k.has_own(Format::I2S), "{name} has no own I2_S kernels");
    }
}

#[test]
fn bitnet_kernel_env_is_obeyed() {
    let want = std::env::var("BITNET_KERNEL").unwrap_or_default();
    if !want.is_empty() && kernels::by_name(&want).is_err() {
        // Forcing a set this CPU cannot run is an error every call reports.
        assert!(kernels::kernel_name().is_err());
        let m = TernaryMatrix::from_ternary(&[1], 1, 1, 1.0, Format::I2S).unwrap();
        assert!(bitnet_kernels::gemv_i8(&m, &[1], &mut [0]).is_err());
        return;
    }
    let got = kernels::kernel_name().unwrap();
    if want.is_empty() {
        assert_eq!(got, kernels::available().next().unwrap().name());
    } else {
        assert_eq!(got, want);
    }
    // The safe API runs on the chosen set and is exact.
    let (rows, cols) = (9, 700);
    let t: Vec<i8> = (0..rows * cols).map(|i| (i % 3) as i8 - 1).collect();
    let x: Vec<i8> = (0..cols).map(|i| (i * 91 % 256) as u8 as i8).collect();
    let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2S).unwrap();
    let mut y = vec![0; rows];
    bitnet_kernels::gemv_i8(&m, &x, &mut y).unwrap();
    let want: Vec<i32> = (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| t[r * cols + c] as i32 * x[c] as i32)
                .sum()
        })
        .collect();
    assert_eq!(y, want);
}
