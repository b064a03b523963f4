//! The kernel registry: which kernels are built in, which one runs. Nothing else happens
//! here; the products themselves (checks, padding, tiles, threads, rescale) are
//! [`crate::matmul`]'s, which asks this module for a kernel and never the other way round.
//!
//! [`KERNELS`] lists every kernel set built into this binary, best first. The first one the
//! CPU can run is chosen once, on first use, and cached;
//! `BITNET_KERNEL=scalar|avx2|avx512|neon|neon-dotprod` (the [`NAMES`]) forces a set, and
//! naming one this CPU or build cannot run is an error every call reports, never a silent
//! fallback. Tests, benches and the report iterate [`KERNELS`].
//!
//! # Adding a kernel variant
//! A C file in `kernels/x86/` or `kernels/arm/` named `<format>_<isa>.c` (which `build.rs`
//! compiles with that ISA's flags, setting `cfg(bitnet_<format>_<isa>)`), and on the Rust side
//! one row in the `c_kernels!` table of `x86.rs` or `arm.rs` (its two symbols, its cfg, any
//! CPU check beyond its set's) plus that constant in its set's slot for the format. A new
//! ISA is also a new set there, its CPU check in `cpu.rs`, a name in [`NAMES`] and a row in
//! [`KERNELS`].
//!
//! # Why the contents are private
//! Each raw kernel reads the packed bytes of exactly one format, trusting the row range and
//! buffer lengths it is given. A [`KernelSet`] can therefore only be made here, its kernels
//! are not public, and every way to run one goes through the checked methods
//! ([`KernelSet::gemv_i8`] and the others, in [`crate::matmul`]), which pick the kernel by the
//! matrix's own format. Safe code outside this crate cannot pair a kernel with a matrix of
//! another format.
//!
//! Each block below is the unsound program with one piece of the registry reached for; each
//! fails to compile for that reason alone (its error code is noted after `compile_fail`), and
//! the block after them uses the same paths on the allowed route, so a typo in a path cannot
//! be what makes them fail.
//!
//! ```compile_fail,E0451
//! // Building a set from fields (here: no kernels at all, so it would fall back): private.
//! use bitnet_kernels::kernels::KernelSet;
//! static EVIL: KernelSet =
//!     KernelSet { name: "evil", is_available: || true, i2s: None, tl1: None, tl2: None, kv3: None };
//! ```
//!
//! ```compile_fail,E0616
//! // Reading a set's raw I2_S kernels (to put them in another set's TL2 slot): private.
//! use bitnet_kernels::kernels::SCALAR;
//! let i2s = SCALAR.i2s;
//! ```
//!
//! ```compile_fail,E0624
//! // Asking the registry for a format's raw kernels: crate-private.
//! use bitnet_kernels::kernels::SCALAR;
//! use bitnet_kernels::Format;
//! let k = SCALAR.kernels_for(Format::I2S);
//! ```
//!
//! ```compile_fail,E0603
//! // Naming the per-format kernel table: crate-private.
//! use bitnet_kernels::kernels::FormatKernels;
//! ```
//!
//! The allowed path: read a set's name, ask what it runs, and multiply through its checked
//! methods, which take the kernel from the matrix's own format.
//!
//! ```
//! use bitnet_kernels::kernels::{self, KernelSet, KERNELS, SCALAR};
//! use bitnet_kernels::{Format, TernaryMatrix};
//! let set: &'static KernelSet = &SCALAR;
//! assert_eq!(set.name(), "scalar");
//! assert!(set.is_available() && set.has_own(Format::TL2));
//! assert_eq!(set.runs_on(Format::I2S)?, "scalar");
//! for k in KERNELS {
//!     assert!(kernels::NAMES.contains(&k.name()));
//! }
//! let m = TernaryMatrix::from_ternary(&[1, 0, -1, 1, 1, 1], 2, 3, 1.0, Format::TL2)?;
//! let mut y = [0i32; 2];
//! set.gemv_i8(&m, &[3, 4, 5], &mut y)?;
//! assert_eq!(y, [-2, 12]);
//! # Ok::<(), bitnet_kernels::Error>(())
//! ```

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::format::Format;

