//! Packed ternary matrices: the [`Format`]s and the [`TernaryMatrix`] that holds one.
//!
//! A matrix is packed once and then immutable: it is `Send + Sync`, and any number of
//! threads may multiply with the same matrix at once without copies or locks.
//! The packed bytes are the same for every kernel; which kernel runs is chosen at run time.

pub(crate) mod aligned;
pub mod ggml;
pub mod i2s;
pub mod i2s_col;
pub mod tl1;
pub mod tl2;

use std::sync::Arc;

use crate::error::{check_len, Error, Result};
use aligned::AlignedBytes;

/// An immutable byte buffer that matrices may share and borrow their packed bytes from
/// ([`TernaryMatrix::from_shared`]): a `Vec<u8>`, a `Box<[u8]>`, a memory map
/// (`memmap2::Mmap`), ... The buffer is kept alive by every matrix that borrows from it.
pub type SharedBuffer = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Where a matrix's packed bytes live: its own 64-byte aligned allocation, or a range of a
/// shared buffer (a memory-mapped file), validated once when the matrix was built.
#[derive(Clone)]
enum Packed {
    Owned(AlignedBytes),
    Shared(SharedRange),
}

/// A 64-byte aligned range of a [`SharedBuffer`]. The slice is taken from `as_ref()` once, at
/// construction, and remembered: the range is checked (alignment, length, contents) then, and
/// a buffer whose `as_ref()` later returned another slice could otherwise hand the kernels
/// unchecked or misaligned bytes. The remembered slice stays valid because `buf` owns what it
/// points into and is immutable (shared through the `Arc`) for as long as this range lives.
#[derive(Clone)]
struct SharedRange {
    /// Never read: held so that what `ptr` points into lives as long as this range.
    _buf: SharedBuffer,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `ptr` points into `buf`, which is `Send + Sync` and immutable; the range only reads.
unsafe impl Send for SharedRange {}
// SAFETY: as above.
unsafe impl Sync for SharedRange {}

impl Packed {
    fn as_slice(&self) -> &[u8] {
        match self {
            Packed::Owned(a) => a.as_slice(),
            // SAFETY: `ptr..ptr + len` was a slice of `buf.as_ref()` at construction, and
            // `buf` (held here) keeps it alive and unchanged; see `SharedRange`.
            Packed::Shared(s) => unsafe { std::slice::from_raw_parts(s.ptr, s.len) },
        }
    }
}

/// The largest number of columns (input features) a matrix may have: `cols < 2^24`
/// keeps every exact int32 accumulator in range (`|acc| <= 128 * cols`).
pub const MAX_COLS: usize = (1 << 24) - 1;

/// The alignment of packed bytes in memory: the x86 kernels load packed weights with aligned
/// 32- and 64-byte loads.
pub const PACKED_ALIGN: usize = 64;

/// How the trits of a matrix are stored.
///
/// `#[non_exhaustive]`: formats may be added in minor releases. `Display` prints
/// [`Format::name`]; `FromStr` takes that name, case-insensitive, with or without the
/// underscore (`"I2_S"`, `"i2s"`, `"tl2"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Format {
    /// 2 bits a weight, multiply-add kernels (`docs/FORMATS.md` §2).
    I2S = 0,
    /// Lookup-table format, 2 weights an index, 2 bits a weight (`docs/FORMATS.md` §3).
    TL1 = 1,
    /// Lookup-table format, 3 weights in 5 bits, 1.67 bits a weight (`docs/FORMATS.md` §3).
    TL2 = 2,
    /// I2_S codes column by column in 256-row blocks, for sparse activations: products read
    /// only the columns whose activation is non-zero (`docs/FORMATS.md` §12).
    I2SCol = 3,
}

/// The tallest row tile of any format (I2_S_COL's 256-row blocks): callers that keep one
/// tile's accumulators on the stack size them by this.
pub(crate) const MAX_ROW_TILE: usize = 256;
const _: () = assert!(
    i2s::ROW_TILE <= MAX_ROW_TILE
        && tl1::ROW_TILE <= MAX_ROW_TILE
        && tl2::ROW_TILE <= MAX_ROW_TILE
        && i2s_col::ROW_TILE <= MAX_ROW_TILE
);

impl Format {
    /// Every format, in id order.
    pub const ALL: [Format; 4] = [Format::I2S, Format::TL1, Format::TL2, Format::I2SCol];

    /// The format with the C ABI's id (`BITNET_FORMAT_*`), or [`Error::InvalidFormat`].
    pub fn from_id(id: i64) -> Result<Format> {
        match id {
            0 => Ok(Format::I2S),
            1 => Ok(Format::TL1),
            2 => Ok(Format::TL2),
            3 => Ok(Format::I2SCol),
            _ => Err(Error::InvalidFormat(id)),
        }
    }

