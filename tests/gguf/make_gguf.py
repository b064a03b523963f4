"""GGUF files for tests/gguf_reader.rs, written by an implementation that is not ours: the PyPI
package `gguf` (GGUFWriter, and gguf.quants.quantize for TQ1_0 and TQ2_0).

Usage: make_gguf.py OUT_DIR. Writes OUT_DIR/model.gguf holding, in this order:
  - "tok_embd.weight": F32 (3, 256), not ternary;
  - per case NAME below, a TQ1_0 and a TQ2_0 tensor "NAME.tq1" / "NAME.tq2" of trits * beta,
    with NAME.trits (int8, row-major, rows x cols) beside the file;
and OUT_DIR/manifest.txt with a line "NAME rows cols d_f32_bits" per case, d = f32(f16(beta)).
Also OUT_DIR/aligned.gguf: one TQ2_0 tensor with general.alignment = 64.
"""
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf.constants import GGMLQuantizationType as T
from gguf.quants import quantize

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)

# (name, rows, cols, beta): ragged row counts, an all-zero block (row 1, block 0) and an
# all-zero row (the last) in every case; the 1-row case is all zero.
cases = [("blk.0.attn_q", 5, 512, 0.5), ("blk.0.ffn_down", 7, 768, 0.0123), ("blk.1.attn_k", 1, 256, 2.25)]

w = gguf.GGUFWriter(str(out / "model.gguf"), "bitnet")
w.add_string("general.name", "bitnet-kernels test")
w.add_uint32("test.count", len(cases))
w.add_array("test.list", [1, 2, 3])
w.add_tensor("tok_embd.weight", rng.standard_normal((3, 256)).astype(np.float32))
manifest = []
for name, rows, cols, beta in cases:
    t = rng.integers(-1, 2, size=(rows, cols)).astype(np.int8)
    if rows > 1:
        t[1, :256] = 0
    t[-1, :] = 0
    t.tofile(out / f"{name}.trits")
    x = t.astype(np.float32) * np.float32(beta)
    for qt, suffix in [(T.TQ1_0, "tq1"), (T.TQ2_0, "tq2")]:
        w.add_tensor(f"{name}.{suffix}", quantize(x, qt), raw_dtype=qt)
    d = np.float32(np.float16(beta))
    manifest.append(f"{name} {rows} {cols} {struct.unpack('<I', struct.pack('<f', d))[0]}")
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
(out / "manifest.txt").write_text("\n".join(manifest) + "\n")

w = gguf.GGUFWriter(str(out / "aligned.gguf"), "bitnet")
w.data_alignment = 64
w.add_custom_alignment(64)
t = rng.integers(-1, 2, size=(4, 256)).astype(np.int8)
t.tofile(out / "aligned.trits")
w.add_tensor("w", quantize(t.astype(np.float32) * np.float32(0.25), T.TQ2_0), raw_dtype=T.TQ2_0)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
