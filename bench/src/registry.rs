//! Everything this crate reads from the library's kernel registry, in one place: which
//! kernel sets this CPU can run, which formats they have their own kernels for, and calls
//! through one chosen set. The report, the timing programs and the benches go through
//! [`Kernel`] and never touch `bitnet_kernels::kernels` themselves, so a change to the
//! registry's API is one edit here.

use std::ops::Range;

use bitnet_kernels::kernels::{self, KernelSet};
use bitnet_kernels::{Format, Result, TernaryMatrix};

/// Below this many multiply-adds the library's products run on the calling thread; the
/// dense baselines use the same threshold so that they thread alike.
pub const PARALLEL_MIN_MACS: usize = bitnet_kernels::matmul::PARALLEL_MIN_MACS;

/// One kernel set of the registry, called directly (not through `BITNET_KERNEL`'s choice).
#[derive(Clone, Copy)]
pub struct Kernel(&'static KernelSet);

impl Kernel {
    /// `"avx512"`, `"avx2"`, `"neon-dotprod"`, `"neon"`, `"scalar"`, ...
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Whether this is the scalar reference.
    pub fn is_scalar(self) -> bool {
        self.name() == scalar().name()
    }

    /// Exact int32 accumulators of `m` times one int8 row, all rows, on rayon's pool.
    pub fn gemv_i8(self, m: &TernaryMatrix, x: &[i8], y: &mut [i32]) -> Result<()> {
        self.0.gemv_i8(m, x, y)
    }

    /// As [`Kernel::gemv_i8`] for the rows in `rows`, on the calling thread.
    pub fn gemv_i8_rows(
        self,
        m: &TernaryMatrix,
        x: &[i8],
        rows: Range<usize>,
        y: &mut [i32],
    ) -> Result<()> {
        self.0.gemv_i8_rows(m, x, rows, y)
    }

    /// `n` int8 activation rows (`x`: `n × cols`), all rows of `m`, on rayon's pool.
    pub fn gemm_i8(self, m: &TernaryMatrix, x: &[i8], n: usize, y: &mut [i32]) -> Result<()> {
        self.0.gemm_i8(m, x, n, y)
    }

    /// As [`Kernel::gemm_i8`] for the rows in `rows`, on the calling thread.
    pub fn gemm_i8_rows(
        self,
        m: &TernaryMatrix,
        x: &[i8],
        n: usize,
        rows: Range<usize>,
        y: &mut [i32],
    ) -> Result<()> {
        self.0.gemm_i8_rows(m, x, n, rows, y)
    }

    /// The f32-in, f32-out product users call (`ternary_gemm`, here with this set; `n = 1`
    /// is `ternary_gemv`): quantize, multiply, rescale, on rayon's pool.
    pub fn gemm_f32(self, m: &TernaryMatrix, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
        self.0.gemm_f32(m, x, n, y)
    }

    /// As [`Kernel::gemm_f32`] for the rows in `rows`, on the calling thread
    /// (`ternary_gemm_rows`).
    pub fn gemm_f32_rows(
        self,
        m: &TernaryMatrix,
        x: &[f32],
        n: usize,
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<()> {
        self.0.gemm_f32_rows(m, x, n, rows, y)
    }
}

/// Every kernel set this CPU can run, best first (scalar last).
pub fn available() -> Vec<Kernel> {
    kernels::available().map(Kernel).collect()
}

/// Names of [`available`].
pub fn available_names() -> Vec<&'static str> {
    available().into_iter().map(Kernel::name).collect()
}

/// Every kernel set this CPU can run that has its own kernels for `format` (scalar
/// included), so a missing SIMD kernel is never silently measured as another set's.
pub fn kernel_sets(format: Format) -> Vec<Kernel> {
    kernels::available()
        .filter(|k| k.has_own(format))
        .map(Kernel)
        .collect()
}

/// The formats this build can pack.
pub fn formats() -> Vec<Format> {
    Format::ALL
        .into_iter()
        .filter(|f| f.layout(1, 1).is_ok())
        .collect()
}

/// The scalar reference, which runs every format.
pub fn scalar() -> Kernel {
    Kernel(&kernels::SCALAR)
}

/// The set the library's own calls use (`BITNET_KERNEL`, else the best available).
pub fn active() -> Result<Kernel> {
    kernels::active().map(Kernel)
}

/// [`active`]'s name, or the error `BITNET_KERNEL` caused, as text for a report.
pub fn active_name() -> String {
    match kernels::kernel_name() {
        Ok(k) => k.to_string(),
        Err(e) => format!("error: {e}"),
    }
}
