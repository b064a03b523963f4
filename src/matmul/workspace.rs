//! Caller-owned memory for every temporary of a product: quantized activations, re-padded
//! copies, accumulators. Sized by a query; a product given too little gets an error.

use crate::error::{Error, Result};
use crate::format::TernaryMatrix;

use super::quantized::stride_of;

/// The most matrices one fused call takes (q, k, v and gate, up need 3 and 2): the engine
/// keeps its per-matrix state in fixed arrays of this size, so that it allocates nothing.
pub const MAX_MATRICES: usize = 16;

/// Alignment of the first region of a workspace (and of the caller's memory it is carved
/// from: the query adds this much slack, so any start address works).
const ALIGN: usize = 64;

/// Caller-owned scratch memory for the products that take one ([`crate::matmul::products`],
/// [`crate::matmul::gemv_row_list`] and the `KernelSet` methods of the same names): with a
/// workspace at least [`Workspace::bytes_for`] long, those products allocate nothing on one
/// thread (on several, only the dispatch's few small bookkeeping blocks, whatever the
/// shapes). One workspace serves any product it is large enough for, one call at a time
/// (`&mut`): threads that multiply at once each need their own.
#[derive(Debug, Default)]
pub struct Workspace {
    /// `u64` so that the bytes are 8-aligned whatever the allocator does; carved at
    /// [`ALIGN`] anyway.
    buf: Vec<u64>,
}

impl Workspace {
    /// A workspace of at least `bytes` bytes.
    pub fn with_bytes(bytes: usize) -> Self {
        Self {
            buf: vec![0; bytes.div_ceil(8)],
        }
    }

    /// A workspace large enough for any product of `n` f32 (or quantized) activation rows by
    /// the matrices `ms`, together in one fused call or each alone.
    pub fn for_products(ms: &[&TernaryMatrix], n: usize) -> Result<Self> {
        Ok(Self::with_bytes(Self::bytes_for(ms, n)?))
    }

    /// The bytes a workspace needs for `n` f32 activation rows times the matrices `ms` (all
    /// of the same `cols`) in one call ([`crate::matmul::products`]); it is also enough for
    /// each of them alone, for quantized input, and for [`crate::matmul::gemv_row_list`]
    /// on any of them when `n == 1`.
    pub fn bytes_for(ms: &[&TernaryMatrix], n: usize) -> Result<usize> {
        Ok(Needs::of(ms, n, true)?.bytes())
    }

    /// This workspace's size in bytes.
    pub fn len(&self) -> usize {
        self.buf.len() * 8
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Grows this workspace to at least `bytes` (never shrinks it).
    pub fn reserve(&mut self, bytes: usize) {
        if self.len() < bytes {
            self.buf.resize(bytes.div_ceil(8), 0);
        }
    }

    /// The bytes, to carve.
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.buf)
    }
}

/// What one product needs, in elements of each region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    /// int32 accumulators for outputs that cannot be written in place.
    pub(crate) acc: usize,
    /// One absmax per activation row (f32 input only).
    pub(crate) absmax: usize,
    /// The quantized rows at [`stride_of`] (f32 input only).
    pub(crate) q: usize,
    /// Copies of the quantized rows at a format's padded width, where it differs.
    pub(crate) repad: usize,
}

/// Whether `n` rows stored at `stride` must be copied for a kernel reading rows of `kp`:
/// one row is read as a prefix (the values past `cols` are zeros up to `stride`), several
/// only at their own width.
pub(crate) fn needs_repad(n: usize, kp: usize, stride: usize) -> bool {
    !(kp == stride || (n == 1 && kp <= stride))
}

/// Whether `m`'s accumulators for `n` rows go through the workspace rather than straight into
/// the output: when `n > 1` (the kernels write tile-major) or the rows are ragged.
pub(crate) fn needs_acc(m: &TernaryMatrix, n: usize) -> bool {
    n > 1 || m.rows() != m.layout().rows_padded
}

