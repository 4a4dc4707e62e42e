//! Redis's clock as this node sees it, so a check can carry a deadline in Redis's own time:
//! a script that Redis starts after the deadline (it was stalled, and the node has answered
//! without it) changes nothing. Nodes and Redis need not agree on the time: every answer
//! carries Redis's `TIME`, and the offset kept is a lower bound of the true one (Redis read
//! its clock before the answer arrived), so a deadline is never later in Redis's time than
//! the moment it stands for here. The node's elapsed time is `Instant` (monotonic): this is
//! about real waiting, not the `Clock` that limits and credits are counted by. In a Redis
//! Cluster each answer carries the `TIME` of the master that ran it, and the offset kept is
//! the largest over all of them: a master whose clock lags the others' by `d` sees deadlines
//! `d` later (documented in docs/RATELIMITS.md; NTP keeps `d` small).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How long the best sample of the offset lasts before fresher samples replace it: a Redis
/// clock stepped back (NTP) would otherwise keep the deadlines late for good.
const WINDOW_US: i64 = 60_000_000;

pub struct RedisClock {
    start: Instant,
    /// Redis's time minus this node's (µs since `start`), at most the true difference.
    offset: AtomicI64,
    /// The best sample seen since `window_from`, which becomes `offset` when the window ends.
    window_best: AtomicI64,
    window_from: AtomicI64,
}

impl RedisClock {
    /// From one reading of Redis's time (µs) taken just before `start`.
    pub fn new(redis_us: i64, start: Instant) -> RedisClock {
        let local = elapsed_us(start);
        RedisClock {
            start,
            offset: AtomicI64::new(redis_us - local),
            window_best: AtomicI64::new(redis_us - local),
            window_from: AtomicI64::new(local),
        }
    }

    /// Redis's time (µs) `within` from now.
    pub fn deadline(&self, within: Duration) -> i64 {
        self.deadline_at(elapsed_us(self.start), within)
    }

    fn deadline_at(&self, local_us: i64, within: Duration) -> i64 {
        let within = i64::try_from(within.as_micros()).unwrap_or(i64::MAX / 4);
        local_us.saturating_add(within).saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Learns from Redis's time (µs) in an answer that just arrived.
    pub fn saw(&self, redis_us: i64) {
        self.saw_at(redis_us, elapsed_us(self.start));
    }

    fn saw_at(&self, redis_us: i64, local_us: i64) {
        let sample = redis_us - local_us;
        // Read first: nearly every answer moves neither, and a read leaves the shared cache
        // line clean where a read-modify-write would not.
        if sample > self.offset.load(Ordering::Relaxed) {
            self.offset.fetch_max(sample, Ordering::Relaxed);
        }
        if sample > self.window_best.load(Ordering::Relaxed) {
            self.window_best.fetch_max(sample, Ordering::Relaxed);
        }
        let from = self.window_from.load(Ordering::Relaxed);
        if local_us - from >= WINDOW_US
            && self.window_from.compare_exchange(from, local_us, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let best = self.window_best.swap(sample, Ordering::Relaxed);
            self.offset.store(best, Ordering::Relaxed);
        }
    }
}

fn elapsed_us(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_deadline_is_in_redis_time_and_never_late() {
        // Redis's clock is 5 s ahead; the first reading took 3 ms to arrive.
        let c = clock(5_000_000 - 3_000);
        assert_eq!(c.deadline_at(0, 200 * MS), 5_000_000 - 3_000 + 200_000, "early by the reading's trip");
        // A quicker answer tightens it; a slow one (a stall) does not loosen it.
        c.saw_at(5_000_000 + 10_000 - 100, 10_000);
        c.saw_at(5_000_000 + 20_000 - 150_000, 20_000);
        assert_eq!(c.deadline_at(30_000, 200 * MS), 5_000_000 - 100 + 30_000 + 200_000);
    }

    #[test]
    fn a_clock_stepped_back_is_followed_after_a_window() {
        let c = clock(1_000_000);
        // Redis's clock steps back one second: the old offset holds until the window ends…
        c.saw_at(10_000, 10_000);
        assert_eq!(c.deadline_at(10_000, MS), 10_000 + 1_000 + 1_000_000);
        // …then, a whole window after it, the best sample of that window takes over.
        c.saw_at(WINDOW_US + 20_000, WINDOW_US + 20_000);
        c.saw_at(2 * WINDOW_US, 2 * WINDOW_US + 30_000);
        assert_eq!(c.deadline_at(0, MS), 1_000);
    }

    fn clock(offset: i64) -> RedisClock {
        RedisClock {
            start: Instant::now(),
            offset: AtomicI64::new(offset),
            window_best: AtomicI64::new(offset),
            window_from: AtomicI64::new(0),
        }
    }
}
