//! Reading a GGUF file (`bitnet_kernels::gguf`, `docs/FORMATS.md` §10) from arbitrary bytes:
//! parsing either succeeds or returns a clean error (never a panic, an out-of-bounds access or
//! a huge allocation), every listed byte range lies inside the file, and every ternary
//! tensor either imports (and then multiplies, with every kernel this CPU has, exactly like
//! the naive product of its trits) or fails cleanly.
#![no_main]

mod common;

use bitnet_kernels::format::shared_copy;
use bitnet_kernels::gguf::Gguf;
use bitnet_kernels::Format;
use common::{check_products, clean_read_error as clean};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let g = match Gguf::from_buffer(shared_copy(data).unwrap()) {
        Ok(g) => g,
        Err(e) => return clean(&e),
    };
    for t in g.tensors() {
        if let Some(r) = &t.bytes {
            assert!(r.start <= r.end && r.end <= data.len());
        }
        let (rows, cols) = t.shape();
        if rows.saturating_mul(cols) > 1 << 16 {
            continue; // the fuzzer's time is for the parser
        }
        match g.import_info(t, Format::I2S) {
            Ok(m) => check_products(&m, data),
            Err(e) => clean(&e),
        }
    }
});
