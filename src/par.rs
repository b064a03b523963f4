//! Splitting a product's rows over a pool's threads (rayon's, or the crate's spinning pool,
//! [`crate::pool`]: [`set_thread_pool`]) so that a call of a few hundred µs gains
//! from them: the calling thread starts at once and the others join when they wake.
//!
//! Why not `into_par_iter` over one range a thread: a caller outside the pool then sleeps
//! until a worker has run its part and woken it, and every part waits for a worker to wake.
//! On this project's 2-vCPU KVM guest a no-op `rayon::join` from outside the pool took
//! 74–84 µs (a wake-up there and one back), and the 2-thread I2_S
//! GEMV of 6912x2560 took 167 µs warm against 117 µs on one thread (same run). Here the
//! rows are cut into several chunks per thread, claimed one at a time (then from a shared
//! counter; today each thread from its own contiguous block first, `Claims`); the caller
//! claims chunks from the first instant, a worker claims whatever is left when it wakes, and
//! the caller waits only for chunks already claimed. Same run: 60 µs warm and 166 µs
//! DRAM-resident (against 287 µs on one thread).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::pool::SpinPool;

/// Chunks per thread: enough that a late worker still finds work, few enough that each is a
/// long sequential read.
pub(crate) const DEFAULT_CHUNKS_PER_THREAD: usize = 8;

/// Cuts `0..rows` into at most `threads * DEFAULT_CHUNKS_PER_THREAD` ranges of whole `tile`s (the
/// last may be ragged) and calls `f(range, item)` once for each, `items` being one output
/// per range made by `split`, on the calling thread and up to `threads - 1` workers of the pool in use.
/// With `threads <= 1`, or a single chunk, everything runs on the calling thread.
pub fn for_each_chunk<'a, T: Send + 'a>(
    rows: usize,
    tile: usize,
    threads: usize,
    split: impl FnOnce(&[Range<usize>]) -> Vec<T>,
    f: impl Fn(Range<usize>, T) + Sync,
) {
    for_each_chunk_per(rows, tile, threads, DEFAULT_CHUNKS_PER_THREAD, split, f)
}

/// [`for_each_chunk`] with `per_thread` chunks a thread (at least 1) instead of the default.
pub(crate) fn for_each_chunk_per<'a, T: Send + 'a>(
    rows: usize,
    tile: usize,
    threads: usize,
    per_thread: usize,
    split: impl FnOnce(&[Range<usize>]) -> Vec<T>,
    f: impl Fn(Range<usize>, T) + Sync,
) {
    let tiles = rows.div_ceil(tile.max(1));
    let n = (threads * per_thread.max(1)).clamp(1, tiles.max(1));
    let ranges: Vec<Range<usize>> = (0..n)
        .map(|c| chunk(tiles, n, c, tile, rows))
        .filter(|r| !r.is_empty())
        .collect();
    let items = split(&ranges);
    assert_eq!(items.len(), ranges.len(), "one output per chunk");
    run_jobs(
        ranges.into_iter().zip(items).collect(),
        threads,
        |(r, item)| f(r, item),
    );
}

/// Chunk `c` of `n` over `tiles` tiles of `tile` rows, clipped to `rows`: the same cut
/// wherever it is computed, so a caller can find a chunk's rows again from its index.
pub(crate) fn chunk(tiles: usize, n: usize, c: usize, tile: usize, rows: usize) -> Range<usize> {
    (tiles * c / n * tile).min(rows)..(tiles * (c + 1) / n * tile).min(rows)
}

/// How many chunks a run of `threads` threads cuts a piece of `tiles` tiles into when the
/// piece is `share` of the whole work (`share` in 0..=1) and a thread's whole share would be
/// cut into `per_thread` chunks: at least one, at most `tiles`.
pub(crate) fn chunks_for(tiles: usize, threads: usize, share: f64, per_thread: usize) -> usize {
    let want = (share * (threads * per_thread.max(1)) as f64).ceil() as usize;
    want.clamp(1, tiles.max(1))
}

