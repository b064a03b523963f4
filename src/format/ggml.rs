//! Exact codecs for the ternary tensor encodings other tools write: ggml's TQ1_0 and TQ2_0,
//! bitnet.cpp's I2_S as stored in GGUF, and the Hugging Face `transformers` packed layout.
//! The byte rules are in `docs/FORMATS.md` §7.
//!
//! Decoding is split from scale resolution: a TQ tensor carries one fp16 `d` per 256-weight
//! block, and a [`TernaryMatrix`](super::TernaryMatrix) carries one f32 scale or one per
//! row, so the importer checks that every block holding a non-zero weight has the same `|d|`
//! (one scale), or failing that the same within each row (per-row scales), and refuses
//! anything else (never an average).

use super::{OwnedScales, Scales};
use crate::error::{check_len, Error, Result};

/// ggml type id of TQ1_0 (1.6875 bits a weight).
pub const GGML_TYPE_TQ1_0: u32 = 34;
/// ggml type id of TQ2_0 (2.0625 bits a weight).
pub const GGML_TYPE_TQ2_0: u32 = 35;
/// bitnet.cpp's type id of I2_S (the blob of [`TernaryMatrix::from_bitnet_i2s`](super::TernaryMatrix::from_bitnet_i2s)).
pub const GGML_TYPE_I2_S: u32 = 36;
/// Weights in one TQ block (ggml's `QK_K`); a row's length must be a multiple of it.
pub const QK_K: usize = 256;
/// Bytes of one TQ1_0 block: 48 five-trit bytes, 4 four-trit bytes, fp16 `d`.
pub const TQ1_0_BLOCK_BYTES: usize = 54;
/// Bytes of one TQ2_0 block: 64 bytes of 2-bit codes, fp16 `d`.
pub const TQ2_0_BLOCK_BYTES: usize = 66;

/// How a Hugging Face checkpoint's `weight_scale` applies to the unpacked trits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HfScale {
    /// weight = trit · weight_scale (`linear_class = "autobitlinear"`, e.g.
    /// `microsoft/bitnet-b1.58-2B-4T`, where `weight_scale` = mean|W|).
    Multiply,
    /// weight = trit / weight_scale (the older `linear_class = "bitlinear"`).
    Divide,
}

/// The ternary ggml types this crate reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GgmlType {
    Tq1_0,
    Tq2_0,
    I2S,
}

