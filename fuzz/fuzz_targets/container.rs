//! Loading a container file (`docs/FORMATS.md` §9) from arbitrary bytes: every load either
//! succeeds or returns a clean error (never a panic or an out-of-bounds access), and an
//! accepted file's matrices
//! - multiply, with every kernel this CPU has, exactly like the naive product of their trits,
//! - save back to a file that loads as the same matrices under the same names.
//!
//! Input: mode, then the file. Mode bit 0: write a valid checksum into the file first, so
//! that the fuzzer reaches the checks behind it (entries, shapes, offsets, packed bytes).
#![no_main]

mod common;

use bitnet_kernels::container::{self, Container};
use bitnet_kernels::Error;
use common::{check_products, Bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mode = b.u8();
    let mut file = b.rest().to_vec();
    if mode & 1 == 1 && file.len() >= 40 {
        let sum = container::checksum(&file);
        file[32..40].copy_from_slice(&sum.to_le_bytes());
    }
    match Container::from_bytes(&file) {
        Ok(c) => {
            for (_, m) in c.iter() {
                // Small products only: the fuzzer should spend its time on the parser.
                if m.rows() * m.cols() <= 1 << 16 {
                    check_products(m, &file);
                }
            }
            let mut again = Vec::new();
            container::save(&mut again, c.iter()).unwrap();
            let d = Container::from_bytes(&again).unwrap();
            assert!(c.iter().eq(d.iter()));
        }
        Err(
            Error::InvalidData(_)
            | Error::InvalidShape(_)
            | Error::InvalidFormat(_)
            | Error::LengthMismatch { .. }
            | Error::NonFinite { .. }
            | Error::Unsupported(_)
            | Error::Alloc,
        ) => {}
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
});