/// Which jobs each thread claims: the job list cut into one contiguous block per thread, each
/// block a pair of cursors `(lo, hi)` packed in one atomic. The `k`-th thread to arrive claims
/// its own block (`k % blocks`) from the front, in order; once that is empty it takes jobs
/// from the back of the others. So while every thread runs, each reads one long stretch of
/// the weights in order (the hardware prefetchers' stream, no jump at a chunk boundary), and
/// a thread that comes late, or is descheduled, leaves its jobs to be taken one at a time by
/// the others: the caller waits at most for one job a thread is running.
///
/// Why not one shared counter (the jobs dealt in turn): then two threads read alternate
/// chunks, restarting the prefetch stream at every chunk. On this project's 2-vCPU KVM guest
/// (2026-11-28, `cold_timing`, load average about 6) a plain read of cold weights through
/// the dispatch was in most runs 1–25 % slower in 16 alternate chunks than in two contiguous
/// halves; the load was too high to time the products' gain itself (see
/// `docs/performance.md`).
struct Claims {
    blocks: Vec<AtomicU64>,
}

impl Claims {
    /// `jobs` jobs in `blocks` blocks (at least 1; `jobs < 2^32`).
    fn new(jobs: usize, blocks: usize) -> Claims {
        let b = blocks.clamp(1, jobs.max(1));
        assert!(u32::try_from(jobs).is_ok(), "job count");
        Claims {
            blocks: (0..b)
                .map(|i| AtomicU64::new(pack(jobs * i / b, jobs * (i + 1) / b)))
                .collect(),
        }
    }

    /// The next job for the `k`-th thread to arrive, or `None` when every job is claimed.
    fn next(&self, k: usize) -> Option<usize> {
        let n = self.blocks.len();
        let home = k % n;
        (0..n).find_map(|d| {
            let own = d == 0;
            let cell = &self.blocks[(home + d) % n];
            let mut v = cell.load(Ordering::Relaxed);
            loop {
                let (lo, hi) = unpack(v);
                if lo >= hi {
                    return None;
                }
                let (w, got) = if own {
                    (pack(lo + 1, hi), lo)
                } else {
                    (pack(lo, hi - 1), hi - 1)
                };
                match cell.compare_exchange_weak(v, w, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return Some(got),
                    Err(now) => v = now,
                }
            }
        })
    }
}

fn pack(lo: usize, hi: usize) -> u64 {
    ((lo as u64) << 32) | hi as u64
}

fn unpack(v: u64) -> (usize, usize) {
    ((v >> 32) as usize, (v & 0xffff_ffff) as usize)
}

