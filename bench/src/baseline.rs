//! The baselines every benchmark of bitnet-kernels is quoted against: a dense fp16 GEMV and a
//! dense f32 GEMV, written to be memory-bound (not strawmen), and the `gemm` crate's f32
//! sgemm ([`f32_gemm`], the f32 row of the report and the benches).
//!
//! A GEMV with one activation row reads each weight once and does one multiply-add with it,
//! so a dense GEMV is limited by how fast the weights stream in. The loops here keep that
//! limit in sight: weights in one sequential stream (64-byte aligned rows whose zero padding
//! is multiplied by a zero-padded x, so there is no scalar tail), full-width loads (AVX-512
//! where the CPU has it, else AVX2 + F16C + FMA, chosen at run time), independent FMA chains
//! so the adder latency never stalls the loads, and the activation row rounded once to the
//! weights' type (as ggml does), so that it stays in L1. fp16 values are converted in
//! registers (`vcvtph2ps`), exactly as an fp16 inference engine would.
//!
//! Two choices were measured (fp16, DRAM-resident, 1 thread, same-run A/B):
//! - **Long rows go four at a time** (more than [`LONG_ROW_BYTES`] of weights a row): each x
//!   vector then feeds four rows. One row at a time reached 45–74 % of the bandwidth probe
//!   on rows of 6912–14336 inputs on Zen 4 (x re-read from L2 alongside the weights is the
//!   suspect), and 75–97 % on a Sapphire-Rapids-class Xeon, where four rows with prefetch
//!   reached 99–108 % of the plain probe; on rows of 2560–4096 inputs one row at a time was faster there.
//! - **Software prefetch on Intel only** (the same rule, distance and hint as the kernels'
//!   `kernels/x86/prefetch.h`: `prefetcht1` 4 KiB ahead of each row): on a
//!   Sapphire-Rapids-class Xeon `prefetcht0` ahead of each row raised the 1-row loop from
//!   93–96 % to 100–105 % of the plain probe; on an Emerald-Rapids-class one (2026-11-28)
//!   `prefetcht1` 4 KiB ahead took the DRAM-resident 6912×2560 GEMV from 3022 to 2356 µs
//!   (68 → 87 % of the probe) against `prefetcht0` 512 B ahead; on Zen 4 software prefetch
//!   only ever slowed streams.
//!
//! ```
//! use bitnet_bench::baseline::DenseMatrix;
//! let w = vec![0.5f32; 3 * 40];
//! let m = DenseMatrix::<u16>::from_f32(&w, 3, 40);
//! let mut y = vec![0.0f32; 3];
//! m.gemv(&vec![1.0f32; 40], &mut y);
//! assert_eq!(y, [20.0, 20.0, 20.0]);
//! ```

use std::ops::Range;

use bytemuck::Pod;
use half::f16;

use crate::probe::LargeBuffer;

/// Below this many weights a GEMV runs on the calling thread, as the library's products do.
const PARALLEL_MIN: usize = bitnet_kernels::matmul::PARALLEL_MIN_MACS;

/// An element type of a [`DenseMatrix`]: `u16` holds fp16 bits, `f32` is plain f32.
///
/// The activation row is rounded to the same type once per GEMV, as ggml does for its f16
/// products: an fp16 row (half the bytes of f32) stays in L1 even for 14336 inputs, so the
/// loads of the weight stream never queue behind reloads of x.
pub trait Element: Pod + Send + Sync + 'static {
    /// `"fp16"` or `"f32"`.
    const NAME: &'static str;
    /// Rounds an f32 to this type (round to nearest even for fp16).
    fn from_f32(v: f32) -> Self;
    /// The exact f32 value.
    fn to_f32(self) -> f32;
    /// Rounds a whole row (F16C where the CPU has it).
    fn from_f32_slice(x: &[f32]) -> Vec<Self>;
    /// `y[r] = sum_j w[r * stride + j] * x[j]` for `y.len()` rows (1 or 4), `stride ==
    /// x.len()` a whole number of 64-byte lines, prefetching ahead if `pf`.
    fn dot_rows(w: &[Self], x: &[Self], pf: bool, y: &mut [f32]);
}

/// Rows longer than this (in bytes of weights) go four at a time: see the module docs.
pub const LONG_ROW_BYTES: usize = 8 << 10;

