//! Reading a Hugging Face packed checkpoint (`bitnet_kernels::hf`) from an arbitrary
//! safetensors file: listing either succeeds or returns a clean error (never a panic, an
//! out-of-bounds access or a huge allocation), and every listed ternary tensor either imports
//! (and then multiplies, with every kernel this CPU has, exactly like the naive product of
//! its trits) or fails cleanly. Input: the scale rule (bit 0: divide), then the file.
#![no_main]

mod common;

use bitnet_kernels::format::shared_copy;
use bitnet_kernels::hf::HfCheckpoint;
use bitnet_kernels::{Format, HfScale};
use common::{check_products, clean_read_error as clean, Bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let rule = if b.u8() & 1 == 1 {
        HfScale::Divide
    } else {
        HfScale::Multiply
    };
    let file = b.rest();
    let c = match HfCheckpoint::from_buffers(vec![shared_copy(file).unwrap()], rule) {
        Ok(c) => c,
        Err(e) => return clean(&e),
    };
    for t in c.tensors() {
        if t.rows.saturating_mul(t.cols) > 1 << 16 {
            continue;
        }
        match c.import(&t.name, Format::I2S) {
            Ok(m) => check_products(&m, file),
            Err(e) => clean(&e),
        }
    }
});