impl GgmlType {
    pub(crate) fn from_id(id: i64) -> Result<GgmlType> {
        match id {
            34 => Ok(GgmlType::Tq1_0),
            35 => Ok(GgmlType::Tq2_0),
            36 => Ok(GgmlType::I2S),
            // The same number means two different things in the two code bases; reading the
            // bytes under the wrong one would give garbage that looks valid.
            39 => Err(Error::Unsupported(
                "ggml type 39 is TL2 in bitnet.cpp's fork and MXFP4 in upstream ggml; it is \
                 never guessed, and bitnet.cpp's TL1/TL2 tensors cannot be decoded without the \
                 tiling chosen when the model was converted (convert it to I2_S, TQ1_0 or TQ2_0)"
                    .into(),
            )),
            _ => Err(Error::Unsupported(format!(
                "ggml type {id} is not a ternary type this library decodes \
                 (supported: 34 TQ1_0, 35 TQ2_0, 36 I2_S)"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            GgmlType::Tq1_0 => "TQ1_0",
            GgmlType::Tq2_0 => "TQ2_0",
            GgmlType::I2S => "I2_S",
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            GgmlType::Tq1_0 => TQ1_0_BLOCK_BYTES,
            GgmlType::Tq2_0 => TQ2_0_BLOCK_BYTES,
            GgmlType::I2S => unreachable!("I2_S has no per-block layout"),
        }
    }

    /// The byte size of a `rows x cols` tensor (rows = ne1, cols = ne0), checking the shape.
    pub(crate) fn size(self, rows: usize, cols: usize) -> Result<usize> {
        super::check_shape(rows, cols)?;
        match self {
            GgmlType::I2S => super::i2s::bitnet_check_shape(rows, cols),
            GgmlType::Tq1_0 | GgmlType::Tq2_0 => {
                if !cols.is_multiple_of(QK_K) {
                    return Err(Error::InvalidShape(format!(
                        "{} needs cols (ne0) to be a multiple of {QK_K}, got {cols}",
                        self.name()
                    )));
                }
                (rows * (cols / QK_K))
                    .checked_mul(self.block_bytes())
                    .ok_or_else(|| Error::InvalidShape(format!("{rows} x {cols} overflows")))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// fp16

/// Exact fp16 → f32 (every fp16 value, subnormals included, is an f32; NaN stays NaN).
pub fn f16_to_f32(h: u16) -> f32 {
    const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = (h >> 10) & 0x1F;
    let man = (h & 0x3FF) as u32;
    let bits = match exp {
        // Zero or subnormal: man · 2^-24, exact in f32 (24-bit significand).
        0 => {
            // A constant, not `powi`: powi's result is not specified to be exact.
            let v = man as f32 * TWO_POW_M24;
            return if sign != 0 { -v } else { v };
        }
        0x1F => sign | 0x7F80_0000 | (man << 13),
        _ => sign | ((exp as u32 + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// f32 → fp16, rounding to nearest, ties to even (what ggml's `GGML_FP32_TO_FP16` and
/// numpy's `astype(float16)` do); too large gives infinity, NaN gives a quiet NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32;
    let man = b & 0x7F_FFFF;
    if exp == 0xFF {
        return sign | 0x7C00 | if man != 0 { 0x200 } else { 0 };
    }
    // The value's exponent in fp16 terms.
    let e = exp - 127 + 15;
    if e >= 0x1F {
        return sign | 0x7C00;
    }
    // Significand with the implicit bit (24 bits), and how far it must shift right to
    // land on fp16's 10 fraction bits (more for subnormals).
    let (sig, shift) = if e <= 0 {
        if exp == 0 {
            // f32 subnormals are below 2^-126, far under half the smallest fp16 subnormal.
            return sign;
        }
        (man | 0x80_0000, 14 - e)
    } else {
        (man | 0x80_0000, 13)
    };
    if shift > 24 {
        return sign;
    }
    let shift = shift as u32;
    let mut q = sig >> shift;
    let rem = sig & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q += 1;
    }
    // For normals q holds the implicit bit at bit 10; adding (e - 1) << 10 puts the exponent
    // in place, and a carry out of the fraction (q = 2048) correctly bumps the exponent.
    let v = if e <= 0 {
        q
    } else {
        q + (((e - 1) as u32) << 10)
    };
    sign | v as u16
}

// ---------------------------------------------------------------------------------------
// Scale resolution

/// Turns per-block `d`s into the matrix's scales, one block at a time, in row-major order.
/// Blocks whose weights are all zero in value (d = ±0, or every trit 0) are ignored, and
/// their trits set to 0 (their values are 0 whatever the codes say). A negative `d` is folded
/// into the trits (value-exact). When every other block has the same |d| that is the one
/// scale (1.0 when there is no such block); else, when they agree within each row, each
/// row's |d| is its scale (1.0 for a row with no such block); else an error naming the first
/// block that disagrees with its row.
pub(crate) struct ScaleResolver {
    bpr: usize,
    /// Each row's first non-zero block and its |d|.
    row_d: Vec<Option<(usize, f32)>>,
    /// The tensor's first |d|, and whether every block so far has it.
    first: Option<f32>,
    one: bool,
}

impl ScaleResolver {
    pub(crate) fn new(rows: usize, cols: usize) -> Self {
        ScaleResolver {
            bpr: cols / QK_K,
            row_d: vec![None; rows],
            first: None,
            one: true,
        }
    }

    /// Block `i` (row-major) with fp16 `h` and its decoded trits.
    pub(crate) fn block(&mut self, i: usize, h: u16, block: &mut [i8]) -> Result<()> {
        let d = f16_to_f32(h);
        if !d.is_finite() {
            return Err(Error::NonFinite {
                what: "ggml block d",
                index: i,
            });
        }
        // Any non-zero trit: an OR over the block (vectorized, no early exit).
        if d == 0.0 || block.iter().fold(0, |acc, &t| acc | t) == 0 {
            block.fill(0);
            return Ok(());
        }
        if d < 0.0 {
            block.iter_mut().for_each(|t| *t = -*t);
        }
        let a = d.abs();
        let (r, bpr) = (i / self.bpr, self.bpr);
        self.one &= *self.first.get_or_insert(a) == a;
        match self.row_d[r] {
            None => self.row_d[r] = Some((i, a)),
            Some((i0, rd)) if rd != a => {
                return Err(Error::InvalidData(format!(
                    "row {r}, block {} has |d| = {a}, but the row's first block with a \
                     non-zero weight (row {r}, block {}) has |d| = {rd}: a matrix carries one \
                     scale or one per row, and blocks with different scales within a row \
                     cannot be imported",
                    i % bpr,
                    i0 % bpr
                )));
            }
            Some(_) => {}
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> OwnedScales {
        match self.first {
            None => OwnedScales::One(1.0),
            Some(s) if self.one => OwnedScales::One(s),
            Some(_) => OwnedScales::PerRow(
                self.row_d
                    .into_iter()
                    .map(|d| d.map_or(1.0, |(_, a)| a))
                    .collect(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// TQ2_0

/// Decodes one TQ2_0 block (block `n` of a tensor with `bpr` blocks a row) into 256 trits
/// and returns its fp16 `d`. Code 3 is invalid.
fn decode_tq2_block(blk: &[u8], out: &mut [i8], n: usize, bpr: usize) -> Result<u16> {
    let codes = &blk[..64];
    // Any pair holding 3 (both bits set)? Then find the first for the message.
    if codes.iter().fold(0, |acc, &x| acc | (x & (x >> 1) & 0x55)) != 0 {
        let j = codes
            .iter()
            .position(|&x| x & (x >> 1) & 0x55 != 0)
            .unwrap_or(0);
        return Err(Error::InvalidData(format!(
            "TQ2_0 code 3 in row {}, block {}, byte {j}",
            n / bpr,
            n % bpr
        )));
    }
    // Byte 32h + m holds element 128h + 32l + m in bits 2l+1:2l: each of the eight
    // 32-element runs of the block is one bit pair of one half's 32 bytes.
    for (run, dst) in out.chunks_exact_mut(32).enumerate() {
        let (h, l) = (run / 4, run % 4);
        for (t, &x) in dst.iter_mut().zip(&codes[32 * h..32 * h + 32]) {
            *t = ((x >> (2 * l)) & 3) as i8 - 1;
        }
    }
    Ok(u16::from_le_bytes([blk[64], blk[65]]))
}

/// Encodes trits with per-block d (already fp16) as ggml's `quantize_row_tq2_0_ref` does.
fn encode_tq2(trits: &[i8], d16: u16, out: &mut Vec<u8>) {
    for blk in trits.chunks_exact(QK_K) {
        // ggml writes d = 0 and code 1 (value 0) in a block with no non-zero weight.
        let zero = blk.iter().all(|&t| t == 0);
        for j in 0..64 {
            let (h, m) = (j / 32, j % 32);
            let mut byte = 0u8;
            for l in 0..4 {
                byte |= ((blk[128 * h + 32 * l + m] + 1) as u8) << (2 * l);
            }
            out.push(byte);
        }
        out.extend_from_slice(&if zero { 0 } else { d16 }.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// TQ1_0

const POW3: [u16; 5] = [1, 3, 9, 27, 81];

/// The byte ggml stores for the base-3 number q (0..=242): ceil(q · 256 / 243).
#[inline]
const fn tq1_byte(q: u16) -> u8 {
    ((q as u32 * 256).div_ceil(243)) as u8
}

/// Digit n (0 = most significant) of a stored byte, as ggml decodes it.
#[inline]
const fn tq1_digit(byte: u8, n: usize) -> u8 {
    ((((byte as u16 * POW3[n]) & 0xFF) * 3) >> 8) as u8
}

/// The five digits a byte decodes to, or None when the byte is not ggml's encoding of those
/// digits (13 of the 256 values are never written: re-encoding gives another byte).
const fn tq1_decode_byte(byte: u8) -> Option<[u8; 5]> {
    let mut c = [0u8; 5];
    let mut q = 0u16;
    let mut n = 0;
    while n < 5 {
        c[n] = tq1_digit(byte, n);
        q += c[n] as u16 * POW3[4 - n];
        n += 1;
    }
    if tq1_byte(q) == byte {
        Some(c)
    } else {
        None
    }
}

/// Every byte's decoding, computed once at compile time: the digits, and 0 = invalid,
/// 1 = valid in a 5-trit byte only, 2 = valid in either (its fifth digit is 0).
static TQ1_LUT: [([u8; 5], u8); 256] = TQ1_LUT_CONST;
const TQ1_LUT_CONST: [([u8; 5], u8); 256] = {
    let mut t = [([0u8; 5], 0u8); 256];
    let mut b = 0;
    while b < 256 {
        if let Some(c) = tq1_decode_byte(b as u8) {
            t[b] = (c, if c[4] == 0 { 2 } else { 1 });
        }
        b += 1;
    }
    t
};

/// Per byte: bit 0 set when it is invalid as a 5-trit byte, bit 1 when invalid as a 4-trit
/// byte (the validity of [`TQ1_LUT`] as flags, to OR over a block without branches).
static TQ1_BAD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match TQ1_LUT_CONST[b].1 {
            0 => 3,
            1 => 2,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// Digits `0..digits` of `W` bytes, digit k of byte m to `out[W k + m]` (as trits). Digit k
/// of a byte is `((byte · 3^k) mod 256) · 3 >> 8`; the byte times 3^k is built by tripling
/// (wrapping adds), so every step is a plain lane-wise operation the compiler vectorizes.
#[inline(always)]
fn tq1_runs<const W: usize>(bytes: &[u8], out: &mut [i8], digits: usize) {
    let mut q: [u8; W] = bytes.try_into().expect("W bytes");
    for dst in out.chunks_exact_mut(W).take(digits) {
        for (t, &v) in dst.iter_mut().zip(&q) {
            *t = ((v as u16 * 3) >> 8) as i8 - 1;
        }
        for v in q.iter_mut() {
            *v = v.wrapping_add(*v).wrapping_add(*v);
        }
    }
}

/// Decodes one TQ1_0 block (block `n` of a tensor with `bpr` blocks a row) into 256 trits
/// and returns its fp16 `d`. A byte is invalid when it is not ceil(q·256/243) of the q its
/// digits spell, and a byte of 48..51 also when its fifth digit is not 0 (ggml multiplies
/// those 4-trit values by 3).
fn decode_tq1_block(blk: &[u8], out: &mut [i8], n: usize, bpr: usize) -> Result<u16> {
    // Validity first (one table look-up a byte, no early exit), so the decoding below is
    // branch-free.
    let bad = |j: usize, v: u8| v == 0 || (j >= 48 && v == 1);
    let flags = |bytes: &[u8]| bytes.iter().fold(0, |a, &x| a | TQ1_BAD[x as usize]);
    if flags(&blk[..48]) & 1 != 0 || flags(&blk[48..52]) & 2 != 0 {
        let (j, byte) = blk[..52]
            .iter()
            .enumerate()
            .find(|&(j, &x)| bad(j, TQ1_LUT[x as usize].1))
            .map(|(j, &x)| (j, x))
            .unwrap_or((0, 0));
        return Err(Error::InvalidData(format!(
            "TQ1_0 byte {j} of row {}, block {} is {byte:#04x}, \
             which ggml's encoder never writes{}",
            n / bpr,
            n % bpr,
            if j >= 48 { " in a 4-trit byte" } else { "" }
        )));
    }
    // Bytes 0..32: digit k of byte m is element 32k + m; bytes 32..48: 160 + 16k + m;
    // bytes 48..52: 240 + 4k + m (4 digits). Each run of elements is one digit of a run of
    // bytes, computed as ggml does (`tq1_digit`).
    tq1_runs::<32>(&blk[..32], &mut out[..160], 5);
    tq1_runs::<16>(&blk[32..48], &mut out[160..240], 5);
    tq1_runs::<4>(&blk[48..52], &mut out[240..], 4);
    Ok(u16::from_le_bytes([blk[52], blk[53]]))
}

/// Encodes as ggml's `quantize_row_tq1_0_ref` does.
fn encode_tq1(trits: &[i8], d16: u16, out: &mut Vec<u8>) {
    let code = |blk: &[i8], e: usize| (blk[e] + 1) as u16;
    for blk in trits.chunks_exact(QK_K) {
        let zero = blk.iter().all(|&t| t == 0);
        for j in 0..32 {
            let q = (0..5).map(|n| code(blk, 32 * n + j) * POW3[4 - n]).sum();
            out.push(tq1_byte(q));
        }
        for j in 0..16 {
            let q = (0..5)
                .map(|n| code(blk, 160 + 16 * n + j) * POW3[4 - n])
                .sum();
            out.push(tq1_byte(q));
        }
        for j in 0..4 {
            let q = (0..4)
                .map(|n| code(blk, 240 + 4 * n + j) * POW3[4 - n])
                .sum();
            out.push(tq1_byte(q));
        }
        out.extend_from_slice(&if zero { 0 } else { d16 }.to_le_bytes());
    }
}

/// Encodes a ternary tensor with one scale or one per row as TQ1_0 or TQ2_0, byte for byte
/// what ggml's quantizer writes for the weights `trit · s` (`s` the row's scale).
pub(crate) fn encode_tq(
    t: GgmlType,
    trits: &[i8],
    rows: usize,
    cols: usize,
    scales: Scales<'_>,
) -> Result<Vec<u8>> {
    let size = t.size(rows, cols)?;
    let d16 = |r: usize| {
        let scale = scales.row(r);
        let d16 = f32_to_f16(scale);
        if f16_to_f32(d16).is_finite() {
            Ok(d16)
        } else {
            Err(Error::InvalidData(format!(
                "the scale {scale} of row {r} overflows fp16 (the largest is 65504), which {} \
                 stores it in",
                t.name()
            )))
        }
    };
    let mut out = Vec::new();
    out.try_reserve_exact(size).map_err(|_| Error::Alloc)?;
    for (r, row) in trits.chunks_exact(cols).enumerate() {
        let d16 = d16(r)?;
        match t {
            GgmlType::Tq1_0 => encode_tq1(row, d16, &mut out),
            GgmlType::Tq2_0 => encode_tq2(row, d16, &mut out),
            GgmlType::I2S => unreachable!("I2_S is exported as a bitnet.cpp blob"),
        }
    }
    debug_assert_eq!(out.len(), size);
    Ok(out)
}

/// Decodes a TQ tensor row by row: each row's trits (with its blocks' `d` resolved by
/// [`ScaleResolver`]) go to `sink` in order, and the scales come back.
pub(crate) fn decode_tq_rows(
    t: GgmlType,
    data: &[u8],
    rows: usize,
    cols: usize,
    sink: &mut dyn FnMut(usize, &[i8]),
) -> Result<OwnedScales> {
    let size = t.size(rows, cols)?;
    check_len("ggml tensor bytes", size, data.len())?;
    let (bpr, bb) = (cols / QK_K, t.block_bytes());
    let mut res = ScaleResolver::new(rows, cols);
    let mut row = vec![0i8; cols];
    for (r, src) in data.chunks_exact(bpr * bb).enumerate() {
        for (b, (blk, out)) in src
            .chunks_exact(bb)
            .zip(row.chunks_exact_mut(QK_K))
            .enumerate()
        {
            let n = r * bpr + b;
            let d = match t {
                GgmlType::Tq1_0 => decode_tq1_block(blk, out, n, bpr)?,
                GgmlType::Tq2_0 => decode_tq2_block(blk, out, n, bpr)?,
                GgmlType::I2S => unreachable!("I2_S is imported as a bitnet.cpp blob"),
            };
            res.block(n, d, out)?;
        }
        sink(r, &row);
    }
    Ok(res.finish())
}

// ---------------------------------------------------------------------------------------
// Hugging Face packed

/// Checks the shape of an HF packed weight: `rows` (out features) a multiple of 4, since
/// `transformers` allocates `out_features // 4` packed rows.
pub(crate) fn hf_size(rows: usize, cols: usize) -> Result<usize> {
    super::check_shape(rows, cols)?;
    if !rows.is_multiple_of(4) {
        return Err(Error::InvalidShape(format!(
            "Hugging Face packed weights need rows (out features) to be a multiple of 4, \
             got {rows} (transformers stores out_features // 4 packed rows)"
        )));
    }
    Ok(rows * cols / 4)
}

/// Decodes HF packed bytes row by row into `sink`: byte [p, k] holds in bits 2i+1:2i the
/// code of row p + i·rows/4, so row r is bit pair r / (rows/4) of packed row r % (rows/4).
pub(crate) fn decode_hf_rows(
    packed: &[u8],
    rows: usize,
    cols: usize,
    sink: &mut dyn FnMut(usize, &[i8]),
) -> Result<()> {
    let size = hf_size(rows, cols)?;
    check_len("packed bytes", size, packed.len())?;
    let q = rows / 4;
    // Code 3 anywhere? Then name the first (packed row, column, bit pair).
    if packed.iter().fold(0, |acc, &x| acc | (x & (x >> 1) & 0x55)) != 0 {
        let n = packed
            .iter()
            .position(|&x| x & (x >> 1) & 0x55 != 0)
            .unwrap_or(0);
        let (p, k) = (n / cols, n % cols);
        let i = (0..4)
            .find(|i| (packed[n] >> (2 * i)) & 3 == 3)
            .unwrap_or(0);
        return Err(Error::InvalidData(format!(
            "Hugging Face packed code 3 at packed row {p}, column {k}, bits {}..{} (row {})",
            2 * i + 1,
            2 * i,
            p + i * q
        )));
    }
    let mut row = vec![0i8; cols];
    for r in 0..rows {
        let (i, p) = (r / q, r % q);
        for (t, &x) in row.iter_mut().zip(&packed[p * cols..(p + 1) * cols]) {
            *t = ((x >> (2 * i)) & 3) as i8 - 1;
        }
        sink(r, &row);
    }
    Ok(())
}

/// Encodes trits in the HF packed layout.
pub(crate) fn encode_hf(trits: &[i8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    let size = hf_size(rows, cols)?;
    let q = rows / 4;
    let mut out = vec![0u8; size];
    for (p, row) in out.chunks_exact_mut(cols).enumerate() {
        for (k, byte) in row.iter_mut().enumerate() {
            for i in 0..4 {
                *byte |= ((trits[(p + i * q) * cols + k] + 1) as u8) << (2 * i);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_to_f32_is_exact() {
        assert_eq!(f16_to_f32(0x0000).to_bits(), 0);
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_to_f32(0x0001), f32::from_bits(0x3380_0000));
        assert_eq!(f16_to_f32(0x03FF), 1023.0 * f32::from_bits(0x3380_0000));
        assert_eq!(f16_to_f32(0x8001), -(f32::from_bits(0x3380_0000)));
        assert_eq!(f16_to_f32(0x0400), f32::from_bits(0x3880_0000));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7C00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xFC00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7E00).is_nan() && f16_to_f32(0xFC01).is_nan());
    }

    #[test]
    fn f32_to_f16_round_trips_every_half_and_rounds_to_even() {
        // Every half natively; a spread of them under Miri (which is slow).
        let step = if cfg!(miri) { 97 } else { 1 };
        for h in (0..=u16::MAX).step_by(step) {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
            } else {
                assert_eq!(f32_to_f16(f), h, "{h:#06x}");
            }
            // The midpoint to the next half rounds to the even one of the two.
            let next = h.wrapping_add(1);
            if h & 0x7FFF < 0x7BFF && h & 0x8000 == next & 0x8000 {
                let mid = (f as f64 + f16_to_f32(next) as f64) / 2.0;
                let even = if h & 1 == 0 { h } else { next };
                assert_eq!(f32_to_f16(mid as f32), even, "midpoint after {h:#06x}");
            }
        }
        assert_eq!(f32_to_f16(65520.0), 0x7C00); // rounds up past 65504
        assert_eq!(f32_to_f16(65519.0), 0x7BFF);
        assert_eq!(f32_to_f16(1e-8), 0);
        assert_eq!(f32_to_f16(f32::from_bits(0x3300_0000)), 0); // tie with 0: even
        assert_eq!(f32_to_f16(f32::from_bits(0x3300_0000) * 1.5), 1);
        assert_eq!(f32_to_f16(f32::from_bits(1)), 0);
        assert_eq!(f32_to_f16(-f32::INFINITY), 0xFC00);
        assert_eq!(f32_to_f16(0.1), 0x2E66);
    }

    #[test]
    fn tq1_byte_code_has_243_valid_values() {
        let valid: Vec<u8> = (0..=255u8)
            .filter(|&b| tq1_decode_byte(b).is_some())
            .collect();
        assert_eq!(valid.len(), 243);
        for q in 0..243u16 {
            let c = tq1_decode_byte(tq1_byte(q)).unwrap();
            let back: u16 = (0..5).map(|n| c[n] as u16 * POW3[4 - n]).sum();
            assert_eq!(back, q);
        }
        assert!(tq1_decode_byte(1).is_none());
    }

    #[test]
    fn tq2_places_elements_as_documented() {
        let mut t = vec![0i8; QK_K];
        t[128 + 32 * 3 + 5] = 1; // h = 1, l = 3, m = 5
        t[7] = -1; // h = 0, l = 0, m = 7
        let b = encode_tq(GgmlType::Tq2_0, &t, 1, QK_K, Scales::One(1.0)).unwrap();
        assert_eq!(b[32 + 5], 0x55 & !0xC0 | 0x80);
        assert_eq!(b[7], 0x54);
        assert_eq!(&b[64..], &[0x00, 0x3C]);
        let z = encode_tq(GgmlType::Tq2_0, &[0; QK_K], 1, QK_K, Scales::One(1.0)).unwrap();
        assert!(z[..64].iter().all(|&x| x == 0x55) && z[64..] == [0, 0]);
    }

    /// Block-wise trits and their d, resolved in order.
    struct Decoded {
        trits: Vec<i8>,
        d: Vec<u16>,
    }

    fn resolve_scale(dec: &mut Decoded, rows: usize, cols: usize) -> Result<OwnedScales> {
        let mut res = ScaleResolver::new(rows, cols);
        for (i, (&h, blk)) in dec
            .d
            .iter()
            .zip(dec.trits.chunks_exact_mut(QK_K))
            .enumerate()
        {
            res.block(i, h, blk)?;
        }
        Ok(res.finish())
    }

    #[test]
    fn scale_resolution() {
        let d1 = f32_to_f16(0.5);
        let d2 = f32_to_f16(0.25);
        let mk = |d: Vec<u16>| {
            let mut trits = vec![1i8; d.len() * QK_K];
            trits[QK_K..2 * QK_K].fill(0);
            Decoded { trits, d }
        };
        let one = |s: OwnedScales| match s {
            OwnedScales::One(s) => s,
            OwnedScales::PerRow(_) => panic!("per-row scales"),
        };
        let per_row = |s: OwnedScales| match s {
            OwnedScales::PerRow(s) => s.to_vec(),
            OwnedScales::One(s) => panic!("one scale {s}"),
        };
        // 2 x 512: block 1 (row 0) is all zero, so its d is ignored.
        let mut dec = mk(vec![d1, d2, d1, 0x8000 | d1]);
        assert_eq!(one(resolve_scale(&mut dec, 2, 512).unwrap()), 0.5);
        assert!(
            dec.trits[3 * QK_K..].iter().all(|&t| t == -1),
            "negative d folded"
        );
        // Rows agree within themselves but not across rows: per-row scales.
        let mut dec = mk(vec![d1, d1, d2, 0x8000 | d2]);
        assert_eq!(
            per_row(resolve_scale(&mut dec, 2, 512).unwrap()),
            [0.5, 0.25]
        );
        // Row 1 disagrees with itself, and all rows agreed until then.
        let mut dec = mk(vec![d1, d1, d1, d2]);
        let e = resolve_scale(&mut dec, 2, 512).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidData(s) if s.contains("row 1, block 1")),
            "{e}"
        );
        // 3 x 512: rows differ, then row 2 disagrees with itself.
        let mut dec = mk(vec![d1, d1, d2, d2, d2, d1]);
        let e = resolve_scale(&mut dec, 3, 512).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidData(s) if s.contains("row 2, block 1 has |d| = 0.5") && s.contains("(row 2, block 0) has |d| = 0.25")),
            "{e}"
        );
        // A row with only all-zero blocks gets 1.0.
        let mut dec = mk(vec![d1, d1, 0, 0, d2, d2]);
        assert_eq!(
            per_row(resolve_scale(&mut dec, 3, 512).unwrap()),
            [0.5, 1.0, 0.25]
        );
        let mut dec = mk(vec![0x7C00, d1, d1, d1]);
        assert!(matches!(
            resolve_scale(&mut dec, 2, 512),
            Err(Error::NonFinite { index: 0, .. })
        ));
        let mut dec = mk(vec![0, 0, 0x8000, 0]);
        assert_eq!(one(resolve_scale(&mut dec, 2, 512).unwrap()), 1.0);
        assert!(dec.trits.iter().all(|&t| t == 0));
    }
}
