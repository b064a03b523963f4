//! Compiles the C programs of `tests/c/` (and the example of `examples/c/`) against
//! `include/bitnet_kernels.h` with `-std=c11 -Wall -Wextra -Werror -pedantic` (the happy path
//! also as C++17), links each once against `libbitnet_kernels.a` and once against
//! `libbitnet_kernels.so`, and runs them. For the shared link it first makes the SONAME link
//! (`libbitnet_kernels.so.0.<minor> -> libbitnet_kernels.so`) next to the library.
//!
//! `cargo test` builds the library's `staticlib` and `cdylib` along with the `rlib` these
//! tests link (one rustc invocation makes all three), next to the `deps/` folder of this test
//! binary. `CC` / `CXX` pick the compilers (default `cc` / `c++`).
//! `BITNET_CAPI_SANITIZE=address,undefined` builds the C programs with those sanitizers
//! (`.ci/run` does, where the compiler supports them); LeakSanitizer then also checks that
//! nothing the library allocated leaked.
//!
//! `pkgconfig/install.sh` is tested too: install into a temporary prefix, build the example
//! with exactly the flags `pkg-config` gives for `bitnet_kernels` (shared) and
//! `bitnet_kernels_static`, and run both with no loader settings (skipped, with a note,
//! without `pkg-config`).
//!
//! Linux only (the native libraries of a static link are Linux's); skipped, with a note, when
//! the C compiler targets another architecture than this test (cross builds under qemu).

#![cfg(all(target_os = "linux", not(miri)))]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs`
/// prints on x86_64 and aarch64 Linux (glibc): the system libraries Rust's std needs
/// (`pkgconfig/install.sh` writes the same list into `bitnet_kernels_static.pc`).
const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

const STRICT: &[&str] = &["-Wall", "-Wextra", "-Werror", "-pedantic"];

#[derive(Clone, Copy, Debug)]
enum Link {
    Static,
    Shared,
}

