//! One decode step's 3-bit attention, repeated: a small program for profilers and instruction
//! counts (`perf record`, `valgrind --tool=callgrind`), where `kv_report`'s accuracy draws and
//! bandwidth probe would dominate. The 2B-4T attention shape (20 query / 5 KV heads, head_dim
//! 128), one sink token; prints the median µs per layer of each round over every layer.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin kv_step -- --tokens 4096 --layers 1 --calls 20
//! BITNET_KERNEL=avx2 valgrind --tool=callgrind target/release/kv_step --calls 3
//! ```

use bitnet_bench::data::flag;
use bitnet_bench::kv::{decode_data, DecodeData, D, HQ};
use bitnet_bench::stats;

fn main() -> bitnet_kernels::Result<()> {
    let (tokens, layers, calls) = (
        flag("--tokens", 4096).max(1),
        flag("--layers", 1).max(1),
        flag("--calls", 20).max(1),
    );
    let DecodeData { caches, q, .. } = decode_data(layers, tokens)?;
    let first = &caches[0];
    let mut out = vec![0.0f32; HQ * D];
    let mut ts: Vec<f64> = (0..calls)
        .map(|_| {
            stats::time(|| {
                caches
                    .iter()
                    .for_each(|c| c.attend(&q, HQ, &mut out).unwrap())
            })
        })
        .map(|t| t / layers as f64 * 1e6)
        .collect();
    // Hashes of the bits of attention and of the two split calls, to compare builds.
    let hash = |x: &[f32]| {
        x.iter().fold(0u64, |h, v| {
            (h ^ v.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
        })
    };
    let mut scores = vec![0.0f32; HQ * tokens];
    first.scores(&q, HQ, 0..tokens, &mut scores)?;
    let w: Vec<f32> = scores.iter().map(|s| (s * 0.1).tanh()).collect();
    let mut wv = vec![0.0f32; HQ * D];
    first.weighted_v(&w, HQ, 0..tokens, &mut wv)?;
    println!(
        "{tokens} tokens, {layers} layers, {calls} calls: median {:.1} µs per layer (bits: attend {:016x}, scores {:016x}, weighted_v {:016x})",
        stats::median(&mut ts),
        hash(&out),
        hash(&scores),
        hash(&wv)
    );
    Ok(())
}
