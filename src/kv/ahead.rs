//! Software prefetch of the bytes attention reads next, from the Rust passes (the C kernels'
//! counterpart is `bitnet_kv_next` in `kernels/x86/prefetch.h`): a region's cache lines are
//! prefetched into L2 spread evenly over a pass's steps, so that from DRAM the next stream's
//! transfer overlaps this pass's computation. Only a hint: the region is never read and results
//! never depend on it. On x86 CPUs from Intel only, like the kernels' prefetch (on Zen software
//! prefetch was measured slower than the hardware prefetchers alone); elsewhere, and under
//! Miri (no `cpuid`), nothing.

/// A region to prefetch over a number of steps: each [`Ahead::step`] prefetches the same
/// number of lines, `ceil(lines / steps)`, until none is left (a constant trip count: one that
/// varies from step to step costs a branch miss a step), so after `steps` calls every line of
/// the region has been prefetched once.
pub(crate) struct Ahead {
    /// The next line (an address only: never dereferenced).
    p: usize,
    /// Lines left.
    left: usize,
    /// Lines a step.
    per: usize,
}

impl Ahead {
    /// Nothing to prefetch.
    pub(crate) const NONE: Ahead = Ahead {
        p: 0,
        left: 0,
        per: 0,
    };

    /// The lines of `region` (rounded out to 64 bytes) over `steps` steps; nothing when the
    /// region or `steps` is empty or the CPU is not one to prefetch on.
    pub(crate) fn new(region: &[u8], steps: usize) -> Self {
        if region.is_empty() || steps == 0 || !prefetch_on() {
            return Self::NONE;
        }
        let a = region.as_ptr() as usize & !63;
        let e = (region.as_ptr() as usize + region.len()).div_ceil(64) * 64;
        let lines = (e - a) / 64;
        Ahead {
            p: a,
            left: lines,
            per: lines.div_ceil(steps),
        }
    }

    /// One step of the pass: its lines.
    #[inline(always)]
    pub(crate) fn step(&mut self) {
        let k = self.per.min(self.left);
        for i in 0..k {
            prefetch_l2(self.p + 64 * i);
        }
        self.p += 64 * k;
        self.left -= k;
    }
}

/// What one KV head's pair of passes (a kernel and a Rust pass) prefetches of the bytes read
/// next: `kernel` is the region given to the kernel (`next` of [`crate::kernels::RawKvWsum`]),
/// `rust` the regions the Rust pass prefetches over its blocks.
#[derive(Clone, Copy)]
pub(crate) struct Plan<'a> {
    pub(crate) kernel: &'a [u8],
    pub(crate) rust: [&'a [u8]; 3],
}

impl Plan<'_> {
    /// Nothing to prefetch.
    pub(crate) const NONE: Plan<'static> = Plan {
        kernel: &[],
        rust: [&[], &[], &[]],
    };

    /// The Rust pass's prefetchers, over `steps` steps.
    pub(crate) fn rust(&self, steps: usize) -> [Ahead; 3] {
        self.rust.map(|r| Ahead::new(r, steps))
    }
}

/// The parts of `a` and of `b` that fall in the bytes `from .. to` of their concatenation
/// (cut at 64-byte line boundaries of their addresses, as [`split`] cuts): one window of a
/// stream read as `a` then `b`.
pub(crate) fn window<'a>(a: &'a [u8], b: &'a [u8], from: usize, to: usize) -> (&'a [u8], &'a [u8]) {
    // Offset x of r cut at the next line boundary of its address (0 and r.len() stay).
    let cut = |r: &[u8], x: usize| {
        if x == 0 || x >= r.len() {
            return x.min(r.len());
        }
        let base = r.as_ptr() as usize;
        ((base + x).div_ceil(64) * 64 - base).min(r.len())
    };
    let part = |r: &'a [u8], lo: usize, hi: usize| {
        let (lo, hi) = (cut(r, lo), cut(r, hi));
        &r[lo..hi.max(lo)]
    };
    let n = a.len();
    (
        part(a, from, to),
        part(b, from.saturating_sub(n), to.saturating_sub(n)),
    )
}

/// `region` split where a share `num / den` of its bytes ends (at a 64-byte line boundary of
/// its addresses, so that the two halves' lines do not overlap).
pub(crate) fn split(region: &[u8], num: usize, den: usize) -> (&[u8], &[u8]) {
    let want = region.len() * num / den;
    let base = region.as_ptr() as usize;
    let cut = ((base + want).div_ceil(64) * 64 - base).min(region.len());
    region.split_at(cut)
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn prefetch_l2(p: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
    // SAFETY: a prefetch never faults and reads nothing architecturally; SSE is baseline.
    #[allow(unused_unsafe)]
    unsafe {
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8)
    };
}

#[cfg(not(all(target_arch = "x86_64", not(miri))))]
#[inline(always)]
fn prefetch_l2(_p: usize) {}

/// Whether to prefetch: on an Intel CPU (cpuid's vendor string), decided once.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn prefetch_on() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        // SAFETY: cpuid leaf 0 exists on every x86-64 CPU.
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid(0) };
        (r.ebx, r.edx, r.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e) // "GenuineIntel"
    })
}

#[cfg(not(all(target_arch = "x86_64", not(miri))))]
fn prefetch_on() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_at_a_line() {
        let v = vec![0u8; 1000];
        let (a, b) = split(&v, 1, 3);
        assert_eq!(a.len() + b.len(), 1000);
        assert!(a.len() >= 333 && a.len() < 333 + 64);
        assert_eq!((v.as_ptr() as usize + a.len()) % 64, 0);
        assert_eq!(split(&v, 1, 1).0.len(), 1000);
        assert_eq!(
            split(&v, 0, 1).0.len(),
            (64 - v.as_ptr() as usize % 64) % 64
        );
    }

    #[test]
    fn windows_cover_the_stream_once() {
        let (a, b) = (vec![0u8; 64 * 50 + 7], vec![0u8; 64 * 30 + 9]);
        let total = a.len() + b.len();
        let cuts = [0, 100, a.len() - 3, a.len() + 1, a.len() + 700, total];
        let (mut na, mut nb) = (0, 0);
        for w in cuts.windows(2) {
            let (x, y) = window(&a, &b, w[0], w[1]);
            // Each part starts where the last ended: the windows tile a and b.
            if !x.is_empty() {
                assert_eq!(x.as_ptr() as usize, a.as_ptr() as usize + na);
            }
            if !y.is_empty() {
                assert_eq!(y.as_ptr() as usize, b.as_ptr() as usize + nb);
            }
            na += x.len();
            nb += y.len();
        }
        assert_eq!((na, nb), (a.len(), b.len()));
        assert_eq!(
            window(&a, &b, 0, 0).0.len() + window(&a, &b, 0, 0).1.len(),
            0
        );
        let (x, y) = window(&a, &b, a.len() + 5, total);
        assert!(x.is_empty() && y.as_ptr() as usize + y.len() == b.as_ptr() as usize + b.len());
    }

    #[test]
    fn every_line_once_after_steps() {
        let v = vec![0u8; 64 * 37 + 5];
        for steps in [1, 2, 36, 37, 38, 500] {
            let mut a = Ahead::new(&v, steps);
            let start = a.p;
            for _ in 0..steps {
                a.step();
            }
            if prefetch_on() {
                let end = (v.as_ptr() as usize + v.len()).div_ceil(64) * 64;
                assert_eq!((start, a.p), (v.as_ptr() as usize & !63, end));
            } else {
                assert_eq!(a.p, 0);
            }
        }
    }
}
