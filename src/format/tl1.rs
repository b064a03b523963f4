//! TL1: lookup-table format, 2 weights a 4-bit index (2 bits a weight).
//!
//! A group is two consecutive columns `(2g, 2g+1)` of a row; its index is
//! `i = 3·(t0+1) + (t1+1)` ∈ 0..=8 (`docs/FORMATS.md` §3). Per activation pair `(q0, q1)` a kernel
//! builds the 9-entry table `T[i] = d0·q0 + d1·q1` (`|T| <= 256`, int16) and each group then
//! costs one lookup instead of two multiply-adds.
//!
//! # Byte layout (the same bytes for every ISA)
//! Rows are padded to a multiple of [`ROW_TILE`] (64), columns to a multiple of [`K_BLOCK`]
//! (16 = one *step* of 8 groups), with zero trits (index 4, nibble byte `0x44`).
//! A 64-row tile is one sequential stream: its steps in K order, and inside a step its four
//! 16-row *sub-tiles*, 64 bytes each:
//!
//! ```text
//! tile t = rows 64t..64t+63, step k = columns 16k..16k+15 = groups 8k..8k+7
//!
//! [ t0 k0 s0 | t0 k0 s1 | t0 k0 s2 | t0 k0 s3 | t0 k1 s0 | ... | t1 k0 s0 | ... ]
//!   64 bytes   (sub-tile s = rows 64t+16s .. 64t+16s+15)
//!
//! one 64-byte sub-tile block: four 16-byte lanes, lane l = one group, byte i = one row
//!
//!   byte 16l + i   (l = 0..3, i = 0..15), row 64t + 16s + i:
//!     bits 3-0: index of group 8k + l       (columns 16k + 2l,     16k + 2l + 1)
//!     bits 7-4: index of group 8k + 4 + l   (columns 16k + 8 + 2l, 16k + 8 + 2l + 1)
//!
//!   lane:   0 (g0 | g4)     1 (g1 | g5)     2 (g2 | g6)     3 (g3 | g7)
//!         [ r0 r1 .. r15 ][ r0 r1 .. r15 ][ r0 r1 .. r15 ][ r0 r1 .. r15 ]
//! ```
//!
//! A 16-byte lane is 16 rows of one group, so a 16-entry table per lane (`vpshufb`, NEON
//! `tbl`) serves a whole lane; AVX-512 VBMI kernels transpose the 64 bytes with one `vpermb`
//! so that the four groups of one row sit in one dword, the shape `vpdpbusd` sums.
//!
//! Byte offset of row `r`, group `g`:
//! `(r/64 · Kp/16 + g/8) · 256 + (r%64)/16 · 64 + (g%8 % 4) · 16 + r%16`, nibble `(g%8)/4`.

use super::Layout;
use crate::error::{check_len, Error, Result};

/// Rows in one tile; rows are padded to a multiple of it.
pub const ROW_TILE: usize = 64;
/// Rows in one sub-tile block (one lane of 16 bytes holds them).
pub const SUB_ROWS: usize = 16;
/// Weights in one group.
pub const GROUP: usize = 2;
/// Groups in one step (8: four lanes, two nibbles).
pub const STEP_GROUPS: usize = 8;
/// Columns in one step; columns are padded to a multiple of it.
pub const K_BLOCK: usize = GROUP * STEP_GROUPS;
/// Bytes of one step of one tile.
pub const STEP_BYTES: usize = ROW_TILE / SUB_ROWS * 64;
/// The index of a zero group.
pub const ZERO_INDEX: u8 = 4;

pub(crate) fn packed_len(rows_padded: usize, cols_padded: usize) -> Option<usize> {
    rows_padded.checked_mul(cols_padded).map(|n| n / 4)
}

/// Byte offset of the nibble byte of row `r`, group `g` in a step-structured TL layout
/// (shared with TL2, whose steps are `step_bytes` long), and the nibble's shift.
#[inline]
pub(crate) fn nibble_pos(r: usize, g: usize, steps: usize, step_bytes: usize) -> (usize, u32) {
    let gi = g % STEP_GROUPS;
    let off = (r / ROW_TILE * steps + g / STEP_GROUPS) * step_bytes
        + (r % ROW_TILE) / SUB_ROWS * 64
        + (gi % 4) * 16
        + r % SUB_ROWS;
    (off, 4 * (gi / 4) as u32)
}

/// The index of two trits.
#[inline]
pub(crate) fn index(t0: i8, t1: i8) -> u8 {
    (3 * (t0 + 1) + (t1 + 1)) as u8
}

/// The two trits of a valid index (`<= 8`).
#[inline]
pub(crate) fn digits(i: u8) -> [i8; 2] {
    [(i / 3) as i8 - 1, (i % 3) as i8 - 1]
}

/// Fills `out` with zero weights (what padding holds), before [`pack_row`] writes the rows.
pub(crate) fn init(out: &mut [u8]) {
    out.fill(ZERO_INDEX | ZERO_INDEX << 4);
}

