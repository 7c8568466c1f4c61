//! How the estimate moves: up quickly until the path first pushes back, then carefully near the rate it
//! pushed back at, and down to what the path delivered when it pushes back again.

use std::time::{Duration, Instant};

/// Until the path has pushed back (and again once the call sends well above the rate it last pushed back
/// at), the estimate grows by this factor a second: from a gentle start to 2 Mbit/s in about 4 s.
const RAMP_PER_SECOND: f64 = 1.7;
/// Near the rate the path last pushed back at, the estimate grows by one packet ...
const PACKET_BITS: f64 = 1200.0 * 8.0;
/// ... per round trip plus this (the time the delay signal needs to answer), ...
const RESPONSE_EXTRA: Duration = Duration::from_millis(100);
/// ... and by at least this share a second.
const NEAR_PER_SECOND: f64 = 1.05;
/// After a decrease, the estimate falls to this share of what the path delivered.
const BACK_OFF: f64 = 0.85;
/// The call counts as having outgrown the rate the path last pushed back at once it has delivered this
/// multiple of it: the path got better, so the estimate ramps again.
const OUTGROWN: f64 = 1.25;
/// Decreases are at least a round trip apart (clamped to this range), so that one queue is not answered
/// twice; unless the path delivers less than half the estimate.
const DECREASE_SPACING: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(300));

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct RateControl {
    target: f64,
    min: f64,
    max: f64,
    /// What the path delivered when it last pushed back (or, for loss, the estimate it was cut to);
    /// `None` before it has, and once outgrown.
    capacity: Option<f64>,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
}

impl RateControl {
    /// Starts at `start`, within `min..=max`.
    pub(crate) fn new(start: f64, min: f64, max: f64) -> Self {
        Self { target: start.clamp(min, max), min, max, capacity: None, last_update: None, last_decrease: None }
    }

    /// The estimate, bits per second.
    pub(crate) fn target(&self) -> f64 {
        self.target
    }

    /// What the path delivered when it last pushed back, while that still holds.
    pub(crate) fn capacity(&self) -> Option<f64> {
        self.capacity
    }

    /// Lets the estimate grow for the time since the last update: the path shows no sign of congestion.
    /// `delivered` is what the path delivered lately, `rtt` the round trip; the estimate rises no higher
    /// than `ceiling` (but is not lowered to it). Returns whether the ceiling held it back.
    pub(crate) fn increase(
        &mut self,
        now: Instant,
        delivered: Option<f64>,
        rtt: Duration,
        ceiling: Option<f64>,
    ) -> bool {
        let elapsed = self.elapsed(now);
        if let Some(delivered) = delivered {
            self.forget_outgrown_capacity(delivered);
        }
        let seconds = elapsed.as_secs_f64();
        let grown = match self.capacity {
            None => self.target * RAMP_PER_SECOND.powf(seconds),
            Some(_) => {
                let additive = PACKET_BITS * seconds / (rtt + RESPONSE_EXTRA).as_secs_f64();
                (self.target + additive).max(self.target * NEAR_PER_SECOND.powf(seconds))
            }
        };
        let held_back = ceiling.is_some_and(|ceiling| grown > ceiling);
        let grown = ceiling.map_or(grown, |ceiling| grown.min(ceiling.max(self.target)));
        self.target = grown.clamp(self.min, self.max);
        held_back
    }

    /// A probe showed the path carries `rate`: the estimate rises to it (within the bounds) if it is lower.
    /// Returns whether it rose.
    pub(crate) fn raise_to(&mut self, rate: f64) -> bool {
        let rate = rate.min(self.max);
        if rate <= self.target {
            return false;
        }
        self.target = rate;
        self.forget_outgrown_capacity(rate);
        true
    }

    /// The path carried `rate`: if that outgrows the rate it last pushed back at, the estimate ramps again.
    fn forget_outgrown_capacity(&mut self, rate: f64) {
        if self.capacity.is_some_and(|capacity| rate > capacity * OUTGROWN) {
            self.capacity = None;
        }
    }

    /// A probe found the path carries `rate` while it pushed back: the estimate settles there (up or
    /// down), and that is the path's rate to climb near.
    pub(crate) fn settle_at(&mut self, now: Instant, rate: f64) {
        self.elapsed(now);
        self.last_decrease = Some(now);
        self.capacity = Some(rate);
        self.target = rate.clamp(self.min, self.max);
    }

    /// The most the estimate may reach.
    pub(crate) fn max(&self) -> f64 {
        self.max
    }

    /// Holds the estimate where it is (a queue is draining), letting time pass.
    pub(crate) fn hold(&mut self, now: Instant) {
        self.elapsed(now);
    }