#[derive(Clone, Copy, Debug)]
enum Lang {
    C11,
    Cxx17,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`: where cargo puts the library artifacts for this test binary.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let dir = deps.parent().expect("profile dir").to_path_buf();
    for name in ["libbitnet_kernels.a", "libbitnet_kernels.so"] {
        assert!(
            dir.join(name).exists() || deps.join(name).exists(),
            "{} not found: cargo should have built the staticlib and cdylib",
            dir.join(name).display()
        );
    }
    // The uplifted copies are hard links of deps/; prefer deps/ when both exist, so a stale
    // uplifted copy can never be picked up.
    if deps.join("libbitnet_kernels.a").exists() && deps.join("libbitnet_kernels.so").exists() {
        deps.to_path_buf()
    } else {
        dir
    }
}

/// The shared library's SONAME, as `build.rs` sets it: `.so.0.<minor>` for 0.x versions.
fn soname() -> String {
    match env!("CARGO_PKG_VERSION_MAJOR") {
        "0" => format!("libbitnet_kernels.so.0.{}", env!("CARGO_PKG_VERSION_MINOR")),
        major => format!("libbitnet_kernels.so.{major}"),
    }
}

/// Makes `dir/<SONAME>` a symlink to `libbitnet_kernels.so` next to it: a program linked
/// against the .so asks the loader for the SONAME, which cargo does not create. Safe when
/// several tests do it at once (a link under a unique name, renamed into place).
fn soname_link(dir: &Path) {
    let link = dir.join(soname());
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new("libbitnet_kernels.so")) {
        return;
    }
    let tmp = dir.join(format!(
        ".{}.{}.{:?}",
        soname(),
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink("libbitnet_kernels.so", &tmp).expect("creating the SONAME link");
    std::fs::rename(&tmp, &link).expect("moving the SONAME link into place");
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi");
    std::fs::create_dir_all(&d).expect("creating the output folder");
    d
}

fn compiler(lang: Lang) -> String {
    let (var, default) = match lang {
        Lang::C11 => ("CC", "cc"),
        Lang::Cxx17 => ("CXX", "c++"),
    };
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn sanitize_flags() -> Vec<String> {
    match std::env::var("BITNET_CAPI_SANITIZE") {
        Ok(s) if !s.is_empty() => vec![
            format!("-fsanitize={s}"),
            "-fno-omit-frame-pointer".into(),
            "-fno-sanitize-recover=all".into(),
            "-g".into(),
        ],
        _ => vec![],
    }
}

/// False (with a note) when the C compiler builds for another architecture than this test.
fn compiler_matches_target() -> bool {
    let cc = compiler(Lang::C11);
    let machine = Command::new(&cc)
        .arg("-dumpmachine")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let arch = std::env::consts::ARCH;
    let ok = machine.starts_with(arch);
    if !ok {
        eprintln!("skipped: `{cc} -dumpmachine` is '{machine}', this test runs on {arch}");
    }
    ok
}

/// Compiles and links one program; returns the executable's path.
fn build(src: &str, lang: Lang, link: Link, strict: bool) -> PathBuf {
    let lib = lib_dir();
    let name = Path::new(src).file_stem().unwrap().to_string_lossy();
    let exe = out_dir().join(format!("{name}-{lang:?}-{link:?}").to_lowercase());
    let mut cmd = Command::new(compiler(lang));
    match lang {
        Lang::C11 => cmd.args(["-std=c11", "-x", "c"]),
        Lang::Cxx17 => cmd.args(["-std=c++17", "-x", "c++"]),
    };
    if strict {
        cmd.args(STRICT);
    }
    cmd.args(["-O1", "-I"])
        .arg(root().join("include"))
        .arg(root().join(src))
        .args(["-x", "none"])
        .args(sanitize_flags())
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Static => {
            cmd.arg(lib.join("libbitnet_kernels.a"));
            cmd.args(NATIVE_STATIC_LIBS);
        }
        Link::Shared => {
            soname_link(&lib);
            cmd.arg("-L")
                .arg(&lib)
                .arg("-lbitnet_kernels")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
            cmd.args(["-lpthread", "-lm"]);
        }
    }
    let out = cmd.output().expect("running the C compiler");
    assert!(
        out.status.success(),
        "compiling {src} failed:\n{cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs a program (optionally with `BITNET_KERNEL` set), asserting it exits with 0.
fn run(exe: &Path, args: &[&str], kernel: Option<&str>) -> String {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    if let Some(k) = kernel {
        cmd.env("BITNET_KERNEL", k);
    }
    let out = cmd.output().expect("running a C program");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} (BITNET_KERNEL={kernel:?}) failed with {}:\n{stdout}{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!(
        "{} {args:?} (BITNET_KERNEL={kernel:?}): {stdout}",
        exe.display()
    );
    stdout
}

/// The names of the kernel sets this CPU can run (the one place this file reads the
/// registry).
fn available_kernel_names() -> Vec<&'static str> {
    bitnet_kernels::kernels::available()
        .map(|k| k.name())
        .collect()
}

/// The happy path with the default kernel, then with every kernel set this CPU can run.
fn happy(lang: Lang, link: Link) {
    let exe = build("tests/c/happy.c", lang, link, true);
    let out = run(&exe, &[], None);
    assert!(out.contains("checks passed"), "{out}");
    for name in available_kernel_names() {
        let out = run(&exe, &[], Some(name));
        assert!(out.contains(&format!("(kernel {name},")), "{out}");
    }
}

/// The table of bad calls, and the same products with a kernel that cannot run.
fn bad_calls(link: Link) {
    let exe = build("tests/c/bad_calls.c", Lang::C11, link, true);
    let out = run(&exe, &[], None);
    assert!(out.contains("outputs untouched"), "{out}");
    run(&exe, &["kernel-unavailable"], Some("no-such-kernel"));
}

#[test]
fn c_happy_path_static() {
    if compiler_matches_target() {
        happy(Lang::C11, Link::Static);
    }
}

#[test]
fn c_happy_path_shared() {
    if compiler_matches_target() {
        happy(Lang::C11, Link::Shared);
    }
}

#[test]
fn cxx_happy_path_static_and_shared() {
    if compiler_matches_target() {
        happy(Lang::Cxx17, Link::Static);
        happy(Lang::Cxx17, Link::Shared);
    }
}

#[test]
fn c_bad_calls_static() {
    if compiler_matches_target() {
        bad_calls(Link::Static);
    }
}

#[test]
fn c_bad_calls_shared() {
    if compiler_matches_target() {
        bad_calls(Link::Shared);
    }
}

#[test]
fn c_example_builds_and_runs() {
    if compiler_matches_target() {
        for link in [Link::Shared, Link::Static] {
            let exe = build("examples/c/gemv.c", Lang::C11, link, true);
            let out = run(&exe, &[], None);
            assert!(out.starts_with("bitnet-kernels "), "{out}");
        }
    }
}

/// Output of a command that must succeed.
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The shared libraries an executable asks the loader for (`readelf -d`), or None (with a
/// note) when binutils' readelf is not installed.
fn needed_libs(exe: &Path) -> Option<Vec<String>> {
    let out = match Command::new("readelf").arg("-d").arg(exe).output() {
        Ok(o) if o.status.success() => o,
        _ => {
            eprintln!("note: readelf is not installed; NEEDED entries not checked");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
            .collect(),
    )
}

/// The C user's path, as docs/c-api.md gives it: `pkgconfig/install.sh PREFIX`, then
/// `PKG_CONFIG_PATH=PREFIX/lib/pkgconfig`, then the example built with
/// `pkg-config --cflags --libs bitnet_kernels` (shared) and `... bitnet_kernels_static`
/// (static), and both run with no loader settings: the shared one finds the library through
/// the rpath its .pc file gives, the static one needs no libbitnet_kernels.so at all.
#[test]
fn pkg_config_install_builds_the_example() {
    if !compiler_matches_target() {
        return;
    }
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: pkg-config is not installed");
        return;
    }
    let prefix = out_dir().join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    output(
        Command::new("sh")
            .arg(root().join("pkgconfig/install.sh"))
            .arg(&prefix)
            .arg(lib_dir()),
    );
    let pc_path = prefix.join("lib/pkgconfig");
    let pkg = |args: &[&str], name: &str| -> Vec<String> {
        output(
            Command::new("pkg-config")
                .env("PKG_CONFIG_PATH", &pc_path)
                .args(args)
                .arg(name),
        )
        .split_whitespace()
        .map(String::from)
        .collect()
    };
    for name in ["bitnet_kernels", "bitnet_kernels_static"] {
        assert_eq!(pkg(&["--modversion"], name), [env!("CARGO_PKG_VERSION")]);
    }
    let lib = prefix.join("lib");
    let libdir = pkg(&["--variable=libdir"], "bitnet_kernels").concat();
    assert_eq!(Path::new(&libdir), lib);

    // Exactly the documented commands, nothing added.
    let build_with = |exe_name: &str, pkg_args: &[&str], name: &str| {
        let exe = out_dir().join(exe_name);
        output(
            Command::new(compiler(Lang::C11))
                .arg("-std=c11")
                .args(STRICT)
                .arg(root().join("examples/c/gemv.c"))
                .args(pkg(pkg_args, name))
                .arg("-o")
                .arg(&exe),
        );
        exe
    };
    let run_plain = |exe: &Path| {
        let out = Command::new(exe)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // Shared: the library is installed under its SONAME, with the libbitnet_kernels.so link
    // for the linker, and the .pc file gives an rpath to libdir.
    assert!(lib.join(soname()).is_file(), "{} not installed", soname());
    assert_eq!(
        std::fs::read_link(lib.join("libbitnet_kernels.so")).expect("the link for the linker"),
        Path::new(&soname())
    );
    let libs = pkg(&["--libs"], "bitnet_kernels");
    assert!(libs.contains(&format!("-Wl,-rpath,{libdir}")), "{libs:?}");
    let shared = build_with(
        "gemv-pkg-config-shared",
        &["--cflags", "--libs"],
        "bitnet_kernels",
    );

    // Static: the archive itself and its system libraries, with or without --static.
    let static_libs = pkg(&["--libs"], "bitnet_kernels_static");
    assert_eq!(
        static_libs,
        pkg(&["--static", "--libs"], "bitnet_kernels_static")
    );
    let mut want = vec![format!("-L{libdir}"), "-l:libbitnet_kernels.a".to_string()];
    want.extend(NATIVE_STATIC_LIBS.iter().map(|l| l.to_string()));
    assert_eq!(static_libs, want);
    let static_exe = build_with(
        "gemv-pkg-config-static",
        &["--cflags", "--libs"],
        "bitnet_kernels_static",
    );

    // The shared program runs with only the SONAME file (what a runtime-only install has)
    // and no LD_LIBRARY_PATH: the rpath finds it.
    std::fs::remove_file(lib.join("libbitnet_kernels.so")).unwrap();
    let (ok, out) = run_plain(&shared);
    assert!(ok && out.starts_with("bitnet-kernels "), "{out}");
    if let Some(needed) = needed_libs(&shared) {
        assert!(needed.contains(&soname()), "{needed:?}");
    }
    if let Some(needed) = needed_libs(&static_exe) {
        assert!(
            !needed.iter().any(|l| l.starts_with("libbitnet_kernels")),
            "the static program asks for {needed:?}"
        );
    }

    // With the shared library gone, the static program still runs and the shared one no
    // longer does (so the run above really used the installed library).
    std::fs::remove_file(lib.join(soname())).unwrap();
    let (ok, out) = run_plain(&static_exe);
    assert!(ok && out.starts_with("bitnet-kernels "), "{out}");
    assert!(
        !run_plain(&shared).0,
        "the shared program ran without its library"
    );
}
