//! This crate's own file of packed matrices, made to be memory-mapped: many named matrices
//! (any [`Format`]) behind a self-describing header, each matrix's packed bytes 64-byte
//! aligned in the file, an XXH3-64 checksum over header and data. Loading copies no weight:
//! every [`TernaryMatrix`] of a [`Container`] borrows its packed bytes from the file's
//! buffer ([`TernaryMatrix::from_shared`]), and all of them are validated once, at load.
//! The byte layout is in `docs/FORMATS.md` §9.
//!
//! ```
//! use bitnet_kernels::{container::{self, Container}, Format, TernaryMatrix};
//! let q = TernaryMatrix::from_ternary(&[1, 0, -1, 1, 0, 0], 2, 3, 0.5, Format::I2S)?;
//! let k = q.to_format(Format::TL2)?;
//! let mut file = Vec::new();
//! container::save(&mut file, [("q", &q), ("k", &k)])?;
//! let c = Container::from_bytes(&file)?;
//! assert_eq!(c.names().collect::<Vec<_>>(), ["q", "k"]);
//! assert_eq!(c.get("k"), Some(&k));
//! # Ok::<(), bitnet_kernels::Error>(())
//! ```
//!
//! A corrupt or truncated file is an [`Error`], never a crash; `Container::open` of a file
//! that another process changes or truncates while it is mapped is outside that promise (as
//! for every memory-mapped file).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::format::{shared_copy, Format, Scales, SharedBuffer, TernaryMatrix, PACKED_ALIGN};

/// The first 8 bytes of every container file.
pub const MAGIC: [u8; 8] = *b"BITNETKC";
/// The version this library writes. Version 2 changed only the I2_S_COL byte layout (columns
/// contiguous over all rows, `docs/FORMATS.md` §12); version 1 files are still read unless
/// they hold an I2_S_COL matrix, whose old bytes would be misread ([`OLD_COL_VERSION`]).
pub const VERSION: u32 = 2;
/// The last version whose I2_S_COL (format id 3) payloads use the old per-block layout.
pub const OLD_COL_VERSION: u32 = 1;
/// Bytes of the fixed header: magic, version, count, header length, file length, checksum.
const FIXED: usize = 40;
/// Bytes of one matrix entry in the table after the fixed header.
const ENTRY: usize = 64;
/// Where the checksum sits in the fixed header (taken as zero while hashing).
const CHECKSUM_AT: usize = 32;
/// Scale kinds in an entry.
const SCALE_ONE: u32 = 0;
const SCALE_PER_ROW: u32 = 1;
/// Zeros for the padding between regions.
const PAD: [u8; PACKED_ALIGN] = [0; PACKED_ALIGN];

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidData(format!("container: {}", msg.into()))
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

fn align_up(n: usize) -> usize {
    n.div_ceil(PACKED_ALIGN) * PACKED_ALIGN
}

/// The XXH3-64 of a whole container file, with the checksum field taken as zero. Public so
/// that tools (and the fuzz target) can write a valid checksum after editing a file.
#[doc(hidden)]
pub fn checksum(file: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    let at = CHECKSUM_AT.min(file.len());
    h.update(&file[..at]);
    if file.len() >= CHECKSUM_AT + 8 {
        h.update(&[0; 8]);
        h.update(&file[CHECKSUM_AT + 8..]);
    }
    h.digest()
}

// ---------------------------------------------------------------------------------------
// Saving

/// One matrix entry as written (all offsets absolute in the file).
struct Entry {
    format: u32,
    scale_kind: u32,
    rows: u64,
    cols: u64,
    data_off: u64,
    data_len: u64,
    name_off: u64,
    name_len: u32,
    scale: f32,
    scales_off: u64,
}

