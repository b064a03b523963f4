//! TL2: lookup-table format, 3 weights in 5 bits (1.67 bits a weight).
//!
//! A group is three consecutive columns `(3g, 3g+1, 3g+2)` of a row, with value id
//! `v = 9·(t0+1) + 3·(t1+1) + (t2+1)` ∈ 0..=26. The group `-t` has id `26 - v`, so a group is
//! stored as a sign bit `s = (v > 13)` and a magnitude index `u = s ? 26 - v : v` ∈ 0..=13
//! (`docs/FORMATS.md` §3). Per activation triple a kernel builds the 14-entry table
//! `T[u] = d0·q0 + d1·q1 + d2·q2` (`|T| <= 384`, int16) and each group costs one lookup, negated
//! when `s` is set. Index 14 and 15, and `s = 1` with `u = 13` (a negative zero), never
//! occur: validation (`TernaryMatrix::from_packed`) rejects them, so one matrix has exactly one packed form.
//!
//! # Byte layout (the same bytes for every ISA)
//! Rows are padded to a multiple of [`ROW_TILE`] (64), columns to a multiple of [`K_BLOCK`]
//! (24 = one *step* of 8 groups), with zero trits (`u = 13`, `s = 0`: nibble byte `0xDD`,
//! sign bit 0). A 64-row tile is one sequential stream of 320-byte steps in K order; a step
//! holds the 4-bit indices of its four 16-row sub-tiles exactly as in TL1 (see
//! [`super::tl1`]), then their sign bits:
//!
//! ```text
//! tile t = rows 64t..64t+63, step k = columns 24k..24k+23 = groups 8k..8k+7
//!
//! one step (320 bytes):
//!   [ nibbles s0 | nibbles s1 | nibbles s2 | nibbles s3 | signs s0 | signs s1 | signs s2 | signs s3 ]
//!     64 bytes     64           64           64           16         16         16         16
//!
//! nibbles of sub-tile s (rows 64t+16s+i, i = 0..15): byte 16l + i (lane l = 0..3)
//!     bits 3-0: u of group 8k + l        bits 7-4: u of group 8k + 4 + l
//!
//! signs of sub-tile s: two little-endian u64 words
//!     word 0 (bytes 0-7):  bit 4i + l = s of row i, group 8k + l       (the low nibbles)
//!     word 1 (bytes 8-15): bit 4i + l = s of row i, group 8k + 4 + l   (the high nibbles)
//! ```
//!
//! The nibbles are lane-major (a 16-byte lane = 16 rows of one group, what `vpshufb` and
//! NEON `tbl` want); the sign bits are row-major (bit `4i + l`): the order of the bytes
//! after the AVX-512 kernel's transposing `vpermb`, so one sign word, moved to a mask
//! register, masks the 64 transposed lookups directly, while AVX2 / NEON expand the bits
//! with a byte shuffle.
//!
//! Byte offset of the nibble of row `r`, group `g`: as in TL1 with 320-byte steps,
//! `(r/64 · Kp/24 + g/8) · 320 + (r%64)/16 · 64 + (g%8 % 4) · 16 + r%16`, nibble `(g%8)/4`;
//! its sign bit: byte `(r/64 · Kp/24 + g/8) · 320 + 256 + (r%64)/16 · 16 + (g%8)/4 · 8 + b/8`,
//! bit `b%8`, with `b = 4·(r%16) + (g%8 % 4)`.

use super::tl1::{nibble_pos, ROW_TILE as TILE, STEP_GROUPS, SUB_ROWS};
use super::Layout;
use crate::error::{check_len, Error, Result};

/// Rows in one tile; rows are padded to a multiple of it.
pub const ROW_TILE: usize = TILE;
/// Weights in one group.
pub const GROUP: usize = 3;
/// Columns in one step; columns are padded to a multiple of it.
pub const K_BLOCK: usize = GROUP * STEP_GROUPS;
/// Bytes of one step of one tile: 4 × 64 bytes of nibbles, 4 × 16 bytes of sign bits.
pub const STEP_BYTES: usize = ROW_TILE / SUB_ROWS * (64 + 16);
/// Offset of the sign bits inside a step.
pub const SIGNS_OFFSET: usize = ROW_TILE / SUB_ROWS * 64;
/// The magnitude index of a zero group.
pub const ZERO_INDEX: u8 = 13;

pub(crate) fn packed_len(rows_padded: usize, cols_padded: usize) -> Option<usize> {
    rows_padded
        .checked_mul(cols_padded)
        .map(|n| n / K_BLOCK * 5) // 5 bytes = 8 groups of 5 bits, per row and step
}