/// Calls the widest of `loops` (AVX-512, AVX2) this CPU can run for 1 or 4 rows, else the
/// scalar loop.
#[allow(unused_variables, clippy::type_complexity)]
fn dispatch_rows<E: Element>(
    w: &[E],
    x: &[E],
    pf: bool,
    y: &mut [f32],
    loops: [[unsafe fn(&[E], &[E], bool, &mut [f32]); 2]; 2],
) {
    assert!(w.len() == y.len() * x.len() && (y.len() == 1 || y.len() == 4));
    assert_eq!(std::mem::size_of_val(x) % 64, 0, "whole lines");
    let four = usize::from(y.len() == 4);
    #[cfg(target_arch = "x86_64")]
    match simd_level() {
        // SAFETY: simd_level() checked the features each loop is compiled for; the asserts
        // above are the loops' length contract.
        Simd::Avx512 => return unsafe { loops[0][four](w, x, pf, y) },
        // SAFETY: as above.
        Simd::Avx2 => return unsafe { loops[1][four](w, x, pf, y) },
        Simd::None => {}
    }
    for (o, row) in y.iter_mut().zip(w.chunks_exact(x.len())) {
        *o = dot_scalar(row, x);
    }
}

/// Whether the loops prefetch the weights ahead: on Intel CPUs only (see the module docs).
pub(crate) fn prefetch_on() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            // SAFETY: cpuid leaf 0 exists on every x86-64 CPU.
            #[allow(unused_unsafe)]
            let id = unsafe { std::arch::x86_64::__cpuid(0) };
            (id.ebx, id.edx, id.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e) // "GenuineIntel"
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    //! No SIMD loops off x86-64: `dispatch_rows` always takes the scalar one.
    /// Stand-ins with the x86 loops' signatures (never called: `simd_level` is `None`).
    macro_rules! scalar_rows {
        ($($name:ident: $t:ty),*) => {$(
            pub(super) fn $name<const R: usize>(w: &[$t], x: &[$t], _pf: bool, y: &mut [f32]) {
                for (o, row) in y.iter_mut().zip(w.chunks_exact(x.len())) {
                    *o = super::dot_scalar(row, x);
                }
            }
        )*};
    }
    scalar_rows!(rows_f16_avx512: u16, rows_f16_avx2: u16, rows_f32_avx512: f32, rows_f32_avx2: f32);
}

impl Element for u16 {
    const NAME: &'static str = "fp16";
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v).to_bits()
    }
    fn to_f32(self) -> f32 {
        f16::from_bits(self).to_f32()
    }
    fn from_f32_slice(x: &[f32]) -> Vec<u16> {
        use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
        let mut v = vec![0u16; x.len()];
        v.reinterpret_cast_mut::<f16>().convert_from_f32_slice(x);
        v
    }
    fn dot_rows(w: &[u16], x: &[u16], pf: bool, y: &mut [f32]) {
        use x86::{rows_f16_avx2 as a2, rows_f16_avx512 as a5};
        dispatch_rows(w, x, pf, y, [[a5::<1>, a5::<4>], [a2::<1>, a2::<4>]])
    }
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32_slice(x: &[f32]) -> Vec<f32> {
        x.to_vec()
    }
    fn dot_rows(w: &[f32], x: &[f32], pf: bool, y: &mut [f32]) {
        use x86::{rows_f32_avx2 as a2, rows_f32_avx512 as a5};
        dispatch_rows(w, x, pf, y, [[a5::<1>, a5::<4>], [a2::<1>, a2::<4>]])
    }
}

fn dot_scalar<E: Element>(w: &[E], x: &[E]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(&a, &b)| a.to_f32() * b.to_f32())
        .sum()
}

/// The widest loops of the baselines this CPU runs.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Simd {
    Avx512,
    Avx2,
    None,
}

pub(crate) fn simd_level() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") {
            return Simd::Avx512;
        }
        if has!("avx2") && has!("fma") && has!("f16c") {
            return Simd::Avx2;
        }
    }
    Simd::None
}

/// The loop the baselines use on this CPU: `"avx512"`, `"avx2+f16c+fma"` or `"scalar"`.
pub fn simd_name() -> &'static str {
    match simd_level() {
        Simd::Avx512 => "avx512",
        Simd::Avx2 => "avx2+f16c+fma",
        Simd::None => "scalar",
    }
}

/// A dense row-major matrix of fp16 (`DenseMatrix<u16>`) or f32 (`DenseMatrix<f32>`)
/// weights, each row starting on a 64-byte boundary.
#[derive(Clone)]
pub struct DenseMatrix<E: Element> {
    rows: usize,
    cols: usize,
    /// Elements from one row start to the next (`cols` rounded up to a cache line).
    stride: usize,
    /// On huge pages where the OS gives them: see `probe::LargeBuffer`.
    data: LargeBuffer,
    _e: std::marker::PhantomData<E>,
}

