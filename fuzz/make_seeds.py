#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/<target>/): a few inputs per target that
reach each mode (valid packings of every format, bitnet.cpp blobs, the extreme values over
long K, a program of C ABI calls). Run from fuzz/: python3 make_seeds.py"""
import os, struct

def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def f32(v): return struct.pack("<f", v)

def write(target, name, data):
    d = os.path.join("seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

x64 = bytes((i * 37 + 11) % 256 for i in range(64))
trits = bytes((i * 7 + i // 5) % 256 for i in range(256))

# packed_import: mode, format, rows, cols selector + cols, scale selector, x (64), payload
for fmt in range(3):
    for rows, cols in [(5, 300), (70, 129), (1, 1)]:
        write("packed_import", f"valid_f{fmt}_{rows}x{cols}",
              bytes([1, fmt, rows, 2]) + u16(cols) + bytes([1]) + x64 + trits + bytes([0]))
        write("packed_import", f"mutated_f{fmt}_{rows}x{cols}",
              bytes([1, fmt, rows, 2]) + u16(cols) + bytes([1]) + x64 + trits
              + bytes([2]) + u32(7) + bytes([0xFF]) + u32(1000) + bytes([0x02]))
write("packed_import", "blob_3x256", bytes([3, 0, 3, 1, 2, 1]) + x64 + trits + bytes([1]) + u32(5) + bytes([0x40]))
write("packed_import", "blob_nan_scale", bytes([3, 0, 2, 1, 1, 0]) + f32(float("nan")) + x64 + trits + bytes([0]))
write("packed_import", "raw_i2s_1x1", bytes([0, 0, 1, 2]) + u16(1) + bytes([1]) + x64 + bytes([0x55] * 64))
write("packed_import", "raw_blob_1x128", bytes([2, 0, 1, 1, 1, 1]) + x64 + bytes([0x55] * 32) + f32(0.5) + bytes(28))

# kernels_vs_scalar: extreme = (mode 1, rows, cols-1 u16, n, pattern, xbits), random = (0, rows, cols u16, n, trits, x)
for pattern, xbits, cols in [(0, 0, 4096), (0, 1, 4096), (1, 2, 20000), (2, 1, 19999), (0, 0, 257)]:
    write("kernels_vs_scalar", f"extreme_p{pattern}_x{xbits}_k{cols}",
          bytes([1, 7]) + u16(cols - 1) + bytes([2, pattern, xbits]))
for rows, cols, n in [(5, 300, 1), (70, 1025, 3), (66, 64, 4), (1, 1, 1)]:
    write("kernels_vs_scalar", f"random_{rows}x{cols}_n{n}",
          bytes([0, rows - 1]) + u16(cols - 1) + bytes([n - 1]) + trits + trits[::-1] + x64 * 8 + bytes([1, 200]))

# capi: a program of calls. op 0 = from_ternary: op, rows dim, cols dim, fmt, pout, pin, trits(32), bad, scale
def dim(v): return bytes([4]) + u16(v - 1)
create = lambda fmt, r, c: bytes([0]) + dim(r) + dim(c) + bytes([fmt + 3, 2, 2]) + trits[:32] + bytes([1, 1])
gemv_i8 = bytes([4, 1, 2, 2, 3, 3, 1, 1, 3])        # handle 1, ptrs valid, lengths exact, whole range
gemv_f32 = bytes([6, 1, 2, 2, 3, 3, 0, 1, 3]) + x64 + bytes([0])
gemm = bytes([8, 1, 5, 2, 2]) + bytes([1])
export = bytes([9, 1, 2, 2, 3])
quant = bytes([11, 2]) + u16(300) + x64 + bytes([1]) + u32(3) + bytes([0, 2, 2, 0, 0, 0, 0, 0, 0, 0])
for fmt in range(3):
    write("capi", f"program_f{fmt}", create(fmt, 5, 300) + gemv_i8 + gemv_f32 + gemm + export + quant)
write("capi", "program_two_matrices", create(0, 3, 256) + create(2, 70, 40) + bytes([10, 1, 4, 2]) + gemm + export)

# container: mode (bit 0: the target writes the checksum), then a container file (FORMATS §9)
# with its checksum field zero: I2_S matrices whose trits are all zero (code 1: 0x55 bytes).
def container_file(entries):
    n = len(entries)
    names = b"".join(e[0] for e in entries)
    header_len = 40 + 64 * n + len(names)
    end = header_len
    table, data, name_off = b"", b"", 40 + 64 * n
    for name, fmt, rows, cols, scale, packed in entries:
        start = (end + 63) // 64 * 64
        data += bytes(start - end) + packed
        table += (u32(fmt) + u32(0) + struct.pack("<QQQQQ", rows, cols, start, len(packed), name_off)
                  + u32(len(name)) + f32(scale) + struct.pack("<Q", 0))
        name_off += len(name)
        end = start + len(packed)
    head = b"BITNETKC" + u32(2) + u32(n) + struct.pack("<QQQ", header_len, end, 0)
    return head + table + names + data

i2s_zero = bytes([0x55]) * (4 * 256 // 4)
write("container", "empty", bytes([1]) + container_file([]))
write("container", "i2s_4x256", bytes([1]) + container_file([(b"q", 0, 4, 256, 0.5, i2s_zero)]))
write("container", "two", bytes([1]) + container_file([(b"q", 0, 4, 256, 0.5, i2s_zero),
                                                       (b"k", 0, 3, 200, 2.0, i2s_zero[:256*4//4])]))
write("container", "no_checksum", bytes([0]) + container_file([(b"q", 0, 4, 256, 0.5, i2s_zero)]))

# gguf: GGUF v3 files (docs/FORMATS.md §10): an I2_S 4x128 tensor (all-zero trits, code 1,
# scale 1.0 in the tail), a TQ2_0 2x256 one, an F32 one, and one of type 39; alignment 32.
def gguf_file(tensors, alignment=32):
    def s(x):
        return struct.pack("<Q", len(x)) + x
    h = b"GGUF" + u32(3) + struct.pack("<QQ", len(tensors), 1)
    h += s(b"general.architecture") + u32(8) + s(b"bitnet")
    off, data = 0, b""
    for name, dims, ty, blob in tensors:
        h += s(name) + u32(len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + u32(ty)
        h += struct.pack("<Q", off)
        padded = blob + bytes(-len(blob) % alignment)
        data += padded
        off += len(padded)
    h += bytes(-len(h) % alignment)
    return h + data

i2s = bytes([0x55]) * (4 * 128 // 4) + f32(1.0) + bytes(28)
tq2 = (bytes([0x55]) * 64 + u16(0x3800)) * 2
write("gguf", "i2s", gguf_file([(b"blk.0.attn_q.weight", [128, 4], 36, i2s)]))
write("gguf", "mixed", gguf_file([(b"a", [128, 4], 36, i2s), (b"b", [256, 2], 35, tq2),
                                  (b"c", [4, 2], 0, bytes(32)), (b"d", [256, 2], 39, tq2)]))

# safetensors: rule byte (bit 0: divide), then a safetensors file: an 8-byte header length, a
# JSON header, the data. One packed 8x16 tensor (all codes 1: zero trits) with an f32 scale.
import json
def safetensors_file(tensors):
    header, data = {}, b""
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

st = safetensors_file([("w.weight", "U8", [2, 16], bytes([0x55]) * 32), ("w.weight_scale", "F32", [1], f32(0.5))])
write("safetensors", "one", bytes([0]) + st)
write("safetensors", "divide", bytes([1]) + st)
