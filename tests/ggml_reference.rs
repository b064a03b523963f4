//! TQ1_0 / TQ2_0 import and export against an independent implementation: the PyPI package
//! `gguf` (its numpy quantizer and dequantizer), run by tests/ggml/make_reference.py; and the
//! Hugging Face packed layout against a numpy packer written from the rule in
//! docs/FORMATS.md §7.
//!
//! The interpreter is `$BITNET_PYTHON`, or `.venv/bin/python` at the repository root (made
//! by `.ci/run`). Without it the test fails, unless `BITNET_SKIP_PYTHON=1`.

#[path = "common/python.rs"]
mod python;

use std::path::{Path, PathBuf};

use bitnet_kernels::format::ggml::{f16_to_f32, f32_to_f16, GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0};
use bitnet_kernels::{Error, Format, HfScale, Scales, TernaryMatrix};

/// Runs the reference script into a fresh directory; None when skipping is asked for.
fn reference_dir() -> Option<PathBuf> {
    python::run_script("tests/ggml/make_reference.py", "ggml-reference")
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

struct Case {
    name: String,
    ternary: bool,
    rowscaled: bool,
    rows: usize,
    cols: usize,
    beta: f32,
    d: f32,
}

fn read_trits(dir: &Path, name: &str) -> Vec<i8> {
    std::fs::read(dir.join(format!("{name}.trits")))
        .unwrap()
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

fn cases(dir: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("manifest.txt")).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Case {
                name: f[0].into(),
                ternary: f[1] == "ternary",
                rowscaled: f[1] == "rowscaled",
                rows: f[2].parse().unwrap(),
                cols: f[3].parse().unwrap(),
                beta: f32::from_bits(f[4].parse().unwrap()),
                d: f32::from_bits(f[5].parse().unwrap()),
            }
        })
        .collect()
}

