//! A memory-bandwidth probe: how fast this machine streams bytes it only reads.
//!
//! A GEMV reads every weight once, so `weight bytes ÷ streaming read bandwidth` is the floor
//! on its time once the weights do not fit in cache. The benchmark report measures that
//! floor in the same run as the kernels, with one thread and with all threads, on a
//! DRAM-sized buffer and on an L3-sized one, and quotes each kernel as a fraction of it.
//!
//! ```
//! let bw = bitnet_bench::probe::stream_read(1 << 20, 1, 3);
//! assert!(bw.gb_per_s > 0.0);
//! ```

use std::sync::Barrier;
use std::time::Instant;

/// One cache line; the buffer is viewed as these so every load is aligned.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// A zeroed, cache-line aligned byte buffer for streaming benchmarks. Large ones are
/// 2 MiB-aligned and, on Linux, ask for transparent huge pages (`madvise(MADV_HUGEPAGE)`)
/// before their first touch.
///
/// Why: on this project's machine (a KVM guest, THP in `madvise` mode) one 1 GiB buffer of
/// 4 KiB pages streamed at 12 GB/s and the same buffer on huge pages at 21 GB/s, measured
/// in one run; the page walks, not DRAM, were the limit. The probe must measure DRAM, and the
/// dense baselines, which read 13–235 MB a call, must not be slowed by the same walks.
pub struct LargeBuffer {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
    len: usize,
}

// SAFETY: the buffer is owned and only reachable through &self / &mut self.
unsafe impl Send for LargeBuffer {}
// SAFETY: shared access is read-only.
unsafe impl Sync for LargeBuffer {}

impl LargeBuffer {
    const HUGE: usize = 2 << 20;

