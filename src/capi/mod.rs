//! The C ABI (`include/bitnet_kernels.h`, guide in `docs/c-api.md`): every `extern "C"`
//! function of the crate, and nothing else. Each one is a thin shell over the Rust API.
//!
//! - `status.rs`: status codes and their messages, the last-error detail, the boundary
//!   (panic catching, pointer and length checks, writing results out), library information;
//! - `matrix.rs`: matrix handles: building, converting, freeing, reading, copying out;
//! - `products.rs`: GEMV / GEMM (int8 and f32, whole or a row range) and the quantizer;
//! - `engine.rs`: activations quantized once, fused multi-matrix products, row lists, the
//!   workspace as caller memory, the thread count;
//! - `kv.rs`: the 3-bit KV cache and decode attention (these return the status as `int`);
//! - `container.rs`: container files of named matrices: save, open (mapped), list, take out.
//!
//! Rules every export follows, each visible in its own body:
//! - it runs under `status::boundary`: a panic becomes `BITNET_STATUS_INTERNAL`, never an
//!   unwind into C;
//! - every pointer is checked for NULL and for alignment (`NULL_POINTER`,
//!   `MISALIGNED_POINTER`) before use, every buffer comes with its length and the length is
//!   compared with the matrix shape, and every size product is checked for overflow
//!   *before* a slice is formed;
//! - outputs are written only on success: results are computed into a temporary and copied
//!   out last (with `memmove`, so an output may even overlap an input);
//! - integers from C are never received as Rust enums: format ids arrive as `int` and go
//!   through [`crate::Format::from_id`], status codes as `int`;
//! - a failed call leaves its specifics, naming the C parameter at fault, in a thread-local
//!   buffer, `bitnet_last_error()`, like `errno` (successful calls do not clear it);
//!   `bitnet_status_message()` gives the kind of failure, so the two join into one line.
//!
//! The header's version macros (`BITNET_KERNELS_VERSION`, `_MAJOR`, `_MINOR`, `_PATCH`) are
//! written from `Cargo.toml`'s version by `tests/header_up_to_date.rs`.
//!
//! Regenerate the header after changing this module:
//! `BITNET_BLESS=1 cargo test --release --test header_up_to_date`.

#![allow(clippy::missing_safety_doc)] // each function's doc has a "Safety" paragraph for C users

// In this order in the header too (cbindgen follows the module order).
mod status;

mod matrix;

mod products;

mod engine;

mod kv;

mod container;

pub use container::*;
pub use engine::*;
pub use kv::*;
pub use matrix::*;
pub use products::*;
pub use status::{
    bitnet_kernel_name, bitnet_last_error, bitnet_status_message, bitnet_version, status_of,
    BitnetFormat, BitnetGgmlType, BitnetStatus,
};

#[cfg(test)]
mod tests;
