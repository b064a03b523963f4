//! The `c_kernels!` table macro used by the per-architecture modules (`x86.rs`, `arm.rs`).

/// One row per C kernel file: declares the file's two entry points and a
/// `const NAME: Option<FormatKernels>` for them, which is `None` when `build.rs` did not
/// compile the file (it sets `cfg(bitnet_<file stem>)` for each file it compiled).
///
/// ```text
/// c_kernels! {
///     // constant   cfg of the file     GEMV symbol             GEMM symbol             extra CPU check
///     I2S_AVX2:     bitnet_i2s_avx2  => bitnet_i2s_gemv_avx2, bitnet_i2s_gemm_avx2 if cpu::always;
/// }
/// ```
///
/// The extra check is what the file needs beyond its kernel set's own check (e.g. VBMI for
/// the AVX-512 lookup-table files); it comes from [`super::cpu`]. The symbols' signature is
/// fixed here, once, from the registry's `RawGemv` / `RawGemm`, so a row cannot get it wrong:
/// a row ending in `=> strided` (I2_S_COL) takes their `rows_padded` argument, the others
/// do not and are called through shims that drop it.
///
/// A lookup-table file also names its one-pass entry points after `tables`: the table bytes
/// a step (a C constant), the table builder and the GEMV from built tables
/// ([`super::TableKernels`]).
macro_rules! c_kernels {
    ($($konst:ident : $cfg:ident => $gemv:ident, $gemm:ident if $avail:path
       $(, tables $step:ident, $build:ident, $gtab:ident)? $(=> $strided:ident)?;)*) => {$(
        $(
        #[cfg($cfg)]
        extern "C" {
            static $step: usize;
            fn $build(x: *const i8, kp: usize, tab: *mut u8);
            fn $gtab(w: *const u8, kp: usize, tab: *const u8, rb: usize, re: usize, y: *mut i32);
        }
        )?
        #[cfg($cfg)]
        const $konst: Option<FormatKernels> = {
            c_kernels!(@entry $gemv, $gemm $(, $strided)?);
            Some(FormatKernels {
                gemv: entry::gemv,
                gemm: entry::gemm,
                // SAFETY (the static): a constant defined by the C file, never written.
                tables: c_kernels!(@tables $(unsafe { $step }, $build, $gtab)?),
                is_available: $avail,
                i4: None,
            })
        };
        #[cfg(not($cfg))]
        const $konst: Option<FormatKernels> = None;
    )*};
    (@tables) => { None };
    (@tables $step:expr, $build:ident, $gtab:ident) => {
        Some(TableKernels { step_bytes: || $step, build: $build, gemv: $gtab })
    };
    // A file whose layout needs the padded row count (I2_S_COL: the column stride) takes the
    // registry's signature as it is.
    (@entry $gemv:ident, $gemm:ident, strided) => {
        mod entry {
            extern "C" {
                pub(super) fn $gemv(w: *const u8, kp: usize, rows_padded: usize, x: *const i8,
                                    rb: usize, re: usize, y: *mut i32);
                pub(super) fn $gemm(w: *const u8, kp: usize, rows_padded: usize, x: *const i8,
                                    n: usize, rb: usize, re: usize, y: *mut i32);
            }
            pub(super) use $gemv as gemv;
            pub(super) use $gemm as gemm;
        }
    };
    // The others (row-major tiles: the offset of a tile follows from kp alone) are declared
    // without it, behind thin shims with the registry's signature.
    (@entry $gemv:ident, $gemm:ident) => {
        mod entry {
            extern "C" {
                fn $gemv(w: *const u8, kp: usize, x: *const i8, rb: usize, re: usize, y: *mut i32);
                fn $gemm(w: *const u8, kp: usize, x: *const i8, n: usize, rb: usize, re: usize,
                         y: *mut i32);
            }
            /// # Safety
            /// The contract of `RawGemv`.
            pub(super) unsafe extern "C" fn gemv(w: *const u8, kp: usize, _rows_padded: usize,
                                                 x: *const i8, rb: usize, re: usize, y: *mut i32) {
                // SAFETY: forwarded contract.
                unsafe { $gemv(w, kp, x, rb, re, y) }
            }
            /// # Safety
            /// The contract of `RawGemm`.
            pub(super) unsafe extern "C" fn gemm(w: *const u8, kp: usize, _rows_padded: usize,
                                                 x: *const i8, n: usize, rb: usize, re: usize,
                                                 y: *mut i32) {
                // SAFETY: forwarded contract.
                unsafe { $gemm(w, kp, x, n, rb, re, y) }
            }
        }
    };
}

/// One row per 3-bit KV-cache kernel file (`kernels/*/kv3_<isa>.c`): declares its two entry
/// points with the registry's [`super::RawKvDot`] / [`super::RawKvWsum`] signatures (and,
/// after `scores`, its fused dot and scores, [`super::RawKvScores`]) and a
/// `const NAME: Option<KvKernels>`, `None` when `build.rs` did not compile the file.
macro_rules! kv_kernels {
    ($($konst:ident : $cfg:ident => $dot:ident, $wsum:ident $(, scores $scores:ident)?
       if $avail:path;)*) => {$(
        #[cfg($cfg)]
        extern "C" {
            fn $dot(
                blocks: *const u8,
                first: usize,
                n: usize,
                groups: usize,
                q: *const i16,
                qs: usize,
                nq: usize,
                out: *mut i32,
                next: *const u8,
                next_len: usize,
            );
            fn $wsum(
                blocks: *const u8,
                first: usize,
                n: usize,
                groups: usize,
                w: *const i8,
                f: *const f32,
                nq: usize,
                acc: *mut f32,
                accs: usize,
                next: *const u8,
                next_len: usize,
            );
            $(
            fn $scores(
                blocks: *const u8,
                first: usize,
                n: usize,
                groups: usize,
                q: *const i16,
                qs: usize,
                nq: usize,
                ks: *const u16,
                sum: *const i32,
                fac: *const f32,
                out: *mut f32,
                os: usize,
                mx: *mut f32,
                next: *const u8,
                next_len: usize,
                next2: *const u8,
                next2_len: usize,
            );
            )?
        }
        #[cfg($cfg)]
        const $konst: Option<KvKernels> = Some(KvKernels {
            dot: $dot,
            wsum: $wsum,
            scores: kv_kernels!(@opt $($scores)?),
            is_available: $avail,
        });
        #[cfg(not($cfg))]
        const $konst: Option<KvKernels> = None;
    )*};
    (@opt) => { None };
    (@opt $scores:ident) => { Some($scores) };
}