    /// `len` zero bytes (at least one cache line is allocated).
    pub fn zeroed(len: usize) -> Self {
        let align = if len >= Self::HUGE { Self::HUGE } else { 64 };
        let size = len.max(1).div_ceil(align) * align;
        let layout = std::alloc::Layout::from_size_align(size, align).expect("buffer size");
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        #[cfg(target_os = "linux")]
        if align == Self::HUGE {
            // SAFETY: a hint on memory we own, page-aligned, of the allocated size; a
            // failure only means 4 KiB pages.
            unsafe { libc::madvise(ptr.as_ptr().cast(), size, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `size` bytes are allocated; this first touch maps the (huge) pages.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, size) };
        Self { ptr, layout, len }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len <= size` bytes, initialised (zeroed, then written as bytes only).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Clone for LargeBuffer {
    fn clone(&self) -> Self {
        let mut b = Self::zeroed(self.len);
        b.as_mut_slice().copy_from_slice(self.as_slice());
        b
    }
}

impl Drop for LargeBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The result of one probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth {
    /// Size of the buffer read, in bytes.
    pub bytes: usize,
    /// Threads that read it together, each its own contiguous part.
    pub threads: usize,
    /// Median of the timed steps, in GB/s (10^9 bytes a second): the limit the report
    /// quotes, the same statistic as the kernels' per-call medians.
    pub gb_per_s: f64,
    /// The fastest step, in GB/s.
    pub best_gb_per_s: f64,
    /// Number of timed steps (after one untimed pass over the buffer).
    pub samples: usize,
    /// The read loop that gave `gb_per_s`: see [`ReadLoop`].
    pub read_loop: ReadLoop,
}

/// The loops [`stream_read`] measures; it keeps the faster, because a limit a kernel can
/// beat is no limit.
///
/// Why two: on a Sapphire-Rapids-class Xeon (KVM guest) the plain loop streamed a 1 GiB
/// buffer at 16 GB/s and the same loop with `prefetcht0` 512 B ahead at 18.5–20 GB/s, in one
/// run, and kernels that prefetch beat the plain probe; on Zen 4 the hardware prefetchers
/// alone were as fast as any software prefetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLoop {
    /// Full-width aligned loads, four independent XOR chains; hardware prefetchers only.
    Plain,
    /// The same with a software prefetch of the line [`PREFETCH_AHEAD`] bytes ahead (x86;
    /// elsewhere identical to `Plain`).
    Prefetch,
}

/// How far ahead [`ReadLoop::Prefetch`] prefetches (256–1024 B measured equal, 2 KiB and
/// more slower, on the Xeon above).
pub const PREFETCH_AHEAD: usize = 512;

impl ReadLoop {
    /// `"plain"` or `"prefetch"`.
    pub fn name(self) -> &'static str {
        match self {
            ReadLoop::Plain => "plain",
            ReadLoop::Prefetch => "prefetch",
        }
    }
}

/// Which vector width [`stream_read`]'s loops use on this CPU: `"avx512"`, `"avx2"` or
/// `"scalar"`.
pub fn read_loop_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "scalar"
}

/// Bytes each thread reads in one timed step.
const STEP_BYTES: usize = 8 << 20;

/// Streams through a buffer of `bytes` (rounded up to whole cache lines) with `threads`
/// threads, each reading its own contiguous part with full-width aligned vector loads, once
/// with each [`ReadLoop`], and returns the faster loop's median and best rate of `samples`
/// timed steps (at least 1).
///
/// A step is short (each thread reads the next 8 MiB of its part, or all of it if smaller,
/// then all wait for the slowest), like one GEMV call: on a shared machine a long sample is
/// almost always cut by the scheduler, a short one mostly not, so short steps measure the
/// memory system the way the kernels' per-call medians do. Steps walk the buffer in order and
/// wrap around, after one untimed pass, so a buffer several times the last-level cache is read
/// from DRAM at every step. The buffer is on huge pages where the OS gives them
/// (`LargeBuffer`) and written first so every page is really mapped.
pub fn stream_read(bytes: usize, threads: usize, samples: usize) -> Bandwidth {
    let threads = threads.max(1);
    let samples = samples.max(1);
    let lines = bytes.div_ceil(64).max(threads);
    let mut storage = LargeBuffer::zeroed(lines * 64);
    let buf: &mut [Line] = bytemuck::cast_slice_mut(storage.as_mut_slice());
    for (i, l) in buf.iter_mut().enumerate() {
        l.0[0] = i as u64;
    }
    let buf: &[Line] = buf;
    let part_lines = lines / threads;
    let seg = (STEP_BYTES / 64).min(part_lines);
    let segs = part_lines / seg;
    // Each thread's part cut into `segs` steps (a remainder of less than a step is not read).
    let steps: Vec<Vec<&[Line]>> = (0..threads)
        .map(|t| {
            (0..segs)
                .map(|i| &buf[t * part_lines + i * seg..][..seg])
                .collect()
        })
        .collect();
    let moved = (seg * 64 * threads) as f64;
    [ReadLoop::Plain, ReadLoop::Prefetch]
        .into_iter()
        .map(|read_loop| {
            let mut rates: Vec<f64> = timed_steps(&steps, segs, samples, read_loop)
                .iter()
                .map(|t| moved / t / 1e9)
                .collect();
            rates.sort_by(f64::total_cmp);
            Bandwidth {
                bytes: lines * 64,
                threads,
                gb_per_s: rates[rates.len() / 2],
                best_gb_per_s: rates[rates.len() - 1],
                samples,
                read_loop,
            }
        })
        .max_by(|a, b| a.gb_per_s.total_cmp(&b.gb_per_s))
        .expect("two loops")
}

/// Seconds of each of `samples` timed steps, every thread reading its `steps` in turn with
/// `read_loop` (after one untimed pass over all `segs` of them).
fn timed_steps(
    steps: &[Vec<&[Line]>],
    segs: usize,
    samples: usize,
    read_loop: ReadLoop,
) -> Vec<f64> {
    let total = segs + samples; // one untimed pass, then the timed steps
    let barrier = Barrier::new(steps.len());
    let mut times = Vec::with_capacity(samples);
    std::thread::scope(|s| {
        let workers: Vec<_> = steps[1..]
            .iter()
            .map(|mine| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut sink = 0u64;
                    for i in 0..total {
                        barrier.wait();
                        sink ^= read(mine[i % segs], read_loop);
                        barrier.wait();
                    }
                    sink
                })
            })
            .collect();
        let mut sink = 0u64;
        for i in 0..total {
            barrier.wait();
            let t0 = Instant::now();
            sink ^= read(steps[0][i % segs], read_loop);
            // The second wait ends when the slowest thread is done.
            barrier.wait();
            if i >= segs {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        for w in workers {
            sink ^= w.join().expect("probe thread panicked");
        }
        std::hint::black_box(sink);
    });
    times
}

/// Reads `bytes` once with the probe's loop `read_loop` (its whole cache lines; a partial line
/// at either end is skipped): what [`stream_read`] measures, on any caller's bytes, so a
/// kernel can be compared with a plain read of the very bytes it reads.
pub fn read_bytes(bytes: &[u8], read_loop: ReadLoop) -> u64 {
    let (_, lines, _) = bytemuck::pod_align_to::<u8, Line>(bytes);
    read(lines, read_loop)
}

/// XOR of every word of `part`, with the widest loads this CPU has.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn read(part: &[Line], read_loop: ReadLoop) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let pf = read_loop == ReadLoop::Prefetch;
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { x86::read_avx512(part, pf) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { x86::read_avx2(part, pf) };
        }
    }
    part.iter()
        .fold(0u64, |acc, l| l.0.iter().fold(acc, |a, &w| a ^ w))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Line, PREFETCH_AHEAD};
    use std::arch::x86_64::*;

    /// A hint to fetch the line `PREFETCH_AHEAD` bytes past `l` (never faults, so past the
    /// end of the part is harmless).
    #[inline(always)]
    fn prefetch(l: &Line) {
        let p = (l as *const Line).cast::<i8>().wrapping_add(PREFETCH_AHEAD);
        // SAFETY: a prefetch is a hint and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
    }

    /// Four independent XOR chains, one 64-byte aligned load each per line (`pf`: each
    /// line's prefetch first).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn read_avx512(part: &[Line], pf: bool) -> u64 {
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut chunks = part.chunks_exact(4);
        for c in &mut chunks {
            for (a, l) in acc.iter_mut().zip(c) {
                if pf {
                    prefetch(l);
                }
                // SAFETY: `l` is a 64-byte aligned, 64-byte line.
                *a = _mm512_xor_si512(*a, unsafe { _mm512_load_si512(l.0.as_ptr().cast()) });
            }
        }
        for l in chunks.remainder() {
            // SAFETY: as above.
            acc[0] = _mm512_xor_si512(acc[0], unsafe { _mm512_load_si512(l.0.as_ptr().cast()) });
        }
        let v = _mm512_xor_si512(
            _mm512_xor_si512(acc[0], acc[1]),
            _mm512_xor_si512(acc[2], acc[3]),
        );
        _mm512_reduce_or_epi64(v) as u64
    }

    /// Four independent XOR chains, two 32-byte aligned loads per line (`pf`: as above).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn read_avx2(part: &[Line], pf: bool) -> u64 {
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            if pf {
                prefetch(&c[0]);
                prefetch(&c[1]);
            }
            // SAFETY: each line is 64-byte aligned, so both halves are 32-byte aligned.
            unsafe {
                let (p, q) = (c[0].0.as_ptr().cast::<__m256i>(), c[1].0.as_ptr().cast());
                acc[0] = _mm256_xor_si256(acc[0], _mm256_load_si256(p));
                acc[1] = _mm256_xor_si256(acc[1], _mm256_load_si256(p.add(1)));
                acc[2] = _mm256_xor_si256(acc[2], _mm256_load_si256(q));
                acc[3] = _mm256_xor_si256(acc[3], _mm256_load_si256(q.add(1)));
            }
        }
        for l in chunks.remainder() {
            // SAFETY: as above.
            unsafe {
                let p = l.0.as_ptr().cast::<__m256i>();
                acc[0] = _mm256_xor_si256(acc[0], _mm256_load_si256(p));
                acc[1] = _mm256_xor_si256(acc[1], _mm256_load_si256(p.add(1)));
            }
        }
        let v = _mm256_xor_si256(
            _mm256_xor_si256(acc[0], acc[1]),
            _mm256_xor_si256(acc[2], acc[3]),
        );
        let mut w = [0u64; 4];
        // SAFETY: `w` has room for 32 bytes; unaligned store.
        unsafe { _mm256_storeu_si256(w.as_mut_ptr().cast(), v) };
        w.iter().fold(0, |a, &b| a ^ b)
    }
}

/// The four probes the report quotes: DRAM-sized and L3-sized buffers, one thread and
/// `threads` threads.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// DRAM-sized buffer, one thread.
    pub dram_1t: Bandwidth,
    /// DRAM-sized buffer, all threads.
    pub dram_all: Bandwidth,
    /// L3-sized buffer, one thread.
    pub l3_1t: Bandwidth,
    /// L3-sized buffer, all threads.
    pub l3_all: Bandwidth,
}

impl Limits {
    /// The faster of two measurements, field by field (e.g. one probe at the start of a
    /// benchmark run and one at its end: a busy spell slows a probe, never speeds it up).
    pub fn max(self, other: Limits) -> Limits {
        let best = |a: Bandwidth, b: Bandwidth| if b.gb_per_s > a.gb_per_s { b } else { a };
        Limits {
            dram_1t: best(self.dram_1t, other.dram_1t),
            dram_all: best(self.dram_all, other.dram_all),
            l3_1t: best(self.l3_1t, other.l3_1t),
            l3_all: best(self.l3_all, other.l3_all),
        }
    }
}

/// Runs the four probes: `dram_bytes` (choose several times the last-level cache, e.g.
/// 1 GiB) and `l3_bytes` (about half the last-level cache, e.g. 16 MiB), each with one
/// thread and with `threads` threads, `samples` timed steps each.
pub fn limits(dram_bytes: usize, l3_bytes: usize, threads: usize, samples: usize) -> Limits {
    Limits {
        dram_1t: stream_read(crate::cold::cold_total(dram_bytes), 1, samples),
        dram_all: stream_read(crate::cold::cold_total(dram_bytes), threads, samples),
        l3_1t: stream_read(l3_bytes, 1, samples),
        l3_all: stream_read(l3_bytes, threads, samples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loop_reads_every_word() {
        // 5 lines: not a multiple of any unroll factor, so remainders are exercised.
        let mut buf = vec![Line([0; 8]); 5];
        buf[4].0[7] = 0x80;
        buf[0].0[0] = 0x01;
        let scalar = buf
            .iter()
            .fold(0u64, |acc, l| l.0.iter().fold(acc, |a, &w| a ^ w));
        assert_eq!(scalar, 0x81);
        // The SIMD loops fold lanes with OR/XOR, so a set bit must survive in each.
        for read_loop in [ReadLoop::Plain, ReadLoop::Prefetch] {
            assert_ne!(read(&buf, read_loop), 0);
        }
        buf[4].0[7] = 0;
        buf[0].0[0] = 0;
        for read_loop in [ReadLoop::Plain, ReadLoop::Prefetch] {
            assert_eq!(read(&buf, read_loop), 0);
        }
    }

    #[test]
    fn large_buffers_are_zeroed_aligned_and_clone() {
        for len in [1, 100, 3 << 20] {
            let mut b = LargeBuffer::zeroed(len);
            assert_eq!(b.as_slice().len(), len);
            assert!(b.as_slice().iter().all(|&v| v == 0));
            assert_eq!(b.as_slice().as_ptr() as usize % 64, 0);
            b.as_mut_slice()[len - 1] = 7;
            let c = b.clone();
            assert_eq!(c.as_slice(), b.as_slice());
        }
    }

    #[test]
    fn probe_reports_its_geometry() {
        let bw = stream_read(100_000, 2, 2);
        assert_eq!(bw.bytes, 100_032);
        assert_eq!((bw.threads, bw.samples), (2, 2));
        assert!(bw.gb_per_s > 0.0 && bw.best_gb_per_s >= bw.gb_per_s);
    }
}