/// Byte offset and bit of the sign of row `r`, group `g`.
#[inline]
pub(crate) fn sign_pos(r: usize, g: usize, steps: usize) -> (usize, u32) {
    let gi = g % STEP_GROUPS;
    let b = 4 * (r % SUB_ROWS) + gi % 4;
    let off = (r / ROW_TILE * steps + g / STEP_GROUPS) * STEP_BYTES
        + SIGNS_OFFSET
        + (r % ROW_TILE) / SUB_ROWS * 16
        + gi / 4 * 8
        + b / 8;
    (off, (b % 8) as u32)
}

/// The (sign, magnitude index) of three trits.
#[inline]
pub(crate) fn encode(t0: i8, t1: i8, t2: i8) -> (bool, u8) {
    let v = (9 * (t0 + 1) + 3 * (t1 + 1) + (t2 + 1)) as u8;
    if v > 13 {
        (true, 26 - v)
    } else {
        (false, v)
    }
}

/// The three trits of a valid (sign, index) (`u <= 13`).
#[inline]
pub(crate) fn digits(s: bool, u: u8) -> [i8; 3] {
    let v = if s { 26 - u } else { u };
    [(v / 9) as i8 - 1, (v / 3 % 3) as i8 - 1, (v % 3) as i8 - 1]
}

/// Fills `out` with zero weights (what padding holds), before [`pack_row`] writes the rows.
pub(crate) fn init(out: &mut [u8]) {
    for step in out.chunks_exact_mut(STEP_BYTES) {
        step[..SIGNS_OFFSET].fill(ZERO_INDEX | ZERO_INDEX << 4);
        step[SIGNS_OFFSET..].fill(0);
    }
}

/// Packs row `r`'s valid trits (`row.len() == l.cols`) into `out` (initialized by [`init`]).
pub(crate) fn pack_row(row: &[i8], r: usize, l: &Layout, out: &mut [u8]) {
    let steps = l.cols_padded / K_BLOCK;
    // Whole steps: the row's four nibble bytes of a step are written whole (groups l and
    // 4 + l), and its two 4-bit runs of sign bits (groups 0..4 in word 0, 4..8 in word 1,
    // at bit 4·(r%16) + l) are ORed in at once.
    let whole = row.len() / K_BLOCK;
    for (k, st) in row.chunks_exact(K_BLOCK).enumerate() {
        let g = STEP_GROUPS * k;
        let (nib, _) = nibble_pos(r, g, steps, STEP_BYTES);
        let (sgn, sh) = sign_pos(r, g, steps);
        let (mut lo, mut hi) = (0u8, 0u8);
        for lane in 0..4 {
            let (a, b) = (&st[GROUP * lane..], &st[GROUP * (4 + lane)..]);
            let (sa, ua) = encode(a[0], a[1], a[2]);
            let (sb, ub) = encode(b[0], b[1], b[2]);
            out[nib + 16 * lane] = ua | ub << 4;
            lo |= (sa as u8) << lane;
            hi |= (sb as u8) << lane;
        }
        out[sgn] |= lo << sh;
        out[sgn + 8] |= hi << sh;
    }
    // A ragged last step, group by group over the zero-initialized bytes.
    let g0 = whole * STEP_GROUPS;
    for (g, grp) in row[whole * K_BLOCK..].chunks(GROUP).enumerate() {
        let g = g0 + g;
        let t = |k: usize| grp.get(k).copied().unwrap_or(0);
        let (s, u) = encode(t(0), t(1), t(2));
        let (off, sh) = nibble_pos(r, g, steps, STEP_BYTES);
        out[off] = (out[off] & !(0xF << sh)) | u << sh;
        let (off, bit) = sign_pos(r, g, steps);
        out[off] |= (s as u8) << bit;
    }
}

/// The (sign, index) stored for row `r`, group `g`.
#[inline]
fn read(packed: &[u8], r: usize, g: usize, steps: usize) -> (bool, u8) {
    let (off, sh) = nibble_pos(r, g, steps, STEP_BYTES);
    let (soff, bit) = sign_pos(r, g, steps);
    ((packed[soff] >> bit) & 1 == 1, (packed[off] >> sh) & 0xF)
}

pub(crate) fn unpack(packed: &[u8], l: &Layout, trits: &mut [i8]) {
    let steps = l.cols_padded / K_BLOCK;
    for r in 0..l.rows {
        for c in 0..l.cols {
            let (s, u) = read(packed, r, c / GROUP, steps);
            trits[r * l.cols + c] = digits(s, u)[c % GROUP];
        }
    }
}

