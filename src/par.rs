//! Splitting a product's rows over rayon's threads so that a call of a few hundred µs gains
//! from them: the calling thread starts at once and the others join when they wake.
//!
//! Why not `into_par_iter` over one range a thread: a caller outside the pool then sleeps
//! until a worker has run its part and woken it, and every part waits for a worker to wake.
//! On this project's 2-vCPU KVM guest a no-op `rayon::join` from outside the pool took
//! 74–84 µs (a wake-up there and one back), and the 2-thread I2_S
//! GEMV of 6912x2560 took 167 µs warm against 117 µs on one thread (same run). Here the
//! rows are cut into several chunks per thread, claimed in order from a shared counter; the
//! caller claims chunks from the first instant, a worker claims whatever is left when it
//! wakes, and the caller waits only for chunks already claimed. Same run: 60 µs warm and
//! 166 µs DRAM-resident (against 287 µs on one thread).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Chunks per thread: enough that a late worker still finds work, few enough that each is a
/// long sequential read.
const CHUNKS_PER_THREAD: usize = 8;

/// Cuts `0..rows` into at most `threads * CHUNKS_PER_THREAD` ranges of whole `tile`s (the
/// last may be ragged) and calls `f(range, item)` once for each, `items` being one output
/// per range made by `split`, on the calling thread and up to `threads - 1` rayon workers.
/// With `threads <= 1`, or a single chunk, everything runs on the calling thread.
pub fn for_each_chunk<'a, T: Send + 'a>(
    rows: usize,
    tile: usize,
    threads: usize,
    split: impl FnOnce(&[Range<usize>]) -> Vec<T>,
    f: impl Fn(Range<usize>, T) + Sync,
) {
    let tiles = rows.div_ceil(tile.max(1));
    let n = (threads * CHUNKS_PER_THREAD).clamp(1, tiles.max(1));
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
/// piece is `share` of the whole work (`share` in 0..=1): at least one, at most `tiles`.
pub(crate) fn chunks_for(tiles: usize, threads: usize, share: f64) -> usize {
    let want = (share * (threads * CHUNKS_PER_THREAD) as f64).ceil() as usize;
    want.clamp(1, tiles.max(1))
}

/// Runs `f` once for each job, on the calling thread and up to `threads - 1` workers of the
/// pool in use ([`set_num_threads`]), jobs claimed in order from one shared counter: the
/// caller claims from the first instant, a worker claims whatever is left when it wakes, and
/// the caller waits only for jobs already claimed. With `threads <= 1`, or one job,
/// everything runs on the calling thread.
pub(crate) fn run_jobs<J: Send>(jobs: Vec<J>, threads: usize, f: impl Fn(J) + Sync) {
    if threads <= 1 || jobs.len() <= 1 {
        jobs.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<J>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let work = || loop {
        let c = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.get(c) else { break };
        let job = slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each job is claimed once");
        // Counted as done even if `f` panics, so the caller never waits for it forever
        // (the scope then passes the panic on).
        let _done = Done(&done);
        f(job);
    };
    in_place_scope(|s| {
        for _ in 1..threads.min(slots.len()) {
            s.spawn(|_| work());
        }
        work();
        // Every job is claimed; wait (briefly: at most one job) for the claimed ones
        // rather than sleeping in the scope and paying another wake-up.
        let mut spins = 0u32;
        while done.load(Ordering::Acquire) < slots.len() {
            spins += 1;
            if spins < 1 << 16 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    });
}

/// The crate's own pool, set by [`set_num_threads`]; `None`: rayon's global pool.
static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// The pool set by [`set_num_threads`], if any.
fn own_pool() -> Option<Arc<rayon::ThreadPool>> {
    POOL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Sets how many threads the products use, counting the calling thread: `n >= 1` makes the
/// crate use a pool of its own with `n - 1` workers (the caller is the n-th: it works from
/// the start of each call); `0` returns to the default, rayon's global pool, which has
/// `RAYON_NUM_THREADS` threads when that is set and one per core otherwise. Calls running
/// when this is called finish on the pool they started on. Errors only when the operating
/// system refuses to start the threads (the setting is then unchanged). Setting the value
/// already set does nothing (the pool and its threads stay).
pub fn set_num_threads(n: usize) -> crate::Result<()> {
    let mut held = POOL.write().unwrap_or_else(|e| e.into_inner());
    if THREADS.load(Ordering::Relaxed) == n && (n < 2 || held.is_some()) {
        return Ok(()); // already so: keep the pool (and its warm threads)
    }
    let pool = match n {
        // One thread is the caller alone: no pool.
        0 | 1 => None,
        n => Some(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n - 1)
                .thread_name(|i| format!("bitnet-{i}"))
                .build()
                .map_err(|e| crate::Error::Unsupported(format!("thread pool: {e}")))?,
        )),
    };
    *held = pool;
    THREADS.store(n, Ordering::Relaxed);
    Ok(())
}

/// The last [`set_num_threads`] value (0: the default).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many threads a product may use: the [`set_num_threads`] value, or the size of
/// rayon's global pool.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// `rayon::in_place_scope` on the pool in use: the crate's own ([`set_num_threads`]) or
/// rayon's global one.
fn in_place_scope<'s, R>(f: impl FnOnce(&rayon::Scope<'s>) -> R) -> R {
    match own_pool() {
        Some(p) => p.in_place_scope(f),
        None => rayon::in_place_scope(f),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row covered exactly once, in whole tiles, for any thread count and ragged ends.
    ///
    /// Not under Miri: this module has no `unsafe`, and what Miri would check is rayon's
    /// pool, whose crossbeam-epoch is not Stacked-Borrows-clean (crossbeam-rs/crossbeam#545)
    /// and whose threads never exit (reported as a leak).
    #[test]
    #[cfg_attr(miri, ignore = "rayon's pool under Miri: see the doc comment")]
    fn chunks_cover_every_row_once() {
        for &(rows, tile) in &[(1, 4), (7, 4), (64, 4), (1000, 64), (6912, 4), (3, 64)] {
            for threads in 1..=5 {
                let mut y = vec![0u32; rows];
                for_each_chunk(
                    rows,
                    tile,
                    threads,
                    |ranges| {
                        for w in ranges.windows(2) {
                            assert_eq!(w[0].end, w[1].start);
                        }
                        assert!(ranges.iter().all(|r| r.start % tile == 0));
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
                assert_eq!(y, want, "{rows} rows, tile {tile}, {threads} threads");
            }
        }
    }
}
