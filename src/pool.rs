//! The crate's spinning pool: workers that, after a call, spin for a bounded time waiting for
//! the next one before they park on a condition variable (what ggml's threads do).
//!
//! Why: an engine calls a product every 10–130 µs. A rayon worker that has gone to sleep takes
//! tens of µs to wake on a KVM guest, about the length of the call; a worker still spinning
//! joins within a fraction of a µs. The spin is bounded ([`SPIN`]) so that an idle process
//! burns no CPU beyond that after its last call.
//!
//! One call at a time: a second caller (another user thread, or a job that itself calls a
//! product) finds the pool busy and runs its whole call on its own thread, which is what it
//! would gain least from waiting for.
//!
//! The protocol, all on one `epoch` counter (odd: a call is open): the caller publishes the
//! job, makes the epoch odd, works, then makes it even (closed) and waits until no worker is
//! inside the job. A worker that sees an odd epoch first counts itself inside, then checks
//! the epoch again and touches the job only if it is still that call's: with sequentially
//! consistent operations either the caller's wait sees the worker inside, or the worker sees
//! the call closed. So no worker touches the caller's borrowed data after `run` returns, also
//! when the caller's own part panics (the closing is a drop guard).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins for the next call before it parks: longer than the gap
/// between an engine's consecutive products (a norm, a rope, a few µs), short enough that a
/// process between tokens is idle within a fraction of a millisecond.
pub const SPIN: Duration = Duration::from_micros(100);

/// One call's work, behind a thin pointer the workers can load atomically.
struct Job<'a>(&'a (dyn Fn() + Sync));

/// What the caller and the workers share.
struct Shared {
    /// Odd while a call is open; each call adds 2.
    epoch: AtomicU64,
    /// The open call's job (valid while the epoch is odd and a worker counted itself inside).
    job: AtomicPtr<Job<'static>>,
    /// Workers inside the current job.
    inside: AtomicUsize,
    /// Workers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
    /// The first panic a worker caught in the current call, passed on by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// A pool of workers that spin briefly between calls; see the module doc.
pub(crate) struct SpinPool {
    shared: Arc<Shared>,
    /// A call is running on the pool.
    busy: AtomicBool,
    workers: Vec<JoinHandle<()>>,
}

impl SpinPool {
    /// A pool of `workers` threads (the caller of [`run`](Self::run) is one more).
    pub fn new(workers: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            inside: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            panic: Mutex::new(None),
        });
        // Built up in place so that a failed spawn stops (in `drop`) the threads started.
        let mut pool = SpinPool {
            shared,
            busy: AtomicBool::new(false),
            workers: Vec::with_capacity(workers),
        };
        for i in 0..workers {
            let s = Arc::clone(&pool.shared);
            let h = std::thread::Builder::new()
                .name(format!("bitnet-{i}"))
                .spawn(move || worker(&s))?;
            pool.workers.push(h);
        }
        Ok(pool)
    }

    /// Runs `f` on the calling thread and on every worker that arrives while the call is
    /// open, and returns once `f` has returned on the caller and no worker is inside `f`. `f`
    /// must itself share out the work (it is called once per thread that comes). If the pool
    /// is busy with another call, `f` runs on the calling thread alone. A panic in `f`, on
    /// any thread, reaches the caller after every worker has left `f`.
    pub fn run(&self, f: &(dyn Fn() + Sync)) {
        if self.workers.is_empty() || self.busy.swap(true, Acquire) {
            return f();
        }
        let _busy = Release(&self.busy);
        let s = &*self.shared;
        let job = Job(f);
        // The lifetime is erased; `Close` keeps every worker's use within this frame.
        s.job
            .store(&job as *const Job as *mut Job<'static>, Relaxed);
        s.epoch.fetch_add(1, SeqCst); // open
        if s.sleepers.load(SeqCst) > 0 {
            // Taking the lock orders this after a parking worker's check of the epoch (it is
            // then waiting); notifying after releasing it spares the woken worker a wait on
            // the lock.
            drop(lock(&s.lock));
            s.wake.notify_all();
        }
        let close = Close(s);
        f();
        drop(close);
        if let Some(p) = lock(&s.panic).take() {
            resume_unwind(p);
        }
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        {
            let _g = lock(&self.shared.lock);
            self.shared.wake.notify_all();
        }
        let me = std::thread::current().id();
        for h in self.workers.drain(..) {
            // A worker cannot join itself (its job dropped the last handle to the pool).
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }
}

/// Clears the busy flag when dropped.
struct Release<'a>(&'a AtomicBool);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Closes the open call when dropped and waits until no worker is inside its job.
struct Close<'a>(&'a Shared);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        let s = self.0;
        s.epoch.fetch_add(1, SeqCst); // closed
        let mut spins = 0u32;
        // At most one job a worker is still running: spin, then (after some tens of µs)
        // yield, in case the worker was preempted and needs this CPU.
        while s.inside.load(SeqCst) > 0 {
            spins += 1;
            if spins < 1 << 10 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if std::thread::panicking() {
            // The caller's own panic goes on; a worker's is dropped with this call.
            lock(&s.panic).take();
        }
    }
}