impl<E: Element> DenseMatrix<E> {
    /// Converts a row-major `rows × cols` f32 matrix (`w.len() == rows * cols`).
    ///
    /// # Panics
    /// If a dimension is 0 or `w.len() != rows * cols`.
    pub fn from_f32(w: &[f32], rows: usize, cols: usize) -> Self {
        assert!(rows > 0 && cols > 0, "rows and cols must be at least 1");
        assert_eq!(w.len(), rows * cols, "weights must be rows × cols");
        let per_line = 64 / std::mem::size_of::<E>();
        let stride = cols.div_ceil(per_line) * per_line;
        let mut m = Self {
            rows,
            cols,
            stride,
            data: LargeBuffer::zeroed(rows * stride * std::mem::size_of::<E>()),
            _e: std::marker::PhantomData,
        };
        let all: &mut [E] = bytemuck::cast_slice_mut(m.data.as_mut_slice());
        for (dst, src) in all.chunks_exact_mut(stride).zip(w.chunks_exact(cols)) {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = E::from_f32(s);
            }
        }
        m
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of weights a GEMV reads (`rows * cols * size_of::<E>()`, row padding excluded).
    pub fn weight_bytes(&self) -> usize {
        self.rows * self.cols * std::mem::size_of::<E>()
    }

    /// All the storage, row `r` starting at `r * stride` (`stride >= cols`, the padding is
    /// zero), and `stride`: for handing the matrix to a BLAS-style routine.
    pub fn padded(&self) -> (&[E], usize) {
        (bytemuck::cast_slice(self.data.as_slice()), self.stride)
    }

    /// Row `r`'s `cols` weights.
    pub fn row(&self, r: usize) -> &[E] {
        let all: &[E] = bytemuck::cast_slice(self.data.as_slice());
        &all[r * self.stride..][..self.cols]
    }

    /// `y[r - rows.start] = sum_j W[r][j] * x[j]` for the rows in `rows`, on the calling thread
    /// (x rounded to the element type first, see [`Element`]).
    ///
    /// # Panics
    /// If `x.len() != cols`, `rows` is not inside `0..rows()`, or `y.len() != rows.len()`.
    pub fn gemv_rows(&self, x: &[f32], rows: Range<usize>, y: &mut [f32]) {
        self.rows_rounded(&self.round(x), rows, y);
    }

    /// x rounded to the element type and zero-padded to the row stride.
    fn round(&self, x: &[f32]) -> Vec<E> {
        assert_eq!(x.len(), self.cols, "x must have cols elements");
        let mut v = E::from_f32_slice(x);
        v.resize(self.stride, E::zeroed());
        v
    }

    /// `x`: from [`Self::round`].
    fn rows_rounded(&self, x: &[E], rows: Range<usize>, y: &mut [f32]) {
        assert!(
            rows.end <= self.rows && rows.start <= rows.end,
            "bad row range"
        );
        assert_eq!(y.len(), rows.len(), "y must have one element per row");
        let all: &[E] = bytemuck::cast_slice(self.data.as_slice());
        let (stride, pf) = (self.stride, prefetch_on());
        let per = if self.cols * std::mem::size_of::<E>() > LONG_ROW_BYTES {
            4
        } else {
            1
        };
        let mut r = rows.start;
        for out in y.chunks_mut(per) {
            // A ragged last group goes one row at a time.
            for (i, o) in out
                .chunks_mut(if out.len() == per { per } else { 1 })
                .enumerate()
            {
                let first = r + i * o.len();
                E::dot_rows(&all[first * stride..][..o.len() * stride], x, pf, o);
            }
            r += out.len();
        }
    }

