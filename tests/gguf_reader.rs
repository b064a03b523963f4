//! The GGUF reader (feature `gguf`) on files written by an implementation that is not ours,
//! the PyPI package `gguf` (tests/gguf/make_gguf.py: TQ1_0 and TQ2_0 tensors), and on I2_S
//! files written by the tests' own writer (tests/gguf/writer.rs), since `gguf` cannot write
//! type 36. Malformed files: errors, never panics.
//!
//! The interpreter is `$BITNET_PYTHON`, or `.venv/bin/python` at the repository root (made
//! by `.ci/run`). Without it the Python-backed test fails, unless `BITNET_SKIP_PYTHON=1`.
#![cfg(feature = "gguf")]

#[path = "gguf/writer.rs"]
mod writer;

#[path = "common/python.rs"]
mod python;

use std::path::{Path, PathBuf};

use bitnet_kernels::format::ggml::GGML_TYPE_I2_S;
use bitnet_kernels::format::shared_copy;
use bitnet_kernels::gguf::{Gguf, Value};
use bitnet_kernels::{Error, Format, TernaryMatrix};
use writer::{write_gguf, Tensor};

fn python_files() -> Option<PathBuf> {
    python::run_script("tests/gguf/make_gguf.py", "gguf-reader")
}

fn read_trits(p: &Path) -> Vec<i8> {
    std::fs::read(p)
        .unwrap()
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

#[test]
fn tq_files_from_the_gguf_package_import_exactly() {
    let Some(dir) = python_files() else { return };
    let g = Gguf::open(dir.join("model.gguf")).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(
        g.get("general.architecture"),
        Some(&Value::Str("bitnet".into()))
    );
    assert_eq!(g.get("test.count"), Some(&Value::Uint(3)));
    assert!(matches!(
        g.get("test.list"),
        Some(Value::Array { len: 3, .. })
    ));
    let manifest = std::fs::read_to_string(dir.join("manifest.txt")).unwrap();
    let names: Vec<&str> = g.ternary_tensors().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 2 * manifest.lines().count());
    // The F32 tensor is listed, with its bytes, but is not ternary and does not import.
    let emb = g.tensor("tok_embd.weight").unwrap();
    assert_eq!((emb.dims.clone(), emb.ggml_type), (vec![256, 3], 0));
    assert_eq!(emb.bytes.as_ref().unwrap().len(), 3 * 256 * 4);
    assert!(matches!(
        g.import("tok_embd.weight", Format::I2S),
        Err(Error::Unsupported(_))
    ));
    assert!(g.import("nope", Format::I2S).is_err());
    for line in manifest.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, rows, cols) = (f[0], f[1].parse().unwrap(), f[2].parse().unwrap());
        let d = f32::from_bits(f[3].parse().unwrap());
        let trits = read_trits(&dir.join(format!("{name}.trits")));
        for (suffix, ty) in [("tq1", 34), ("tq2", 35)] {
            let info = g.tensor(&format!("{name}.{suffix}")).unwrap();
            assert_eq!(info.ggml_type, ty);
            assert_eq!(info.dims, vec![cols as u64, rows as u64]);
            assert_eq!(info.shape(), (rows, cols));
            for fmt in Format::ALL {
                let m = g.import_info(info, fmt).unwrap();
                assert_eq!(m.to_ternary(), trits, "{name}.{suffix} {fmt}");
                // An all-zero tensor (the 1-row case) carries d = 0 only: scale 1.0.
                let want = if trits.iter().all(|&t| t == 0) {
                    1.0
                } else {
                    d
                };
                assert_eq!(m.scale().to_bits(), want.to_bits(), "{name}.{suffix}");
            }
        }
    }
    let all = g.import_all(Format::TL2).unwrap();
    assert_eq!(
        all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        names
    );
    // general.alignment = 64 is honoured.
    let a = Gguf::open(dir.join("aligned.gguf")).unwrap();
    assert_eq!(a.get("general.alignment"), Some(&Value::Uint(64)));
    assert_eq!(a.data_start() % 64, 0);
    let m = a.import("w", Format::I2S).unwrap();
    assert_eq!(m.to_ternary(), read_trits(&dir.join("aligned.trits")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An I2_S GGUF of the tests' own writer: 2 tensors, alignment 32 and 64.
fn i2s_file(alignment: u64) -> (Vec<u8>, Vec<TernaryMatrix>) {
    let ms: Vec<TernaryMatrix> = [(6, 256, 0.5f32), (3, 384, 1.5)]
        .iter()
        .enumerate()
        .map(|(i, &(r, c, s))| {
            let t: Vec<i8> = (0..r * c).map(|j| ((j * 5 + i) % 3) as i8 - 1).collect();
            TernaryMatrix::from_ternary(&t, r, c, s, Format::I2S).unwrap()
        })
        .collect();
    let blobs: Vec<Vec<u8>> = ms.iter().map(|m| m.to_bitnet_i2s().unwrap()).collect();
    let tensors: Vec<Tensor> = ms
        .iter()
        .zip(&blobs)
        .enumerate()
        .map(|(i, (m, b))| Tensor {
            name: ["blk.0.attn_q.weight", "blk.0.ffn_up.weight"][i],
            dims: vec![m.cols() as u64, m.rows() as u64],
            ggml_type: GGML_TYPE_I2_S,
            data: b,
        })
        .collect();
    let mut file = Vec::new();
    write_gguf(&mut file, "bitnet-b1.58", alignment, &tensors).unwrap();
    (file, ms)
}

#[test]
fn i2s_files_import_exactly_and_type_39_is_refused() {
    for alignment in [32, 64] {
        let (file, ms) = i2s_file(alignment);
        let g = Gguf::from_buffer(shared_copy(&file).unwrap()).unwrap();
        let got = g.import_all(Format::I2S).unwrap();
        assert_eq!(got.len(), 2);
        for ((_, a), b) in got.iter().zip(&ms) {
            assert_eq!(a, b);
        }
    }
    // The same bytes labelled type 39 (TL2 in bitnet.cpp, MXFP4 upstream): refused, saying why.
    let blob = vec![0x55u8; 4 * 256 / 4 + 32];
    let t = Tensor {
        name: "x",
        dims: vec![256, 4],
        ggml_type: 39,
        data: &blob,
    };
    let mut file = Vec::new();
    write_gguf(&mut file, "bitnet", 32, &[t]).unwrap();
    let g = Gguf::from_buffer(shared_copy(&file).unwrap()).unwrap();
    assert_eq!(g.ternary_tensors().count(), 0);
    let e = g.import("x", Format::I2S).unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(s) if s.contains("TL2") && s.contains("MXFP4")),
        "{e}"
    );
    // A TQ tensor whose ne0 is not a multiple of 256 is listed, and its import says why.
    let t = Tensor {
        name: "y",
        dims: vec![300, 2],
        ggml_type: 35,
        data: &blob,
    };
    let mut file = Vec::new();
    write_gguf(&mut file, "bitnet", 32, &[t]).unwrap();
    let g = Gguf::from_buffer(shared_copy(&file).unwrap()).unwrap();
    let e = g.import("y", Format::I2S).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidShape(s) if s.contains("256") && s.contains("'y'")),
        "{e}"
    );
}