impl Entry {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.format.to_le_bytes());
        out.extend_from_slice(&self.scale_kind.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.cols.to_le_bytes());
        out.extend_from_slice(&self.data_off.to_le_bytes());
        out.extend_from_slice(&self.data_len.to_le_bytes());
        out.extend_from_slice(&self.name_off.to_le_bytes());
        out.extend_from_slice(&self.name_len.to_le_bytes());
        out.extend_from_slice(&self.scale.to_bits().to_le_bytes());
        out.extend_from_slice(&self.scales_off.to_le_bytes());
    }
}

/// Writes `matrices` (name, matrix; names unique, without NUL bytes) as one container file
/// to `out`. Nothing is written when an argument is bad; an I/O failure is [`Error::Io`].
pub fn save<'a, W: Write>(
    mut out: W,
    matrices: impl IntoIterator<Item = (&'a str, &'a TernaryMatrix)>,
) -> Result<()> {
    let matrices: Vec<(&str, &TernaryMatrix)> = matrices.into_iter().collect();
    let mut seen = HashSet::new();
    if let Some((name, _)) = matrices.iter().find(|(n, _)| !seen.insert(*n)) {
        return Err(bad(format!("the name '{name}' is given twice")));
    }
    if let Some((name, _)) = matrices.iter().find(|(n, _)| n.contains('\0')) {
        return Err(bad(format!("the name {name:?} contains a NUL byte")));
    }
    let count = u32::try_from(matrices.len()).map_err(|_| bad("more than 2^32 - 1 matrices"))?;
    let names_len: usize = matrices.iter().map(|(n, _)| n.len()).sum();
    let header_len = FIXED + ENTRY * matrices.len() + names_len;
    // Per-row scales as little-endian bytes, one buffer per matrix (empty for one scale),
    // made before `pieces` borrows them.
    let row_scales: Vec<Vec<u8>> = matrices
        .iter()
        .map(|(_, m)| match m.scales() {
            Scales::One(_) => Vec::new(),
            Scales::PerRow(s) => s.iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
        .collect();
    // The regions after the header, in file order: each starts 64-byte aligned.
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut entries = Vec::with_capacity(matrices.len());
    let (mut name_off, mut end) = (FIXED + ENTRY * matrices.len(), header_len);
    for (&(name, m), rs) in matrices.iter().zip(&row_scales) {
        let name_len =
            u32::try_from(name.len()).map_err(|_| bad("a name is longer than 2^32 - 1 bytes"))?;
        let data = m.packed_bytes();
        let start = align_up(end);
        pieces.push(&PAD[..start - end]);
        pieces.push(data);
        end = start + data.len();
        // A per-row entry's f32 scales go in the next aligned region after its bytes.
        let (scale_kind, scale, scales_off) = match m.scales() {
            Scales::One(s) => (SCALE_ONE, s, 0),
            Scales::PerRow(_) => {
                let at = align_up(end);
                pieces.push(&PAD[..at - end]);
                pieces.push(rs);
                end = at + rs.len();
                (SCALE_PER_ROW, 0.0, at as u64)
            }
        };
        entries.push(Entry {
            format: m.format() as u32,
            scale_kind,
            rows: m.rows() as u64,
            cols: m.cols() as u64,
            data_off: start as u64,
            data_len: data.len() as u64,
            name_off: name_off as u64,
            name_len,
            scale,
            scales_off,
        });
        name_off += name.len();
    }
    let mut header = Vec::with_capacity(header_len);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&count.to_le_bytes());
    header.extend_from_slice(&(header_len as u64).to_le_bytes());
    header.extend_from_slice(&(end as u64).to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes()); // the checksum, filled in below
    for e in &entries {
        e.write_to(&mut header);
    }
    for (name, _) in &matrices {
        header.extend_from_slice(name.as_bytes());
    }
    debug_assert_eq!(header.len(), header_len);
    let mut h = Xxh3::new();
    h.update(&header);
    pieces.iter().for_each(|p| h.update(p));
    header[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&h.digest().to_le_bytes());
    out.write_all(&header).map_err(io)?;
    for p in pieces {
        out.write_all(p).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// [`save`] to a file at `path` (created or truncated).
pub fn save_to_path<'a>(
    path: impl AsRef<Path>,
    matrices: impl IntoIterator<Item = (&'a str, &'a TernaryMatrix)>,
) -> Result<()> {
    let f = std::fs::File::create(path).map_err(io)?;
    save(std::io::BufWriter::with_capacity(1 << 20, f), matrices)
}

// ---------------------------------------------------------------------------------------
// Loading

/// Little-endian reads at checked offsets of a buffer already known to be long enough.
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `off..off + len` as a range inside a file of `file_len` bytes, or an error naming `what`.
fn range(off: u64, len: u64, file_len: usize, what: &str) -> Result<std::ops::Range<usize>> {
    let (off, len) = (usize::try_from(off), usize::try_from(len));
    match (off, len) {
        (Ok(o), Ok(l)) if o.checked_add(l).is_some_and(|e| e <= file_len) => Ok(o..o + l),
        _ => Err(bad(format!("{what} lies outside the {file_len}-byte file"))),
    }
}

/// A loaded container: its matrices, in file order, each borrowing the file's buffer.
pub struct Container {
    matrices: Vec<(String, TernaryMatrix)>,
}

impl Container {
    /// Parses and validates a container held in `buf` (whose start must be 64-byte aligned,
    /// as a memory map's is; [`Container::from_bytes`] copies unaligned bytes), checksum
    /// first, then every entry and every matrix's packed bytes. The matrices borrow `buf`.
    pub fn from_buffer(buf: SharedBuffer) -> Result<Self> {
        let b: &[u8] = (*buf).as_ref();
        if b.len() < FIXED {
            return Err(bad(format!(
                "{} bytes is shorter than the {FIXED}-byte header",
                b.len()
            )));
        }
        if b[..8] != MAGIC {
            return Err(bad("the file does not start with the magic 'BITNETKC'"));
        }
        let version = u32_at(b, 8);
        if version != VERSION && version != OLD_COL_VERSION {
            return Err(Error::Unsupported(format!(
                "container version {version}: this library reads versions {OLD_COL_VERSION} and {VERSION}"
            )));
        }
        if !(b.as_ptr() as usize).is_multiple_of(PACKED_ALIGN) {
            return Err(bad(format!(
                "the buffer must start {PACKED_ALIGN}-byte aligned (use Container::from_bytes)"
            )));
        }
        let file_len = u64_at(b, 24);
        if file_len != b.len() as u64 {
            return Err(bad(format!(
                "the header says {file_len} bytes, the file has {} (truncated or extended?)",
                b.len()
            )));
        }
        let stored = u64_at(b, CHECKSUM_AT);
        let actual = checksum(b);
        if stored != actual {
            return Err(bad(format!(
                "checksum mismatch (stored {stored:#018x}, computed {actual:#018x})"
            )));
        }
        let count = u32_at(b, 12) as usize;
        let header_len = u64_at(b, 16);
        let table = range(
            FIXED as u64,
            ENTRY as u64 * count as u64,
            b.len(),
            "the table",
        )?;
        if header_len < table.end as u64 || header_len > b.len() as u64 {
            return Err(bad(format!("header length {header_len} is out of range")));
        }
        let mut matrices = Vec::with_capacity(count);
        let mut seen = HashSet::new();
        for i in 0..count {
            let e = &b[table.start + i * ENTRY..][..ENTRY];
            let at = |what: &str| format!("matrix {i}: {what}");
            let name_r = range(
                u64_at(e, 40),
                u32_at(e, 48) as u64,
                b.len(),
                &at("its name"),
            )?;
            let name = std::str::from_utf8(&b[name_r])
                .map_err(|_| bad(at("the name is not UTF-8")))?
                .to_owned();
            if name.contains('\0') {
                return Err(bad(at("the name contains a NUL byte")));
            }
            if !seen.insert(name.clone()) {
                return Err(bad(format!("the name '{name}' appears twice")));
            }
            let at = |what: &str| format!("matrix '{name}': {what}");
            let format = Format::from_id(u32_at(e, 0).into())?;
            if format == Format::I2SCol && version == OLD_COL_VERSION {
                return Err(Error::Unsupported(at(&format!(
                    "I2_S_COL bytes in the layout of container version {OLD_COL_VERSION} (blocks \
                     of 256 rows), which this library no longer reads: re-create the matrix \
                     and save it again (version {VERSION})"
                ))));
            }
            let (rows, cols) = (u64_at(e, 8), u64_at(e, 16));
            let (rows, cols) = match (usize::try_from(rows), usize::try_from(cols)) {
                (Ok(r), Ok(c)) => (r, c),
                _ => return Err(bad(at(&format!("{rows} x {cols} is too large")))),
            };
            let layout = format.layout(rows, cols)?;
            let data = range(u64_at(e, 24), u64_at(e, 32), b.len(), &at("its data"))?;
            if data.len() != layout.packed_len || !data.start.is_multiple_of(PACKED_ALIGN) {
                return Err(bad(at(&format!(
                    "data at {}..{} is not {} bytes at a {PACKED_ALIGN}-byte aligned offset",
                    data.start, data.end, layout.packed_len
                ))));
            }
            let scale = f32::from_bits(u32_at(e, 52));
            let m = match u32_at(e, 4) {
                SCALE_ONE if u64_at(e, 56) != 0 => {
                    return Err(bad(at("one scale, but a per-row scale offset")))
                }
                SCALE_ONE => {
                    TernaryMatrix::from_shared(buf.clone(), data.start, rows, cols, scale, format)?
                }
                SCALE_PER_ROW => {
                    let len = (rows as u64).saturating_mul(4);
                    let sr = range(u64_at(e, 56), len, b.len(), &at("its row scales"))?;
                    let scales: Vec<f32> = b[sr]
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    // The bytes are validated by from_shared; the scales (finite, positive)
                    // by with_row_scales.
                    TernaryMatrix::from_shared(buf.clone(), data.start, rows, cols, 1.0, format)?
                        .with_row_scales(scales)?
                }
                k => return Err(bad(at(&format!("unknown scale kind {k}")))),
            };
            matrices.push((name, m));
        }
        Ok(Self { matrices })
    }

    /// Copies `bytes` into a 64-byte aligned buffer and loads it ([`Container::from_buffer`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_buffer(shared_copy(bytes)?)
    }

    /// Opens the container file at `path`, read into memory (one copy; see
    /// `Container::map`, feature `mmap`, for none), and validates it whole.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_buffer(crate::format::read_shared(path.as_ref())?)
    }

    /// Opens the container file at `path` memory-mapped (feature `mmap`): no copy, the
    /// matrices point into the mapping, which lives as long as any of them. Validated whole
    /// (checksum, header, every matrix) like [`Container::open`].
    ///
    /// # Safety
    /// The file must not be written to or truncated while the mapping lives (see
    /// [`crate::format::map_shared`]).
    #[cfg(feature = "mmap")]
    pub unsafe fn map(path: impl AsRef<Path>) -> Result<Self> {
        // SAFETY: the caller's guarantee, passed on.
        Self::from_buffer(unsafe { crate::format::map_shared(path.as_ref()) }?)
    }

    /// How many matrices the container holds.
    pub fn len(&self) -> usize {
        self.matrices.len()
    }
    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.matrices.is_empty()
    }
    /// The names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.matrices.iter().map(|(n, _)| n.as_str())
    }
    /// Name and matrix, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TernaryMatrix)> {
        self.matrices.iter().map(|(n, m)| (n.as_str(), m))
    }
    /// The matrix named `name`. Cloning it is cheap: the clone borrows the same bytes.
    pub fn get(&self, name: &str) -> Option<&TernaryMatrix> {
        self.matrices
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
    }
    /// The names and matrices, in file order; the matrices keep the buffer alive.
    pub fn into_matrices(self) -> Vec<(String, TernaryMatrix)> {
        self.matrices
    }
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