pub(crate) mod act;
#[macro_use]
mod c_kernels;
#[cfg(target_arch = "aarch64")]
mod arm;
mod cpu;
mod scalar;
mod scalar_col;
mod scalar_tl;
#[cfg(target_arch = "x86_64")]
mod x86;

/// One activation row times the rows `[row_begin, row_end)` of a packed matrix.
///
/// # Contract (for every implementation, C or Rust)
/// - `w` is the start of the whole packed matrix (64-byte aligned), in the layout of the
///   format the kernel is registered for, whose padded column count is `kp`;
/// - `rows_padded` is the matrix's padded row count (only I2_S_COL's layout needs it: its
///   column stride is `rows_padded / 4` bytes);
/// - `row_begin < row_end <= rows_padded`, both multiples of the format's row tile;
/// - `x` holds `kp` int8 activations, zero beyond the matrix's real columns;
/// - `y` has room for `row_end - row_begin` int32: `y[r - row_begin]` receives the exact
///   `sum_j t[r][j] * x[j]`.
pub(crate) type RawGemv = unsafe extern "C" fn(
    w: *const u8,
    kp: usize,
    rows_padded: usize,
    x: *const i8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
);

/// `n` activation rows (each `kp` int8, consecutive) times rows `[row_begin, row_end)`;
/// `y[j * (row_end - row_begin) + (r - row_begin)]` receives row `r`'s result for
/// activation row `j`. Otherwise the contract of [`RawGemv`].
pub(crate) type RawGemm = unsafe extern "C" fn(
    w: *const u8,
    kp: usize,
    rows_padded: usize,
    x: *const i8,
    n: usize,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
);

/// Builds the lookup tables of one activation row for the whole K: `x` holds `kp` int8
/// (zero beyond the real columns), `tab` has room for `kp / k_block * step_bytes` bytes and
/// is aligned to [`TABLE_ALIGN`].
pub(crate) type RawTableBuild = unsafe extern "C" fn(x: *const i8, kp: usize, tab: *mut u8);

/// The contract of [`RawGemv`], with the activation row given as the tables
/// [`RawTableBuild`] built from it (read only: threads may share them), walked in one pass.
pub(crate) type RawGemvTable = unsafe extern "C" fn(
    w: *const u8,
    kp: usize,
    tab: *const u8,
    row_begin: usize,
    row_end: usize,
    y: *mut i32,
);

/// Alignment the one-pass table kernels need for their tables (a zmm).
pub(crate) const TABLE_ALIGN: usize = 64;

/// A lookup-table format's one-pass kernels: tables of a whole activation row built once
/// into the caller's memory (any K), then any number of row ranges walked over all K in one
/// pass each. Without them (or the memory) the set's [`FormatKernels::gemv`] builds bounded
/// tables on its stack and walks its rows once per chunk of K.
#[derive(Clone, Copy)]
pub(crate) struct TableKernels {
    /// Table bytes a step (one `k_block` of columns) of this file's layout.
    pub(crate) step_bytes: fn() -> usize,
    pub(crate) build: RawTableBuild,
    pub(crate) gemv: RawGemvTable,
}

impl TableKernels {
    /// Bytes of the tables of one activation row of `kp` columns in `format`.
    pub(crate) fn bytes(&self, format: Format, kp: usize) -> usize {
        kp / k_block(format) * (self.step_bytes)()
    }
}

/// Columns a lookup-table step covers (the format's `K_BLOCK`); 1 for I2_S, which has none.
fn k_block(format: Format) -> usize {
    match format {
        Format::I2S | Format::I2SCol => 1,
        Format::TL1 => crate::format::tl1::K_BLOCK,
        Format::TL2 => crate::format::tl2::K_BLOCK,
    }
}

