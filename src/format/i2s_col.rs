//! I2_S_COL: the I2_S codes (`c = t + 1`, 2 bits a weight) stored column by column, so
//! that the weights one activation multiplies are `Mp / 4` contiguous bytes: a product reads
//! only the columns whose activation is non-zero, each as one sequential run (BitNet a4.8's
//! sparse activations; `docs/FORMATS.md` §12).
//!
//! ```text
//! column c: Mp / 4 bytes at c · Mp / 4 (Mp = padded rows);
//! block b = rows 256b..256b+255 of column c: 64 bytes at c · Mp / 4 + b · 64
//!
//! [ c0 b0 | c0 b1 | ... | c0 b(Mp/256-1) | c1 b0 | ... ]
//!
//! inside one 64-byte column chunk, byte i (0..63):
//!   bits 1-0: row 256b + i        bits 5-4: row 256b + 128 + i
//!   bits 3-2: row 256b + 64 + i   bits 7-6: row 256b + 192 + i
//! ```
//!
//! Rows are padded to a multiple of 256 and columns to a multiple of [`K_BLOCK`] (64), both
//! with code 1 (a zero trit). The chunk is the I2_S row chunk with rows and columns swapped,
//! so the same masks (`0x03`, `0x0C`, `0x30`, `0xC0`) pick 64 rows at a time.

use super::Layout;
use crate::error::{check_len, Error, Result};

/// Rows in one block: a kernel keeps 256 accumulators and the chunk of a column is one
/// 64-byte cache line.
pub const ROW_TILE: usize = 256;
/// Columns are padded to a multiple of this (one 64-byte vector of activations).
pub const K_BLOCK: usize = 64;
/// Bytes of one column in one block.
pub const CHUNK_BYTES: usize = ROW_TILE / 4;

pub(crate) fn packed_len(rows_padded: usize, cols_padded: usize) -> Option<usize> {
    rows_padded.checked_mul(cols_padded).map(|n| n / 4)
}

/// Byte and shift of row `r`, column `c` in a matrix of `rows_padded` padded rows.
#[inline]
pub(crate) fn position(r: usize, c: usize, rows_padded: usize) -> (usize, usize) {
    let byte = c * (rows_padded / 4) + r / ROW_TILE * CHUNK_BYTES + r % CHUNK_BYTES;
    (byte, 2 * ((r % ROW_TILE) / CHUNK_BYTES))
}

pub(crate) fn pack(trits: &[i8], l: &Layout, out: &mut [u8]) {
    out.fill(super::i2s::ZERO_BYTE);
    for r in 0..l.rows {
        for c in 0..l.cols {
            let (byte, shift) = position(r, c, l.rows_padded);
            let code = (trits[r * l.cols + c] + 1) as u8;
            out[byte] = (out[byte] & !(3 << shift)) | (code << shift);
        }
    }
}

pub(crate) fn unpack(packed: &[u8], l: &Layout, trits: &mut [i8]) {
    for r in 0..l.rows {
        for c in 0..l.cols {
            let (byte, shift) = position(r, c, l.rows_padded);
            trits[r * l.cols + c] = ((packed[byte] >> shift) & 3) as i8 - 1;
        }
    }
}

/// Checks packed bytes: no code 3 anywhere, code 1 at every padding position.
pub(crate) fn validate(packed: &[u8], l: &Layout) -> Result<()> {
    check_len("packed bytes", l.packed_len, packed.len())?;
    if let Some(i) = super::i2s::first_code3(packed) {
        return Err(Error::InvalidData(format!("I2_S_COL code 3 in byte {i}")));
    }
    // Then only the padding positions: the padding rows whole, the padding columns of the rest.
    for r in 0..l.rows_padded {
        let first = if r >= l.rows { 0 } else { l.cols };
        for c in first..l.cols_padded {
            let (byte, shift) = position(r, c, l.rows_padded);
            let code = (packed[byte] >> shift) & 3;
            if code != 1 {
                return Err(Error::InvalidData(format!(
                    "I2_S_COL padding at row {r}, column {c} is not a zero weight"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, TernaryMatrix};

    #[test]
    fn layout_places_weights_as_documented() {
        // Row 300 = block 1, row-in-block 44 (byte 44, bits 1-0); row 256 + 192 + 3 = bits
        // 7-6 of byte 3. 500 rows pad to 512, 70 columns to 128.
        let (rows, cols) = (500, 70);
        let mut t = vec![0i8; rows * cols];
        t[300 * cols + 69] = 1;
        t[(256 + 192 + 3) * cols + 5] = -1;
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::I2SCol).unwrap();
        let l = m.layout();
        assert_eq!(
            (l.rows_padded, l.cols_padded, l.packed_len),
            (512, 128, 512 * 128 / 4)
        );
        let p = m.packed_bytes();
        // Column c starts at c · 512 / 4; block 1 of it 64 bytes later.
        assert_eq!(p[69 * 128 + 64 + 44], 0x54 | 2);
        assert_eq!(p[5 * 128 + 64 + 3], 0x15);
        assert_eq!(p.iter().filter(|&&b| b != 0x55).count(), 2);
        assert_eq!(m.to_ternary(), t);
    }

    #[test]
    fn code3_and_bad_padding_are_rejected() {
        let m = TernaryMatrix::from_ternary(&[1, 0, -1], 1, 3, 1.0, Format::I2SCol).unwrap();
        let mut p = m.packed_bytes().to_vec();
        assert!(validate(&p, m.layout()).is_ok());
        p[0] |= 0x0C; // row 64, column 0: code 3
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
        let mut p = m.packed_bytes().to_vec();
        p[1] = 0x56; // row 1 is padding
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
        let mut p = m.packed_bytes().to_vec();
        p[3 * 64] = 0x56; // column 3 is padding (one 256-row block a column)
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
    }
}
