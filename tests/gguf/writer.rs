//! A minimal GGUF (version 3) writer of the tests' own, written from the container rules in
//! docs/FORMATS.md §10 (not from the reader): the `gguf` Python package cannot write type 36
//! (bitnet.cpp's I2_S), so I2_S files come from here. Shared by tests/gguf_reader.rs and
//! examples/model.rs (`--synthetic`).
#![allow(dead_code)]

use std::io::{self, Write};

/// One tensor to write: name, dims (`ne0` first), ggml type id, bytes.
pub struct Tensor<'a> {
    pub name: &'a str,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub data: &'a [u8],
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes a GGUF v3 file: `general.architecture` = `arch` (a string), `general.alignment` =
/// `alignment` (u32) when it is not 32, then the tensors, each at an aligned offset.
pub fn write_gguf(
    out: &mut impl Write,
    arch: &str,
    alignment: u64,
    tensors: &[Tensor],
) -> io::Result<()> {
    let mut h = Vec::new();
    h.extend_from_slice(b"GGUF");
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    let n_kv: u64 = if alignment == 32 { 1 } else { 2 };
    h.extend_from_slice(&n_kv.to_le_bytes());
    string(&mut h, "general.architecture");
    h.extend_from_slice(&8u32.to_le_bytes()); // string
    string(&mut h, arch);
    if alignment != 32 {
        string(&mut h, "general.alignment");
        h.extend_from_slice(&4u32.to_le_bytes()); // u32
        h.extend_from_slice(&(alignment as u32).to_le_bytes());
    }
    let mut offset = 0u64;
    let mut offsets = Vec::new();
    for t in tensors {
        string(&mut h, t.name);
        h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&t.ggml_type.to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.data.len() as u64).div_ceil(alignment) * alignment;
    }
    let pad = |n: u64| vec![0u8; ((n.div_ceil(alignment) * alignment) - n) as usize];
    h.extend_from_slice(&pad(h.len() as u64));
    out.write_all(&h)?;
    for t in tensors {
        out.write_all(t.data)?;
        out.write_all(&pad(t.data.len() as u64))?;
    }
    out.flush()
}