/// Checks that the matrices can share one input: 1 to [`MAX_MATRICES`] of them, all of the
/// same `cols`; returns that `cols`.
pub(crate) fn common_cols(ms: &[&TernaryMatrix]) -> Result<usize> {
    let Some(first) = ms.first() else {
        return Err(Error::InvalidShape("no matrices".into()));
    };
    if ms.len() > MAX_MATRICES {
        return Err(Error::InvalidShape(format!(
            "{} matrices in one call; at most {MAX_MATRICES}",
            ms.len()
        )));
    }
    let cols = first.cols();
    if let Some(m) = ms.iter().find(|m| m.cols() != cols) {
        return Err(Error::InvalidShape(format!(
            "matrices of {} and {} columns in one call",
            cols,
            m.cols()
        )));
    }
    Ok(cols)
}

fn overflow() -> Error {
    Error::InvalidShape("workspace size overflows".into())
}

impl Needs {
    /// What `n` activation rows times `ms` in one call need; `f32_input`: the call also
    /// quantizes.
    pub(crate) fn of(ms: &[&TernaryMatrix], n: usize, f32_input: bool) -> Result<Needs> {
        let cols = common_cols(ms)?;
        if n == 0 {
            return Err(Error::InvalidShape("n must be at least 1".into()));
        }
        let stride = stride_of(cols);
        let mut need = Needs::default();
        let mul = |a: usize, b: usize| a.checked_mul(b).ok_or_else(overflow);
        if f32_input {
            need.q = mul(n, stride)?;
            need.absmax = n;
        }
        for (i, m) in ms.iter().enumerate() {
            let l = m.layout();
            // One copy per distinct padded width.
            if needs_repad(n, l.cols_padded, stride)
                && !ms[..i]
                    .iter()
                    .any(|o| o.layout().cols_padded == l.cols_padded)
            {
                need.repad = need
                    .repad
                    .checked_add(mul(n, l.cols_padded)?)
                    .ok_or_else(overflow)?;
            }
            if needs_acc(m, n) {
                need.acc = need
                    .acc
                    .checked_add(mul(n, l.rows_padded)?)
                    .ok_or_else(overflow)?;
            }
        }
        need.bytes_checked()?;
        Ok(need)
    }

    /// The bytes these regions take, with the alignment slack.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes_checked().expect("checked when made")
    }

    fn bytes_checked(&self) -> Result<usize> {
        let four = self
            .acc
            .checked_add(self.absmax)
            .and_then(|v| v.checked_mul(4));
        four.and_then(|v| v.checked_add(self.q))
            .and_then(|v| v.checked_add(self.repad))
            .and_then(|v| v.checked_add(ALIGN))
            .ok_or_else(overflow)
    }
}

/// A workspace carved into its regions for one product.
pub(crate) struct Scratch<'a> {
    pub(crate) acc: &'a mut [i32],
    pub(crate) absmax: &'a mut [f32],
    pub(crate) q: &'a mut [i8],
    pub(crate) repad: &'a mut [i8],
}

/// Carves `bytes` (any address, any length) into the regions `need` asks for, or says how
/// many bytes it lacks: never a region past its end.
pub(crate) fn carve(bytes: &mut [u8], need: Needs) -> Result<Scratch<'_>> {
    let total = need.bytes();
    if bytes.len() < total {
        return Err(Error::InvalidShape(format!(
            "workspace of {} bytes is too small: this product needs {total}",
            bytes.len()
        )));
    }
    let skip = bytes.as_ptr().align_offset(ALIGN).min(ALIGN);
    let rest = &mut bytes[skip..];
    let (acc, rest) = rest.split_at_mut(need.acc * 4);
    let (absmax, rest) = rest.split_at_mut(need.absmax * 4);
    let (q, rest) = rest.split_at_mut(need.q);
    let (repad, _) = rest.split_at_mut(need.repad);
    Ok(Scratch {
        acc: bytemuck::cast_slice_mut(acc),
        absmax: bytemuck::cast_slice_mut(absmax),
        q: bytemuck::cast_slice_mut(q),
        repad: bytemuck::cast_slice_mut(repad),
    })
}