#[test]
fn tq_and_hf_match_the_gguf_package() {
    let Some(dir) = reference_dir() else { return };
    let cases = cases(&dir);
    assert!(cases.len() >= 8, "the reference script wrote too few cases");
    let (mut ternary, mut rowscaled, mut random, mut hf) = (0, 0, 0, 0);
    for c in &cases {
        let (rows, cols) = (c.rows, c.cols);
        for (ty, tname) in [(GGML_TYPE_TQ1_0, "TQ1_0"), (GGML_TYPE_TQ2_0, "TQ2_0")] {
            let ctx = format!("{} {tname}", c.name);
            let bytes = std::fs::read(dir.join(format!("{}.{tname}", c.name))).unwrap();
            let deq = read_f32(&dir.join(format!("{}.{tname}.deq", c.name)));
            assert_eq!(
                bytes.len(),
                TernaryMatrix::ggml_size(ty, rows, cols).unwrap(),
                "{ctx}"
            );
            if c.rowscaled {
                let trits = read_trits(&dir, &c.name);
                let beta = read_f32(&dir.join(format!("{}.beta", c.name)));
                let d = read_f32(&dir.join(format!("{}.d", c.name)));
                // Import: the trits and one scale per row, fp16(beta[r]) exactly (1.0 for an
                // all-zero row), and gguf's dequantized values.
                for f in Format::ALL {
                    let m = TernaryMatrix::from_ggml(ty, &bytes, rows, cols, f).unwrap();
                    assert_eq!(m.to_ternary(), trits, "{ctx} {f}");
                    let Scales::PerRow(s) = m.scales() else {
                        panic!("{ctx} {f}: one scale, per-row expected");
                    };
                    for r in 0..rows {
                        let zero = trits[r * cols..(r + 1) * cols].iter().all(|&t| t == 0);
                        let want = if zero { 1.0 } else { d[r] };
                        assert_eq!(s[r].to_bits(), want.to_bits(), "{ctx} {f} row {r}");
                    }
                    assert!(m.scale().is_nan(), "{ctx}: scale() of a per-row matrix");
                    let vals: Vec<f32> = trits
                        .iter()
                        .enumerate()
                        .map(|(i, &t)| t as f32 * s[i / cols])
                        .collect();
                    assert!(
                        vals.iter().zip(&deq).all(|(a, b)| a == b),
                        "{ctx}: trit * row scale differs from gguf.dequantize"
                    );
                }
                // Export: ggml's bytes exactly, from trits and the f32 row scales.
                let m =
                    TernaryMatrix::from_ternary_row_scales(&trits, rows, cols, beta, Format::I2S)
                        .unwrap();
                assert!(m.to_ggml(ty).unwrap() == bytes, "{ctx}: export differs");
                rowscaled += 1;
            } else if c.ternary {
                let trits = read_trits(&dir, &c.name);
                // Import: the trits and fp16(beta) exactly (all-zero tensor: scale 1.0).
                for f in Format::ALL {
                    let m = TernaryMatrix::from_ggml(ty, &bytes, rows, cols, f).unwrap();
                    assert_eq!(m.to_ternary(), trits, "{ctx} {f}");
                    let want = if trits.iter().all(|&t| t == 0) {
                        1.0
                    } else {
                        c.d
                    };
                    assert_eq!(m.scale().to_bits(), want.to_bits(), "{ctx} {f}");
                    // And gguf's dequantized values, exactly.
                    let vals: Vec<f32> = trits.iter().map(|&t| t as f32 * m.scale()).collect();
                    assert!(
                        vals.iter().zip(&deq).all(|(a, b)| a == b),
                        "{ctx}: trit * scale differs from gguf.dequantize"
                    );
                }
                // Our fp16 rounding is numpy's.
                assert_eq!(f16_to_f32(f32_to_f16(c.beta)).to_bits(), c.d.to_bits());
                // Export: ggml's bytes exactly, from trits and the f32 beta.
                let m =
                    TernaryMatrix::from_ternary(&trits, rows, cols, c.beta, Format::I2S).unwrap();
                assert!(m.to_ggml(ty).unwrap() == bytes, "{ctx}: export differs");
                ternary += 1;
            } else {
                // Each block has its own d: the whole tensor is refused, naming a block.
                let e = TernaryMatrix::from_ggml(ty, &bytes, rows, cols, Format::I2S).unwrap_err();
                assert!(
                    matches!(&e, Error::InvalidData(s) if s.contains("row 0, block 1")),
                    "{ctx}: {e}"
                );
                // One block alone has one scale: it imports, and trit * scale is gguf's value.
                let bb = bytes.len() / (rows * cols / 256);
                for (i, blk) in bytes.chunks_exact(bb).enumerate() {
                    let m = TernaryMatrix::from_ggml(ty, blk, 1, 256, Format::I2S).unwrap();
                    let vals: Vec<f32> = m
                        .to_ternary()
                        .iter()
                        .map(|&t| t as f32 * m.scale())
                        .collect();
                    assert_eq!(&vals[..], &deq[i * 256..(i + 1) * 256], "{ctx} block {i}");
                    assert!(m.to_ggml(ty).unwrap() == blk, "{ctx} block {i}: re-export");
                }
                random += 1;
            }
        }
        let hf_path = dir.join(format!("{}.hf", c.name));
        if c.ternary && hf_path.exists() {
            let packed = std::fs::read(&hf_path).unwrap();
            let trits = read_trits(&dir, &c.name);
            let m = TernaryMatrix::from_hf_packed(
                &packed,
                rows,
                cols,
                c.beta,
                HfScale::Multiply,
                Format::I2S,
            )
            .unwrap();
            assert_eq!(m.to_ternary(), trits, "{} hf", c.name);
            assert_eq!(m.scale(), c.beta);
            assert_eq!(m.to_hf_packed().unwrap(), packed, "{} hf export", c.name);
            // HF packed holds one scale: a per-row matrix is refused.
            let pr = m.with_row_scales(vec![c.beta; rows]).unwrap();
            assert!(matches!(pr.to_hf_packed(), Err(Error::Unsupported(_))));
            hf += 1;
        }
    }
    assert!(
        ternary >= 14 && rowscaled >= 6 && random >= 2 && hf >= 3,
        "{ternary} {rowscaled} {random} {hf}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