/// Checks packed bytes: every index is at most 13, no negative zero (`s = 1`, `u = 13`),
/// and every padding weight is zero.
pub(crate) fn validate(packed: &[u8], l: &Layout) -> Result<()> {
    check_len("packed bytes", l.packed_len, packed.len())?;
    let steps = l.cols_padded / K_BLOCK;
    for r in 0..l.rows_padded {
        for g in 0..l.cols_padded / GROUP {
            let (s, u) = read(packed, r, g, steps);
            if u > 13 || (s && u == 13) {
                return Err(Error::InvalidData(format!(
                    "TL2 index {u} with sign {} at row {r}, group {g} does not decode",
                    s as u8
                )));
            }
            for (k, d) in digits(s, u).into_iter().enumerate() {
                let c = GROUP * g + k;
                if (r >= l.rows || c >= l.cols) && d != 0 {
                    return Err(Error::InvalidData(format!(
                        "TL2 padding at row {r}, column {c} is not a zero weight"
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
    fn every_group_round_trips_and_negation_mirrors() {
        for v in 0..27i8 {
            let t = [v / 9 - 1, v / 3 % 3 - 1, v % 3 - 1];
            let (s, u) = encode(t[0], t[1], t[2]);
            assert!(u <= 13 && !(s && u == 13));
            assert_eq!(s, v > 13);
            assert_eq!(digits(s, u), t);
            let (ns, nu) = encode(-t[0], -t[1], -t[2]);
            assert_eq!(nu, u);
            assert_eq!(ns, v < 13);
        }
    }

    #[test]
    fn layout_places_weights_as_documented() {
        // 70 x 50: two row tiles, K padded to 72 = 3 steps.
        let (rows, cols) = (70, 50);
        let mut t = vec![0i8; rows * cols];
        // Row 65 (tile 1, sub-tile 0, i = 1), columns 39..41 = group 13 = step 1, gi 5:
        // lane 1, high nibble; (1, -1, 1): v = 18 + 0 + 2 = 20 > 13, so s = 1, u = 6.
        t[65 * cols + 39] = 1;
        t[65 * cols + 40] = -1;
        t[65 * cols + 41] = 1;
        // Row 20 (tile 0, sub-tile 1, i = 4), column 48 = group 16 = step 2, gi 0: lane 0,
        // low nibble; (-1, pad, pad): v = 0 + 3 + 1 = 4, s = 0.
        t[20 * cols + 48] = -1;
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, Format::TL2).unwrap();
        let l = m.layout();
        assert_eq!((l.rows_padded, l.cols_padded, l.row_tile), (128, 72, 64));
        assert_eq!(l.packed_len, 128 * 72 * 5 / 24);
        let p = m.packed_bytes();
        let step = (3 + 1) * 320;
        assert_eq!(p[step + 16 + 1], 0x6D);
        // Sign: sub-tile 0, word 1 (high nibbles), bit 4·1 + 1 = 5.
        assert_eq!(p[step + 256 + 8], 1 << 5);
        let step = 2 * 320;
        assert_eq!(p[step + 64 + 4], 0xD4);
        let nonzero_signs = (0..p.len())
            .filter(|&i| i % 320 >= 256 && p[i] != 0)
            .count();
        let odd_nibbles = (0..p.len())
            .filter(|&i| i % 320 < 256 && p[i] != 0xDD)
            .count();
        assert_eq!((nonzero_signs, odd_nibbles), (1, 2));
        assert_eq!(m.to_ternary(), t);
    }

    #[test]
    fn bad_indices_negative_zero_and_padding_are_rejected() {
        let m = TernaryMatrix::from_ternary(&[1, 0, -1, 1], 1, 4, 1.0, Format::TL2).unwrap();
        let l = *m.layout();
        let good = m.packed_bytes().to_vec();
        assert!(validate(&good, &l).is_ok());
        for bad in 14..16u8 {
            let mut p = good.clone();
            p[0] = (p[0] & 0xF0) | bad;
            assert!(matches!(validate(&p, &l), Err(Error::InvalidData(_))));
        }
        // Negative zero in a padding group (row 0, group 4: high nibble of byte 0).
        let mut p = good.clone();
        p[256 + 8] |= 1;
        assert!(matches!(validate(&p, &l), Err(Error::InvalidData(_))));
        // Group 1 = columns 3 (real), 4, 5 (padding): (1, 0, 0) has v = 22, s = 1, u = 4;
        // (1, 0, 1) would put +1 in column 5.
        let (s, u) = encode(1, 0, 0);
        assert_eq!(read(&good, 0, 1, 1), (s, u));
        let mut p = good.clone();
        p[16] = (p[16] & 0xF0) | 3; // s = 1, u = 3: v = 23 = (1, 0, 1)
        assert!(matches!(validate(&p, &l), Err(Error::InvalidData(_))));
        // A padding row's sign and index.
        let mut p = good.clone();
        p[7] = 0xD0 | 12;
        assert!(matches!(validate(&p, &l), Err(Error::InvalidData(_))));
        let mut p = good;
        p[256 + 16 * 3 + 15] = 0x80; // sub-tile 3, high nibbles, row 15, group 7: -0
        assert!(matches!(validate(&p, &l), Err(Error::InvalidData(_))));
    }
}
