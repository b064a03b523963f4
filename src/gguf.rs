//! A small GGUF reader (cargo feature `gguf`): the header, the metadata and the tensor infos
//! of a GGUF file, its ternary tensors (ggml TQ1_0, TQ2_0 and bitnet.cpp's I2_S) imported
//! exactly through [`TernaryMatrix::from_ggml`]. The file is memory-mapped; tensor bytes are
//! read in place. The container rules are in `docs/FORMATS.md` §10.
//!
//! A reader of our own rather than a GGUF crate: this one needs only the tensor table and two
//! metadata keys, must refuse every malformed file with an error (it is fuzzed), and must not
//! copy tensor data.

use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::ggml::{GGML_TYPE_I2_S, GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0};
use crate::format::{Format, SharedBuffer, TernaryMatrix};

/// The first 4 bytes of a GGUF file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidData(format!("GGUF: {}", msg.into()))
}

/// A metadata value. Arrays are skipped over and recorded by element type and length only
/// (a tokenizer's vocabulary is an array of 100k+ strings that no kernel needs).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Any unsigned integer type (u8, u16, u32, u64).
    Uint(u64),
    /// Any signed integer type (i8, i16, i32, i64).
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// A UTF-8 string (invalid UTF-8 replaced).
    Str(String),
    /// An array: its element type id and length.
    Array {
        /// GGUF value type id of the elements.
        elem_type: u32,
        /// Number of elements.
        len: u64,
    },
}

/// One tensor info of a GGUF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// `ne0, ne1, ...`: `ne0` is the contiguous (input) dimension.
    pub dims: Vec<u64>,
    /// The ggml type id.
    pub ggml_type: u32,
    /// The tensor's bytes in the file, when its type's size is known to this reader.
    pub bytes: Option<Range<usize>>,
}

impl TensorInfo {
    /// Whether this is a ternary tensor this crate imports (type 34, 35 or 36).
    pub fn is_ternary(&self) -> bool {
        matches!(
            self.ggml_type,
            GGML_TYPE_TQ1_0 | GGML_TYPE_TQ2_0 | GGML_TYPE_I2_S
        )
    }
    /// As a matrix: rows = `ne1 · ne2 · ne3` (output features), cols = `ne0` (input features).
    pub fn shape(&self) -> (usize, usize) {
        let cols = self.dims.first().copied().unwrap_or(1) as usize;
        let rows = self.dims.iter().skip(1).product::<u64>() as usize;
        (rows, cols)
    }
}

/// Little-endian cursor over the header; every read is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| bad("a length overflows"))?;
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| bad(format!("truncated at byte {}", self.at)))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    /// A value of GGUF type `t` (arrays skipped, nested arrays included).
    fn value(&mut self, t: u32, depth: u32) -> Result<Value> {
        Ok(match t {
            0 => Value::Uint(self.u8()?.into()),
            1 => Value::Int((self.u8()? as i8).into()),
            2 => Value::Uint(u16::from_le_bytes(self.take(2)?.try_into().expect("2")).into()),
            3 => Value::Int(i16::from_le_bytes(self.take(2)?.try_into().expect("2")).into()),
            4 => Value::Uint(self.u32()?.into()),
            5 => Value::Int((self.u32()? as i32).into()),
            6 => Value::Float(f32::from_bits(self.u32()?).into()),
            7 => Value::Bool(self.u8()? != 0),
            8 => Value::Str(self.string()?),
            9 => {
                if depth > 8 {
                    return Err(bad("arrays nested too deep"));
                }
                let (elem_type, len) = (self.u32()?, self.u64()?);
                match fixed_size(elem_type) {
                    // Fixed-size elements: skip them in one step (checked against the file).
                    Some(s) => {
                        self.take(len.checked_mul(s).ok_or_else(|| bad("array too long"))?)?;
                    }
                    None => {
                        for _ in 0..len {
                            self.value(elem_type, depth + 1)?;
                        }
                    }
                }
                Value::Array { elem_type, len }
            }
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(self.u64()? as i64),
            12 => Value::Float(f64::from_bits(self.u64()?)),
            _ => return Err(bad(format!("unknown metadata value type {t}"))),
        })
    }
}