    /// A short name: `"I2_S"`, `"TL1"`, `"TL2"`, `"I2_S_COL"`.
    pub fn name(self) -> &'static str {
        match self {
            Format::I2S => "I2_S",
            Format::TL1 => "TL1",
            Format::TL2 => "TL2",
            Format::I2SCol => "I2_S_COL",
        }
    }

    /// The format with this name (see [`Format::from_str`](std::str::FromStr)).
    fn from_name(s: &str) -> Option<Format> {
        let key: String = s
            .chars()
            .filter(|&c| c != '_')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        Format::ALL
            .into_iter()
            .find(|f| f.name().replace('_', "") == key)
    }

    /// How this format pads and packs a `rows × cols` matrix.
    pub fn layout(self, rows: usize, cols: usize) -> Result<Layout> {
        check_shape(rows, cols)?;
        let (row_tile, k_block) = match self {
            Format::I2S => (i2s::ROW_TILE, i2s::K_BLOCK),
            Format::TL1 => (tl1::ROW_TILE, tl1::K_BLOCK),
            Format::TL2 => (tl2::ROW_TILE, tl2::K_BLOCK),
            Format::I2SCol => (i2s_col::ROW_TILE, i2s_col::K_BLOCK),
        };
        let rows_padded = rows.div_ceil(row_tile) * row_tile;
        let cols_padded = cols.div_ceil(k_block) * k_block;
        let packed_len = match self {
            Format::I2S => i2s::packed_len(rows_padded, cols_padded),
            Format::TL1 => tl1::packed_len(rows_padded, cols_padded),
            Format::TL2 => tl2::packed_len(rows_padded, cols_padded),
            Format::I2SCol => i2s_col::packed_len(rows_padded, cols_padded),
        }
        .ok_or_else(|| Error::InvalidShape(format!("{rows} x {cols} is too large")))?;
        Ok(Layout {
            rows,
            cols,
            rows_padded,
            cols_padded,
            row_tile,
            packed_len,
        })
    }
}

/// The padded geometry of one packed matrix ([`Format::layout`], [`TernaryMatrix::layout`]).
///
/// A description only: no function takes a `Layout` from its caller (a matrix computes its
/// own from its format and shape), so the public fields cannot make a kernel misread one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Logical rows (output features).
    pub rows: usize,
    /// Logical columns (input features).
    pub cols: usize,
    /// Rows rounded up to the format's row tile.
    pub rows_padded: usize,
    /// Columns rounded up to the format's K block; activations are zero-padded to this.
    pub cols_padded: usize,
    /// Rows a kernel processes together; row ranges given to kernels are multiples of it.
    pub row_tile: usize,
    /// Length of the packed bytes.
    pub packed_len: usize,
}

/// Rejects zero dimensions, `cols > MAX_COLS`, and element counts that overflow.
pub(crate) fn check_shape(rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::InvalidShape(format!(
            "{rows} x {cols}: rows and cols must be at least 1"
        )));
    }
    if cols > MAX_COLS {
        return Err(Error::InvalidShape(format!(
            "{cols} columns: at most {MAX_COLS} are supported"
        )));
    }
    if rows
        .checked_mul(cols)
        .is_none_or(|n| n > isize::MAX as usize)
    {
        return Err(Error::InvalidShape(format!("{rows} x {cols} overflows")));
    }
    Ok(())
}

/// A matrix's weight scales ([`TernaryMatrix::scales`]): a weight's value is
/// `trit[i][j] * s`, where `s` is the one scale or row `i`'s own (`docs/FORMATS.md` §1).
///
/// Every scale is finite and positive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scales<'a> {
    /// One scale for the whole matrix (BitNet b1.58's absmean `m`).
    One(f32),
    /// One scale per output row, `rows` of them.
    PerRow(&'a [f32]),
}

impl Scales<'_> {
    /// The scale of output row `row` (for [`Scales::One`], the one scale whatever `row` is).
    ///
    /// # Panics
    /// For [`Scales::PerRow`] when `row` is out of range.
    pub fn row(&self, row: usize) -> f32 {
        match *self {
            Scales::One(s) => s,
            Scales::PerRow(s) => s[row],
        }
    }
}

/// The scales a matrix owns: one, or one per row (shared, so cloning a matrix with per-row
/// scales does not copy them).
#[derive(Clone, Debug)]
pub(crate) enum OwnedScales {
    One(f32),
    PerRow(Arc<[f32]>),
}

impl OwnedScales {
    fn as_scales(&self) -> Scales<'_> {
        match self {
            OwnedScales::One(s) => Scales::One(*s),
            OwnedScales::PerRow(s) => Scales::PerRow(s),
        }
    }

    /// Checks every scale (finite, positive) and, for per-row scales, their number.
    pub(crate) fn check(&self, rows: usize) -> Result<()> {
        match self {
            OwnedScales::One(s) => check_scale(*s, 0),
            OwnedScales::PerRow(s) => {
                check_len("row scales", rows, s.len())?;
                s.iter()
                    .enumerate()
                    .try_for_each(|(i, &v)| check_scale(v, i))
            }
        }
    }
}

