//! A byte buffer whose start is aligned to 64 bytes, so every kernel may use aligned
//! full-width loads of packed weights and no packed block straddles a cache line. Buffers of
//! [`HUGE_PAGE`] bytes or more start on a 2 MiB boundary and, on Linux, ask for transparent
//! huge pages before their first touch.
//!
//! Why huge pages: a DRAM-resident GEMV streams its weights once, and with 4 KiB pages the
//! page walks, not DRAM, can be the limit (the benchmark's streaming probe read 12 GB/s on
//! 4 KiB pages against 21 GB/s on huge pages on this project's KVM guest, see
//! `bench/src/probe.rs`). The fp16 and f32 baselines live on huge pages; the packed matrices
//! get the same treatment. It is only advice: where the OS refuses, nothing changes but the
//! page size.

use std::alloc::Layout;
use std::ptr::NonNull;

/// One cache line: the alignment of every buffer.
pub(crate) const LINE: usize = 64;

/// Buffers at least this long start 2 MiB-aligned (the x86-64 and AArch64 huge page with
/// 4 KiB base pages), so that every whole 2 MiB of them can be one huge page.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Packed bytes, 64-byte aligned (2 MiB-aligned from [`HUGE_PAGE`] bytes on), with a length
/// that need not be a multiple of 64. Owns its allocation; zero-initialised when made.
pub(crate) struct AlignedBytes {
    ptr: NonNull<u8>,
    /// The allocation's layout (at least one line, a multiple of 64 bytes).
    layout: Layout,
    len: usize,
}

// SAFETY: `AlignedBytes` owns its bytes like a `Vec<u8>`: shared access is read-only
// (`as_slice(&self)`), writes need `&mut self`.
unsafe impl Send for AlignedBytes {}
// SAFETY: as above.
unsafe impl Sync for AlignedBytes {}

impl AlignedBytes {
    /// `len` zero bytes. Fails with `Error::Alloc` instead of aborting when memory is short.
    pub(crate) fn zeroed(len: usize) -> crate::Result<Self> {
        let align = if len >= HUGE_PAGE { HUGE_PAGE } else { LINE };
        let size = len
            .max(1)
            .checked_next_multiple_of(LINE)
            .ok_or(crate::Error::Alloc)?;
        let layout = Layout::from_size_align(size, align).map_err(|_| crate::Error::Alloc)?;
        // SAFETY: `layout` has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc(layout) }).ok_or(crate::Error::Alloc)?;
        if align == HUGE_PAGE {
            advise_huge(ptr, size);
        }
        // SAFETY: `size` bytes were just allocated at `ptr`; this first touch (after the
        // advice) is what maps the pages.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, size) };
        Ok(Self { ptr, layout, len })
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len <= layout.size()` bytes, allocated and initialised (zeroed, then
        // written as bytes only) and owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// Asks Linux for transparent huge pages on the whole 2 MiB blocks of the `size` bytes at
/// `ptr` (2 MiB-aligned, not yet touched). Only advice: the kernel may refuse (THP off, no
/// free huge page), and then the bytes stay on ordinary pages; the result is ignored.
#[cfg(all(target_os = "linux", not(miri)))]
fn advise_huge(ptr: NonNull<u8>, size: usize) {
    let whole = size / HUGE_PAGE * HUGE_PAGE;
    // SAFETY: `madvise` with MADV_HUGEPAGE changes no memory contents, only how the kernel
    // backs the range; the range lies inside this allocation and starts page-aligned.
    unsafe { libc::madvise(ptr.as_ptr().cast(), whole, libc::MADV_HUGEPAGE) };
}

/// Elsewhere (and under Miri) the allocation keeps the OS's default pages.
#[cfg(not(all(target_os = "linux", not(miri))))]
fn advise_huge(_ptr: NonNull<u8>, _size: usize) {}

impl Drop for AlignedBytes {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl Clone for AlignedBytes {
    /// A new allocation of the same kind (huge-page advice included), then the bytes copied.
    /// Cloning allocates, as `Vec::clone` does, and aborts the same way if memory is short.
    fn clone(&self) -> Self {
        let mut c =
            Self::zeroed(self.len).unwrap_or_else(|_| std::alloc::handle_alloc_error(self.layout));
        c.as_mut_slice().copy_from_slice(self.as_slice());
        c
    }
}

impl Default for AlignedBytes {
    /// No bytes (one line allocated, as for every length).
    fn default() -> Self {
        Self::zeroed(0).unwrap_or_else(|_| {
            std::alloc::handle_alloc_error(Layout::from_size_align(LINE, LINE).expect("a line"))
        })
    }
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alignment by size, zeroed contents, clones equal and independent.
    #[test]
    fn aligned_zeroed_and_cloned() {
        let sizes: &[usize] = if cfg!(miri) {
            &[0, 1, 63, 64, 65]
        } else {
            &[0, 1, 63, 64, 65, HUGE_PAGE - 1, HUGE_PAGE, HUGE_PAGE + 3]
        };
        for &len in sizes {
            let mut a = AlignedBytes::zeroed(len).unwrap();
            let want = if len >= HUGE_PAGE { HUGE_PAGE } else { LINE };
            assert_eq!(a.as_slice().as_ptr().align_offset(want), 0, "{len}");
            assert_eq!(a.as_slice().len(), len);
            assert!(a.as_slice().iter().all(|&b| b == 0));
            if let Some(last) = a.as_mut_slice().last_mut() {
                *last = 7;
            }
            let mut c = a.clone();
            assert_eq!(c.as_slice(), a.as_slice());
            if let Some(first) = c.as_mut_slice().first_mut() {
                *first = 9;
                assert_eq!(a.as_slice()[0], if len == 1 { 7 } else { 0 });
            }
        }
    }
}
