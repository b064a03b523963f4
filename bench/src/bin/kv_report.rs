//! The 3-bit KV cache against an fp16 cache, in detail: bytes, attention accuracy against f32
//! attention over many draws, and µs per decode step (one layer's attention, the layers'
//! caches taken in turn so they come from DRAM) with the share of the streaming bandwidth.
//! Markdown on stdout; the main report (`--bin report`) prints the same section with its
//! defaults.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin kv_report                      # 30 layers, 4096 tokens
//! cargo run --release -p bitnet-bench --bin kv_report -- --layers 4 --tokens 1024 --reps 5 --draws 4
//! ```

use bitnet_bench::data::flag;
use bitnet_bench::kv::{section, stream_gb_s, KvBench};

fn main() -> bitnet_kernels::Result<()> {
    let b = KvBench {
        layers: flag("--layers", 30).max(1),
        tokens: flag("--tokens", 4096).max(1),
        reps: flag("--reps", 10).max(1),
        draws: flag("--draws", 20).max(1),
        acc_tokens: 1024,
    };
    let bw = stream_gb_s(1 << 30, 100);
    print!("{}", section(&b, bw)?);
    Ok(())
}
