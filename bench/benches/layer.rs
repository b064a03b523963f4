//! The decoder-layer bench: one 2B-4T layer's seven I2_S products (`bitnet_bench::layer`)
//! for 1 and 8 tokens, cold (layers rotated over 512 MiB), on 1 and 2 threads, as seven
//! separate `ternary_gemm` calls and as the fused, allocation-free path. Throughput is the
//! layer's packed bytes, so criterion prints GB/s.
//!
//! ```sh
//! cargo bench -p bitnet-bench --bench layer
//! cargo bench -p bitnet-bench --bench layer -- 'n1/2t'   # criterion's filter
//! ```
//! Ids read `layer/n<tokens>/<threads>t/<separate|fused>`.

use bitnet_bench::cold::Rotation;
use bitnet_bench::harness;
use bitnet_bench::layer::{Buffers, Layer};
use bitnet_kernels::{set_num_threads, Format};
use criterion::{Criterion, SamplingMode, Throughput};

fn main() {
    let mut c: Criterion = harness::criterion();
    let layer = Layer::new(Format::I2S);
    let bytes = layer.packed_bytes();
    let mut rot = Rotation::new(layer, bytes, harness::cold_bytes());
    let mut g = c.benchmark_group("layer");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::BytesDecimal(bytes as u64));
    for n in [1, 8] {
        let mut buf = Buffers::new(rot.get(0), n);
        for threads in [1, 2] {
            set_num_threads(threads).expect("threads");
            g.bench_function(format!("n{n}/{threads}t/separate"), |b| {
                b.iter(|| buf.separate(rot.next()))
            });
            g.bench_function(format!("n{n}/{threads}t/fused"), |b| {
                b.iter(|| buf.fused(rot.next()))
            });
        }
    }
    set_num_threads(0).expect("default threads");
    g.finish();
    c.final_summary();
}
