//! The committed C header must be what cbindgen generates today from `src/capi/` and
//! `cbindgen.toml`, with the version macros taken from `Cargo.toml`.
//! `BITNET_BLESS=1` rewrites it instead of failing.
//!
//! Only `src/capi/` is parsed (not the whole crate, as `cbindgen::generate` would): every
//! export lives there, and public constants added elsewhere in the crate must not leak into
//! the C API, nor make the header stale behind another module's back.

#![cfg(not(miri))]

use std::path::Path;

const REGENERATE: &str = "BITNET_BLESS=1 cargo test --release --test header_up_to_date";

/// The header as cbindgen generates it now.
fn generate(root: &Path) -> String {
    let mut config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .expect("cbindgen.toml does not parse");
    config.after_includes = Some(format!(
        "/* The version of the header; bitnet_version() returns the library's. */\n\
         #define BITNET_KERNELS_VERSION \"{}\"\n\
         #define BITNET_KERNELS_VERSION_MAJOR {}\n\
         #define BITNET_KERNELS_VERSION_MINOR {}\n\
         #define BITNET_KERNELS_VERSION_PATCH {}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/capi/mod.rs"))
        .generate()
        .expect("cbindgen failed on src/capi/");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("include/bitnet_kernels.h");
    let fresh = generate(root);
    if std::env::var_os("BITNET_BLESS").is_some_and(|v| v != "0") {
        std::fs::write(&path, &fresh).expect("writing the header");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()))
            + 1;
        panic!(
            "include/bitnet_kernels.h is stale (first difference at line {line}).\n\
             Regenerate it with\n    {REGENERATE}\nand commit the result."
        );
    }
}

#[test]
fn header_has_the_contract() {
    // The names other runtimes code against (docs/c-api.md) must stay in the header.
    // Whitespace collapsed: cbindgen breaks long signatures over lines.
    let h = generate(Path::new(env!("CARGO_MANIFEST_DIR")))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "#ifndef BITNET_KERNELS_H",
        "extern \"C\" {",
        "const char *bitnet_last_error(void);",
        "typedef struct BitnetMatrix BitnetMatrix;",
        "BITNET_STATUS_OK = 0,",
        "BITNET_FORMAT_I2S = 0,",
        "BITNET_FORMAT_TL1 = 1,",
        "BITNET_FORMAT_TL2 = 2,",
        "bitnet_matrix_from_f32(const float *w,",
        "bitnet_matrix_from_ternary(const int8_t *trits,",
        "void bitnet_matrix_free(struct BitnetMatrix *m);",
        "bitnet_gemv_i8(const struct BitnetMatrix *m,",
        "bitnet_gemv_f32(const struct BitnetMatrix *m,",
        "bitnet_gemm_f32(const struct BitnetMatrix *m, const float *x, size_t x_len, size_t n, \
         float *y, size_t y_len);",
        "bitnet_gemm_i8(const struct BitnetMatrix *m, const int8_t *x, size_t x_len, size_t n, \
         int32_t *y, size_t y_len);",
        "BITNET_STATUS_INTERNAL = 10,",
        "BITNET_STATUS_MISALIGNED_POINTER = 11,",
        "const char *bitnet_kernel_name(void);",
        "const char *bitnet_status_message(int status);",
        "#define BITNET_KERNELS_VERSION \"",
    ] {
        assert!(h.contains(needle), "the header lacks `{needle}`");
    }
}
