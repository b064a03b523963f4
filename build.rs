//! Compiles each C kernel file in `kernels/<arch>/` on its own, with exactly the target flags
//! its name asks for (`*_avx2.c`, `*_avx512.c`, `*_avx512vbmi.c`, `*_neon.c`,
//! `*_dotprod.c`; GCC/Clang or MSVC spelling, `isa_flags` below), and sets
//! `cfg(bitnet_<stem>)` plus `cfg(bitnet_<isa>)` for every file compiled. It never looks at
//! the build host's CPU: the binary chooses a kernel at run time. A file the compiler cannot
//! build (a flag it lacks, or an error) is left out with a `cargo:warning`, never a failed
//! build; the registry then picks the next-best set for that format, scalar last.
//!
//! On Linux the shared library (cdylib) gets a SONAME (`soname()` below).
//!
//! `BITNET_SANITIZE=address,undefined` (any list `-fsanitize=` takes) builds the kernels
//! with sanitizers, for the hardening runs (GCC/Clang). `BITNET_NO_INLINE_ASM=1` builds the
//! intrinsic fallback of the inline-asm loops, the code MSVC compiles (kernels/kernels.h).

use std::path::{Path, PathBuf};

/// The kernel directories, one per target architecture this crate has C kernels for.
const DIRS: &[(&str, &str)] = &[("x86_64", "kernels/x86"), ("aarch64", "kernels/arm")];

/// The flags an ISA suffix needs, for GCC/Clang/clang-cl (`msvc` false) or MSVC's cl.exe.
/// A file gets exactly its suffix's flags, so it can never contain an instruction its
/// registry row does not check for at run time: the AVX-512 TL kernels use VBMI `vpermb`
/// and are gated on `has_avx512vbmi`; the I2_S one must run on VNNI CPUs without VBMI
/// (e.g. Cascade Lake).
/// No kernel uses F16C, so no flag enables it (the registry does not check it).
///
/// MSVC has no per-extension flags: every intrinsic is available whatever `/arch` says, and
/// `/arch` only decides what the compiler may emit on its own. `/arch:AVX2` also allows FMA
/// (checked at run time with AVX2); `/arch:AVX512` allows F, CD, BW, DQ and VL, which every
/// CPU with AVX-512 VNNI has, and defines no `__AVX512VBMI__` (the VBMI files do not rely
/// on it). On aarch64 NEON is the baseline and `/arch:armv8.2` allows the dot product.
/// `None`: not an ISA suffix.
fn isa_flags(isa: &str, msvc: bool) -> Option<Vec<&'static str>> {
    const AVX2: &[&str] = &["-mavx2", "-mfma"];
    const AVX512: &[&str] = &["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"];
    Some(match (isa, msvc) {
        ("avx2", false) => AVX2.to_vec(),
        ("avx512", false) => [AVX2, AVX512].concat(),
        ("avx512vbmi", false) => [AVX2, AVX512, &["-mavx512vbmi"]].concat(),
        ("neon", false) => vec!["-march=armv8-a"],
        ("dotprod", false) => vec!["-march=armv8.2-a+dotprod"],
        ("avx2", true) => vec!["/arch:AVX2"],
        ("avx512" | "avx512vbmi", true) => vec!["/arch:AVX512"],
        ("neon", true) => vec![],
        ("dotprod", true) => vec!["/arch:armv8.2"],
        _ => return None,
    })
}

/// The ISA suffix of a file stem: the text after its last `_`, matched exactly, so
/// `tl1_avx512vbmi` is `avx512vbmi`, never `avx512`.
fn isa_of(stem: &str) -> Option<&str> {
    let (_, isa) = stem.rsplit_once('_')?;
    isa_flags(isa, false).map(|_| isa)
}

