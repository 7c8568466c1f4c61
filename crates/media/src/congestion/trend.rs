//! The delay half of congestion control: whether a queue is building on the path, from how one-way delay
//! changes between bursts of packets (the GCC draft's arrival-time model, with a trend line over the last
//! bursts in place of its Kalman filter, as libwebrtc does today).
//!
//! Packets sent within [`BURST`] of each other form a group; from one group to the next, how much longer
//! the arrivals were apart than the departures is how much the queue grew. Those growths, summed and
//! smoothed, are fitted with a line over the last [`WINDOW`] groups: a rising line is a queue filling.
//! Its slope is compared with a threshold that adapts to the path's own jitter (a jittery path needs a
//! steeper slope before it counts), so random jitter is not read as congestion.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the delay says about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usage {
    /// A queue is building: sending faster than the path carries.
    Over,
    /// Neither.
    Normal,
    /// A queue is draining: the path carries more than is sent now.
    Under,
}

/// Packets sent within this of a group's first form one group (a frame's packets, a pacer's burst).
const BURST: Duration = Duration::from_millis(5);
/// The trend line is fitted over this many groups.
const WINDOW: usize = 20;
/// Smoothing of the accumulated delay before the fit (weight of the previous value).
const SMOOTHING: f64 = 0.9;
/// The slope is scaled by the number of groups (up to [`MAX_COUNT_SCALE`]) and this gain before it is
/// compared with the threshold, so that the threshold reads in milliseconds.
const SLOPE_GAIN: f64 = 4.0;
const MAX_COUNT_SCALE: f64 = 60.0;
/// The threshold starts here and stays within these bounds, in milliseconds.
const THRESHOLD_START: f64 = 12.5;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
/// How fast the threshold follows the scaled slope, per millisecond: quickly down, slowly up (so that a
/// real queue is not absorbed into the threshold).
const THRESHOLD_UP: f64 = 0.0087;
const THRESHOLD_DOWN: f64 = 0.039;
/// A slope this far beyond the threshold is a spike, not jitter: it does not move the threshold.
const THRESHOLD_SPIKE: f64 = 15.0;
/// Overuse is declared once the slope has stayed above the threshold for this long, over at least two
/// groups, and is not falling.
const OVERUSE_FOR: Duration = Duration::from_millis(10);

/// One group of packets sent together.
#[derive(Debug, Clone, Copy)]
struct Group {
    first_departure: Instant,
    last_departure: Instant,
    /// On the receiver's clock.
    last_arrival: Duration,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct DelayTrend {
    group: Option<Group>,
    previous: Option<Group>,
    /// Arrival of the first group fitted, the origin of the fit's time axis.
    origin: Option<Duration>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    /// (arrival ms since origin, smoothed accumulated delay ms), the last [`WINDOW`].
    points: VecDeque<(f64, f64)>,
    groups_seen: usize,
    threshold: f64,
    last_threshold_update: Option<Duration>,
    /// How long and over how many groups the slope has been above the threshold.
    over_for: Duration,
    over_groups: u32,
    last_slope: f64,
    /// The scaled slope last compared (for the tests and the statistics).
    last_scaled: f64,
    usage: Usage,
}

impl Default for DelayTrend {
    fn default() -> Self {
        Self {
            group: None,
            previous: None,
            origin: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            points: VecDeque::with_capacity(WINDOW + 1),
            groups_seen: 0,
            threshold: THRESHOLD_START,
            last_threshold_update: None,
            over_for: Duration::ZERO,
            over_groups: 0,
            last_slope: 0.0,
            last_scaled: 0.0,
            usage: Usage::Normal,
        }
    }
}

impl DelayTrend {
    /// What the delay said last.
    pub(crate) fn usage(&self) -> Usage {
        self.usage
    }

    /// Adds a packet that arrived, in departure order, and returns what the delay says now.
    pub(crate) fn add(&mut self, departure: Instant, arrival: Duration) -> Usage {
        let Some(group) = &mut self.group else {
            self.group = Some(Group { first_departure: departure, last_departure: departure, last_arrival: arrival });
            return self.usage;
        };
        if departure.saturating_duration_since(group.first_departure) <= BURST {
            group.last_departure = group.last_departure.max(departure);
            group.last_arrival = group.last_arrival.max(arrival);
            return self.usage;
        }
        let done = *group;
        *group = Group { first_departure: departure, last_departure: departure, last_arrival: arrival };
        if let Some(previous) = self.previous.replace(done)
            && done.last_arrival >= previous.last_arrival
        {
            let sent_apart = done.last_departure.saturating_duration_since(previous.last_departure);
            let arrived_apart = done.last_arrival - previous.last_arrival;
            let growth_ms = (arrived_apart.as_secs_f64() - sent_apart.as_secs_f64()) * 1000.0;
            self.fit(done.last_arrival, growth_ms, sent_apart);
        }
        self.usage
    }