/// A packed, immutable ternary matrix (`rows` outputs × `cols` inputs) with one f32 scale
/// or one per output row ([`Scales`]).
///
/// ```
/// use bitnet_kernels::{Format, TernaryMatrix};
/// let w = vec![0.3f32, -0.7, 0.01, 0.9, -0.2, 0.5];
/// let m = TernaryMatrix::from_f32(&w, 2, 3, Format::I2S).unwrap();
/// assert_eq!((m.rows(), m.cols()), (2, 3));
/// assert_eq!(m.to_ternary(), vec![1, -1, 0, 1, 0, 1]);
/// ```
#[derive(Clone)]
pub struct TernaryMatrix {
    format: Format,
    layout: Layout,
    scales: OwnedScales,
    data: Packed,
}

/// Two matrices are equal when they have the same format, shape, scales (the same kind, and
/// bit for bit) and packed bytes; a matrix with per-row scales that happen to be all equal
/// is not equal to one with that one scale. The packed form of a matrix is unique (padding always holds zero trits, and
/// [`TernaryMatrix::from_packed`] refuses anything else), so within one format this is the
/// same as equal trits and scale; the same trits in two formats are not equal.
///
/// ```
/// use bitnet_kernels::{Format, TernaryMatrix};
/// let a = TernaryMatrix::from_ternary(&[1, 0, -1, 1], 2, 2, 0.5, Format::I2S)?;
/// let b = TernaryMatrix::from_packed(a.packed_bytes(), 2, 2, 0.5, Format::I2S)?;
/// assert_eq!(a, b);
/// assert_ne!(a, a.to_format(Format::TL1)?);
/// assert_eq!(a, a.to_format(Format::TL1)?.to_format(Format::I2S)?);
/// assert_eq!(
///     format!("{a:?}"),
///     "TernaryMatrix { format: I2S, rows: 2, cols: 2, scale: 0.5, packed_len: 256 }"
/// );
/// # Ok::<(), bitnet_kernels::Error>(())
/// ```
impl PartialEq for TernaryMatrix {
    fn eq(&self, other: &Self) -> bool {
        self.format == other.format
            && self.layout == other.layout
            && match (self.scales(), other.scales()) {
                (Scales::One(a), Scales::One(b)) => a.to_bits() == b.to_bits(),
                (Scales::PerRow(a), Scales::PerRow(b)) => a
                    .iter()
                    .map(|v| v.to_bits())
                    .eq(b.iter().map(|v| v.to_bits())),
                _ => false,
            }
            && self.packed_bytes() == other.packed_bytes()
    }
}

/// Reflexive: scales are compared by their bits (and are never NaN).
impl Eq for TernaryMatrix {}

/// Prints the format, shape, scale (`scale: 0.5`, or `row_scales: "per row"` for per-row
/// scales) and packed size; never the packed bytes or the row scales (a weight matrix is
/// megabytes).
impl std::fmt::Debug for TernaryMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("TernaryMatrix");
        d.field("format", &self.format)
            .field("rows", &self.layout.rows)
            .field("cols", &self.layout.cols);
        match self.scales() {
            Scales::One(s) => d.field("scale", &s),
            Scales::PerRow(_) => d.field("row_scales", &"per row"),
        };
        d.field("packed_len", &self.layout.packed_len).finish()
    }
}

impl TernaryMatrix {
    /// Absmean-ternarizes a row-major f32 matrix (`docs/FORMATS.md` §1) and packs it.
    pub fn from_f32(w: &[f32], rows: usize, cols: usize, format: Format) -> Result<Self> {
        let (t, scale) = crate::quant::quantize_weights(w, rows, cols)?;
        Self::from_ternary(&t, rows, cols, scale, format)
    }

    /// Packs row-major trits (each `-1`, `0` or `1`) with the given scale.
    pub fn from_ternary(
        trits: &[i8],
        rows: usize,
        cols: usize,
        scale: f32,
        format: Format,
    ) -> Result<Self> {
        Self::pack_trits(trits, rows, cols, OwnedScales::One(scale), format)
    }

    /// Packs row-major trits with one scale per output row (`scales.len() == rows`, each
    /// finite and positive): [`TernaryMatrix::from_ternary`] then
    /// [`TernaryMatrix::with_row_scales`].
    pub fn from_ternary_row_scales(
        trits: &[i8],
        rows: usize,
        cols: usize,
        scales: Vec<f32>,
        format: Format,
    ) -> Result<Self> {
        Self::pack_trits(
            trits,
            rows,
            cols,
            OwnedScales::PerRow(scales.into()),
            format,
        )
    }

    pub(crate) fn pack_trits(
        trits: &[i8],
        rows: usize,
        cols: usize,
        scales: OwnedScales,
        format: Format,
    ) -> Result<Self> {
        if trits.iter().any(|&t| !(-1..=1).contains(&t)) {
            let i = trits
                .iter()
                .position(|&t| !(-1..=1).contains(&t))
                .unwrap_or(0);
            return Err(Error::InvalidData(format!(
                "trit {} at index {i} is not -1, 0 or 1",
                trits[i]
            )));
        }
        Self::pack_decoded(trits, rows, cols, scales, format)
    }

