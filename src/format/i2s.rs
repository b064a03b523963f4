//! I2_S: 2 bits a weight, code `c = t + 1` (`0 → -1`, `1 → 0`, `2 → +1`; 3 is invalid).
//!
//! # Our packed layout
//! Rows are padded to a multiple of [`ROW_TILE`] (4) and columns to a multiple of
//! [`K_BLOCK`] (256), with code 1 (a zero trit). Four rows are interleaved so that a GEMV
//! reads the whole matrix as one sequential stream (many short streams defeat the
//! hardware prefetcher when weights come from DRAM; see `docs/FORMATS.md` §2):
//!
//! ```text
//! group g = rows 4g..4g+3, K chunk b = columns 256b..256b+255
//!
//! [ g0 b0 r0 | g0 b0 r1 | g0 b0 r2 | g0 b0 r3 | g0 b1 r0 | ... | g1 b0 r0 | ... ]
//!   64 bytes   64 bytes   64 bytes   64 bytes
//!
//! inside one 64-byte row chunk, byte j (0..63):
//!   bits 1-0: column 256b + j        bits 5-4: column 256b + 128 + j
//!   bits 3-2: column 256b +  64 + j  bits 7-6: column 256b + 192 + j
//! ```
//!
//! Masking a byte with `0x03`, `0x0C`, `0x30`, `0xC0` gives `c · 4^k` with no shift, still
//! a valid unsigned byte (≤ 128) for `vpdpbusd` / `vpmaddubsw`; the same bytes feed a
//! 64-, 32- or 16-byte vector unit (AVX-512, AVX2, NEON) without rearranging.
//!
//! The offset of row `r`, column `c` is
//! `((r/4 · (Kp/256) + c/256) · 4 + r%4) · 64 + c%64`, bit pair `(c%256)/64`.
//!
//! # bitnet.cpp's interchange blob
//! Row-major, blocks of 128 weights = 32 bytes over the flattened matrix; in a block byte
//! `j` holds weight `j` in bits 7-6, `j+32` in 5-4, `j+64` in 3-2 and `j+96` in 1-0.
//! Then a 32-byte tail whose first 4 bytes are the f32 scale (little-endian), the rest zero.

use super::Layout;
use crate::error::{check_len, Error, Result};

/// Rows interleaved in one group.
pub const ROW_TILE: usize = 4;
/// Columns in one chunk of a row; columns are padded to a multiple of it.
pub const K_BLOCK: usize = 256;
/// Bytes of one row's chunk.
pub const CHUNK_BYTES: usize = K_BLOCK / 4;
/// The byte for four zero trits (code 1 in every pair), used for padding.
pub const ZERO_BYTE: u8 = 0x55;
/// Bytes after the packed codes in a bitnet.cpp I2_S tensor.
pub const BITNET_TAIL: usize = 32;
/// bitnet.cpp's block: 128 weights in 32 bytes.
pub const BITNET_BLOCK: usize = 128;

pub(crate) fn packed_len(rows_padded: usize, cols_padded: usize) -> Option<usize> {
    rows_padded.checked_mul(cols_padded).map(|n| n / 4)
}

/// Byte offset of the 64-byte chunk holding row `r`, chunk `b`.
#[inline]
pub(crate) fn chunk_offset(r: usize, b: usize, cols_padded: usize) -> usize {
    ((r / ROW_TILE * (cols_padded / K_BLOCK) + b) * ROW_TILE + r % ROW_TILE) * CHUNK_BYTES
}

/// True when some bit pair of `byte` is 3.
#[inline]
fn has_code3(byte: u8) -> bool {
    byte & (byte >> 1) & 0x55 != 0
}

/// The index of the first byte holding a code 3, if any. Loading a model validates every
/// packed byte, so the common case (none) is one OR over all bytes, which vectorizes (a
/// `position` with its early exit does not); the search runs only on failure.
pub(crate) fn first_code3(bytes: &[u8]) -> Option<usize> {
    let any = bytes
        .chunks(1 << 12)
        .any(|c| c.iter().fold(0u8, |acc, &b| acc | (b & (b >> 1) & 0x55)) != 0);
    if any {
        bytes.iter().position(|&b| has_code3(b))
    } else {
        None
    }
}

/// Fills `out` with zero weights (what padding holds), before [`pack_row`] writes the rows.
pub(crate) fn init(out: &mut [u8]) {
    out.fill(ZERO_BYTE);
}