/// The byte size of a fixed-size GGUF value type; `None` for strings, arrays and unknowns.
fn fixed_size(t: u32) -> Option<u64> {
    match t {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Bytes per block and weights per block of the non-ternary ggml types a model file usually
/// holds beside its ternary tensors (for the byte ranges in a listing).
fn block_of(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (4, 1),      // F32
        1 => (2, 1),      // F16
        2 => (18, 32),    // Q4_0
        3 => (20, 32),    // Q4_1
        6 => (22, 32),    // Q5_0
        7 => (24, 32),    // Q5_1
        8 => (34, 32),    // Q8_0
        10 => (84, 256),  // Q2_K
        11 => (110, 256), // Q3_K
        12 => (144, 256), // Q4_K
        13 => (176, 256), // Q5_K
        14 => (210, 256), // Q6_K
        24 => (1, 1),     // I8
        25 => (2, 1),     // I16
        26 => (4, 1),     // I32
        27 => (8, 1),     // I64
        28 => (8, 1),     // F64
        30 => (2, 1),     // BF16
        _ => return None,
    })
}

/// A parsed GGUF file: metadata and tensor infos, over the file's bytes.
pub struct Gguf {
    buf: SharedBuffer,
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    data_start: usize,
}

impl Gguf {
    /// Reads the file at `path` into memory and parses it ([`Gguf::from_buffer`]); see
    /// [`Gguf::map`] to map it instead.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_buffer(crate::format::read_shared(path.as_ref())?)
    }

    /// Memory-maps the file at `path` and parses it: no copy of the file (the imported
    /// matrices are repacked copies either way).
    ///
    /// # Safety
    /// The file must not be written to or truncated while the reader lives (see
    /// [`crate::format::map_shared`]).
    pub unsafe fn map(path: impl AsRef<Path>) -> Result<Self> {
        // SAFETY: the caller's guarantee, passed on.
        Self::from_buffer(unsafe { crate::format::map_shared(path.as_ref()) }?)
    }

    /// Parses a GGUF file held in `buf`: header, metadata, tensor infos. Every tensor whose
    /// type size is known must lie inside the file; nothing is decoded yet.
    pub fn from_buffer(buf: SharedBuffer) -> Result<Self> {
        let b: &[u8] = (*buf).as_ref();
        let mut c = Cursor { b, at: 0 };
        if c.take(4)? != MAGIC {
            return Err(bad("the file does not start with the magic 'GGUF'"));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::Unsupported(format!(
                "GGUF version {version}: this reader reads versions 2 and 3"
            )));
        }
        let (n_tensors, n_kv) = (c.u64()?, c.u64()?);
        // Each entry takes at least 8 bytes of the file: a bound before any allocation.
        if n_tensors.max(n_kv) > b.len() as u64 / 8 {
            return Err(bad(format!(
                "{n_tensors} tensors / {n_kv} metadata entries cannot fit in {} bytes",
                b.len()
            )));
        }
        let mut metadata = Vec::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = c.string()?;
            let t = c.u32()?;
            metadata.push((key, c.value(t, 0)?));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::Uint(a))) if *a > 0 && a.is_power_of_two() && *a <= 1 << 20 => *a,
            Some((_, v)) => return Err(bad(format!("general.alignment {v:?} is not valid"))),
        };
        let mut infos = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()?;
            if !(1..=4).contains(&n_dims) {
                return Err(bad(format!(
                    "tensor '{name}' has {n_dims} dimensions (1 to 4)"
                )));
            }
            let dims = (0..n_dims).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
            let (ggml_type, offset) = (c.u32()?, c.u64()?);
            infos.push((name, dims, ggml_type, offset));
        }
        let data_start = (c.at as u64).div_ceil(alignment) * alignment;
        let data_start = usize::try_from(data_start)
            .ok()
            .filter(|&s| s <= b.len())
            .ok_or_else(|| bad("the tensor data would start past the end of the file"))?;
        let mut tensors = Vec::with_capacity(infos.len());
        for (name, dims, ggml_type, offset) in infos {
            let n = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(format!("tensor '{name}': dims {dims:?} are invalid")))?;
            if offset % alignment != 0 {
                return Err(bad(format!(
                    "tensor '{name}': offset {offset} is not aligned"
                )));
            }
            let mut info = TensorInfo {
                name,
                dims,
                ggml_type,
                bytes: None,
            };
            let size = if info.is_ternary() {
                // A shape the type cannot take (TQ with ne0 % 256 != 0) leaves no range;
                // importing the tensor then reports why.
                let (rows, cols) = info.shape();
                TernaryMatrix::ggml_size(ggml_type, rows, cols)
                    .ok()
                    .map(|s| s as u64)
            } else {
                block_of(ggml_type)
                    .filter(|(_, per)| n % per == 0)
                    .and_then(|(bytes, per)| (n / per).checked_mul(bytes))
            };
            if let Some(size) = size {
                let start = (data_start as u64).checked_add(offset);
                let end = start.and_then(|s| s.checked_add(size));
                match (start, end) {
                    (Some(s), Some(e)) if e <= b.len() as u64 => {
                        info.bytes = Some(s as usize..e as usize)
                    }
                    _ => {
                        return Err(bad(format!(
                            "tensor '{}' ({size} bytes at data offset {offset}) lies outside \
                             the {}-byte file",
                            info.name,
                            b.len()
                        )))
                    }
                }
            }
            tensors.push(info);
        }
        Ok(Self {
            buf,
            version,
            metadata,
            tensors,
            data_start,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Where the tensor data starts in the file.
    pub fn data_start(&self) -> usize {
        self.data_start
    }
    /// The metadata, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }
    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Every tensor info, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// The ternary tensors (types 34, 35, 36), in file order.
    pub fn ternary_tensors(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.iter().filter(|t| t.is_ternary())
    }
    /// The tensor info named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
    /// A tensor's bytes in the file (when its type's size is known).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Option<&[u8]> {
        let b: &[u8] = (*self.buf).as_ref();
        info.bytes.clone().map(|r| &b[r])
    }

    /// Imports the tensor `name` exactly ([`TernaryMatrix::from_ggml`]), packed in `format`.
    /// A type this crate does not decode is [`Error::Unsupported`] (type 39, TL2 in
    /// bitnet.cpp's fork and MXFP4 upstream, with a message that says why); an unknown name
    /// is [`Error::InvalidData`].
    pub fn import(&self, name: &str, format: Format) -> Result<TernaryMatrix> {
        let info = self
            .tensor(name)
            .ok_or_else(|| bad(format!("no tensor named '{name}'")))?;
        self.import_info(info, format)
    }

    /// [`Gguf::import`] of one tensor info.
    pub fn import_info(&self, info: &TensorInfo, format: Format) -> Result<TernaryMatrix> {
        let (rows, cols) = info.shape();
        // A type or shape the codecs do not take: their own refusal (type 39's included).
        TernaryMatrix::ggml_size(info.ggml_type, rows, cols).map_err(|e| prefix(e, &info.name))?;
        let bytes = match (info.is_ternary(), self.tensor_bytes(info)) {
            (true, Some(b)) => b,
            _ => return Err(Error::Internal("a ternary tensor without a range".into())),
        };
        TernaryMatrix::from_ggml(info.ggml_type, bytes, rows, cols, format)
            .map_err(|e| prefix(e, &info.name))
    }

    /// Every ternary tensor imported in `format`, in file order, on rayon's threads.
    pub fn import_all(&self, format: Format) -> Result<Vec<(String, TernaryMatrix)>> {
        use rayon::prelude::*;
        let infos: Vec<&TensorInfo> = self.ternary_tensors().collect();
        infos
            .par_iter()
            .map(|i| Ok((i.name.clone(), self.import_info(i, format)?)))
            .collect()
    }
}

/// Puts the tensor's name in front of an error's text.
fn prefix(e: Error, name: &str) -> Error {
    match e {
        Error::InvalidData(s) => Error::InvalidData(format!("tensor '{name}': {s}")),
        Error::InvalidShape(s) => Error::InvalidShape(format!("tensor '{name}': {s}")),
        Error::Unsupported(s) => Error::Unsupported(format!("tensor '{name}': {s}")),
        e => e,
    }
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}