#[test]
fn malformed_files_are_errors() {
    let (file, _) = i2s_file(32);
    // Every truncation: an error (the header) or a file whose tensors no longer fit.
    for n in 0..file.len() {
        let r = Gguf::from_buffer(shared_copy(&file[..n]).unwrap());
        assert!(r.is_err(), "truncated to {n}");
    }
    // Every single-byte change parses or fails cleanly; an accepted file imports or fails
    // cleanly (the byte may be a weight).
    for i in 0..file.len().min(400) {
        for v in [0x00, 0xFF, 0x80] {
            let mut f = file.clone();
            f[i] = v;
            if let Ok(g) = Gguf::from_buffer(shared_copy(&f).unwrap()) {
                let _ = g.import_all(Format::I2S);
            }
        }
    }
    let mut f = file.clone();
    f[4] = 1; // version 1
    assert!(matches!(
        Gguf::from_buffer(shared_copy(&f).unwrap()),
        Err(Error::Unsupported(_))
    ));
}

/// The fuzz seeds (fuzz/make_seeds.py, a third writer) parse, and their tensors import.
#[test]
fn fuzz_seeds_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let g = Gguf::open(root.join("fuzz/seeds/gguf/mixed")).unwrap();
    assert_eq!(g.tensors().len(), 4);
    assert_eq!(
        g.import("a", Format::I2S).unwrap().to_ternary(),
        vec![0; 4 * 128]
    );
    let b = g.import("b", Format::TL1).unwrap();
    assert_eq!((b.to_ternary(), b.scale()), (vec![0; 2 * 256], 1.0));
    assert!(g.import("c", Format::I2S).is_err());
    assert!(g.import("d", Format::I2S).is_err());
}