/// Packs row `r`'s valid trits (`row.len() == l.cols`) into `out` (initialized by [`init`]).
pub(crate) fn pack_row(row: &[i8], r: usize, l: &Layout, out: &mut [u8]) {
    let steps = l.cols_padded / K_BLOCK;
    // Whole steps: each of the step's four bytes for this row holds groups l and 4 + l, so it
    // is written whole, once, at the offset of group 8k (+ 16 l).
    let whole = row.len() / K_BLOCK;
    for (k, st) in row.chunks_exact(K_BLOCK).enumerate() {
        let (base, _) = nibble_pos(r, STEP_GROUPS * k, steps, STEP_BYTES);
        for lane in 0..4 {
            let (lo, hi) = (2 * lane, 8 + 2 * lane);
            out[base + 16 * lane] = index(st[lo], st[lo + 1]) | index(st[hi], st[hi + 1]) << 4;
        }
    }
    // A ragged last step, group by group over the zero-initialized bytes.
    let g0 = whole * STEP_GROUPS;
    for (g, pair) in row[whole * K_BLOCK..].chunks(GROUP).enumerate() {
        let g = g0 + g;
        let i = index(pair[0], pair.get(1).copied().unwrap_or(0));
        let (off, sh) = nibble_pos(r, g, steps, STEP_BYTES);
        out[off] = (out[off] & !(0xF << sh)) | i << sh;
    }
}

pub(crate) fn unpack(packed: &[u8], l: &Layout, trits: &mut [i8]) {
    let steps = l.cols_padded / K_BLOCK;
    for r in 0..l.rows {
        for c in 0..l.cols {
            let (off, sh) = nibble_pos(r, c / GROUP, steps, STEP_BYTES);
            trits[r * l.cols + c] = digits((packed[off] >> sh) & 0xF)[c % GROUP];
        }
    }
}

/// Checks packed bytes: every index is at most 8, and every padding weight is zero, so that
/// one matrix has exactly one packed form.
pub(crate) fn validate(packed: &[u8], l: &Layout) -> Result<()> {
    check_len("packed bytes", l.packed_len, packed.len())?;
    let steps = l.cols_padded / K_BLOCK;
    for r in 0..l.rows_padded {
        for g in 0..l.cols_padded / GROUP {
            let (off, sh) = nibble_pos(r, g, steps, STEP_BYTES);
            let i = (packed[off] >> sh) & 0xF;
            if i > 8 {
                return Err(Error::InvalidData(format!(
                    "TL1 index {i} at row {r}, group {g} (byte {off}) is not in 0..=8"
                )));
            }
            for (k, d) in digits(i).into_iter().enumerate() {
                let c = GROUP * g + k;
                if (r >= l.rows || c >= l.cols) && d != 0 {
                    return Err(Error::InvalidData(format!(
                        "TL1 padding at row {r}, column {c} is not a zero weight"
                    )));
                }
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
        // 70 x 40: two row tiles, K padded to 48 = 3 steps.
        let (rows, cols) = (70, 40);
        let mut t = vec![0i8; rows * cols];
        // Row 65 (tile 1, sub-tile 0, i = 1), columns 26, 27 = group 13 = step 1, gi 5:
        // lane 1, high nibble; index 3·(1+1) + (-1+1) = 6.
        t[65 * cols + 26] = 1;
        t[65 * cols + 27] = -1;
        // Row 20 (tile 0, sub-tile 1, i = 4), column 39 = group 19 = step 2, gi 3: lane 3,
        // low nibble; index 3·1 + 2 = 5.
        t[20 * cols + 39] = 1;
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::TL1).unwrap();
        let l = m.layout();
        assert_eq!((l.rows_padded, l.cols_padded, l.row_tile), (128, 48, 64));
        assert_eq!(l.packed_len, 128 * 48 / 4);
        let p = m.packed_bytes();
        let a = (3 + 1) * 256 + 16 + 1;
        assert_eq!(p[a], 0x64);
        let b = 2 * 256 + 64 + 3 * 16 + 4;
        assert_eq!(p[b], 0x45);
        assert_eq!(p.iter().filter(|&&x| x != 0x44).count(), 2);
        assert_eq!(m.to_ternary(), t);
    }

    #[test]
    fn bad_indices_and_padding_are_rejected() {
        let m = TernaryMatrix::from_ternary(&[1, 0, -1], 1, 3, 1.0, Format::TL1).unwrap();
        let good = m.packed_bytes().to_vec();
        assert!(validate(&good, m.layout()).is_ok());
        // Index 9..15 in a real group.
        for bad in 9..16u8 {
            let mut p = good.clone();
            p[0] = (p[0] & 0xF0) | bad;
            assert!(matches!(
                validate(&p, m.layout()),
                Err(Error::InvalidData(_))
            ));
        }
        // Group 1 holds column 2 (real) and column 3 (padding): index 3·0 + 2 puts +1 in the
        // padding column.
        let mut p = good.clone();
        p[16] = (p[16] & 0xF0) | 2;
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
        // A padding row.
        let mut p = good.clone();
        p[5] = 0x45;
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
        // A padding group's high nibble.
        let mut p = good;
        p[0] = 0x54 | (p[0] & 0xF);
        assert!(matches!(
            validate(&p, m.layout()),
            Err(Error::InvalidData(_))
        ));
    }

    #[test]
    fn every_index_round_trips() {
        for i in 0..9u8 {
            let [a, b] = digits(i);
            assert_eq!(index(a, b), i);
        }
    }
}