    /// [`TernaryMatrix::pack_trits`] for trits a decoder produced (each -1, 0 or 1 by
    /// construction), without scanning them again.
    fn pack_decoded(
        trits: &[i8],
        rows: usize,
        cols: usize,
        scales: OwnedScales,
        format: Format,
    ) -> Result<Self> {
        format.layout(rows, cols)?;
        check_len("trits", rows * cols, trits.len())?;
        scales.check(rows)?;
        Self::pack_streamed(rows, cols, format, |sink| {
            trits
                .chunks_exact(cols)
                .enumerate()
                .for_each(|(r, row)| sink(r, row));
            Ok(scales)
        })
    }

    /// Packs a matrix row by row, as a decoder produces it: `decode` calls its sink once for
    /// each row, in order, with that row's trits (each -1, 0 or 1, `cols` of them), and then
    /// returns the scales. An importer needs no whole-matrix trit buffer this way, only a
    /// row's (which stays in cache). Nothing is returned when `decode` fails.
    pub(crate) fn pack_streamed(
        rows: usize,
        cols: usize,
        format: Format,
        decode: impl FnOnce(&mut dyn FnMut(usize, &[i8])) -> Result<OwnedScales>,
    ) -> Result<Self> {
        let layout = format.layout(rows, cols)?;
        let mut data = AlignedBytes::zeroed(layout.packed_len)?;
        let out = data.as_mut_slice();
        match format {
            Format::I2S => i2s::init(out),
            Format::TL1 => tl1::init(out),
            Format::TL2 => tl2::init(out),
            // Packed whole, from the collected rows, after the decode.
            Format::I2SCol => {}
        }
        let mut whole = Vec::new();
        let mut rows_seen = 0;
        let scales = decode(&mut |r, row| {
            assert!(
                r == rows_seen && r < rows && row.len() == cols,
                "rows in order"
            );
            debug_assert!(row.iter().all(|t| (-1..=1).contains(t)));
            rows_seen += 1;
            match format {
                Format::I2S => i2s::pack_row(row, r, &layout, out),
                Format::TL1 => tl1::pack_row(row, r, &layout, out),
                Format::TL2 => tl2::pack_row(row, r, &layout, out),
                Format::I2SCol => whole.extend_from_slice(row),
            }
        })?;
        assert_eq!(rows_seen, rows, "every row packed");
        if format == Format::I2SCol {
            i2s_col::pack(&whole, &layout, out);
        }
        scales.check(rows)?;
        Ok(Self {
            format,
            layout,
            scales,
            data: Packed::Owned(data),
        })
    }

    /// Copies and validates packed bytes in this crate's layout for `format`
    /// (as returned by [`TernaryMatrix::packed_bytes`]).
    pub fn from_packed(
        bytes: &[u8],
        rows: usize,
        cols: usize,
        scale: f32,
        format: Format,
    ) -> Result<Self> {
        let layout = Self::check_packed(bytes, rows, cols, scale, format)?;
        let mut data = AlignedBytes::zeroed(layout.packed_len)?;
        data.as_mut_slice().copy_from_slice(bytes);
        Ok(Self {
            format,
            layout,
            scales: OwnedScales::One(scale),
            data: Packed::Owned(data),
        })
    }

    /// Borrows packed bytes (the layout of [`TernaryMatrix::from_packed`]) from a shared,
    /// immutable buffer without copying them: the matrix holds `buf` alive and reads
    /// `buf[offset..offset + packed_len]`. The range is validated once, here, exactly as
    /// `from_packed` validates; its start must be 64-byte aligned in memory (the kernels use
    /// aligned loads of packed weights), otherwise this is [`Error::InvalidData`].
    ///
    /// ```
    /// use bitnet_kernels::{format::SharedBuffer, Format, TernaryMatrix};
    /// let m = TernaryMatrix::from_ternary(&[1, 0, -1, 1], 2, 2, 0.5, Format::I2S)?;
    /// // Any buffer whose range is 64-byte aligned: a memory map in practice; here a copy.
    /// let buf: SharedBuffer = bitnet_kernels::format::shared_copy(m.packed_bytes())?;
    /// let b = TernaryMatrix::from_shared(buf, 0, 2, 2, 0.5, Format::I2S)?;
    /// assert_eq!(b, m);
    /// assert!(b.is_shared() && !m.is_shared());
    /// # Ok::<(), bitnet_kernels::Error>(())
    /// ```
    pub fn from_shared(
        buf: SharedBuffer,
        offset: usize,
        rows: usize,
        cols: usize,
        scale: f32,
        format: Format,
    ) -> Result<Self> {
        let layout = format.layout(rows, cols)?;
        let all = (*buf).as_ref();
        let bytes = offset
            .checked_add(layout.packed_len)
            .and_then(|end| all.get(offset..end))
            .ok_or_else(|| {
                Error::InvalidData(format!(
                    "packed bytes {offset}..+{} lie outside the {}-byte buffer",
                    layout.packed_len,
                    all.len()
                ))
            })?;
        if !(bytes.as_ptr() as usize).is_multiple_of(PACKED_ALIGN) {
            return Err(Error::InvalidData(format!(
                "shared packed bytes must start at a {PACKED_ALIGN}-byte aligned address \
                 (the kernels use aligned loads); buffer offset {offset} is not"
            )));
        }
        Self::check_packed(bytes, rows, cols, scale, format)?;
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        Ok(Self {
            format,
            layout,
            scales: OwnedScales::One(scale),
            data: Packed::Shared(SharedRange {
                _buf: buf,
                ptr,
                len,
            }),
        })
    }

