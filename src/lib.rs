//! # bitnet-kernels
//!
//! Exact, fast CPU kernels for ternary matrix products: BitNet b1.58 weights in {-1, 0, +1}
//! with one scale, int8 activations with one scale per row.
//!
//! - [`TernaryMatrix`]: a packed, immutable matrix (`Send + Sync`), built from f32 weights
//!   ([`TernaryMatrix::from_f32`]), from trits, from packed bytes, or from a bitnet.cpp I2_S blob.
//! - [`ternary_gemv`] / [`ternary_gemm`]: the BitLinear forward pass (quantize x, multiply
//!   exactly, rescale). [`gemv_i8`] / [`gemm_i8`]: the exact int32 accumulators.
//! - `*_rows` variants compute a row range on the calling thread, for engines with their own
//!   thread pool; the others use rayon (`RAYON_NUM_THREADS`) when the product is large enough.
//! - The engine's calls: [`QuantizedActivations`] (quantize once, multiply many),
//!   [`ternary_gemv_multi`] / [`matmul::products`] (one input times several matrices in one
//!   dispatch), [`ternary_gemv_row_list`], and a caller-owned [`Workspace`] with which they
//!   allocate nothing; [`set_num_threads`] picks the thread count (a crate-owned pool).
//! - [`kernels`]: the registry, which only chooses. The best kernel set for this CPU is
//!   chosen once; `BITNET_KERNEL=scalar|avx2|avx512|neon|neon-dotprod` forces one. Every kernel
//!   returns exactly the scalar reference's int32 accumulators. Its contents are read-only:
//!   kernels run only through the checked products.
//! - [`matmul`]: the products, one way down: check the arguments, quantize and pad x, take the
//!   matrix format's kernel from the chosen set, run it over row tiles and threads, rescale.
//!
//! The formats and their exact maths are in `docs/FORMATS.md`; kernel design notes in
//! `docs/kernels.md`.
//!
//! ```
//! use bitnet_kernels::{ternary_gemv, Format, TernaryMatrix};
//! let (rows, cols) = (8, 300);
//! let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
//! let m = TernaryMatrix::from_f32(&w, rows, cols, Format::I2S)?;
//! let x: Vec<f32> = (0..cols).map(|i| (i as f32).sin()).collect();
//! let mut y = vec![0.0f32; rows];
//! ternary_gemv(&m, &x, &mut y)?;
//! println!("kernel {}: y[0] = {}", bitnet_kernels::kernel_name()?, y[0]);
//! # Ok::<(), bitnet_kernels::Error>(())
//! ```

#![warn(missing_docs)]

pub mod capi;
pub mod container;
pub mod error;
pub mod format;
#[cfg(feature = "gguf")]
pub mod gguf;
#[cfg(feature = "safetensors")]
pub mod hf;
pub mod kernels;
pub mod kv;
pub mod matmul;
/// The row splitting the products use over rayon's threads, and the thread count
/// ([`set_num_threads`], re-exported at the crate root). Public only so that the
/// benchmark crate (`bench/`) splits its dense baselines exactly the same way; it is not
/// part of the supported API and may change in any release.
#[doc(hidden)]
pub mod par;
pub mod pool;
pub mod quant;

pub use error::{Error, Result};
pub use format::ggml::HfScale;
pub use format::{Format, Layout, Scales, TernaryMatrix};
pub use kernels::{kernel_name, KernelSet};
pub use matmul::{
    gemm_i8, gemm_i8_quantized, gemm_i8_rows, gemv_i8, gemv_i8_rows, ternary_gemm,
    ternary_gemm_multi, ternary_gemm_quantized, ternary_gemm_rows, ternary_gemv, ternary_gemv_i4,
    ternary_gemv_multi, ternary_gemv_row_list, ternary_gemv_rows, Activations, Output,
    QuantizedActivations, Workspace,
};
pub use par::{num_threads, set_num_threads, set_thread_pool, ThreadPoolKind};
pub use quant::{
    quantize_activations, quantize_activations_i4, quantize_activations_topk, quantize_weights,
    I4Mode,
};

/// Every Rust block of the README, compiled and run as a doc test, so the front page's
/// example keeps compiling as pasted.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
