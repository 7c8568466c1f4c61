//! The loss half of congestion control, tolerant of loss that sending less would not cure.
//!
//! Wi-Fi, mobile links and long paths lose packets at random whatever the rate; NACK and FEC repair
//! that, and backing off for it only starves the call (GCC's loss rule, "above 10 % lose half the excess
//! rate", held a 300 ms path with ~10 % random loss at the estimate's floor). Loss that congestion causes
//! comes on top of what the path loses anyway, and goes away when the sender slows down. So the loss of
//! each second is compared with the path's own loss, read from the best second of the last
//! [`INHERENT_OVER`] (but at most [`INHERENT_MAX`]): only loss clearly above it is congestion, and the
//! answer is in proportion to the excess. A second's loss varies at random by a few points, so each
//! second counts with the upper end of its uncertainty (two standard errors): the best of ten would
//! otherwise read the path's own loss too low, and ordinary seconds would pass for congestion.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Loss is measured over windows of this much feedback ...
const WINDOW: Duration = Duration::from_secs(1);
/// ... holding at least this many packets (a quiet call's window is longer).
const WINDOW_PACKETS: usize = 20;
/// The path's own loss is the best window's over this many windows ...
const INHERENT_OVER: usize = 10;
/// ... but never more than this: a path that always loses more is losing to congestion too.
const INHERENT_MAX: f64 = 0.20;
/// Loss this far above the path's own is congestion.
const EXCESS: f64 = 0.10;

/// A window of loss that was congestion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Congestion {
    /// The window's loss, 0.0 to 1.0.
    pub(crate) loss: f64,
    /// What the path loses anyway.
    pub(crate) inherent: f64,
}

impl Congestion {
    /// How much to keep of the rate: half the excess loss is given up, as the GCC draft does with all of
    /// it.
    pub(crate) fn keep(&self) -> f64 {
        1.0 - 0.5 * (self.loss - self.inherent)
    }
}

/// One window's loss, and how far it may be off by chance (two standard errors).
#[derive(Debug, Clone, Copy)]
struct Window {
    loss: f64,
    uncertainty: f64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct LossWatch {
    window_start: Option<Instant>,
    lost: usize,
    total: usize,
    /// The last windows, newest last.
    history: VecDeque<Window>,
}

impl LossWatch {
    /// Counts one feedback batch in which `lost` of `total` packets did not arrive; at the end of a window,
    /// says whether its loss was congestion.
    pub(crate) fn add(&mut self, now: Instant, lost: usize, total: usize) -> Option<Congestion> {
        let start = *self.window_start.get_or_insert(now);
        self.lost += lost;
        self.total += total;
        if now.saturating_duration_since(start) < WINDOW || self.total < WINDOW_PACKETS {
            return None;
        }
        let loss = self.lost as f64 / self.total as f64;
        let uncertainty = 2.0 * (loss * (1.0 - loss) / self.total as f64).sqrt();
        (self.window_start, self.lost, self.total) = (Some(now), 0, 0);
        self.history.push_back(Window { loss, uncertainty });
        if self.history.len() > INHERENT_OVER {
            self.history.pop_front();
        }
        let inherent = self.inherent();
        (loss > inherent + EXCESS).then_some(Congestion { loss, inherent })
    }

    /// What the path loses anyway, as far as the last windows tell.
    pub(crate) fn inherent(&self) -> f64 {
        self.history.iter().map(|window| window.loss + window.uncertainty).fold(INHERENT_MAX, f64::min)
    }

    /// Whether the last window's loss leaves room to send more: not clearly more than half the
    /// congestion margin above the path's own (between that and congestion, the estimate holds, as the
    /// GCC draft's loss half does between 2 and 10 %).
    pub(crate) fn allows_increase(&self) -> bool {
        self.history.back().is_none_or(|window| window.loss - window.uncertainty <= self.inherent() + EXCESS / 2.0)
    }

    /// The last window's loss.
    pub(crate) fn last(&self) -> Option<f64> {
        self.history.back().map(|window| window.loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `seconds` of feedback every 100 ms, 20 packets each, `lost(batch)` of them lost; returns the
    /// windows judged congestion.
    fn run(watch: &mut LossWatch, at: &mut Instant, seconds: u64, lost: impl Fn(u64) -> usize) -> Vec<Congestion> {
        (0..seconds * 10)
            .filter_map(|batch| {
                *at += Duration::from_millis(100);
                watch.add(*at, lost(batch), 20)
            })
            .collect()
    }

    #[test]
    fn steady_random_loss_is_not_congestion_even_at_twenty_percent() {
        let mut at = Instant::now();
        for share in [2, 4] {
            let mut watch = LossWatch::default();
            // 10 % and 20 %, unevenly spread: some windows lose more than others.
            let congested =
                run(&mut watch, &mut at, 30, |batch| share + (batch % 7 == 0) as usize * 2 - (batch % 5 == 0) as usize);
            assert!(congested.is_empty(), "{}: {congested:?}", share * 5);
        }
    }

    #[test]
    fn loss_on_top_of_the_paths_own_is_congestion() {
        let mut at = Instant::now();
        let mut watch = LossWatch::default();
        assert!(run(&mut watch, &mut at, 10, |_| 1).is_empty(), "5 % is the path's own");
        assert!(watch.allows_increase());
        let congested = run(&mut watch, &mut at, 3, |_| 5);
        assert!(congested.len() >= 2, "25 % is 20 points over it: {congested:?}");
        let last = congested.last().unwrap();
        // 5 % of 200 packets, and two standard errors (3.1 points) above it.
        assert!((last.inherent - 0.0808).abs() < 1e-3 && (last.loss - 0.25).abs() < 1e-9, "{last:?}");
        assert!((last.keep() - 0.9154).abs() < 1e-3, "half the excess: {}", last.keep());
        assert!(!watch.allows_increase());
    }

    #[test]
    fn a_path_that_always_loses_much_is_congested_from_the_first_window() {
        let mut at = Instant::now();
        let mut watch = LossWatch::default();
        let congested = run(&mut watch, &mut at, 5, |_| 8);
        assert_eq!(congested.len(), 4, "40 % is more than any path's own, in every window: {congested:?}");
        assert_eq!(watch.inherent(), INHERENT_MAX);
    }
}
