//! A byte buffer whose start is aligned to 64 bytes, so every kernel may use aligned
//! full-width loads of packed weights and no packed block straddles a cache line.

use bytemuck::{Pod, Zeroable};

/// One cache line. `Pod` with no padding, so a `[Line]` can be viewed as `[u8]`.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Line([u8; 64]);

const _: () = assert!(std::mem::size_of::<Line>() == 64 && std::mem::align_of::<Line>() == 64);

/// Packed bytes, 64-byte aligned, with a length that need not be a multiple of 64.
#[derive(Clone)]
pub(crate) struct AlignedBytes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes. Fails with `Error::Alloc` instead of aborting when memory is short.
    pub(crate) fn zeroed(len: usize) -> crate::Result<Self> {
        let n = len.div_ceil(64);
        let mut lines = Vec::new();
        lines
            .try_reserve_exact(n)
            .map_err(|_| crate::Error::Alloc)?;
        lines.resize(n, Line([0; 64]));
        Ok(Self { lines, len })
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}