/// Packs row `r`'s valid trits (each -1, 0 or 1, `row.len() == l.cols`) into `out`
/// (initialized by [`init`]). Chunk by chunk: a whole 256-column chunk is four 64-trit
/// slices combined byte by byte (straight-line code the compiler vectorizes); only a ragged
/// last chunk goes trit by trit.
pub(crate) fn pack_row(row: &[i8], r: usize, l: &Layout, out: &mut [u8]) {
    let code = |t: i8| (t + 1) as u8;
    {
        for (b, src) in row.chunks(K_BLOCK).enumerate() {
            let off = chunk_offset(r, b, l.cols_padded);
            let dst: &mut [u8; CHUNK_BYTES] =
                (&mut out[off..off + CHUNK_BYTES]).try_into().unwrap();
            if let Ok(src) = <&[i8; K_BLOCK]>::try_from(src) {
                let (s0, rest) = src.split_at(CHUNK_BYTES);
                let (s1, rest) = rest.split_at(CHUNK_BYTES);
                let (s2, s3) = rest.split_at(CHUNK_BYTES);
                for j in 0..CHUNK_BYTES {
                    dst[j] = code(s0[j]) | code(s1[j]) << 2 | code(s2[j]) << 4 | code(s3[j]) << 6;
                }
            } else {
                for (c, &t) in src.iter().enumerate() {
                    let (byte, shift) = (c % CHUNK_BYTES, 2 * (c / CHUNK_BYTES));
                    dst[byte] = (dst[byte] & !(3 << shift)) | code(t) << shift;
                }
            }
        }
    }
}

pub(crate) fn unpack(packed: &[u8], l: &Layout, trits: &mut [i8]) {
    for r in 0..l.rows {
        for c in 0..l.cols {
            let byte = packed[chunk_offset(r, c / K_BLOCK, l.cols_padded) + c % CHUNK_BYTES];
            let shift = 2 * ((c % K_BLOCK) / CHUNK_BYTES);
            trits[r * l.cols + c] = ((byte >> shift) & 3) as i8 - 1;
        }
    }
}