    /// Whether the packed bytes are borrowed from a shared buffer
    /// ([`TernaryMatrix::from_shared`]) rather than owned.
    pub fn is_shared(&self) -> bool {
        matches!(self.data, Packed::Shared(_))
    }

    /// The checks of [`TernaryMatrix::from_packed`]: shape, length, scale, contents.
    fn check_packed(
        bytes: &[u8],
        rows: usize,
        cols: usize,
        scale: f32,
        format: Format,
    ) -> Result<Layout> {
        let layout = format.layout(rows, cols)?;
        check_len("packed bytes", layout.packed_len, bytes.len())?;
        check_scale(scale, 0)?;
        match format {
            Format::I2S => i2s::validate(bytes, &layout)?,
            Format::TL1 => tl1::validate(bytes, &layout)?,
            Format::TL2 => tl2::validate(bytes, &layout)?,
            Format::I2SCol => i2s_col::validate(bytes, &layout)?,
        }
        Ok(layout)
    }

    /// The same matrix with one scale per output row (`scales.len() == rows`, each finite
    /// and positive, else [`Error::LengthMismatch`], [`Error::NonFinite`] or
    /// [`Error::InvalidData`] naming the row); replaces the scale or scales it had.
    ///
    /// ```
    /// use bitnet_kernels::{Format, Scales, TernaryMatrix};
    /// let m = TernaryMatrix::from_ternary(&[1, 0, -1, 1], 2, 2, 0.5, Format::I2S)?
    ///     .with_row_scales(vec![0.25, 2.0])?;
    /// assert_eq!(m.scales(), Scales::PerRow(&[0.25, 2.0]));
    /// assert!(m.scale().is_nan());
    /// # Ok::<(), bitnet_kernels::Error>(())
    /// ```
    pub fn with_row_scales(self, scales: Vec<f32>) -> Result<Self> {
        self.with_scales(OwnedScales::PerRow(scales.into()))
    }

    /// The same matrix with one scale (finite and positive) for every row.
    pub fn with_scale(self, scale: f32) -> Result<Self> {
        self.with_scales(OwnedScales::One(scale))
    }

    pub(crate) fn with_scales(mut self, scales: OwnedScales) -> Result<Self> {
        scales.check(self.rows())?;
        self.scales = scales;
        Ok(self)
    }

    /// Imports a bitnet.cpp I2_S tensor blob (`rows * cols / 4` packed bytes, then a 32-byte
    /// tail holding the f32 scale) and repacks it into this crate's I2_S layout.
    /// bitnet.cpp requires `cols % 128 == 0`, and so does its blob.
    pub fn from_bitnet_i2s(blob: &[u8], rows: usize, cols: usize) -> Result<Self> {
        Self::from_ggml(ggml::GGML_TYPE_I2_S, blob, rows, cols, Format::I2S)
    }

    /// Exports the matrix as a bitnet.cpp I2_S tensor blob; the exact inverse of
    /// [`TernaryMatrix::from_bitnet_i2s`]. Needs `cols % 128 == 0` and one scale (the blob
    /// holds one; per-row scales are [`Error::Unsupported`]).
    pub fn to_bitnet_i2s(&self) -> Result<Vec<u8>> {
        let scale = self.one_scale("a bitnet.cpp I2_S blob")?;
        i2s::export_bitnet(&self.to_ternary(), self.rows(), self.cols(), scale)
    }

    /// The one scale, or [`Error::Unsupported`] saying that `what` cannot hold per-row ones.
    fn one_scale(&self, what: &str) -> Result<f32> {
        match self.scales() {
            Scales::One(s) => Ok(s),
            Scales::PerRow(_) => Err(Error::Unsupported(format!(
                "{what} holds one scale, and this matrix has one per row"
            ))),
        }
    }