    /// `y = W x` for the whole matrix, on rayon's threads (`RAYON_NUM_THREADS`) when the
    /// matrix is large enough to gain from it, split as the ternary products are
    /// (a copy of the library's row split: the calling thread works from the start, in chunks
    /// of whole 4-row groups).
    ///
    /// # Panics
    /// If `x.len() != cols` or `y.len() != rows`.
    pub fn gemv(&self, x: &[f32], y: &mut [f32]) {
        assert_eq!(y.len(), self.rows, "y must have rows elements");
        let x = self.round(x);
        let threads = if self.rows * self.cols < PARALLEL_MIN {
            1
        } else {
            rayon::current_num_threads()
        };
        bitnet_kernels::par::for_each_chunk(
            self.rows,
            4,
            threads,
            |ranges| bitnet_kernels::par::split_rows(y, 1, ranges),
            |r, out| self.rows_rounded(&x, r, out),
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The loop behind every multi-row product: `R` rows (1 or 4) at `x.len()` apart,
    /// `$lanes` f32 lanes a vector; 4 vectors a row an iteration for 1 row, 2 for 4 rows
    /// (8 independent FMA chains, each x vector loaded once for all rows); whole vectors
    /// only (`x.len()` is a whole number of lines, so of vectors); if `pf`, each row's line
    /// 4 KiB ahead is prefetched into L2 every iteration.
    macro_rules! fma_rows {
        ($w:ident, $x:ident, $pf:ident, $y:ident, $R:ident, $T:ty, $lanes:literal,
         $zero:ident, $fma:ident, $add:ident, $hsum:path, |$p:ident| $load:expr) => {{
            let stride = $x.len();
            debug_assert!($w.len() == $R * stride && $y.len() == $R && stride % $lanes == 0);
            let v = if $R == 1 { 4 } else { 2 };
            let step = v * $lanes;
            let ahead = 4096 / std::mem::size_of::<$T>();
            let line = 64 / std::mem::size_of::<$T>();
            let (wp, xp) = ($w.as_ptr(), $x.as_ptr());
            let mut acc = [[$zero(); 4]; $R];
            let mut i = 0;
            while i + step <= stride {
                if $pf {
                    for r in 0..$R {
                        let mut l = 0;
                        while l < step {
                            let a = wp.wrapping_add(r * stride + i + ahead + l);
                            // A hint: never faults, whatever the address.
                            _mm_prefetch::<_MM_HINT_T1>(a.cast());
                            l += line;
                        }
                    }
                }
                for j in 0..v {
                    // SAFETY: i + $lanes * (j + 1) <= stride for x and for every row of w.
                    unsafe {
                        let $p = xp.add(i + $lanes * j);
                        let xv = $load;
                        for (r, a) in acc.iter_mut().enumerate() {
                            let $p = wp.add(r * stride + i + $lanes * j);
                            a[j] = $fma($load, xv, a[j]);
                        }
                    }
                }
                i += step;
            }
            while i < stride {
                // SAFETY: as above, one vector.
                unsafe {
                    let $p = xp.add(i);
                    let xv = $load;
                    for (r, a) in acc.iter_mut().enumerate() {
                        let $p = wp.add(r * stride + i);
                        a[0] = $fma($load, xv, a[0]);
                    }
                }
                i += $lanes;
            }
            for (o, a) in $y.iter_mut().zip(&acc) {
                *o = $hsum($add($add(a[0], a[1]), $add(a[2], a[3])));
            }
        }};
    }

    /// The multi-row loops (`fma_rows!`), one per element type and vector width:
    /// `name: element, target features, f32 lanes, setzero, fmadd, add, hsum, |p| load`.
    ///
    /// Safety of each: the CPU has its features; `w.len() == R * x.len()`, `y.len() == R`
    /// (1 or 4), `x.len()` a multiple of its lanes.
    macro_rules! rows_loops {
        ($($name:ident: $t:ty, $feat:literal, $lanes:literal, $zero:ident, $fma:ident,
           $add:ident, $hsum:path, |$p:ident| $load:expr;)*) => {$(
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const R: usize>(
                w: &[$t],
                x: &[$t],
                pf: bool,
                y: &mut [f32],
            ) {
                fma_rows!(w, x, pf, y, R, $t, $lanes, $zero, $fma, $add, $hsum, |$p| $load)
            }
        )*};
    }

    rows_loops! {
        rows_f16_avx512: u16, "avx512f", 16, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_add_ps,
            _mm512_reduce_add_ps, |p| _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        rows_f16_avx2: u16, "avx2,fma,f16c", 8, _mm256_setzero_ps, _mm256_fmadd_ps,
            _mm256_add_ps, hsum256, |p| _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
        rows_f32_avx512: f32, "avx512f", 16, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_add_ps,
            _mm512_reduce_add_ps, |p| _mm512_loadu_ps(p);
        rows_f32_avx2: f32, "avx2,fma", 8, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_add_ps,
            hsum256, |p| _mm256_loadu_ps(p);
    }

    #[target_feature(enable = "avx2")]
    fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

/// `y = X Wᵀ` in f32 with the `gemm` crate (`w`: `rows × cols`, stored on huge pages like
/// the fp16 baseline; `x`: `n × cols`; `y`: `n × rows`; all row-major), on one thread or on
/// rayon's pool.
pub fn f32_gemm(w: &DenseMatrix<f32>, x: &[f32], n: usize, y: &mut [f32], par: bool) {
    let (rows, cols) = (w.rows(), w.cols());
    let (data, stride) = w.padded();
    assert!(x.len() == n * cols && y.len() == n * rows && data.len() >= rows * stride);
    let parallelism = if par {
        gemm_common::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm_common::Parallelism::None
    };
    // dst = Yᵀ (rows × n) = W (rows × cols) · Xᵀ (cols × n), with strides (col, row):
    // Yᵀ[r][j] = y[j*rows + r]; W[r][c] = data[r*stride + c]; Xᵀ[c][j] = x[j*cols + c].
    // SAFETY: the lengths were checked above, so every strided access is in bounds.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            rows,
            n,
            cols,
            y.as_mut_ptr(),
            rows as isize,
            1,
            false,
            data.as_ptr(),
            1,
            stride as isize,
            x.as_ptr(),
            cols as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The f32 baseline's name, as printed.
pub const F32_BASELINE: &str = "f32 (gemm crate)";

#[cfg(test)]
mod tests {
    use super::*;

    /// Small integers times small integers: every loop's sum is exact whatever its order.
    fn check<E: Element>() {
        for &(rows, cols) in &[(1, 1), (3, 31), (5, 64), (7, 65), (9, 200), (40, 1000)] {
            let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 - 3.0).collect();
            let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 - 2.0).collect();
            let m = DenseMatrix::<E>::from_f32(&w, rows, cols);
            let want: Vec<f32> = (0..rows)
                .map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum())
                .collect();
            let mut y = vec![0.0f32; rows];
            m.gemv(&x, &mut y);
            assert_eq!(y, want, "{} {rows}x{cols}", E::NAME);
            let mut part = vec![0.0f32; rows - rows / 2];
            m.gemv_rows(&x, rows / 2..rows, &mut part);
            assert_eq!(part, want[rows / 2..], "{} rows", E::NAME);
            assert_eq!(m.weight_bytes(), rows * cols * std::mem::size_of::<E>());
        }
    }

    #[test]
    fn f32_gemm_matches_the_dense_gemv() {
        let (rows, cols, n) = (37, 70, 3);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 - 3.0).collect();
        let x: Vec<f32> = (0..n * cols).map(|i| (i % 5) as f32 - 2.0).collect();
        let m = DenseMatrix::<f32>::from_f32(&w, rows, cols);
        for par in [false, true] {
            let mut y = vec![0.0f32; n * rows];
            f32_gemm(&m, &x, n, &mut y, par);
            for j in 0..n {
                let mut want = vec![0.0f32; rows];
                m.gemv(&x[j * cols..][..cols], &mut want);
                assert_eq!(y[j * rows..][..rows], want, "row {j}, par {par}");
            }
        }
    }

