//! # bitnet-bench
//!
//! The measuring side of bitnet-kernels, kept out of the library: the library is the product,
//! this crate only times it. Not published.
//!
//! - [`baseline`]: the dense fp16 and f32 GEMVs and the `gemm` crate's sgemm that every figure
//!   is quoted against; [`probe`]: the streaming-read bandwidth, the floor of a DRAM-bound GEMV.
//! - [`stats`]: medians and budgeted timing; [`cold`]: the DRAM-resident rotation;
//!   [`data`]: the shapes and the synthetic weights and activations; [`machine`]: CPU and
//!   date for a report; [`harness`]: criterion's set-up for the benches.
//! - [`registry`]: the only module that touches the library's kernel registry.
//! - [`lut`]: single-thread GEMV timing of the formats with int8 and int4 activations.
//! - [`layer`]: one 2B-4T decoder layer's seven products, separate or fused (the report's layer section).
//! - [`kv`]: the fp16-cache decode-attention baseline of the 3-bit KV cache (`--bin kv_report`).
//!
//! Binaries and benches (see `docs/performance.md`):
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin report                # the benchmark report
//! cargo run --release -p bitnet-bench --bin report -- --quick --json r.json
//! cargo run --release -p bitnet-bench --bin i2s_timing -- 6912 2560
//! cargo run --release -p bitnet-bench --bin tl_timing -- 6912x2560 --reps 100
//! cargo bench -p bitnet-bench                                     # criterion: gemv, gemm
//! ```

#![warn(missing_docs)]

pub mod baseline;
pub mod capi_calls;
pub mod cold;
pub mod data;
pub mod harness;
pub mod kv;
pub mod layer;
pub mod lut;
pub mod machine;
pub mod probe;
pub mod registry;
pub mod stats;