    /// Imports a ggml tensor of type `ggml_type` (34 TQ1_0, 35 TQ2_0, 36 bitnet.cpp I2_S;
    /// `docs/FORMATS.md` §7) with `rows` = `ne1` (output features) and `cols` = `ne0` (input
    /// features), exactly, packed in `format`. For TQ1_0 and TQ2_0 `cols` must be a multiple
    /// of 256, and the blocks' `|d|` become the scales: one scale when every block with a
    /// non-zero weight carries the same `|d|` (1.0 when every block is zero); else one scale
    /// per row when the blocks agree within each row (a row whose weights are all zero gets
    /// 1.0); anything else is an error naming the first disagreeing block.
    /// Type 39 and unknown types are [`Error::Unsupported`].
    ///
    /// ```
    /// use bitnet_kernels::{format::ggml::GGML_TYPE_TQ2_0, Format, TernaryMatrix};
    /// let t: Vec<i8> = (0..2 * 256).map(|i| (i % 3) as i8 - 1).collect();
    /// let m = TernaryMatrix::from_ternary(&t, 2, 256, 0.5, Format::I2S)?;
    /// let bytes = m.to_ggml(GGML_TYPE_TQ2_0)?;
    /// assert_eq!(bytes.len(), TernaryMatrix::ggml_size(GGML_TYPE_TQ2_0, 2, 256)?);
    /// assert_eq!(TernaryMatrix::from_ggml(GGML_TYPE_TQ2_0, &bytes, 2, 256, Format::I2S)?, m);
    /// # Ok::<(), bitnet_kernels::Error>(())
    /// ```
    pub fn from_ggml(
        ggml_type: u32,
        data: &[u8],
        rows: usize,
        cols: usize,
        format: Format,
    ) -> Result<Self> {
        let t = ggml::GgmlType::from_id(ggml_type.into())?;
        // Shape and size before anything is allocated.
        format.layout(rows, cols)?;
        check_len("ggml tensor bytes", t.size(rows, cols)?, data.len())?;
        // Decoded straight into the packed form, a row at a time.
        Self::pack_streamed(rows, cols, format, |sink| match t {
            ggml::GgmlType::I2S => {
                i2s::import_bitnet_rows(data, rows, cols, sink).map(OwnedScales::One)
            }
            _ => ggml::decode_tq_rows(t, data, rows, cols, sink),
        })
    }

    /// The byte size of a `rows x cols` ggml tensor of type `ggml_type` (see
    /// [`TernaryMatrix::from_ggml`]): 54 bytes per 256 weights for TQ1_0, 66 for TQ2_0,
    /// `rows * cols / 4 + 32` for I2_S (`cols % 128 == 0`).
    pub fn ggml_size(ggml_type: u32, rows: usize, cols: usize) -> Result<usize> {
        ggml::GgmlType::from_id(ggml_type.into())?.size(rows, cols)
    }

    /// Exports the matrix as a ggml tensor of type `ggml_type`: for TQ1_0 and TQ2_0 the
    /// bytes ggml's own quantizer writes for the weights `trit * s` (`s` the scale of the
    /// block's row; `d` = fp16(s), rounded to nearest even, in blocks with a non-zero weight;
    /// `d` = 0 and zero codes in all-zero blocks), for I2_S the bitnet.cpp blob
    /// ([`TernaryMatrix::to_bitnet_i2s`], one scale only). A scale that is not an fp16 value
    /// comes back from [`TernaryMatrix::from_ggml`] rounded; one above 65504 is an error for
    /// the TQ types.
    pub fn to_ggml(&self, ggml_type: u32) -> Result<Vec<u8>> {
        let t = ggml::GgmlType::from_id(ggml_type.into())?;
        match t {
            ggml::GgmlType::I2S => self.to_bitnet_i2s(),
            _ => ggml::encode_tq(
                t,
                &self.to_ternary(),
                self.rows(),
                self.cols(),
                self.scales(),
            ),
        }
    }

    /// Imports a Hugging Face `transformers` packed BitNet weight (`uint8`, shape
    /// `(rows / 4, cols)`; `docs/FORMATS.md` §7): byte `[p, k]` holds the codes of rows
    /// `p + i * rows / 4`, `i = 0..3`, in bits `2i+1:2i`. `rows` must be a multiple of 4.
    /// The scale is `weight_scale` ([`HfScale::Multiply`](ggml::HfScale::Multiply)) or
    /// `1 / weight_scale` rounded to f32 ([`HfScale::Divide`](ggml::HfScale::Divide));
    /// `weight_scale` must be finite and positive.
    pub fn from_hf_packed(
        packed: &[u8],
        rows: usize,
        cols: usize,
        weight_scale: f32,
        scale: ggml::HfScale,
        format: Format,
    ) -> Result<Self> {
        format.layout(rows, cols)?;
        check_scale(weight_scale, 0)?;
        let s = match scale {
            ggml::HfScale::Multiply => weight_scale,
            ggml::HfScale::Divide => 1.0 / weight_scale,
        };
        check_len("packed bytes", ggml::hf_size(rows, cols)?, packed.len())?;
        Self::pack_streamed(rows, cols, format, |sink| {
            ggml::decode_hf_rows(packed, rows, cols, sink).map(|()| OwnedScales::One(s))
        })
    }

    /// Exports the trits in the Hugging Face packed layout (the inverse of
    /// [`TernaryMatrix::from_hf_packed`] with `weight_scale = self.scale()` and
    /// [`HfScale::Multiply`](ggml::HfScale::Multiply)). `rows` must be a multiple of 4, and
    /// the matrix must have one scale (the checkpoint's `weight_scale` is one value; per-row
    /// scales are [`Error::Unsupported`]).
    pub fn to_hf_packed(&self) -> Result<Vec<u8>> {
        self.one_scale("a Hugging Face packed weight")?;
        ggml::encode_hf(&self.to_ternary(), self.rows(), self.cols())
    }

