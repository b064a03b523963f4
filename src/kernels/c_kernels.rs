//! The `c_kernels!` macro shared by the per-architecture kernel modules (`x86.rs`, `arm.rs`).

/// Declares a C kernel file's two entry points and a `FormatKernels` constant for them,
/// or `None` when `build.rs` did not compile that file.
macro_rules! c_kernels {
    ($cfg:ident, $konst:ident, $gemv:ident, $gemm:ident, $avail:expr) => {
        #[cfg($cfg)]
        extern "C" {
            fn $gemv(w: *const u8, kp: usize, x: *const i8, rb: usize, re: usize, y: *mut i32);
            fn $gemm(
                w: *const u8,
                kp: usize,
                x: *const i8,
                n: usize,
                rb: usize,
                re: usize,
                y: *mut i32,
            );
        }
        #[cfg($cfg)]
        const $konst: Option<FormatKernels> = Some(FormatKernels {
            gemv: $gemv,
            gemm: $gemm,
            is_available: $avail,
        });
        #[cfg(not($cfg))]
        const $konst: Option<FormatKernels> = None;
    };
}
