//! What the C ABI adds over the Rust API: the same GEMV, GEMM and decode attention called both
//! ways, timed in turns (`bitnet_bench::capi_calls`; the report prints the same table).
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin capi_calls [-- --quick]
//! ```

use bitnet_bench::capi_calls;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    bitnet_kernels::set_num_threads(1).expect("threads");
    let rows = capi_calls::measure(quick);
    print!(
        "{}",
        capi_calls::markdown(&rows, bitnet_kernels::num_threads())
    );
}
