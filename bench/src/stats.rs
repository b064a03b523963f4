//! Timing statistics shared by the report and the timing programs: every figure they print
//! is a median of timed calls.

use std::time::Instant;

/// Median of a list of timings; the list is sorted in place. NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Seconds of one call of `f`.
pub fn time(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// One untimed warm-up call of `f`, then `reps` timed calls: their seconds, fastest first.
pub fn sorted_times(reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    f();
    let mut t: Vec<f64> = (0..reps).map(|_| time(&mut f)).collect();
    t.sort_by(f64::total_cmp);
    t
}

/// Median seconds of `reps` calls of `f` after one warm-up call.
pub fn median_time(reps: usize, f: impl FnMut()) -> f64 {
    median(&mut sorted_times(reps, f))
}

/// A median time and how many timed calls it came from (`reps == 0`: not measured).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Median seconds a call.
    pub secs: f64,
    /// Timed calls.
    pub reps: usize,
}

impl Timing {
    /// Not measured.
    pub const NONE: Timing = Timing {
        secs: f64::NAN,
        reps: 0,
    };
}

/// One untimed warm-up call, then timed calls until `budget_s` seconds are spent, but at
/// least `min_reps` and at most `max_reps` of them; their median.
pub fn measure(budget_s: f64, min_reps: usize, max_reps: usize, mut f: impl FnMut()) -> Timing {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_reps
        || (times.len() < max_reps && start.elapsed().as_secs_f64() < budget_s)
    {
        times.push(time(&mut f));
    }
    Timing {
        secs: median(&mut times),
        reps: times.len(),
    }
}

/// This thread's CPU time in µs: unlike wall time it does not count the time the thread
/// was preempted, which on a shared 2-core machine is most of the noise. Where there is no
/// `CLOCK_THREAD_CPUTIME_ID` (not Unix), wall time since the first call.
pub fn thread_cpu_us() -> f64 {
    #[cfg(unix)]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
    }
    #[cfg(not(unix))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e6
    }
}

/// Two calls timed alternately, for a ratio that the machine's load changes cannot skew:
/// `f(false)` and `f(true)` each get one untimed warm-up, then are timed in turns until
/// `budget_s` seconds are spent (at least `min_reps`, at most `max_reps` of each); the median
/// of each.
pub fn measure_pair(
    budget_s: f64,
    min_reps: usize,
    max_reps: usize,
    mut f: impl FnMut(bool),
) -> (Timing, Timing) {
    let t = measure_turns(budget_s, min_reps, max_reps, 2, |i| f(i == 1));
    (t[0], t[1])
}

/// [`measure_pair`] for `ways` calls `f(0)`, ..., `f(ways - 1)`, timed in turns.
pub fn measure_turns(
    budget_s: f64,
    min_reps: usize,
    max_reps: usize,
    ways: usize,
    mut f: impl FnMut(usize),
) -> Vec<Timing> {
    (0..ways).for_each(&mut f);
    let mut v: Vec<Vec<f64>> = vec![Vec::new(); ways];
    let start = Instant::now();
    while v[0].len() < min_reps
        || (v[0].len() < max_reps && start.elapsed().as_secs_f64() < budget_s)
    {
        for (i, times) in v.iter_mut().enumerate() {
            times.push(time(|| f(i)));
        }
    }
    v.iter_mut()
        .map(|t| Timing {
            secs: median(t),
            reps: t.len(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_upper_middle() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn measure_respects_the_rep_limits() {
        let mut calls = 0;
        let t = measure(10.0, 2, 5, || calls += 1);
        assert_eq!((t.reps, calls), (5, 6)); // 5 timed + 1 warm-up
        let t = measure(0.0, 3, 50, || {});
        assert_eq!(t.reps, 3);
        assert!(sorted_times(4, || {}).windows(2).all(|w| w[0] <= w[1]));
        let mut calls = [0, 0];
        let (a, b) = measure_pair(10.0, 2, 5, |second| calls[second as usize] += 1);
        assert_eq!((a.reps, b.reps, calls), (5, 5, [6, 6]));
    }
}
