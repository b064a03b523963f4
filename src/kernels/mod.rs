//! The kernel registry and run-time dispatch (after BLAKE3 and memchr).
//!
//! [`KERNELS`] lists every kernel set built into this binary, best first. The first one the
//! CPU can run is chosen once, on first use, and cached; `BITNET_KERNEL=scalar|avx2|avx512|neon|neon-dotprod`
//! forces a set, and naming one this CPU or build cannot run is an error every call reports,
//! never a silent fallback. Tests, benches and the report iterate [`KERNELS`], so adding a
//! variant is one C file (compiled by `build.rs` from its name), one wrapper row, one entry here.
//!
//! Every kernel, C or Rust, has the raw signature [`RawGemv`] / [`RawGemm`]; the safe methods
//! of [`KernelSet`] check every length before calling one.

use std::ops::Range;
use std::sync::OnceLock;

use crate::error::{check_len, Error, Result};
use crate::format::{Format, TernaryMatrix};

#[macro_use]
mod c_kernels;
#[cfg(target_arch = "aarch64")]
pub mod arm;
pub mod scalar;
pub mod scalar_tl;
#[cfg(target_arch = "x86_64")]
pub mod x86;

/// One activation row times the rows `[row_begin, row_end)` of a packed matrix.
///
/// # Contract (for every implementation, C or Rust)
/// - `w` is the start of the whole packed matrix (64-byte aligned), in the layout of the
///   format the kernel is registered for, whose padded column count is `kp`;
/// - `row_begin < row_end <= rows_padded`, both multiples of the format's row tile;
/// - `x` holds `kp` int8 activations, zero beyond the matrix's real columns;
/// - `y` has room for `row_end - row_begin` int32: `y[r - row_begin]` receives the exact
///   `sum_j t[r][j] * x[j]`.
pub type RawGemv = unsafe extern "C" fn(
    w: *const u8,
    kp: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
);

/// `n` activation rows (each `kp` int8, consecutive) times rows `[row_begin, row_end)`;
/// `y[j * (row_end - row_begin) + (r - row_begin)]` receives row `r`'s result for
/// activation row `j`. Otherwise the contract of [`RawGemv`].
pub type RawGemm = unsafe extern "C" fn(
    w: *const u8,
    kp: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
);

/// The kernels of one set for one format.
#[derive(Clone, Copy)]
pub struct FormatKernels {
    /// One activation row.
    pub gemv: RawGemv,
    /// Several activation rows at once, reusing each unpacked weight block across them.
    pub gemm: RawGemm,
    /// Run-time check of the CPU features these two need beyond the set's own.
    pub is_available: fn() -> bool,
}

/// A set of kernels for one instruction set.
pub struct KernelSet {
    /// `scalar`, `avx2`, `avx512` or `neon`: the name `BITNET_KERNEL` takes.
    pub name: &'static str,
    /// Run-time CPU check for the set.
    pub is_available: fn() -> bool,
    /// I2_S kernels, if this set has them.
    pub i2s: Option<FormatKernels>,
    /// TL1 kernels, if this set has them.
    pub tl1: Option<FormatKernels>,
    /// TL2 kernels, if this set has them.
    pub tl2: Option<FormatKernels>,
}

fn always() -> bool {
    true
}

/// The reference set: plain Rust, every CPU.
pub static SCALAR: KernelSet = KernelSet {
    name: "scalar",
    is_available: always,
    i2s: Some(FormatKernels {
        gemv: scalar::i2s_gemv,
        gemm: scalar::i2s_gemm,
        is_available: always,
    }),
    tl1: Some(FormatKernels {
        gemv: scalar_tl::tl1_gemv,
        gemm: scalar_tl::tl1_gemm,
        is_available: always,
    }),
    tl2: Some(FormatKernels {
        gemv: scalar_tl::tl2_gemv,
        gemm: scalar_tl::tl2_gemm,
        is_available: always,
    }),
};

/// Every kernel set built into this binary, best first; the last is always [`SCALAR`].
pub static KERNELS: &[&KernelSet] = &[
    #[cfg(all(target_arch = "x86_64", bitnet_avx512))]
    &x86::AVX512,
    #[cfg(all(target_arch = "x86_64", bitnet_avx2))]
    &x86::AVX2,
    #[cfg(all(target_arch = "aarch64", bitnet_dotprod))]
    &arm::NEON_DOTPROD,
    #[cfg(all(target_arch = "aarch64", bitnet_neon))]
    &arm::NEON,
    &SCALAR,
];

