//! Compiles each C kernel file in `kernels/<arch>/` on its own, with exactly the target flags
//! its name asks for (`*_avx2.c`, `*_avx512.c`, `*_avx512vbmi.c`, `*_neon.c`,
//! `*_dotprod.c`), and sets `cfg(bitnet_<stem>)`
//! plus `cfg(bitnet_<isa>)` for every file compiled. It never looks at the build host's CPU:
//! the binary chooses a kernel at run time.
//!
//! On Linux the shared library (cdylib) gets a SONAME (`soname()` below).
//!
//! `BITNET_SANITIZE=address,undefined` (any list `-fsanitize=` takes) builds the kernels
//! with sanitizers, for the hardening runs.

use std::path::Path;

/// The flags each ISA suffix needs. A file gets exactly its suffix's flags, so it can never
/// contain an instruction its registry row does not check for at run time: the AVX-512 TL
/// kernels use VBMI `vpermb` and are gated on `has_avx512vbmi`; the I2_S one must run on
/// VNNI CPUs without VBMI (e.g. Cascade Lake).
const AVX2: &[&str] = &["-mavx2", "-mfma", "-mf16c"];
const AVX512: &[&str] = &[
    "-mavx2",
    "-mfma",
    "-mf16c",
    "-mavx512f",
    "-mavx512bw",
    "-mavx512vl",
    "-mavx512vnni",
];

/// The ISA suffix of a file stem (the text after its last `_`, matched exactly, so
/// `tl1_avx512vbmi` is `avx512vbmi`, never `avx512`) and that suffix's flags.
fn isa_of(stem: &str) -> Option<(&str, Vec<&'static str>)> {
    let (_, isa) = stem.rsplit_once('_')?;
    let flags = match isa {
        "avx2" => AVX2.to_vec(),
        "avx512" => AVX512.to_vec(),
        "avx512vbmi" => [AVX512, &["-mavx512vbmi"]].concat(),
        "neon" => vec!["-march=armv8-a"],
        "dotprod" => vec!["-march=armv8.2-a+dotprod"],
        _ => return None,
    };
    Some((isa, flags))
}

const KNOWN: &[&str] = &[
    "avx2",
    "avx512",
    "avx512vbmi",
    "neon",
    "i2s_avx2",
    "i2s_avx512",
    "tl1_avx2",
    "tl1_avx512vbmi",
    "tl2_avx2",
    "tl2_avx512vbmi",
    "i2s_neon",
    "tl1_neon",
    "tl2_neon",
    "dotprod",
    "i2s_dotprod",
    "tl1_dotprod",
    "tl2_dotprod",
];

/// The shared library's SONAME: `libbitnet_kernels.so.<major>`, or `.so.0.<minor>` while the
/// version is 0.x (where a minor release may break the ABI). Programs linked against the .so
/// load this name at run time; `pkgconfig/install.sh` installs the library under it.
fn soname() -> String {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    if major == "0" {
        format!("libbitnet_kernels.so.0.{minor}")
    } else {
        format!("libbitnet_kernels.so.{major}")
    }
}

fn main() {
    for name in KNOWN {
        println!("cargo::rustc-check-cfg=cfg(bitnet_{name})");
    }
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-env-changed=BITNET_SANITIZE");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{}", soname());
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let dir = match arch.as_str() {
        "x86_64" => "kernels/x86",
        "aarch64" => "kernels/arm",
        _ => return,
    };
    let sanitize = std::env::var("BITNET_SANITIZE")
        .ok()
        .filter(|s| !s.is_empty());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "c"));
    files.sort();
    let mut isas = std::collections::BTreeSet::new();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let Some((isa, flags)) = isa_of(&stem) else {
            panic!(
                "{}: name does not end in a known ISA suffix",
                path.display()
            );
        };
        if compile(&path, &stem, &flags, sanitize.as_deref()) {
            println!("cargo::rustc-cfg=bitnet_{stem}");
            isas.insert(isa.to_string());
        }
    }
    for isa in isas {
        println!("cargo::rustc-cfg=bitnet_{isa}");
    }
}

/// Compiles one file into its own static library; false when the compiler lacks a flag.
fn compile(path: &Path, stem: &str, flags: &[&str], sanitize: Option<&str>) -> bool {
    let mut b = cc::Build::new();
    b.file(path)
        .include("kernels")
        .std("c11")
        .opt_level(3)
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-fno-strict-aliasing");
    for f in flags {
        if !b.is_flag_supported(f).unwrap_or(false) {
            println!(
                "cargo::warning=skipping {}: the C compiler does not accept {f}",
                path.display()
            );
            return false;
        }
        b.flag(f);
    }
    if let Some(s) = sanitize {
        b.flag(format!("-fsanitize={s}"))
            .flag("-fno-omit-frame-pointer")
            .flag("-fno-sanitize-recover=all")
            .opt_level(1);
    }
    b.compile(&format!("bitnet_{stem}"));
    true
}