/// The most table bytes any set built into this binary needs for one activation row of
/// `kp` columns in `format` (0 for formats without tables): what a workspace reserves, so
/// that it serves whichever set runs.
pub(crate) fn max_table_bytes(format: Format, kp: usize) -> usize {
    KERNELS
        .iter()
        .filter_map(|s| match format {
            Format::I2S | Format::I2SCol => None,
            Format::TL1 => s.tl1,
            Format::TL2 => s.tl2,
        })
        .flat_map(|k| [k.tables, k.i4.and_then(|n| n.tables)])
        .flatten()
        .map(|t| t.bytes(format, kp))
        .max()
        .unwrap_or(0)
}

/// The kernels of one set for one format. Only [`KernelSet::kernels_for`] hands one out, and
/// only for the format it was asked for, on a CPU that can run it.
#[derive(Clone, Copy)]
pub(crate) struct FormatKernels {
    /// One activation row.
    pub(crate) gemv: RawGemv,
    /// Several activation rows at once, reusing each unpacked weight block across them.
    pub(crate) gemm: RawGemm,
    /// The one-pass form, for the lookup-table formats' SIMD kernels.
    pub(crate) tables: Option<TableKernels>,
    /// Run-time check of the CPU features these two need beyond the set's own.
    is_available: fn() -> bool,
    /// Kernels for int4 activations (every value in −8..=7) in the same packed layout, with
    /// one-byte tables (`docs/FORMATS.md` §13): a call takes them instead of the three
    /// above when all its activations fit ([`FormatKernels::for_activations`]). They return
    /// the same exact accumulators; for other int8 values their tables would wrap.
    pub(crate) i4: Option<I4Kernels>,
}

/// A format's kernels for int4 activations ([`FormatKernels::i4`]): the contracts of
/// [`RawGemv`], [`RawGemm`] and [`TableKernels`] with every activation in −8..=7.
#[derive(Clone, Copy)]
pub(crate) struct I4Kernels {
    gemv: RawGemv,
    gemm: RawGemm,
    tables: Option<TableKernels>,
    /// Run-time check of the CPU features these need beyond the set's own.
    is_available: fn() -> bool,
}

/// Whether every value of `xs` is in −8..=7, the int4 range. One pass of byte compares
/// that the compiler vectorises (a few hundred ns for a GEMM's rows of thousands of
/// columns, against the microseconds of the product that reads them).
pub(crate) fn fits_i4(xs: &[i8]) -> bool {
    // `(v + 8) as u8 < 16` for every v, folded without early exit so that it vectorises.
    xs.chunks(4096)
        .all(|c| c.iter().fold(0u8, |m, &v| m | (v as u8).wrapping_add(8)) < 16)
}

impl FormatKernels {
    /// The kernels for a call whose activations (all of them, every row) are `xs`: the
    /// int4 ones ([`FormatKernels::i4`]) when this CPU runs them and every value is in
    /// −8..=7, else these. Either gives the same exact accumulators.
    pub(crate) fn for_activations(self, xs: &[i8]) -> FormatKernels {
        match self.i4_form() {
            Some(n) if fits_i4(xs) => n,
            _ => self,
        }
    }

    /// The int4 kernels as a [`FormatKernels`] (valid only for activations in −8..=7),
    /// where these have them and this CPU runs them.
    pub(crate) fn i4_form(self) -> Option<FormatKernels> {
        let n = self.i4.filter(|n| (n.is_available)())?;
        Some(FormatKernels {
            gemv: n.gemv,
            gemm: n.gemm,
            tables: n.tables,
            is_available: self.is_available,
            i4: None,
        })
    }

    /// These kernels with `i4`'s (a `c_kernels!` row of an int4 file) as their int4 form;
    /// `None` where `k` was not built.
    pub(crate) const fn with_i4(
        k: Option<FormatKernels>,
        i4: Option<FormatKernels>,
    ) -> Option<FormatKernels> {
        match (k, i4) {
            (Some(mut k), Some(n)) => {
                k.i4 = Some(I4Kernels {
                    gemv: n.gemv,
                    gemm: n.gemm,
                    tables: n.tables,
                    is_available: n.is_available,
                });
                Some(k)
            }
            (k, _) => k,
        }
    }
}

