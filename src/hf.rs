//! Hugging Face packed BitNet checkpoints (cargo feature `safetensors`): the `transformers`
//! BitNet layout (`docs/FORMATS.md` §7) in safetensors files, with `config.json`'s
//! `quantization_config.linear_class` deciding whether `weight_scale` multiplies
//! (`"autobitlinear"`, e.g. `microsoft/bitnet-b1.58-2B-4T`) or divides (`"bitlinear"`).
//!
//! A ternary tensor is a 2-D `uint8` tensor `NAME` of shape `(out / 4, in)` with a sibling
//! `NAME_scale` (`x.weight` and `x.weight_scale`) holding one f32, f16 or bf16 value. The
//! files are memory-mapped; importing reads the packed bytes in place.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::format::ggml::{f16_to_f32, HfScale};
use crate::format::{Format, SharedBuffer, TernaryMatrix};

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidData(format!("safetensors: {}", msg.into()))
}

fn io(e: std::io::Error, p: &Path) -> Error {
    Error::Io(format!("{}: {e}", p.display()))
}

/// One ternary tensor of a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct HfTensor {
    /// The packed weight's name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// Output features (4 × the packed tensor's first dimension).
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// The `weight_scale` value as stored (before multiply or divide).
    pub weight_scale: f32,
    /// Which file of the checkpoint holds it.
    file: usize,
}

/// A Hugging Face packed BitNet checkpoint: one or more memory-mapped safetensors files.
pub struct HfCheckpoint {
    maps: Vec<SharedBuffer>,
    scale: HfScale,
    tensors: Vec<HfTensor>,
}

/// The scale rule named by `config.json`'s `quantization_config.linear_class`.
pub fn scale_from_config(config: &str) -> Result<HfScale> {
    let v: serde_json::Value =
        serde_json::from_str(config).map_err(|e| bad(format!("config.json: {e}")))?;
    match v["quantization_config"]["linear_class"].as_str() {
        Some("autobitlinear") => Ok(HfScale::Multiply),
        Some("bitlinear") => Ok(HfScale::Divide),
        Some(other) => Err(Error::Unsupported(format!(
            "config.json: linear_class '{other}' (known: autobitlinear, bitlinear)"
        ))),
        None => Err(Error::Unsupported(
            "config.json has no quantization_config.linear_class: whether weight_scale \
             multiplies or divides is unknown (pass HfScale explicitly)"
                .into(),
        )),
    }
}

/// One scalar of a scale tensor.
fn scalar(dtype: Dtype, data: &[u8]) -> Option<f32> {
    match (dtype, data.len()) {
        (Dtype::F32, 4) => Some(f32::from_le_bytes(data.try_into().ok()?)),
        (Dtype::F16, 2) => Some(f16_to_f32(u16::from_le_bytes(data.try_into().ok()?))),
        (Dtype::BF16, 2) => Some(f32::from_bits(
            (u16::from_le_bytes(data.try_into().ok()?) as u32) << 16,
        )),
        _ => None,
    }
}

impl HfCheckpoint {
    /// Opens a checkpoint: a directory (every `*.safetensors` in it, and its `config.json`
    /// for the scale rule) or one `.safetensors` file (with the `config.json` beside it).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let dir = if path.is_dir() {
            path
        } else {
            path.parent().unwrap_or(Path::new("."))
        };
        let cfg = dir.join("config.json");
        let config = std::fs::read_to_string(&cfg).map_err(|e| io(e, &cfg))?;
        Self::open_with(path, scale_from_config(&config)?)
    }

    /// [`HfCheckpoint::open`] with the scale rule given instead of read from `config.json`.
    pub fn open_with(path: impl AsRef<Path>, scale: HfScale) -> Result<Self> {
        let path = path.as_ref();
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| io(e, path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            v.sort();
            v
        } else {
            vec![path.to_path_buf()]
        };
        if files.is_empty() {
            return Err(bad(format!("no .safetensors file in {}", path.display())));
        }
        // Read, not mapped: the import repacks every tensor anyway, so a map would save
        // only the page-cache copy, at the price of an unsafe precondition on the files.
        let maps = files
            .iter()
            .map(|p| crate::format::read_shared(p))
            .collect::<Result<Vec<SharedBuffer>>>()?;
        Self::from_buffers(maps, scale)
    }

    /// A checkpoint of safetensors files already in memory (or mapped), one buffer a file.
    pub fn from_buffers(maps: Vec<SharedBuffer>, scale: HfScale) -> Result<Self> {
        let mut tensors = Vec::new();
        for (file, m) in maps.iter().enumerate() {
            tensors.extend(list((**m).as_ref(), file)?);
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            maps,
            scale,
            tensors,
        })
    }

    /// The scale rule in force.
    pub fn scale_rule(&self) -> HfScale {
        self.scale
    }
    /// The ternary tensors, by name.
    pub fn tensors(&self) -> &[HfTensor] {
        &self.tensors
    }

    /// The packed bytes of the ternary tensor `name`, as stored (`rows / 4 * cols` bytes).
    pub fn packed_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.find(name)?;
        let st = SafeTensors::deserialize((*self.maps[t.file]).as_ref())
            .map_err(|e| bad(e.to_string()))?;
        let view = st.tensor(name).map_err(|e| bad(e.to_string()))?;
        Ok(view.data())
    }

    fn find(&self, name: &str) -> Result<&HfTensor> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| bad(format!("no ternary tensor named '{name}'")))
    }

    /// Imports the ternary tensor `name` exactly ([`TernaryMatrix::from_hf_packed`]).
    pub fn import(&self, name: &str, format: Format) -> Result<TernaryMatrix> {
        let t = self.find(name)?;
        TernaryMatrix::from_hf_packed(
            self.packed_bytes(name)?,
            t.rows,
            t.cols,
            t.weight_scale,
            self.scale,
            format,
        )
        .map_err(|e| match e {
            Error::InvalidData(s) => Error::InvalidData(format!("tensor '{name}': {s}")),
            e => e,
        })
    }

    /// Every ternary tensor, imported in `format`, by name.
    pub fn import_all(&self, format: Format) -> Result<Vec<(String, TernaryMatrix)>> {
        use rayon::prelude::*;
        self.tensors
            .par_iter()
            .map(|t| Ok((t.name.clone(), self.import(&t.name, format)?)))
            .collect()
    }
}

/// The ternary tensors of one safetensors file: `uint8` 2-D tensors with a one-value
/// `<name>_scale` sibling.
fn list(bytes: &[u8], file: usize) -> Result<Vec<HfTensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for name in st.names() {
        let view = st.tensor(name).map_err(|e| bad(e.to_string()))?;
        if view.dtype() != Dtype::U8 || view.shape().len() != 2 {
            continue;
        }
        let Ok(sv) = st.tensor(&format!("{name}_scale")) else {
            continue;
        };
        let weight_scale = scalar(sv.dtype(), sv.data())
            .ok_or_else(|| bad(format!("{name}_scale is not one f32, f16 or bf16 value")))?;
        let (q, cols) = (view.shape()[0], view.shape()[1]);
        let rows = q
            .checked_mul(4)
            .ok_or_else(|| bad(format!("tensor '{name}' is too large")))?;
        out.push(HfTensor {
            name: name.to_string(),
            rows,
            cols,
            weight_scale,
            file,
        });
    }
    Ok(out)
}

impl std::fmt::Debug for HfCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfCheckpoint")
            .field("files", &self.maps.len())
            .field("scale", &self.scale)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}
