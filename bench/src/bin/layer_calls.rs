//! One 2B-4T decoder layer's seven products (`bitnet_bench::layer`), warm, on the calling
//! thread only, `reps` times one way: for instruction counts under callgrind, which are
//! repeatable on a shared machine where times are not.
//!
//! ```sh
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*layer_calls*run*' \
//!     target/release/layer_calls fused 1 5
//! ```
//! Arguments: `separate|fused`, tokens (default 1), repetitions (default 5).

use bitnet_bench::layer::{Buffers, Layer};
use bitnet_kernels::{set_num_threads, Format};

#[inline(never)]
fn run(fused: bool, layer: &Layer, buf: &mut Buffers, reps: usize) {
    for _ in 0..reps {
        if fused {
            buf.fused(layer)
        } else {
            buf.separate(layer)
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fused = match args.first().map(String::as_str) {
        Some("fused") => true,
        Some("separate") | None => false,
        Some(other) => panic!("separate or fused, not {other}"),
    };
    let n = args.get(1).map_or(1, |s| s.parse().expect("tokens"));
    let reps = args.get(2).map_or(5, |s| s.parse().expect("repetitions"));
    set_num_threads(1).expect("one thread");
    let layer = Layer::new(Format::I2S);
    let mut buf = Buffers::new(&layer, n);
    // One untimed call each way first, so that both count a warm workspace.
    buf.separate(&layer);
    buf.fused(&layer);
    run(fused, &layer, &mut buf, reps);
    println!(
        "{} {} token(s) x {reps}",
        if fused { "fused" } else { "separate" },
        n
    );
}