/// Integer dot products of int16 query vectors with one KV head's packed 3-bit K codes
/// (`docs/FORMATS.md` §8).
///
/// # Contract (for every implementation, C or Rust)
/// - `blocks` is the head's K buffer: blocks of 16 positions, `48 * groups` bytes each
///   (`2 * groups` chunks of 24 bytes; chunk `c` holds channels `4c .. 4c+3`, code
///   `4 * slot + channel - 4c` of the chunk at its bits `3b .. 3b+2`); position `i` is slot
///   `i % 16` of block `i / 16`. The blocks up to the one of position `first + n - 1` are
///   valid, and the kernel may read up to [`crate::kv::ROW_SLACK`] bytes past their end;
///   `first` is any position (a range may start and end mid-block), `n >= 1`;
/// - `q` holds `nq` vectors of `qs >= 8 * round_up(groups, 8)` int16 each, every value in
///   `[-128, 127]` and zero from index `8 * groups` on (a kernel may multiply those zeros by
///   whatever codes or bytes it meets there);
/// - `out[h * n + t]` receives the exact `sum_{j < 8 groups} q[h * qs + j] * code(first + t, j)`
///   (one run of `n` sums per query head, so the scores are computed from contiguous dots);
/// - `next`, `next_len`: the region the caller reads next, a prefetch hint only (see
///   [`RawKvWsum`]).
pub(crate) type RawKvDot = unsafe extern "C" fn(
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

/// Weighted sums of packed 3-bit rows with int8 weights in blocks of
/// [`crate::kv::WBLOCK`] tokens (`docs/FORMATS.md` §8): for each block `b` in order, each
/// `h < nq` and `j < 8 * groups`,
/// `acc[h * accs + j] = fma(f[h * nb + b], I as f32, acc[h * accs + j])` with the exact
/// `I = sum_{t in block b} w[h * ws + t] * code(t, j)` (`|I| <= 64 * 127 * 7 < 2^24`, so the
/// conversion is exact), where `nb = ceil(n / WBLOCK)` and `ws = WBLOCK * nb`, and
/// `code(t, j)` is channel `j` of position `first + t`. `blocks` is the head's V buffer:
/// blocks of 4 positions, `24 * ceil(groups / 2)` bytes each (chunk `c`, 24 bytes, holds
/// channels `16c .. 16c+15`, code `4 * (channel - 16c) + slot` at its bits `3b .. 3b+2`, the
/// channels from `8 * groups` on code 0); position `i` is slot `i % 4` of block `i / 4`. The
/// blocks up to the one of position `first + n - 1` are valid, then
/// [`crate::kv::ROW_SLACK`] readable bytes; `first` is any position (a range may start and end
/// mid-block: weight block `b` still starts at position `first + 64 b`, so a kernel that takes
/// a V block's four positions together must give the ones outside the weight block weight
/// 0), `n >= 1`; `w` holds `nq` runs of `ws` weights in `[-127, 127]`, zero from `n` on;
/// `accs >= 8 * round_up(groups, 8)`, and the entries `[8 * groups, accs)` of each vector are
/// scratch the kernel may overwrite. Every kernel returns the scalar reference's floats bit
/// for bit (one fused multiply-add per block and element, in block order).
///
/// `next`, `next_len` (both kernels): the bytes the caller will read after this call (in
/// attention, V of the same KV head after the dot, K of the next head after the V sum), which
/// a kernel may prefetch while it works (the x86 kernels do, into L2, spread over their
/// steps: `kernels/x86/prefetch.h`). Never read, so it only has to lie within one allocation
/// (null with length 0: none); results never depend on it.
pub(crate) type RawKvWsum = unsafe extern "C" fn(
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

/// [`RawKvDot`] and the scores made from its sums, fused (`docs/FORMATS.md` §8): the dot's
/// 16 sums of a K block are turned into scores in the register instead of being stored and
/// read back.
///
/// # Contract
/// - `blocks`, `first`, `n`, `groups`, `q`, `qs`, `nq`: as for [`RawKvDot`];
/// - `ks` holds the `n` K scale pairs of the positions `first .. first + n` (fp16 bits, `[m,
///   s]` each, `2 * n` values), `sum` and `fac` the `nq` heads' `Σq̃` and factors;
/// - `out[h * os + t]` (`os >= n`) receives, bit for bit, `(m·(sum[h] as f32) + s·(D as f32))
///   · fac[h]` in f32, rounded after each operation (no fused multiply-add), `D` the exact sum
///   [`RawKvDot`] gives for head `h` and position `first + t`, `m`, `s` the f32 values of
///   position `t`'s pair; the kernel may use `out[h * os .. h * os + n]` as scratch before;
/// - `mx[h]` (`nq` values, not NaN) becomes the largest of itself and head `h`'s scores (a
///   maximum of zero may come back as either zero: `mx` only feeds `E(x − mx)`, the same for
///   both);
/// - `next`, `next_len` and `next2`, `next2_len`: two regions the caller reads next, prefetch
///   hints only (see [`RawKvWsum`]).
pub(crate) type RawKvScores = unsafe extern "C" fn(
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

/// The 3-bit KV-cache kernels of one set.
#[derive(Clone, Copy)]
pub(crate) struct KvKernels {
    pub(crate) dot: RawKvDot,
    pub(crate) wsum: RawKvWsum,
    /// The dot and scores fused, where the set has it (AVX-512); else [`KvKernels::dot`]
    /// and the scores in Rust.
    pub(crate) scores: Option<RawKvScores>,
    /// Run-time check of the CPU features these need beyond the set's own.
    is_available: fn() -> bool,
}

/// A set of kernels for one instruction set: an entry of [`KERNELS`].
///
/// Read-only: it can only be obtained from this module ([`KERNELS`], [`SCALAR`],
/// [`available`], [`by_name`], [`active`]). Its products ([`KernelSet::gemv_i8`],
/// [`KernelSet::gemm_f32`], the `*_rows` forms, ...) check every length and run the kernel
/// for the matrix's format.
pub struct KernelSet {
    name: &'static str,
    is_available: fn() -> bool,
    i2s: Option<FormatKernels>,
    tl1: Option<FormatKernels>,
    tl2: Option<FormatKernels>,
    /// I2_S_COL: sparse activations (only non-zero columns read).
    i2s_col: Option<FormatKernels>,
    /// Activation quantization and rescale, for every format.
    act: act::ActKernels,
    /// The 3-bit KV-cache kernels ([`crate::kv`]).
    kv3: Option<KvKernels>,
}

/// Every name a kernel set may have in some build, best first on each architecture: the
/// values `BITNET_KERNEL` takes. [`KERNELS`] holds those built into this binary.
pub const NAMES: &[&str] = &["avx512", "avx2", "neon-dotprod", "neon", "scalar"];

/// The reference set: plain Rust, every CPU.
pub static SCALAR: KernelSet = KernelSet {
    name: "scalar",
    is_available: cpu::always,
    i2s: Some(FormatKernels {
        gemv: scalar::i2s_gemv,
        gemm: scalar::i2s_gemm,
        tables: None,
        is_available: cpu::always,
        i4: None,
    }),
    tl1: Some(FormatKernels {
        gemv: scalar_tl::tl1_gemv,
        gemm: scalar_tl::tl1_gemm,
        tables: None,
        is_available: cpu::always,
        i4: None,
    }),
    tl2: Some(FormatKernels {
        gemv: scalar_tl::tl2_gemv,
        gemm: scalar_tl::tl2_gemm,
        tables: None,
        is_available: cpu::always,
        i4: None,
    }),
    i2s_col: Some(FormatKernels {
        gemv: scalar_col::i2s_col_gemv,
        gemm: scalar_col::i2s_col_gemm,
        tables: None,
        is_available: cpu::always,
        i4: None,
    }),
    act: act::SCALAR,
    kv3: Some(KvKernels {
        dot: crate::kv::scalar::kv3_dot,
        wsum: crate::kv::scalar::kv3_wsum,
        scores: None,
        is_available: cpu::always,
    }),
};

/// Every kernel set built into this binary, best first; the last is always [`SCALAR`].
/// A set is listed when `build.rs` compiled at least one file of its ISA
/// (`cfg(bitnet_<isa>)`); the CPU check happens at run time ([`KernelSet::is_available`]).
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
    KERNELS.iter().copied().filter(|k| k.is_available())
}

/// The set with this name (case-insensitive), if it is built in and this CPU can run it.
pub fn by_name(name: &str) -> Result<&'static KernelSet> {
    match KERNELS.iter().find(|k| k.name.eq_ignore_ascii_case(name)) {
        Some(k) if k.is_available() => Ok(k),
        Some(k) => Err(Error::KernelUnavailable(format!(
            "kernel '{}' is built in but this CPU lacks the instructions it needs",
            k.name
        ))),
        None => {
            let built: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
            Err(Error::KernelUnavailable(format!(
                "no kernel named '{name}' in this build (built in: {}; names in other builds: {})",
                built.join(", "),
                NAMES.join(", ")
            )))
        }
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
    /// The set's name, one of [`NAMES`]: what `BITNET_KERNEL` takes.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether this CPU can run the set (run-time feature detection).
    pub fn is_available(&self) -> bool {
        (self.is_available)()
    }

    /// Whether the set has its own kernels for `format` and this CPU can run them. Where it
    /// has none, its products use the next set down [`KERNELS`] that has
    /// ([`KernelSet::runs_on`]).
    pub fn has_own(&self, format: Format) -> bool {
        self.own(format).is_some()
    }

    /// Whether the set has its own int4 kernels for `format` (one-byte tables,
    /// `docs/FORMATS.md` §13) and this CPU runs them. Hidden, for the tests.
    #[doc(hidden)]
    pub fn has_own_i4(&self, format: Format) -> bool {
        self.own(format).and_then(FormatKernels::i4_form).is_some()
    }

    /// The name of the set whose kernels run `format` under this one: this set's own, or,
    /// where it has none (or this CPU cannot run them), the next set down [`KERNELS`] that has
    /// (scalar last).
    pub fn runs_on(&self, format: Format) -> Result<&'static str> {
        self.kernels_for(format).map(|(name, _)| name)
    }

    /// This set's activation quantizer and rescale. Safe on any CPU: each falls back to the
    /// scalar version where this CPU lacks its instructions.
    pub(crate) fn act(&self) -> act::ActKernels {
        self.act
    }

    /// Quantizes one f32 row with this set's quantizer: exactly
    /// [`crate::quantize_activations`] (same `q`, same `a`, same error), which the tests
    /// check for every set. Hidden: the products call it themselves.
    #[doc(hidden)]
    pub fn quantize_activations(&self, x: &[f32], q: &mut [i8]) -> Result<f32> {
        crate::error::check_len("activation output", x.len(), q.len())?;
        (self.act.quantize)(x, q)
    }

    /// `y[i] = acc[i] as f32 * factor` with this set's rescale (`acc.len() == y.len()`,
    /// checked); exactly the scalar loop. Hidden, for the tests.
    #[doc(hidden)]
    pub fn rescale(&self, acc: &[i32], factor: f32, y: &mut [f32]) -> Result<()> {
        crate::error::check_len("output", acc.len(), y.len())?;
        for (o, &a) in y.iter_mut().zip(acc) {
            *o = f32::from_bits(a as u32);
        }
        (self.act.rescale)(y, factor);
        Ok(())
    }

    /// `y[i] = acc[i] as f32 * (scales[i] * act)` with this set's per-row rescale (all three
    /// lengths equal, checked); exactly the scalar loop. Hidden, for the tests.
    #[doc(hidden)]
    pub fn rescale_rows(&self, acc: &[i32], scales: &[f32], act: f32, y: &mut [f32]) -> Result<()> {
        crate::error::check_len("output", acc.len(), y.len())?;
        crate::error::check_len("row scales", acc.len(), scales.len())?;
        for (o, &a) in y.iter_mut().zip(acc) {
            *o = f32::from_bits(a as u32);
        }
        (self.act.rescale_rows)(y, scales, act);
        Ok(())
    }

    /// This set's own kernels for `format`, if present and runnable here.
    fn own(&self, format: Format) -> Option<FormatKernels> {
        let k = match format {
            Format::I2S => self.i2s,
            Format::TL1 => self.tl1,
            Format::TL2 => self.tl2,
            Format::I2SCol => self.i2s_col,
        }?;
        (self.is_available() && (k.is_available)()).then_some(k)
    }

    /// The kernels that run `format` under this set, and the name of the set they come from
    /// (see [`KernelSet::runs_on`]). The only way out of the registry for a raw kernel: the
    /// caller must hand it packed bytes of `format` only.
    pub(crate) fn kernels_for(&self, format: Format) -> Result<(&'static str, FormatKernels)> {
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
}

impl KernelSet {
    /// The 3-bit KV-cache kernels that run under this set: its own, or the next set's down
    /// [`KERNELS`] that has them (scalar last), and that set's name.
    pub(crate) fn kv_kernels(&self) -> (&'static str, KvKernels) {
        let own = |s: &KernelSet| {
            s.kv3
                .filter(|k| s.is_available() && (k.is_available)())
                .map(|k| (s.name, k))
        };
        if let Some(k) = own(self) {
            return k;
        }
        let start = KERNELS
            .iter()
            .position(|k| k.name == self.name)
            .unwrap_or(0);
        KERNELS[start..]
            .iter()
            .find_map(|s| own(s))
            .unwrap_or(("scalar", SCALAR.kv3.expect("scalar has kv3 kernels")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every set a build may hold, built in or not, has a name in [`NAMES`], in its order.
    #[test]
    fn names_match_the_sets() {
        let mut sets: Vec<&KernelSet> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        sets.extend([&x86::AVX512, &x86::AVX2]);
        #[cfg(target_arch = "aarch64")]
        sets.extend([&arm::NEON_DOTPROD, &arm::NEON]);
        sets.push(&SCALAR);
        let pos: Vec<usize> = sets
            .iter()
            .map(|k| NAMES.iter().position(|&n| n == k.name).expect(k.name))
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
        for k in KERNELS {
            assert!(sets.iter().any(|s| std::ptr::eq(*s, *k)), "{}", k.name);
        }
    }

    /// Every list of the names `BITNET_KERNEL` takes (`=` then names joined by `|`) in the
    /// crate docs says exactly [`NAMES`].
    #[test]
    fn name_lists_in_docs_match() {
        let mut want: Vec<&str> = NAMES.to_vec();
        want.sort_unstable();
        for (file, text) in [
            ("lib.rs", include_str!("../lib.rs")),
            ("kernels/mod.rs", include_str!("mod.rs")),
            ("error.rs", include_str!("../error.rs")),
        ] {
            let mut found = 0;
            for (i, _) in text.match_indices("BITNET_KERNEL=") {
                let rest = &text[i + "BITNET_KERNEL=".len()..];
                let list: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '|' || *c == '-')
                    .collect();
                if !list.contains('|') {
                    continue; // one name, as in an example
                }
                let mut got: Vec<&str> = list.split('|').collect();
                got.sort_unstable();
                assert_eq!(got, want, "{file}: BITNET_KERNEL={list}");
                found += 1;
            }
            assert!(found > 0 || file == "error.rs", "{file} has no list");
        }
    }

    /// The registry hands out each slot's kernels only for that slot's format.
    #[test]
    // Miri gives a function a new address at each use, so pointer equality means nothing there.
    #[cfg_attr(miri, ignore = "function pointers are not unique under Miri")]
    fn kernels_for_picks_the_format_slot() {
        for f in Format::ALL {
            let (name, k) = SCALAR.kernels_for(f).unwrap();
            assert_eq!(name, "scalar");
            let want: RawGemv = match f {
                Format::I2S => scalar::i2s_gemv,
                Format::TL1 => scalar_tl::tl1_gemv,
                Format::TL2 => scalar_tl::tl2_gemv,
                Format::I2SCol => scalar_col::i2s_col_gemv,
            };
            assert!(std::ptr::fn_addr_eq(k.gemv, want), "{f}");
        }
    }
}