    /// The same trits and scales packed in another format.
    pub fn to_format(&self, format: Format) -> Result<Self> {
        Self::pack_decoded(
            &self.to_ternary(),
            self.rows(),
            self.cols(),
            self.scales.clone(),
            format,
        )
    }

    /// Unpacks the trits, row-major, `rows * cols` of them (padding dropped).
    pub fn to_ternary(&self) -> Vec<i8> {
        let mut t = vec![0i8; self.rows() * self.cols()];
        match self.format {
            Format::I2S => i2s::unpack(self.data.as_slice(), &self.layout, &mut t),
            Format::TL1 => tl1::unpack(self.data.as_slice(), &self.layout, &mut t),
            Format::TL2 => tl2::unpack(self.data.as_slice(), &self.layout, &mut t),
            Format::I2SCol => i2s_col::unpack(self.data.as_slice(), &self.layout, &mut t),
        }
        t
    }

    /// The format the trits are packed in.
    pub fn format(&self) -> Format {
        self.format
    }
    /// Output features.
    pub fn rows(&self) -> usize {
        self.layout.rows
    }
    /// Input features: the length of an activation row.
    pub fn cols(&self) -> usize {
        self.layout.cols
    }
    /// The one scale `m` (the absmean scale of [`TernaryMatrix::from_f32`]): a weight's value
    /// is `trit * m`. A matrix with per-row scales has no one scale, and this returns NaN
    /// (never one row's scale, which would be wrong for the others without a sign of it):
    /// use [`TernaryMatrix::scales`], which covers both kinds.
    pub fn scale(&self) -> f32 {
        match self.scales {
            OwnedScales::One(s) => s,
            OwnedScales::PerRow(_) => f32::NAN,
        }
    }
    /// The scale, or the scales one per output row: row `i`'s weights are
    /// `trit * scales().row(i)`.
    pub fn scales(&self) -> Scales<'_> {
        self.scales.as_scales()
    }
    /// The padded geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// The packed bytes (64-byte aligned), in this crate's layout for [`TernaryMatrix::format`].
    pub fn packed_bytes(&self) -> &[u8] {
        self.data.as_slice()
    }
}

/// Copies `bytes` into a new 64-byte aligned [`SharedBuffer`] (for bytes read into memory
/// rather than mapped: a file read with `std::fs::read`, a buffer from C).
pub fn shared_copy(bytes: &[u8]) -> Result<SharedBuffer> {
    let mut a = AlignedBytes::zeroed(bytes.len())?;
    a.as_mut_slice().copy_from_slice(bytes);
    Ok(Arc::new(a))
}

/// Reads the file at `path` whole into a new 64-byte aligned [`SharedBuffer`] (one copy, from
/// the page cache). The safe way to load a file; `map_shared` (feature `mmap`) avoids the copy.
pub fn read_shared(path: &std::path::Path) -> Result<SharedBuffer> {
    use std::io::Read;
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let len =
        usize::try_from(len).map_err(|_| Error::Io(format!("{}: too large", path.display())))?;
    let mut a = AlignedBytes::zeroed(len)?;
    f.read_exact(a.as_mut_slice()).map_err(io)?;
    Ok(Arc::new(a))
}

/// Memory-maps the file at `path` read-only as a [`SharedBuffer`]: no copy, pages read on
/// first touch (feature `mmap`).
///
/// # Safety
/// Nobody may write to or truncate the file while the mapping (any matrix or reader holding
/// it) lives: the mapped bytes would change under the matrices that were validated over them,
/// and a truncated file makes reading the lost pages fault (`SIGBUS`). This is the
/// precondition of every memory map (`memmap2::Mmap::map`).
#[cfg(feature = "mmap")]
pub unsafe fn map_shared(path: &std::path::Path) -> Result<SharedBuffer> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let f = std::fs::File::open(path).map_err(io)?;
    // SAFETY: read-only map; the caller guarantees the file is not changed while it lives.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io)?;
    Ok(Arc::new(map))
}