/// The sets this CPU can run, best first.
pub fn available() -> impl Iterator<Item = &'static KernelSet> {
    KERNELS.iter().copied().filter(|k| (k.is_available)())
}

/// The set with this name, if it is built in and this CPU can run it.
pub fn by_name(name: &str) -> Result<&'static KernelSet> {
    let known = KERNELS
        .iter()
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ");
    match KERNELS.iter().find(|k| k.name.eq_ignore_ascii_case(name)) {
        Some(k) if (k.is_available)() => Ok(k),
        Some(k) => Err(Error::KernelUnavailable(format!(
            "kernel '{}' is built in but this CPU lacks the instructions it needs",
            k.name
        ))),
        None => Err(Error::KernelUnavailable(format!(
            "no kernel named '{name}' in this build (built in: {known})"
        ))),
    }
}

/// The set every call uses: `BITNET_KERNEL` if set, else the best this CPU can run.
/// Decided once per process.
pub fn active() -> Result<&'static KernelSet> {
    static ACTIVE: OnceLock<Result<&'static KernelSet>> = OnceLock::new();
    ACTIVE
        .get_or_init(|| match std::env::var("BITNET_KERNEL") {
            Ok(name) if !name.is_empty() => by_name(&name),
            _ => Ok(available().next().expect("scalar is always available")),
        })
        .clone()
}

/// The name of the kernel set in use (`"avx512"`, `"scalar"`, ...), or the error that
/// `BITNET_KERNEL` caused.
pub fn kernel_name() -> Result<&'static str> {
    active().map(|k| k.name)
}

impl KernelSet {
    /// This set's own kernels for `format`, if present and runnable here.
    pub fn own(&self, format: Format) -> Option<FormatKernels> {
        let k = match format {
            Format::I2S => self.i2s,
            Format::TL1 => self.tl1,
            Format::TL2 => self.tl2,
        }?;
        ((self.is_available)() && (k.is_available)()).then_some(k)
    }

    /// The kernels that run `format` under this set, and the name of the set they come from:
    /// this set's own, or, where it has none for the format, the next set down the
    /// registry that has (scalar last).
    pub fn kernels_for(&self, format: Format) -> Result<(&'static str, FormatKernels)> {
        if let Some(k) = self.own(format) {
            return Ok((self.name, k));
        }
        let start = KERNELS
            .iter()
            .position(|k| k.name == self.name)
            .unwrap_or(0);
        KERNELS[start..]
            .iter()
            .find_map(|s| s.own(format).map(|k| (s.name, k)))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "no kernel for format {} in this build",
                    format.name()
                ))
            })
    }

    /// Exact int32 accumulators of `m` times one int8 row `x` (length `m.cols()`), for the
    /// rows in `rows` (any sub-range of `0..m.rows()`), on the calling thread:
    /// `y[r - rows.start] = sum_j t[r][j] * x[j]`.
    ///
    /// This is the call for an engine that splits work over its own thread pool.
    pub fn gemv_i8_rows(
        &self,
        m: &TernaryMatrix,
        x: &[i8],
        rows: Range<usize>,
        y: &mut [i32],
    ) -> Result<()> {
        self.gemm_i8_rows(m, x, 1, rows, y)
    }

    /// Like [`KernelSet::gemv_i8_rows`] for `n` activation rows (`x` is `n × cols`,
    /// row-major); `y` is `n × rows.len()`, row-major.
    pub fn gemm_i8_rows(
        &self,
        m: &TernaryMatrix,
        x: &[i8],
        n: usize,
        rows: Range<usize>,
        y: &mut [i32],
    ) -> Result<()> {
        check_rows(m, &rows)?;
        let x = PaddedActivations::new(m, x, n)?;
        check_len("output", n * rows.len(), y.len())?;
        let (_, k) = self.kernels_for(m.format())?;
        run(k, m, &x, rows, y);
        Ok(())
    }
}

pub(crate) fn check_rows(m: &TernaryMatrix, rows: &Range<usize>) -> Result<()> {
    if rows.start >= rows.end || rows.end > m.rows() {
        return Err(Error::InvalidShape(format!(
            "row range {}..{} is empty or outside 0..{}",
            rows.start,
            rows.end,
            m.rows()
        )));
    }
    Ok(())
}