/// Checks packed bytes: no code 3 anywhere, and every padding position holds code 1, so
/// that one matrix has exactly one packed form.
pub(crate) fn validate(packed: &[u8], l: &Layout) -> Result<()> {
    check_len("packed bytes", l.packed_len, packed.len())?;
    if let Some(i) = first_code3(packed) {
        return Err(Error::InvalidData(format!("I2_S code 3 in byte {i}")));
    }
    let blocks = l.cols_padded / K_BLOCK;
    for r in 0..l.rows_padded {
        // Only blocks that hold padding: every block of a padding row, else the last one.
        let first = if r >= l.rows { 0 } else { l.cols / K_BLOCK };
        for b in first..blocks {
            let off = chunk_offset(r, b, l.cols_padded);
            for j in 0..CHUNK_BYTES {
                for k in 0..4 {
                    let c = b * K_BLOCK + k * CHUNK_BYTES + j;
                    if (r >= l.rows || c >= l.cols) && (packed[off + j] >> (2 * k)) & 3 != 1 {
                        return Err(Error::InvalidData(format!(
                            "I2_S padding at row {r}, column {c} is not a zero weight"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Position of flat weight `n` in a bitnet.cpp blob: (byte, shift).
#[inline]
fn bitnet_pos(n: usize) -> (usize, usize) {
    let within = n % BITNET_BLOCK;
    (n / BITNET_BLOCK * 32 + within % 32, 6 - 2 * (within / 32))
}

pub(crate) fn bitnet_check_shape(rows: usize, cols: usize) -> Result<usize> {
    super::check_shape(rows, cols)?;
    if !cols.is_multiple_of(BITNET_BLOCK) {
        return Err(Error::InvalidShape(format!(
            "bitnet.cpp I2_S needs cols to be a multiple of {BITNET_BLOCK}, got {cols}"
        )));
    }
    Ok(rows * cols / 4 + BITNET_TAIL)
}

/// Decodes a bitnet.cpp blob row by row into `sink` and returns its scale. `cols` is a
/// multiple of 128, so each row is whole 128-weight blocks: in a block's 32 bytes, bit pair
/// 7-6 holds its first 32 weights, 5-4 the next 32, and so on.
pub(crate) fn import_bitnet_rows(
    blob: &[u8],
    rows: usize,
    cols: usize,
    sink: &mut dyn FnMut(usize, &[i8]),
) -> Result<f32> {
    let len = bitnet_check_shape(rows, cols)?;
    check_len("bitnet.cpp I2_S blob", len, blob.len())?;
    let codes = &blob[..len - BITNET_TAIL];
    if let Some(i) = first_code3(codes) {
        return Err(Error::InvalidData(format!("I2_S code 3 in blob byte {i}")));
    }
    let tail = &blob[len - BITNET_TAIL..];
    let scale = f32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if !scale.is_finite() {
        return Err(Error::NonFinite {
            what: "blob scale",
            index: 0,
        });
    }
    let mut row = vec![0i8; cols];
    for (r, src) in codes.chunks_exact(cols / 4).enumerate() {
        for (blk, out) in src
            .chunks_exact(BITNET_BLOCK / 4)
            .zip(row.chunks_exact_mut(BITNET_BLOCK))
        {
            for (k, quarter) in out.chunks_exact_mut(32).enumerate() {
                let shift = 6 - 2 * k;
                for (t, &byte) in quarter.iter_mut().zip(blk) {
                    *t = ((byte >> shift) & 3) as i8 - 1;
                }
            }
        }
        sink(r, &row);
    }
    Ok(scale)
}

/// [`import_bitnet_rows`] into one row-major trit vector.
#[cfg(test)]
pub(crate) fn import_bitnet(blob: &[u8], rows: usize, cols: usize) -> Result<(Vec<i8>, f32)> {
    let mut trits = Vec::with_capacity(rows * cols);
    let scale = import_bitnet_rows(blob, rows, cols, &mut |_, row| trits.extend_from_slice(row))?;
    Ok((trits, scale))
}

pub(crate) fn export_bitnet(trits: &[i8], rows: usize, cols: usize, scale: f32) -> Result<Vec<u8>> {
    let len = bitnet_check_shape(rows, cols)?;
    let mut blob = vec![0u8; len];
    for (n, &t) in trits.iter().enumerate() {
        let (byte, shift) = bitnet_pos(n);
        blob[byte] |= ((t + 1) as u8) << shift;
    }
    blob[len - BITNET_TAIL..len - BITNET_TAIL + 4].copy_from_slice(&scale.to_le_bytes());
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, TernaryMatrix};

    #[test]
    fn layout_places_weights_as_documented() {
        // Row 5, column 300 of a 6 x 600 matrix: group 1, chunk 1, row-in-group 1,
        // column 300 = 256 + 44 → bit pair 0, byte 44.
        let (rows, cols) = (6, 600);
        let mut t = vec![0i8; rows * cols];
        t[5 * cols + 300] = 1;
        t[5 * cols + 256 + 192 + 3] = -1;
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2S).unwrap();
        let kp = 768;
        assert_eq!(m.layout().cols_padded, kp);
        let p = m.packed_bytes();
        let off = ((3 + 1) * 4 + 1) * 64; // group 1 has 3 chunks; chunk 1; row 1
        assert_eq!(p[off + 44], 0x54 | 2);
        assert_eq!(p[off + 3], 0x15); // code 0 in bits 7-6
        assert_eq!(p.iter().filter(|&&b| b != ZERO_BYTE).count(), 2);
    }

    #[test]
    fn bitnet_blob_layout_is_bitnet_cpp() {
        // Weight 0 → bits 7-6 of byte 0; weight 97 → bits 1-0 of byte 1; second block at byte 32.
        let mut t = vec![0i8; 2 * 128];
        t[0] = 1;
        t[97] = -1;
        t[128 + 40] = 1;
        let blob = export_bitnet(&t, 2, 128, 0.5).unwrap();
        assert_eq!(blob.len(), 2 * 128 / 4 + 32);
        assert_eq!(blob[0], 0b1001_0101);
        assert_eq!(blob[1], 0b0101_0100);
        assert_eq!(blob[32 + 8], 0b0110_0101);
        assert_eq!(&blob[64..68], &0.5f32.to_le_bytes());
        assert!(blob[68..].iter().all(|&b| b == 0));
        assert_eq!(import_bitnet(&blob, 2, 128).unwrap(), (t, 0.5));
    }

    #[test]
    fn code3_and_bad_padding_are_rejected() {
        let m = TernaryMatrix::from_ternary(&[1, 0, -1], 1, 3, 1.0, Format::I2S).unwrap();
        let mut p = m.packed_bytes().to_vec();
        assert!(validate(&p, m.layout()).is_ok());
        p[0] |= 3;
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
        let mut p = m.packed_bytes().to_vec();
        p[10] = 0x56; // column 10 is padding
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
        let mut blob = m.to_ternary();
        blob.resize(128, 0);
        let mut blob = export_bitnet(&blob, 1, 128, 1.0).unwrap();
        blob[3] = 0xFF;
        assert!(matches!(
            import_bitnet(&blob, 1, 128),
            Err(Error::InvalidData(_))
        ));
    }
}