    /// A queue built up: the estimate falls to [`BACK_OFF`] of what the path delivered, if it is not lower
    /// already. Returns whether it fell.
    pub(crate) fn decrease(&mut self, now: Instant, delivered: Option<f64>, rtt: Duration) -> bool {
        self.elapsed(now);
        let delivered = delivered.unwrap_or(self.target);
        if self.decreased_within(now, rtt) && delivered >= self.target / 2.0 {
            return false;
        }
        self.last_decrease = Some(now);
        self.capacity = Some(delivered);
        let lowered = (delivered * BACK_OFF).clamp(self.min, self.max);
        if lowered >= self.target {
            return false;
        }
        self.target = lowered;
        true
    }

    /// Loss beyond the path's own: the estimate keeps `keep` of itself, at most once a round trip.
    /// Returns whether it fell.
    pub(crate) fn cut(&mut self, now: Instant, keep: f64, rtt: Duration) -> bool {
        self.elapsed(now);
        if self.decreased_within(now, rtt) {
            return false;
        }
        self.last_decrease = Some(now);
        self.target = (self.target * keep.clamp(0.0, 1.0)).clamp(self.min, self.max);
        self.capacity = Some(self.target);
        true
    }

    /// Whether the estimate was lowered less than a round trip ago (see [`DECREASE_SPACING`]).
    fn decreased_within(&self, now: Instant, rtt: Duration) -> bool {
        let spacing = rtt.clamp(DECREASE_SPACING.0, DECREASE_SPACING.1);
        self.last_decrease.is_some_and(|last| now.saturating_duration_since(last) < spacing)
    }

    fn elapsed(&mut self, now: Instant) -> Duration {
        let last = self.last_update.replace(now).unwrap_or(now);
        now.saturating_duration_since(last).min(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(100);

    #[test]
    fn it_ramps_until_pushed_back_then_climbs_slowly_near_that_rate() {
        let start = Instant::now();
        let mut control = RateControl::new(300_000.0, 80_000.0, 5_000_000.0);
        control.increase(start, None, RTT, None);
        for tenth in 1..=20 {
            control.increase(start + Duration::from_millis(100 * tenth), None, RTT, None);
        }
        let ramped = control.target();
        assert!((300_000.0 * 2.8..300_000.0 * 2.9).contains(&ramped), "1.7 x 1.7 in two seconds: {ramped}");

        let at = start + Duration::from_secs(2);
        assert!(control.decrease(at, Some(600_000.0), RTT));
        assert_eq!(control.target(), 510_000.0);
        assert!(!control.decrease(at + Duration::from_millis(50), Some(590_000.0), RTT), "within a round trip");
        for tenth in 1..=10 {
            control.increase(at + Duration::from_millis(100 * tenth), Some(550_000.0), RTT, None);
        }
        // One packet per 200 ms (48 kbit/s a second) beats 5 % of 510 kbit/s; 950 ms since the last update.
        assert!((555_000.0..557_000.0).contains(&control.target()), "{}", control.target());
    }

    #[test]
    fn a_path_that_got_better_is_ramped_again() {
        let start = Instant::now();
        let mut control = RateControl::new(300_000.0, 80_000.0, 5_000_000.0);
        control.decrease(start, Some(300_000.0), RTT);
        assert_eq!(control.capacity(), Some(300_000.0));
        control.increase(start + Duration::from_secs(1), Some(380_000.0), RTT, None);
        assert_eq!(control.capacity(), None, "delivering over 1.25 x what it pushed back at");
        let before = control.target();
        control.increase(start + Duration::from_secs(2), Some(380_000.0), RTT, None);
        assert!((control.target() / before - RAMP_PER_SECOND).abs() < 1e-9);
    }

    #[test]
    fn a_collapse_is_followed_at_once_and_the_estimate_stays_within_bounds() {
        let start = Instant::now();
        let mut control = RateControl::new(2_000_000.0, 80_000.0, 2_000_000.0);
        assert!(control.decrease(start, Some(1_900_000.0), RTT));
        // Delivering less than half the estimate: no waiting for a round trip.
        assert!(control.decrease(start + Duration::from_millis(20), Some(300_000.0), RTT));
        assert_eq!(control.target(), 255_000.0);
        assert!(control.decrease(start + Duration::from_secs(1), Some(10_000.0), RTT));
        assert_eq!(control.target(), 80_000.0, "never below the floor");
        for second in 2..60 {
            control.increase(start + Duration::from_secs(second), Some(5_000_000.0), RTT, None);
        }
        assert_eq!(control.target(), 2_000_000.0, "never above the ceiling");
    }
}