/// Checks that `len` activations are `n >= 1` rows of `m.cols()` each.
pub(crate) fn check_activations(m: &TernaryMatrix, n: usize, len: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidShape("n must be at least 1".into()));
    }
    let want = n
        .checked_mul(m.cols())
        .ok_or_else(|| Error::InvalidShape(format!("{n} activation rows overflow")))?;
    check_len("activations", want, len)
}

/// `n` int8 activation rows, each zero-padded to the matrix's padded width.
pub(crate) struct PaddedActivations<'a> {
    data: std::borrow::Cow<'a, [i8]>,
    n: usize,
}

impl<'a> PaddedActivations<'a> {
    /// Checks `x.len() == n * cols`, and pads (copies) only when `cols` is not already the
    /// padded width.
    pub(crate) fn new(m: &TernaryMatrix, x: &'a [i8], n: usize) -> Result<Self> {
        check_activations(m, n, x.len())?;
        let (cols, kp) = (m.cols(), m.layout().cols_padded);
        if cols == kp {
            return Ok(Self { data: x.into(), n });
        }
        let mut data = vec![0i8; n * kp];
        for (dst, src) in data.chunks_exact_mut(kp).zip(x.chunks_exact(cols)) {
            dst[..cols].copy_from_slice(src);
        }
        Ok(Self {
            data: data.into(),
            n,
        })
    }

    pub(crate) fn from_padded(data: Vec<i8>, n: usize) -> Self {
        Self {
            data: data.into(),
            n,
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }
}

/// Runs kernel `k` for `rows` (already checked to lie in `0..m.rows()`), writing
/// `y[j * rows.len() + r - rows.start]`. Rows inside whole tiles go straight to the kernel;
/// a ragged tile at either end is computed whole into a small buffer and the wanted rows
/// copied out, so kernels only ever see whole tiles.
pub(crate) fn run(
    k: FormatKernels,
    m: &TernaryMatrix,
    x: &PaddedActivations<'_>,
    rows: Range<usize>,
    y: &mut [i32],
) {
    let l = m.layout();
    let (tile, kp, n) = (l.row_tile, l.cols_padded, x.n);
    let len = rows.len();
    debug_assert!(rows.end <= l.rows && x.data.len() == n * kp && y.len() == n * len);
    let call = |rb: usize, re: usize, out: &mut [i32]| {
        debug_assert!(rb.is_multiple_of(tile) && re.is_multiple_of(tile) && re <= l.rows_padded);
        debug_assert_eq!(out.len(), n * (re - rb));
        // SAFETY: rb..re are whole tiles inside the padded rows, `x` holds n × kp
        // activations, `out` holds n × (re - rb) outputs, and the packed bytes belong
        // to `m`'s layout, which is what the kernel was registered for.
        unsafe {
            if n == 1 {
                (k.gemv)(
                    m.packed_bytes().as_ptr(),
                    kp,
                    x.data.as_ptr(),
                    rb,
                    re,
                    out.as_mut_ptr(),
                )
            } else {
                (k.gemm)(
                    m.packed_bytes().as_ptr(),
                    kp,
                    x.data.as_ptr(),
                    n,
                    rb,
                    re,
                    out.as_mut_ptr(),
                )
            }
        }
    };
    let first = rows.start.div_ceil(tile) * tile;
    let last = rows.end / tile * tile;
    let mut tmp = Vec::new();
    // Computes tiles [tb, te) into `tmp` and copies rows [a, b) of them into y.
    let mut via_tmp = |tb: usize, te: usize, a: usize, b: usize, y: &mut [i32]| {
        tmp.clear();
        tmp.resize(n * (te - tb), 0);
        call(tb, te, &mut tmp);
        for j in 0..n {
            y[j * len + (a - rows.start)..][..b - a]
                .copy_from_slice(&tmp[j * (te - tb) + (a - tb)..][..b - a]);
        }
    };
    if first >= last {
        // The whole range sits within one or two tiles.
        let (tb, te) = (rows.start / tile * tile, rows.end.div_ceil(tile) * tile);
        via_tmp(tb, te, rows.start, rows.end, y);
        return;
    }
    if rows.start < first {
        via_tmp(first - tile, first, rows.start, first, y);
    }
    if last < rows.end {
        via_tmp(last, last + tile, last, rows.end, y);
    }
    if n == 1 {
        call(first, last, &mut y[first - rows.start..last - rows.start]);
    } else {
        via_tmp(first, last, first, last, y);
    }
}