    #[test]
    fn fp16_gemv_is_exact_on_small_integers() {
        check::<u16>();
    }

    #[test]
    fn f32_gemv_is_exact_on_small_integers() {
        check::<f32>();
    }

    /// On small integers the scalar loop gives the same sum in fp16 and in f32 (the premise
    /// of every exactness test here), for every length around the SIMD unrolls.
    #[test]
    fn scalar_sums_agree_across_types() {
        for len in 0..200 {
            let wf: Vec<f32> = (0..len).map(|i| (i % 9) as f32 - 4.0).collect();
            let wh: Vec<u16> = wf.iter().map(|&v| <u16 as Element>::from_f32(v)).collect();
            let x: Vec<f32> = (0..len).map(|i| (i % 7) as f32 - 3.0).collect();
            let xh = <u16 as Element>::from_f32_slice(&x);
            assert_eq!(dot_scalar(&wf, &x), dot_scalar(&wh, &xh), "len {len}");
        }
    }

    /// Rows longer than LONG_ROW_BYTES (four at a time), a ragged last group, and row ranges
    /// that start inside a group of four.
    #[test]
    fn long_rows_go_four_at_a_time_and_agree() {
        fn long<E: Element>() {
            let cols = LONG_ROW_BYTES / std::mem::size_of::<E>() + 37;
            let rows = 7;
            let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 - 3.0).collect();
            let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 - 2.0).collect();
            let want: Vec<f32> = (0..rows)
                .map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum())
                .collect();
            let m = DenseMatrix::<E>::from_f32(&w, rows, cols);
            let mut y = vec![0.0f32; rows];
            m.gemv(&x, &mut y);
            assert_eq!(y, want, "{}", E::NAME);
            for start in 0..rows {
                let mut part = vec![0.0f32; rows - start];
                m.gemv_rows(&x, start..rows, &mut part);
                assert_eq!(part, want[start..], "{} rows {start}..", E::NAME);
            }
        }
        long::<u16>();
        long::<f32>();
    }

    /// Each multi-row loop this CPU can run (1 and 4 rows, with and without prefetch),
    /// called directly, on row lengths around its unroll.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_rows_loop_matches_the_scalar_loop() {
        use std::arch::is_x86_feature_detected as has;
        type Rows<E> = unsafe fn(&[E], &[E], bool, &mut [f32]);
        fn check<E: Element>(loops: &[(&str, Rows<E>, usize)]) {
            let line = 64 / std::mem::size_of::<E>();
            for stride in (line..=9 * line).step_by(line) {
                let w: Vec<E> = (0..4 * stride)
                    .map(|i| E::from_f32((i % 9) as f32 - 4.0))
                    .collect();
                let x: Vec<E> = (0..stride)
                    .map(|i| E::from_f32((i % 7) as f32 - 3.0))
                    .collect();
                let want: Vec<f32> = w.chunks_exact(stride).map(|r| dot_scalar(r, &x)).collect();
                for &(name, f, rows) in loops {
                    for pf in [false, true] {
                        let mut y = vec![0.0f32; rows];
                        // SAFETY: the caller lists only loops this CPU runs; lengths as required.
                        unsafe { f(&w[..rows * stride], &x, pf, &mut y) };
                        assert_eq!(
                            y,
                            want[..rows],
                            "{} {name} stride {stride} pf {pf}",
                            E::NAME
                        );
                    }
                }
            }
        }
        let (avx512, avx2) = (has!("avx512f"), has!("avx2") && has!("fma") && has!("f16c"));
        let mut h: Vec<(&str, Rows<u16>, usize)> = Vec::new();
        let mut f: Vec<(&str, Rows<f32>, usize)> = Vec::new();
        if avx512 {
            h.extend([
                ("avx512", x86::rows_f16_avx512::<1> as Rows<u16>, 1),
                ("avx512", x86::rows_f16_avx512::<4>, 4),
            ]);
            f.extend([
                ("avx512", x86::rows_f32_avx512::<1> as Rows<f32>, 1),
                ("avx512", x86::rows_f32_avx512::<4>, 4),
            ]);
        }
        if avx2 {
            h.extend([
                ("avx2", x86::rows_f16_avx2::<1> as Rows<u16>, 1),
                ("avx2", x86::rows_f16_avx2::<4>, 4),
            ]);
            f.extend([
                ("avx2", x86::rows_f32_avx2::<1> as Rows<f32>, 1),
                ("avx2", x86::rows_f32_avx2::<4>, 4),
            ]);
        }
        check(&h);
        check(&f);
    }

    #[test]
    fn fp16_conversion_rounds_to_nearest() {
        let row = <u16 as Element>::from_f32_slice(&[1.0, -2.0, 1.0 + 1.0 / 4096.0, 65504.0]);
        assert_eq!(row, [0x3C00, 0xC000, 0x3C00, 0x7BFF]);
        assert_eq!(<u16 as Element>::from_f32(1.0), 0x3C00);
        assert_eq!(<u16 as Element>::from_f32(1.0 + 1.0 / 4096.0).to_f32(), 1.0);
        assert_eq!(<u16 as Element>::to_f32(0xC000), -2.0);
    }

    #[test]
    fn large_gemv_splits_over_threads_and_agrees() {
        // 2048 × 2048 = 4M weights: above PARALLEL_MIN, so `gemv` splits rows.
        let (rows, cols) = (2048, 2048);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i % 3) as f32 - 1.0).collect();
        let x: Vec<f32> = (0..cols).map(|i| (i % 4) as f32).collect();
        let m = DenseMatrix::<u16>::from_f32(&w, rows, cols);
        let (mut a, mut b) = (vec![0.0; rows], vec![0.0; rows]);
        m.gemv(&x, &mut a);
        m.gemv_rows(&x, 0..rows, &mut b);
        assert_eq!(a, b);
    }
}
