//! Hugging Face packed BitNet checkpoints (feature `safetensors`): files written by numpy and
//! the PyPI package `safetensors` (tests/hf/make_checkpoint.py, packing from the rule in
//! docs/FORMATS.md §7), and a bf16-scaled file written by the `safetensors` crate.
//!
//! The interpreter is `$BITNET_PYTHON`, or `.venv/bin/python` at the repository root (made
//! by `.ci/run`, with numpy, gguf and safetensors). Without it the Python-backed test fails,
//! unless `BITNET_SKIP_PYTHON=1`.
#![cfg(feature = "safetensors")]

#[path = "common/python.rs"]
mod python;

use std::path::PathBuf;

use bitnet_kernels::hf::{scale_from_config, HfCheckpoint};
use bitnet_kernels::{Error, Format, HfScale, TernaryMatrix};

fn python_files() -> Option<PathBuf> {
    python::run_script("tests/hf/make_checkpoint.py", "hf")
}

#[test]
fn checkpoints_from_numpy_import_exactly_with_the_configs_scale_rule() {
    let Some(dir) = python_files() else { return };
    for (kind, rule) in [("auto", HfScale::Multiply), ("div", HfScale::Divide)] {
        let c = HfCheckpoint::open(dir.join(kind)).unwrap();
        assert_eq!(c.scale_rule(), rule);
        // Three ternary tensors over two shards; the norm and the uint8 tensor without a
        // scale are not listed.
        let names: Vec<&str> = c.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "model.layers.0.mlp.down_proj.weight",
                "model.layers.0.self_attn.q_proj.weight",
                "model.layers.1.self_attn.k_proj.weight"
            ]
        );
        for t in c.tensors() {
            let trits: Vec<i8> = std::fs::read(dir.join(kind).join(format!("{}.trits", t.name)))
                .unwrap()
                .into_iter()
                .map(|b| b as i8)
                .collect();
            let want = match rule {
                HfScale::Multiply => t.weight_scale,
                HfScale::Divide => 1.0 / t.weight_scale,
            };
            for f in Format::ALL {
                let m = c.import(&t.name, f).unwrap();
                assert_eq!((m.rows(), m.cols()), (t.rows, t.cols));
                assert_eq!(m.to_ternary(), trits, "{kind} {}", t.name);
                assert_eq!(m.scale().to_bits(), want.to_bits(), "{kind} {}", t.name);
            }
        }
        assert_eq!(c.import_all(Format::I2S).unwrap().len(), 3);
        assert!(c.import("model.norm.weight", Format::I2S).is_err());
        // One shard file alone, with the config beside it.
        let one = HfCheckpoint::open(dir.join(kind).join("model-00002-of-00002.safetensors"));
        assert_eq!(one.unwrap().tensors().len(), 1);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configs_decide_the_rule_or_refuse() {
    let cfg = |c: &str| format!(r#"{{"quantization_config": {{"linear_class": "{c}"}}}}"#);
    assert_eq!(
        scale_from_config(&cfg("autobitlinear")).unwrap(),
        HfScale::Multiply
    );
    assert_eq!(
        scale_from_config(&cfg("bitlinear")).unwrap(),
        HfScale::Divide
    );
    assert!(matches!(
        scale_from_config(&cfg("other")),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        scale_from_config("{}"),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(scale_from_config("{"), Err(Error::InvalidData(_))));
}

/// A file written by the `safetensors` crate with a bf16 scale; a code 3 is refused.
#[test]
fn crate_written_bf16_scale_and_bad_codes() {
    use safetensors::{serialize, tensor::TensorView, Dtype};
    let t: Vec<i8> = (0..8 * 16).map(|i| (i % 3) as i8 - 1).collect();
    let m = TernaryMatrix::from_ternary(&t, 8, 16, 0.5, Format::I2S).unwrap();
    let packed = m.to_hf_packed().unwrap();
    let bf16 = ((0.5f32.to_bits() >> 16) as u16).to_le_bytes();
    let mut bad = packed.clone();
    bad[3] = 0xFF;
    let dir = std::env::temp_dir().join(format!("bitnet-hf-crate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [("good", &packed), ("bad", &bad)] {
        let views = [
            (
                "w.weight",
                TensorView::new(Dtype::U8, vec![2, 16], bytes).unwrap(),
            ),
            (
                "w.weight_scale",
                TensorView::new(Dtype::BF16, vec![1], &bf16).unwrap(),
            ),
        ];
        let file = serialize(views, None).unwrap();
        std::fs::write(dir.join(format!("{name}.safetensors")), file).unwrap();
    }
    let c = HfCheckpoint::open_with(dir.join("good.safetensors"), HfScale::Multiply).unwrap();
    assert_eq!(
        c.import("w.weight", Format::TL1)
            .unwrap()
            .to_format(Format::I2S)
            .unwrap(),
        m
    );
    let c = HfCheckpoint::open_with(dir.join("bad.safetensors"), HfScale::Multiply).unwrap();
    assert!(matches!(
        c.import("w.weight", Format::I2S),
        Err(Error::InvalidData(_))
    ));
    // Not a safetensors file: an error.
    std::fs::write(
        dir.join("junk.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk",
    )
    .unwrap();
    assert!(HfCheckpoint::open_with(dir.join("junk.safetensors"), HfScale::Multiply).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