/// A weight scale must be finite and positive: a weight's value is `trit * scale`, and a
/// zero or negative scale is never what a ternarizer produces (absmean is floored at 1e-5).
/// `index` is the row of a per-row scale (0 for the one scale).
fn check_scale(scale: f32, index: usize) -> Result<()> {
    if !scale.is_finite() {
        Err(Error::NonFinite {
            what: "scale",
            index,
        })
    } else if scale <= 0.0 {
        Err(Error::InvalidData(format!(
            "the scale must be positive, got {scale} (at index {index})"
        )))
    } else {
        Ok(())
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    /// ```
    /// use bitnet_kernels::Format;
    /// assert_eq!("i2s".parse::<Format>().unwrap(), Format::I2S);
    /// assert_eq!("TL2".parse::<Format>().unwrap(), Format::TL2);
    /// assert_eq!(Format::I2S.to_string(), "I2_S");
    /// assert!("q4_0".parse::<Format>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Format> {
        Format::from_name(s).ok_or_else(|| {
            Error::Unsupported(format!(
                "no format named '{s}' (known: I2_S, TL1, TL2, I2_S_COL)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn matrix_is_send_and_sync() {
        assert_send_sync::<TernaryMatrix>();
    }

    #[test]
    fn equality_is_format_shape_scale_and_bytes() {
        let t = [1, 0, -1, 1, -1, 0];
        let m = |t: &[i8], r, c, s, f| TernaryMatrix::from_ternary(t, r, c, s, f).unwrap();
        for f in Format::ALL {
            let a = m(&t, 2, 3, 0.5, f);
            assert_eq!(a, a.clone());
            assert_eq!(a, m(&t, 2, 3, 0.5, f));
            assert_ne!(a, m(&t, 2, 3, 0.25, f), "scale");
            assert_ne!(a, m(&t, 3, 2, 0.5, f), "shape");
            assert_ne!(a, m(&[1, 0, -1, 1, -1, 1], 2, 3, 0.5, f), "trits");
            for g in Format::ALL.into_iter().filter(|&g| g != f) {
                assert_ne!(a, m(&t, 2, 3, 0.5, g), "format");
            }
            let d = format!("{a:?}");
            assert!(d.contains("rows: 2") && d.contains("cols: 3"), "{d}");
            assert!(d.len() < 120, "Debug must not print the bytes: {d}");
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert!(matches!(check_shape(0, 5), Err(Error::InvalidShape(_))));
        assert!(matches!(check_shape(5, 0), Err(Error::InvalidShape(_))));
        assert!(matches!(
            check_shape(1, MAX_COLS + 1),
            Err(Error::InvalidShape(_))
        ));
        assert!(matches!(
            check_shape(usize::MAX, 2),
            Err(Error::InvalidShape(_))
        ));
        assert!(check_shape(1, MAX_COLS).is_ok());
    }

    #[test]
    fn from_ternary_rejects_bad_trits_and_scales() {
        assert!(matches!(
            TernaryMatrix::from_ternary(&[0, 2], 1, 2, 1.0, Format::I2S),
            Err(Error::InvalidData(_))
        ));
        assert!(matches!(
            TernaryMatrix::from_ternary(&[0, 1], 1, 2, f32::NAN, Format::I2S),
            Err(Error::NonFinite { what: "scale", .. })
        ));
        for bad in [0.0, -0.0, -1.0] {
            assert!(matches!(
                TernaryMatrix::from_ternary(&[0, 1], 1, 2, bad, Format::I2S),
                Err(Error::InvalidData(_))
            ));
        }
        assert!(matches!(
            TernaryMatrix::from_ternary(&[0, 1], 1, 3, 1.0, Format::I2S),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn shared_matrices_borrow_validated_aligned_bytes() {
        let t: Vec<i8> = (0..5 * 40).map(|i| (i % 3) as i8 - 1).collect();
        for f in Format::ALL {
            let m = TernaryMatrix::from_ternary(&t, 5, 40, 0.25, f).unwrap();
            let n = m.packed_bytes().len();
            // Two copies back to back after 64 bytes of other data, 64-aligned each.
            let mut bytes = vec![7u8; 64];
            bytes.extend_from_slice(m.packed_bytes());
            bytes.resize(64 + n.div_ceil(64) * 64, 0);
            bytes.extend_from_slice(m.packed_bytes());
            let buf = shared_copy(&bytes).unwrap();
            let base = (*buf).as_ref().as_ptr();
            let second = 64 + n.div_ceil(64) * 64;
            for off in [64, second] {
                let s = TernaryMatrix::from_shared(buf.clone(), off, 5, 40, 0.25, f).unwrap();
                assert_eq!(s, m);
                assert!(s.is_shared());
                // No copy: the matrix's bytes are the buffer's.
                assert_eq!(s.packed_bytes().as_ptr(), base.wrapping_add(off));
                assert_eq!(s.clone().packed_bytes().as_ptr(), base.wrapping_add(off));
            }
            // Misaligned, out of range, overflowing, wrong scale, bad contents: errors.
            for off in [1, 63, bytes.len() - n + 1, usize::MAX] {
                assert!(
                    matches!(
                        TernaryMatrix::from_shared(buf.clone(), off, 5, 40, 0.25, f),
                        Err(Error::InvalidData(_))
                    ),
                    "{f} offset {off}"
                );
            }
            assert!(TernaryMatrix::from_shared(buf.clone(), 64, 5, 40, 0.0, f).is_err());
            let mut bad = bytes.clone();
            bad[64..64 + n].fill(0xFF);
            let bad = shared_copy(&bad).unwrap();
            assert!(
                TernaryMatrix::from_shared(bad, 64, 5, 40, 0.25, f).is_err(),
                "{f}"
            );
        }
    }
}