/// Runs `f` once for each job, on the calling thread and up to `threads - 1` workers of the
/// pool in use ([`set_thread_pool`]), jobs claimed as [`Claims`] deals them: the caller
/// claims from the first instant, a worker claims whatever is left when it wakes, and the
/// caller waits only for jobs already claimed. With `threads <= 1`, or one job, everything
/// runs on the calling thread.
pub(crate) fn run_jobs<J: Send>(jobs: Vec<J>, threads: usize, f: impl Fn(J) + Sync) {
    if threads <= 1 || jobs.len() <= 1 {
        jobs.into_iter().for_each(f);
        return;
    }
    let claims = Claims::new(jobs.len(), threads);
    let slots: Vec<Mutex<Option<J>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let (arrived, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let work = || {
        let k = arrived.fetch_add(1, Ordering::Relaxed);
        while let Some(c) = claims.next(k) {
            run_slot(&slots[c], &done, &f);
        }
    };
    match own_pool() {
        Some(Pool::Spinning(p)) => p.run(&work),
        Some(Pool::Rayon(p)) => {
            p.in_place_scope(|s| rayon_spread(s, threads, slots.len(), &done, &work))
        }
        None => rayon::in_place_scope(|s| rayon_spread(s, threads, slots.len(), &done, &work)),
    }
}

/// Takes the job out of its slot (claimed once) and runs it, counted in `done` even if `f`
/// panics, so the caller never waits for it forever (the pool then passes the panic on).
fn run_slot<J>(slot: &Mutex<Option<J>>, done: &AtomicUsize, f: &impl Fn(J)) {
    let job = slot
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("each job is claimed once");
    let _done = Done(done);
    f(job);
}

/// Spawns up to `threads - 1` rayon tasks running `work`, runs it on the calling thread too,
/// and waits (briefly: at most one job) until all `jobs` are done rather than sleeping in the
/// scope and paying another wake-up.
fn rayon_spread<'s>(
    s: &rayon::Scope<'s>,
    threads: usize,
    jobs: usize,
    done: &AtomicUsize,
    work: &'s (impl Fn() + Sync),
) {
    for _ in 1..threads.min(jobs) {
        s.spawn(|_| work());
    }
    work();
    let mut spins = 0u32;
    while done.load(Ordering::Acquire) < jobs {
        spins += 1;
        if spins < 1 << 16 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The crate's own pool, set by [`set_thread_pool`]; `None`: rayon's global pool.
static POOL: RwLock<Option<Pool>> = RwLock::new(None);

/// A pool of the crate's own.
#[derive(Clone)]
enum Pool {
    Spinning(Arc<SpinPool>),
    Rayon(Arc<rayon::ThreadPool>),
}

/// The pool set by [`set_thread_pool`], if any.
fn own_pool() -> Option<Pool> {
    POOL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Which threads the products use when a thread count is set ([`set_thread_pool`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ThreadPoolKind {
    /// The crate's spinning pool: after a call its workers spin for the next one for up to
    /// 100 µs ([`pool::SPIN`](crate::pool::SPIN)), then park. A call joins workers still
    /// spinning at once, which is what makes 2 threads pay on 10–100 µs products; the price
    /// is up to 100 µs of CPU on each worker after each call. One call at a time: a call made
    /// while another runs on the pool (from another user thread) runs on its own thread.
    #[default]
    Spinning,
    /// A rayon pool of the crate's own: workers sleep when idle and take tens of µs to wake
    /// (on virtual machines); several user threads' calls share it.
    Rayon,
}

/// Sets how many threads the products use, counting the calling thread, on the crate's
/// spinning pool ([`ThreadPoolKind::Spinning`]): `set_thread_pool(n, ThreadPoolKind::Spinning)`.
/// `n >= 2` starts `n - 1` workers (the caller is the n-th: it works from the start of each
/// call); `1`: the calling thread alone; `0` returns to the default, rayon's global pool,
/// which has `RAYON_NUM_THREADS` threads when that is set and one per core otherwise.
///
/// Which to pick: the spinning pool for a thread that makes many short products in a row
/// (an engine decoding tokens: products of 10–100 µs), where a 2-thread call joins a worker
/// at once; rayon ([`set_thread_pool`] with [`ThreadPoolKind::Rayon`], or the default) when
/// several user threads call products at the same time or idle workers must never spin.
/// Measured on a 2-vCPU KVM guest (`dispatch_timing`): see `docs/performance.md`.
///
/// Calls running when this is called finish on the pool they started on. Errors only when
/// the operating system refuses to start the threads (the setting is then unchanged).
/// Setting the value already set does nothing (the pool and its threads stay).
pub fn set_num_threads(n: usize) -> crate::Result<()> {
    set_thread_pool(n, ThreadPoolKind::Spinning)
}

/// Sets how many threads the products use (as [`set_num_threads`]) and on which kind of pool
/// (ignored for `n <= 1`).
pub fn set_thread_pool(n: usize, kind: ThreadPoolKind) -> crate::Result<()> {
    let mut held = POOL.write().unwrap_or_else(|e| e.into_inner());
    let same_kind = match (&*held, kind) {
        (Some(Pool::Spinning(_)), ThreadPoolKind::Spinning) => true,
        (Some(Pool::Rayon(_)), ThreadPoolKind::Rayon) => true,
        (None, _) => n < 2,
        _ => false,
    };
    if THREADS.load(Ordering::Relaxed) == n && same_kind {
        return Ok(()); // already so: keep the pool (and its warm threads)
    }
    let refused =
        |e: &dyn std::fmt::Display| crate::Error::Unsupported(format!("thread pool: {e}"));
    let pool = match (n, kind) {
        // One thread is the caller alone: no pool.
        (0 | 1, _) => None,
        (n, ThreadPoolKind::Spinning) => Some(Pool::Spinning(Arc::new(
            SpinPool::new(n - 1).map_err(|e| refused(&e))?,
        ))),
        (n, ThreadPoolKind::Rayon) => Some(Pool::Rayon(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n - 1)
                .thread_name(|i| format!("bitnet-{i}"))
                .build()
                .map_err(|e| refused(&e))?,
        ))),
    };
    *held = pool;
    THREADS.store(n, Ordering::Relaxed);
    Ok(())
}

/// The last [`set_thread_pool`] count (0: the default).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many threads a product may use: the [`set_num_threads`] value, or the size of
/// rayon's global pool.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// Adds one to the count of finished chunks when dropped.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// `y` cut into consecutive pieces of `per_row * range.len()` elements, one per range (for
/// outputs laid out row after row).
pub fn split_rows<'a, T>(
    y: &'a mut [T],
    per_row: usize,
    ranges: &[Range<usize>],
) -> Vec<&'a mut [T]> {
    let mut rest = y;
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * per_row);
        out.push(head);
        rest = tail;
    }
    out
}

