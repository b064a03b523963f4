//! DRAM-resident ("cold") measurement: copies of one matrix rotated round-robin, totalling
//! more bytes than the last-level cache, so that each call finds its weights evicted from
//! every cache since its last visit.

/// Bytes the copies total by default: 512 MiB, or [`cold_total`] of it where the last-level
/// cache is larger than 256 MiB.
pub const COLD_BYTES: usize = 512 << 20;

/// The last-level cache's size in bytes, as Linux reports it (the largest
/// `/sys/devices/system/cpu/cpu0/cache/index*/size`); None where that cannot be read.
pub fn llc_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| {
        let s = std::fs::read_to_string(e.ok()?.path().join("size")).ok()?;
        let s = s.trim();
        let (num, mult) = match s.strip_suffix('K') {
            Some(n) => (n, 1 << 10),
            None => match s.strip_suffix('M') {
                Some(n) => (n, 1 << 20),
                None => (s, 1),
            },
        };
        num.parse::<usize>().ok().map(|n| n * mult)
    })
    .max()
}

/// The bytes a cold rotation must total: `requested`, raised to twice the last-level cache
/// where that is larger. Machines differ: this project's guests have reported L3 caches from
/// 32 MiB to 260 MiB, and a rotation smaller than the cache measures the cache, not DRAM.
pub fn cold_total(requested: usize) -> usize {
    requested.max(llc_bytes().map_or(0, |c| 2 * c))
}

/// The fewest copies a rotation has. On this project's VM one allocation can stream at a
/// quarter of another's speed (measured: six copies of one 51 MB matrix read at 7–32 GB/s,
/// each the same on every pass: where the host put its memory), so a median over few copies
/// would measure the luck of placement.
pub const COLD_COPIES: usize = 4;

/// Clones of one value totalling at least a given number of bytes, visited round-robin.
pub struct Rotation<T> {
    copies: Vec<T>,
    next: usize,
}

impl<T: Clone> Rotation<T> {
    /// `value` plus enough clones that `copies × bytes_each >= total`, and at least
    /// [`COLD_COPIES`] copies.
    pub fn new(value: T, bytes_each: usize, total: usize) -> Self {
        let n = total.div_ceil(bytes_each.max(1)).max(COLD_COPIES);
        Self {
            copies: vec![value; n],
            next: 0,
        }
    }
}

impl<T> Rotation<T> {
    /// The next copy, round-robin.
    // Not an `Iterator`: it never ends, and each item borrows the rotation.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> &T {
        let i = self.next;
        self.next = (i + 1) % self.copies.len();
        &self.copies[i]
    }

    /// Copy `i` (modulo the count), for callers that pair each call with another copy.
    pub fn get(&self, i: usize) -> &T {
        &self.copies[i % self.copies.len()]
    }

    /// How many copies rotate.
    pub fn len(&self) -> usize {
        self.copies.len()
    }

    /// Never true: a rotation has at least [`COLD_COPIES`] copies.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }
}

/// Reads the packed bytes of `m`'s rows once through the products' dispatch
/// (`par::for_each_chunk`, chunks of whole `tile`s, `threads` threads) with the streaming
/// probe's own loop: what a product of the same bytes could reach if its kernel cost nothing.
pub fn read_matrix(m: &bitnet_kernels::TernaryMatrix, tile: usize, threads: usize) {
    let b = m.packed_bytes();
    let per_row = b.len() / m.layout().rows_padded;
    bitnet_kernels::par::for_each_chunk(
        m.rows(),
        tile,
        threads,
        |ranges| vec![(); ranges.len()],
        |r, ()| {
            std::hint::black_box(crate::probe::read_bytes(
                &b[r.start * per_row..r.end * per_row],
                crate::probe::ReadLoop::Prefetch,
            ));
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_covers_the_bytes_and_cycles() {
        let mut r = Rotation::new(7u8, 10, 95);
        assert_eq!(r.len(), 10);
        assert_eq!(Rotation::new(0u8, 1 << 20, 1).len(), COLD_COPIES);
        for _ in 0..25 {
            assert_eq!(*r.next(), 7);
        }
        assert_eq!(r.next, 5);
    }
}