/// The C kernel files of a directory (`*.c`), sorted, with their stems.
fn kernel_files(dir: &str) -> Vec<(PathBuf, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p: &PathBuf| p.extension().is_some_and(|e| e == "c"));
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (p, stem)
        })
        .collect()
}

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
    // Every cfg a kernel file can set, for every architecture whatever the target, from the
    // files present: adding a kernel file needs no edit here.
    let mut names = std::collections::BTreeSet::new();
    for (_, dir) in DIRS {
        for (path, stem) in kernel_files(dir) {
            let Some(isa) = isa_of(&stem) else {
                panic!(
                    "{}: name does not end in a known ISA suffix",
                    path.display()
                );
            };
            names.insert(stem.clone());
            names.insert(isa.to_string());
        }
    }
    for name in &names {
        println!("cargo::rustc-check-cfg=cfg(bitnet_{name})");
    }
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-env-changed=BITNET_SANITIZE");
    println!("cargo::rerun-if-env-changed=BITNET_NO_INLINE_ASM");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{}", soname());
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let Some(&(_, dir)) = DIRS.iter().find(|(a, _)| *a == arch) else {
        return;
    };
    let opts = Options {
        sanitize: std::env::var("BITNET_SANITIZE")
            .ok()
            .filter(|s| !s.is_empty()),
        // Forces the intrinsic fallback of the few inline-asm loops (kernels/kernels.h), as
        // MSVC builds them, so that path can be tested with GCC or Clang.
        no_inline_asm: std::env::var("BITNET_NO_INLINE_ASM").is_ok_and(|v| v == "1"),
    };
    let mut isas = std::collections::BTreeSet::new();
    for (path, stem) in kernel_files(dir) {
        let isa = isa_of(&stem).unwrap();
        if compile(&path, &stem, isa, &opts) {
            println!("cargo::rustc-cfg=bitnet_{stem}");
            isas.insert(isa.to_string());
        }
    }
    for isa in isas {
        println!("cargo::rustc-cfg=bitnet_{isa}");
    }
}

struct Options {
    sanitize: Option<String>,
    no_inline_asm: bool,
}

/// Compiles one file into its own static library. False, with a warning that names the
/// file, the compiler and the consequence, when the compiler lacks a flag or the file does
/// not compile: the build goes on without it, and at run time the registry uses the
/// next-best kernel set for that format (scalar last).
fn compile(path: &Path, stem: &str, isa: &str, opts: &Options) -> bool {
    let mut b = cc::Build::new();
    b.file(path)
        .include("kernels")
        .std("c11")
        .opt_level(3)
        .warnings(true)
        .extra_warnings(true);
    let compiler = match b.try_get_compiler() {
        Ok(c) => c,
        Err(e) => {
            skip(path, "no C compiler", &e.to_string());
            return false;
        }
    };
    // cl.exe spells its flags its own way; clang-cl (MSVC-like too) takes the GCC-style
    // `-m` flags, and needs them: like Clang, it gates each intrinsic on its feature, and
    // its /arch:AVX512 does not enable VNNI or VBMI.
    let msvc = compiler.is_like_msvc() && !compiler.is_like_clang_cl();
    let name = compiler.path().display().to_string();
    if !msvc {
        b.flag_if_supported("-fno-strict-aliasing");
    }
    for f in isa_flags(isa, msvc).unwrap() {
        match b.is_flag_supported(f) {
            Ok(true) => {}
            Ok(false) => {
                skip(path, &name, &format!("it does not accept {f}"));
                return false;
            }
            Err(e) => {
                skip(path, &name, &format!("it could not be run ({e})"));
                return false;
            }
        }
        b.flag(f);
    }
    if opts.no_inline_asm {
        b.define("BITNET_NO_INLINE_ASM", None);
    }
    if let Some(s) = &opts.sanitize {
        if msvc {
            println!(
                "cargo::warning=BITNET_SANITIZE is for GCC/Clang: {} is built by {name} \
                 without sanitizers",
                path.display()
            );
        } else {
            b.flag(format!("-fsanitize={s}"))
                .flag("-fno-omit-frame-pointer")
                .flag("-fno-sanitize-recover=all")
                .opt_level(1);
        }
    }
    match b.try_compile(&format!("bitnet_{stem}")) {
        Ok(()) => true,
        Err(e) => {
            skip(path, &name, &format!("it failed to compile ({e})"));
            false
        }
    }
}

/// The one warning for a kernel file left out (the CI's cross-build step greps for
/// "kernel file skipped").
fn skip(path: &Path, compiler: &str, why: &str) {
    let why = why.replace('\n', " ");
    println!(
        "cargo::warning=kernel file skipped: {} with C compiler {compiler}: {why}. \
         Its kernels are left out of this build; at run time the registry uses the next-best \
         kernel set for that format (scalar last).",
        path.display()
    );
}