/// One mutable slice that the jobs of a dispatch write at once, each at places no other job
/// touches: the output of a product with several activation rows, where a chunk of the
/// matrix's rows owns a column block of every output row (`y[j * rows + r]` for `r` in the
/// chunk), not one contiguous piece that [`split_rows`] could hand out.
///
/// Why: the jobs then copy (and rescale) their own accumulators while they are in their
/// cache, instead of the calling thread doing all of it after the dispatch.
pub(crate) struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: a `Disjoint` is a `&mut [T]` lent out in pieces; sending or sharing it sends `T`s
// to other threads, and `part`'s contract keeps the pieces apart.
unsafe impl<T: Send> Send for Disjoint<'_, T> {}
// SAFETY: as above: shared access only hands out disjoint pieces (`part`'s contract).
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub(crate) fn new(s: &'a mut [T]) -> Self {
        Disjoint {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _slice: std::marker::PhantomData,
        }
    }

    /// The elements `range` (checked against the slice: out of bounds panics).
    ///
    /// # Safety
    /// While the returned slice lives, no other piece taken from this `Disjoint` may overlap
    /// `range`.
    #[allow(clippy::mut_from_ref)] // the contract above is what makes the `&mut` unique
    pub(crate) unsafe fn part(&self, range: Range<usize>) -> &mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "piece out of bounds"
        );
        // SAFETY: inside the slice (checked), borrowed for 'a by `new`, and not overlapping
        // any other live piece (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every job is dealt exactly once, whatever the arrivals: a thread alone takes its block
    /// in order, then the others' from their backs; several in turn each start at home.
    #[test]
    fn claims_deal_every_job_once() {
        for jobs in [1, 2, 3, 7, 16, 33] {
            for blocks in 1..=5 {
                // One thread (arrival 1) alone.
                let c = Claims::new(jobs, blocks);
                let mut got: Vec<usize> = std::iter::from_fn(|| c.next(1)).collect();
                let b = blocks.clamp(1, jobs);
                let home = 1 % b;
                let first = jobs * home / b..jobs * (home + 1) / b;
                assert!(got.starts_with(&first.clone().collect::<Vec<_>>()));
                got.sort_unstable();
                assert_eq!(got, (0..jobs).collect::<Vec<_>>(), "{jobs} jobs, {blocks}");
                // Threads taking turns, then one draining.
                let c = Claims::new(jobs, blocks);
                let mut got = Vec::new();
                for round in 0..jobs {
                    if let Some(j) = c.next(round % 3) {
                        got.push(j);
                    }
                }
                got.extend(std::iter::from_fn(|| c.next(2)));
                got.sort_unstable();
                assert_eq!(got, (0..jobs).collect::<Vec<_>>(), "{jobs} jobs, {blocks}");
            }
        }
    }

    /// Every row covered exactly once, in whole tiles, for any thread count, chunks a thread
    /// (one, as I2_S_COL takes, and the default) and ragged ends.
    ///
    /// Not under Miri: what Miri would check here is rayon's pool, whose crossbeam-epoch is
    /// not Stacked-Borrows-clean (crossbeam-rs/crossbeam#545) and whose threads never exit
    /// (reported as a leak). (This module's one `unsafe`, [`Disjoint`], runs under Miri in the
    /// products' GEMM tests.)
    #[test]
    #[cfg_attr(miri, ignore = "rayon's pool under Miri: see the doc comment")]
    fn chunks_cover_every_row_once() {
        for &(rows, tile) in &[(1, 4), (7, 4), (64, 4), (1000, 64), (6912, 4), (3, 64)] {
            for (threads, per) in (1..=5).flat_map(|t| [(t, 1), (t, DEFAULT_CHUNKS_PER_THREAD)]) {
                let mut y = vec![0u32; rows];
                let mut chunks = 0;
                for_each_chunk_per(
                    rows,
                    tile,
                    threads,
                    per,
                    |ranges| {
                        for w in ranges.windows(2) {
                            assert_eq!(w[0].end, w[1].start);
                        }
                        assert!(ranges.iter().all(|r| r.start % tile == 0));
                        chunks = ranges.len();
                        split_rows(&mut y, 1, ranges)
                    },
                    |r, out| {
                        assert_eq!(out.len(), r.len());
                        for (o, i) in out.iter_mut().zip(r) {
                            *o += i as u32 + 1;
                        }
                    },
                );
                let want: Vec<u32> = (1..=rows as u32).collect();
                assert_eq!(
                    y, want,
                    "{rows} rows, tile {tile}, {threads} threads, {per}"
                );
                assert!(
                    chunks <= threads * per,
                    "{chunks} chunks for {threads} x {per}"
                );
            }
        }
    }
}
