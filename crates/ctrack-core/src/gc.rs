//! The GC worker's pacing (kernel `gc_worker` in `nf_conntrack_core.c`, §11.5), in
//! simulated time.
//!
//! The kernel walks the table from a delayed work item. Each run deletes expired entries
//! (at most 256 per run, then it is requeued after one jiffy), keeps a running average of
//! the remaining timeouts (clamped to [1 s, 300 s], seeded with 60 s and a bias of 100
//! fake entries) and schedules the next run after that average, clamped to [1 s, 60 s].
//! With an `early_drop` request from a failed allocation and the count at ≥ 95 % of
//! `nf_conntrack_max`, it also evicts entries that are not ASSURED or whose tracker allows
//! early drop. The kernel's worker is global and its phase relative to a capture is
//! unknown: here the first run is 1 s after the first packet. A scan takes no simulated
//! time (the kernel's 10 ms budget per run is not modelled).

use crate::time::{Duration, Instant};

/// One jiffy at HZ=250.
pub const JIFFY: Duration = Duration::from_millis(4);
const INTERVAL_MIN: u64 = 250; // 1 s, in jiffies
const INTERVAL_MAX: u64 = 60 * 250;
const INTERVAL_CLAMP: u64 = 300 * 250;
const INITIAL_COUNT: i64 = 100;
/// Expired entries deleted per run before the worker yields (64000 / HZ).
pub const EXPIRED_MAX: usize = 256;

/// The worker's state.
#[derive(Debug, Clone)]
pub struct GcWorker {
    next_run: Option<Instant>,
    /// Set by a failed allocation; cleared when the worker is requeued with a delay.
    pub early_drop: bool,
}

impl Default for GcWorker {
    fn default() -> Self {
        GcWorker::new()
    }
}

/// The running average of one scan.
#[derive(Debug, Clone, Copy)]
pub struct Average {
    next_run: i64,
    count: i64,
}

impl Average {
    /// A new cycle: 60 s with a bias of 100 entries.
    pub fn new() -> Average {
        Average {
            next_run: INTERVAL_MAX as i64,
            count: INITIAL_COUNT,
        }
    }

    /// Feed one live entry's remaining time.
    pub fn feed(&mut self, remaining: Duration) {
        let j = (remaining.as_nanos() / JIFFY.as_nanos()) as i64;
        let expires = j.clamp(INTERVAL_MIN as i64, INTERVAL_CLAMP as i64);
        self.count += 1;
        self.next_run += (expires - self.next_run) / self.count;
    }

    /// Delay before the next run after a complete, instantaneous cycle.
    pub fn delay(&self) -> Duration {
        let next = (self.next_run.max(0) as u64).clamp(INTERVAL_MIN, INTERVAL_MAX);
        // The cycle took one jiffy at least; the kernel subtracts it.
        let next = if next > 1 { next - 1 } else { 1 };
        JIFFY * next as u32
    }
}

impl Default for Average {
    fn default() -> Self {
        Average::new()
    }
}

impl GcWorker {
    /// A worker that has not run yet.
    pub fn new() -> GcWorker {
        GcWorker {
            next_run: None,
            early_drop: false,
        }
    }

    /// The runs due up to `now`: returns the time of the next run if it is ≤ `now`
    /// (arming the first run 1 s after the first call).
    #[inline]
    pub fn due(&mut self, now: Instant) -> Option<Instant> {
        let at = *self.next_run.get_or_insert(now + Duration::from_secs(1));
        (at <= now).then_some(at)
    }

    /// Schedule the next run `delay` after `at`; a non-zero delay clears `early_drop`.
    pub fn reschedule(&mut self, at: Instant, delay: Duration) {
        if !delay.is_zero() {
            self.early_drop = false;
        }
        self.next_run = Some(at + delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_table_runs_about_every_minute() {
        let mut a = Average::new();
        for _ in 0..5 {
            a.feed(Duration::from_secs(30));
        }
        let d = a.delay().as_secs();
        assert!((57..=60).contains(&d), "{d}");
    }

    #[test]
    fn short_timeouts_pull_the_interval_down() {
        let mut a = Average::new();
        for _ in 0..10_000 {
            a.feed(Duration::from_secs(2));
        }
        // The kernel's integer average stops moving once the step truncates to zero
        // (|expires - avg| < count), so it settles above the true mean.
        let d = a.delay().as_secs();
        assert!((2..10).contains(&d), "{:?}", a.delay());
    }

    #[test]
    fn first_run_one_second_after_start() {
        let mut g = GcWorker::new();
        let t0 = Instant::from_secs(100);
        assert_eq!(g.due(t0), None);
        assert_eq!(
            g.due(t0 + Duration::from_secs(1)),
            Some(t0 + Duration::from_secs(1))
        );
        g.early_drop = true;
        g.reschedule(t0 + Duration::from_secs(1), JIFFY);
        assert!(!g.early_drop);
    }
}