/// A mutex's guard, poisoning ignored (nothing it guards can be left half-updated).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker: wait for a call, join it, repeat until the pool stops.
fn worker(s: &Shared) {
    let mut seen = s.epoch.load(SeqCst);
    while let Some(e) = next_call(s, seen) {
        seen = e;
        s.inside.fetch_add(1, SeqCst);
        if s.epoch.load(SeqCst) == e {
            // SAFETY: the epoch is still `e` after this worker counted itself inside, so the
            // caller of call `e` has not passed `Close` (see the module doc): the job and
            // what it borrows are alive until `inside` drops back.
            let job = unsafe { &*s.job.load(Relaxed) };
            if let Err(p) = catch_unwind(AssertUnwindSafe(job.0)) {
                lock(&s.panic).get_or_insert(p);
            }
        }
        s.inside.fetch_sub(1, SeqCst);
    }
}

/// Waits for an open call other than `seen`: spins for [`SPIN`], then parks. `None`: the pool
/// stops.
fn next_call(s: &Shared, seen: u64) -> Option<u64> {
    let ready = |e: u64| e != seen && e % 2 == 1;
    let start = Instant::now();
    let mut i = 0u32;
    loop {
        let e = s.epoch.load(SeqCst);
        if s.stop.load(Relaxed) {
            return None;
        }
        if ready(e) {
            return Some(e);
        }
        i = i.wrapping_add(1);
        std::hint::spin_loop();
        // Reading the clock costs about as much as a few dozen spins: check it now and then.
        if !i.is_multiple_of(64) || start.elapsed() < SPIN {
            continue;
        }
        let mut g = lock(&s.lock);
        s.sleepers.fetch_add(1, SeqCst);
        // Counted as a sleeper before this check: a caller opening a call after it sees the
        // count and takes the lock (which this thread holds until it waits) before notifying.
        while !ready(s.epoch.load(SeqCst)) && !s.stop.load(SeqCst) {
            g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        s.sleepers.fetch_sub(1, SeqCst);
        drop(g);
        let e = s.epoch.load(SeqCst);
        if s.stop.load(Relaxed) {
            return None;
        }
        if ready(e) {
            return Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thread that comes runs the job; the caller's counts are all seen after `run`;
    /// many calls in a row (workers spinning) and after a pause (workers parked).
    #[test]
    fn calls_see_all_work_done() {
        let pool = SpinPool::new(3).unwrap();
        for round in 0..if cfg!(miri) { 4 } else { 200 } {
            if round % 50 == 49 || (cfg!(miri) && round == 2) {
                std::thread::sleep(SPIN * 5); // let them park
            }
            let next = AtomicUsize::new(0);
            let mut hits = vec![0u8; 257];
            let cells: Vec<AtomicUsize> = (0..hits.len()).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|| loop {
                let i = next.fetch_add(1, Relaxed);
                let Some(c) = cells.get(i) else { break };
                c.fetch_add(1, Relaxed);
            });
            for (h, c) in hits.iter_mut().zip(&cells) {
                *h = c.load(Relaxed) as u8;
            }
            assert!(hits.iter().all(|&h| h == 1), "round {round}");
        }
    }

    /// A worker's panic reaches the caller, and the pool keeps working; a caller's panic too.
    #[test]
    fn panics_pass_on_and_the_pool_survives() {
        let pool = SpinPool::new(2).unwrap();
        let caller = std::thread::current().id();
        for _ in 0..if cfg!(miri) { 1 } else { 20 } {
            let on_worker = AtomicBool::new(false);
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.run(&|| {
                    if std::thread::current().id() != caller {
                        on_worker.store(true, Relaxed);
                        panic!("worker");
                    }
                    // Give a worker time to arrive.
                    let t = Instant::now();
                    while !on_worker.load(Relaxed) && t.elapsed() < Duration::from_millis(50) {
                        std::hint::spin_loop();
                    }
                })
            }));
            assert_eq!(r.is_err(), on_worker.load(Relaxed));
            let r = catch_unwind(AssertUnwindSafe(|| pool.run(&|| panic!("everyone"))));
            assert!(r.is_err());
            let n = AtomicUsize::new(0);
            pool.run(&|| {
                n.fetch_add(1, Relaxed);
            });
            assert!(n.load(Relaxed) >= 1);
        }
    }

    /// Idle workers stop spinning: some time after the last call every worker is parked.
    #[test]
    fn idle_workers_park() {
        let pool = SpinPool::new(2).unwrap();
        pool.run(&|| {});
        let t = Instant::now();
        while pool.shared.sleepers.load(SeqCst) < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "workers still spinning"
            );
            std::thread::sleep(SPIN);
        }
        // And a call wakes them again.
        let n = AtomicUsize::new(0);
        pool.run(&|| {
            n.fetch_add(1, Relaxed);
            let t = Instant::now();
            while n.load(Relaxed) < 3 && t.elapsed() < Duration::from_secs(5) {
                std::hint::spin_loop();
            }
        });
        assert_eq!(n.load(Relaxed), 3, "both parked workers joined the call");
    }

    /// Calls from several threads at once: each finishes, with all its work done.
    #[test]
    fn concurrent_callers_each_complete() {
        let pool = SpinPool::new(2).unwrap();
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for _ in 0..if cfg!(miri) { 2 } else { 200 } {
                        let next = AtomicUsize::new(0);
                        let done = AtomicUsize::new(0);
                        pool.run(&|| {
                            while next.fetch_add(1, Relaxed) < 64 {
                                done.fetch_add(1, Relaxed);
                            }
                        });
                        assert_eq!(done.load(Relaxed), 64);
                    }
                });
            }
        });
    }
}