    /// Adds one group's queue growth to the trend line and judges the slope.
    fn fit(&mut self, arrival: Duration, growth_ms: f64, sent_apart: Duration) {
        let origin = *self.origin.get_or_insert(arrival);
        self.groups_seen += 1;
        self.accumulated_ms += growth_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        self.points.push_back(((arrival - origin).as_secs_f64() * 1000.0, self.smoothed_ms));
        if self.points.len() > WINDOW {
            self.points.pop_front();
        }
        if self.points.len() < WINDOW {
            return;
        }
        let slope = slope(&self.points);
        let scaled = (self.groups_seen as f64).min(MAX_COUNT_SCALE) * slope * SLOPE_GAIN;
        self.last_scaled = scaled;
        if scaled > self.threshold {
            // The first group over counts for half of its spacing, as the queue began growing within it.
            self.over_for += if self.over_groups == 0 { sent_apart / 2 } else { sent_apart };
            self.over_groups += 1;
            if self.over_for > OVERUSE_FOR && self.over_groups > 1 && slope >= self.last_slope {
                self.over_for = Duration::ZERO;
                self.over_groups = 0;
                self.usage = Usage::Over;
            }
        } else {
            self.over_for = Duration::ZERO;
            self.over_groups = 0;
            self.usage = if scaled < -self.threshold { Usage::Under } else { Usage::Normal };
        }
        self.last_slope = slope;
        self.adapt_threshold(scaled, arrival);
    }

    fn adapt_threshold(&mut self, scaled: f64, arrival: Duration) {
        let last = self.last_threshold_update.replace(arrival).unwrap_or(arrival);
        if scaled.abs() > self.threshold + THRESHOLD_SPIKE {
            return;
        }
        let gain = if scaled.abs() < self.threshold { THRESHOLD_DOWN } else { THRESHOLD_UP };
        let elapsed_ms = (arrival.saturating_sub(last).as_secs_f64() * 1000.0).min(100.0);
        self.threshold =
            (self.threshold + gain * (scaled.abs() - self.threshold) * elapsed_ms).clamp(THRESHOLD_MIN, THRESHOLD_MAX);
    }
}

/// The least-squares slope of `points`.
fn slope(points: &VecDeque<(f64, f64)>) -> f64 {
    let count = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / count;
    let (mut numerator, mut denominator) = (0.0, 0.0);
    for (x, y) in points {
        numerator += (x - mean_x) * (y - mean_y);
        denominator += (x - mean_x) * (x - mean_x);
    }
    if denominator == 0.0 { 0.0 } else { numerator / denominator }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of a frame every 33 ms (3 packets, 1 ms apart), each delayed by `delay(n)` ms on
    /// top of the departure; returns every usage seen.
    fn run(
        trend: &mut DelayTrend,
        start: Instant,
        frames: std::ops::Range<u64>,
        delay: impl Fn(u64) -> f64,
    ) -> Vec<Usage> {
        let mut seen = Vec::new();
        for frame in frames {
            for packet in 0..3 {
                let sent = Duration::from_millis(frame * 33 + packet);
                let arrival = sent + Duration::from_secs_f64(delay(frame * 3 + packet) / 1000.0);
                seen.push(trend.add(start + sent, arrival));
            }
        }
        seen
    }

    #[test]
    fn a_steady_delay_is_normal() {
        let mut trend = DelayTrend::default();
        let seen = run(&mut trend, Instant::now(), 0..150, |_| 40.0);
        assert!(seen.iter().all(|usage| *usage == Usage::Normal), "{seen:?}");
    }

    #[test]
    fn a_growing_queue_is_overuse_and_a_draining_one_underuse() {
        let start = Instant::now();
        let mut trend = DelayTrend::default();
        run(&mut trend, start, 0..60, |_| 40.0);
        // The queue grows by 2 ms a frame (sending ~6 % over what the path carries) ...
        let seen = run(&mut trend, start, 60..90, |n| 40.0 + (n / 3 - 59) as f64 * 2.0);
        let over = seen.iter().position(|usage| *usage == Usage::Over).expect("overuse") / 3;
        assert!(over < 20, "seen after {over} frames");
        // ... then drains by 4 ms a frame.
        let seen = run(&mut trend, start, 90..110, |n| 100.0 - (n / 3 - 89) as f64 * 4.0);
        assert!(seen.contains(&Usage::Under), "{seen:?}");
    }

    #[test]
    fn random_jitter_is_not_taken_for_a_growing_queue() {
        let start = Instant::now();
        let mut trend = DelayTrend::default();
        // Up to 15 ms of jitter that keeps packets in order (as dialtone-wire's): each packet arrives
        // after the one before it, delayed 75..90 ms.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut last = 0.0_f64;
        let delays: Vec<f64> = (0..900 * 3)
            .map(|n| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let sent = (n / 3 * 33 + n % 3) as f64;
                let arrival = (sent + 75.0 + (state % 1500) as f64 / 100.0).max(last);
                last = arrival;
                arrival - sent
            })
            .collect();
        let seen = run(&mut trend, start, 0..900, |n| delays[n as usize]);
        let overuses = seen.windows(2).filter(|pair| pair[1] == Usage::Over && pair[0] != Usage::Over).count();
        assert_eq!(overuses, 0, "overuses in 30 s of jitter alone");
    }
}
