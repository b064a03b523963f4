"""Hugging Face packed BitNet checkpoints for tests/hf_checkpoint.rs, written with numpy and
the PyPI package `safetensors`, the packing written from the rule in docs/FORMATS.md §7
(byte [p, k] holds in bits 2i+1:2i the code w + 1 of row p + i*rows/4).

Usage: make_checkpoint.py OUT_DIR. Writes OUT_DIR/auto (linear_class "autobitlinear",
f32 weight_scale, two shard files) and OUT_DIR/div (linear_class "bitlinear", f16
weight_scale), each with config.json, and NAME.trits (int8, rows x cols) beside.
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

out = Path(sys.argv[1])
rng = np.random.default_rng(3)


def hf_pack(trits):
    rows, cols = trits.shape
    q = rows // 4
    codes = (trits + 1).astype(np.uint8)
    packed = np.zeros((q, cols), dtype=np.uint8)
    for i in range(4):
        packed |= codes[i * q:(i + 1) * q] << np.uint8(2 * i)
    return packed


for kind, cls, dtype in [("auto", "autobitlinear", np.float32), ("div", "bitlinear", np.float16)]:
    d = out / kind
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(
        {"model_type": "bitnet", "quantization_config": {"quant_method": "bitnet", "linear_class": cls}}))
    shards = [{}, {}]
    for i, (name, rows, cols, scale) in enumerate([
            ("model.layers.0.self_attn.q_proj", 8, 40, 0.75),
            ("model.layers.0.mlp.down_proj", 12, 33, 1.5),
            ("model.layers.1.self_attn.k_proj", 4, 7, 0.3)]):
        t = rng.integers(-1, 2, size=(rows, cols)).astype(np.int8)
        t.tofile(d / f"{name}.weight.trits")
        s = shards[i % 2]
        s[f"{name}.weight"] = hf_pack(t)
        s[f"{name}.weight_scale"] = np.array([scale], dtype=dtype)
    shards[0]["model.norm.weight"] = rng.standard_normal(40).astype(np.float32)
    shards[1]["model.embed_tokens.weight"] = rng.integers(0, 255, size=(4, 8)).astype(np.uint8)
    save_file(shards[0], str(d / "model-00001-of-00002.safetensors"))
    save_file(shards[1], str(d / "model-00002-of-00002.safetensors"))
