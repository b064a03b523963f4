"""Reference bytes for tests/ggml_reference.rs, from an implementation that is not ours:
the PyPI package `gguf` (gguf.quants.quantize / dequantize for TQ1_0 and TQ2_0), and the
Hugging Face packed layout written in numpy from the rule in docs/FORMATS.md §7.

Usage: make_reference.py OUT_DIR. Writes, per case NAME, raw little-endian files
NAME.f32 (the tensor given to the quantizer), NAME.trits (int8, only for ternary cases),
NAME.TQ1_0 / NAME.TQ2_0 (the quantizer's bytes), NAME.TQ1_0.deq / NAME.TQ2_0.deq (f32,
gguf's dequantization of those bytes), NAME.hf (packed, when rows % 4 == 0), and a line
"NAME kind rows cols beta_f32_bits d_f32_bits" in OUT_DIR/manifest.txt, where kind is
"ternary" (trits * beta), "rowscaled" (trits * beta[row], one scale per row) or "random"
(not ternary), beta is the f32 scale and d is float32(float16(beta)). For "rowscaled" the
two numbers are 0 and the scales are in NAME.beta (f32, one per row) and NAME.d
(float32(float16(beta[row])), one per row).
"""
import struct
import sys
from pathlib import Path

import numpy as np
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize, quantize

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(12)
manifest = []


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", float(np.float32(x))))[0]


def hf_pack(trits):
    """Byte [p, k] holds in bits 2i+1:2i the code (w + 1) of row p + i*rows/4."""
    rows, cols = trits.shape
    q = rows // 4
    codes = (trits + 1).astype(np.uint8)
    packed = np.zeros((q, cols), dtype=np.uint8)
    for i in range(4):
        packed |= codes[i * q:(i + 1) * q] << np.uint8(2 * i)
    return packed


def emit(name, kind, w, beta, trits=None):
    rows, cols = w.shape
    w.astype("<f4").tofile(out / f"{name}.f32")
    for t in (GGMLQuantizationType.TQ1_0, GGMLQuantizationType.TQ2_0):
        q = quantize(w, t)
        q.tofile(out / f"{name}.{t.name}")
        dequantize(q, t).astype("<f4").tofile(out / f"{name}.{t.name}.deq")
    if trits is not None:
        trits.astype(np.int8).tofile(out / f"{name}.trits")
        if rows % 4 == 0:
            hf_pack(trits).tofile(out / f"{name}.hf")
    d = np.float32(np.float16(beta))
    manifest.append(f"{name} {kind} {rows} {cols} {f32_bits(beta)} {f32_bits(d)}")


def ternary(rows, cols, zero_blocks=()):
    t = rng.integers(-1, 2, size=(rows, cols)).astype(np.int8)
    for r, b in zero_blocks:
        t[r, 256 * b:256 * (b + 1)] = 0
    return t


# Ragged row counts, all-zero blocks and rows, scales that are and are not fp16 values.
cases = [
    ("one_block", 1, 256, np.float32(0.5), ()),
    ("ragged3", 3, 512, np.float32(0.0123), ((1, 0),)),
    ("ragged5", 5, 768, np.float32(1.7e-3), ((0, 2), (4, 0), (4, 1), (4, 2))),
    ("ragged7", 7, 256, np.float32(2.75), ((6, 0),)),
    ("rows8", 8, 512, np.float32(0.8127), ((3, 1),)),
    ("rows12", 12, 1024, np.float32(3.1e-5), ()),
    ("tiny_subnormal_d", 4, 256, np.float32(3e-7), ()),
]
for name, rows, cols, beta, zb in cases:
    t = ternary(rows, cols, zb)
    emit(name, "ternary", t.astype(np.float32) * beta, beta, t)

z = np.zeros((4, 512), dtype=np.int8)
emit("all_zero", "ternary", z.astype(np.float32), np.float32(1.0), z)

# One scale per row: ragged row counts, an all-zero row (its blocks get d = 0), all-zero
# blocks inside scaled rows.
row_cases = [
    ("rowscaled3", 3, 512, ((1, 0),)),
    ("rowscaled5", 5, 768, ((2, 0), (2, 1), (2, 2), (0, 1))),
    ("rowscaled8", 8, 256, ((7, 0),)),
]
for name, rows, cols, zb in row_cases:
    t = ternary(rows, cols, zb)
    beta = (rng.uniform(0.01, 2.0, size=rows)).astype(np.float32)
    w = t.astype(np.float32) * beta[:, None]
    emit(name, "rowscaled", w, np.float32(0), t)
    beta.astype("<f4").tofile(out / f"{name}.beta")
    beta.astype(np.float16).astype("<f4").tofile(out / f"{name}.d")

# Not ternary: every block gets its own d, so one scale cannot hold it.
for name, rows, cols in (("random4", 4, 512), ("random1", 1, 1024)):
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    emit(name, "random", w, np.float32(0), None)

(out / "manifest.txt").write_text("\n".join(manifest) + "\n")
