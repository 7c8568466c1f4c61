//! Congestion control over transport-wide feedback: how fast this device may send to the other, published
//! for the encoder and set on the pacer.
//!
//! A call starts gently ([`START_BPS`], which any link carries, as libwebrtc does) and ramps until the
//! path pushes back: by a queue building ([`trend`], the delay half) or by loss beyond what the path
//! loses anyway ([`loss`]: random loss is repaired by NACK and FEC, not answered by sending less, which
//! held a 300 ms path with ~10 % random loss at the floor with the library's GCC). It then falls to a
//! share of what the path delivered (by loss: in proportion to the excess loss) and climbs carefully near
//! that rate ([`aimd`]).
//!
//! The estimate never rises above 1.5 times what the receiver acknowledged over the last second, plus
//! 10 kbit/s, as in libwebrtc: a call that sends little (a receiver waiting for a keyframe; a picture that
//! is easy to encode) would otherwise raise it without limit, and the next keyframe, made for that
//! estimate and paced at 2.5 times it, would overflow the bottleneck (on a 400 kbit/s path the library's
//! GCC climbed to 1.6 Mbit/s so, and every keyframe froze the picture). It is not lowered for sending
//! little, though: a camera turned on after minutes of audio alone starts at what the path carried before.
//! And while the call is held back by what it sends, short probes ([`probe`]) find out what more the path
//! carries.

mod aimd;
mod loss;
mod probe;
#[cfg(test)]
mod tests;
mod throughput;
mod trend;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, PacketReport};

use crate::pacer::ProbeOrders;
use aimd::RateControl;
use loss::LossWatch;
use probe::{Boldness, Outcome, ProbePlan};
use throughput::Throughput;
use trend::{DelayTrend, Usage};

/// Where a call's estimate starts: a rate any link carries.
pub(crate) const START_BPS: f64 = 300_000.0;

/// The pacer releases packets at this multiple of the estimate, as Chromium's does: the encoder keeps to
/// the estimate on average, and a keyframe's burst leaves within a few frame times instead of queueing
/// behind a pacer held to the average (which would delay the first frame of a call by ~100 ms at 720p).
const PACING_FACTOR: f64 = 2.5;

/// The estimate may exceed the acknowledged rate by this factor ...
const OVER_ACKNOWLEDGED: f64 = 1.5;
/// ... plus this, in bits per second, so that a quiet call can still grow.
const OVER_ACKNOWLEDGED_BPS: f64 = 10_000.0;
/// The acknowledged rate is measured over this much sending time.
const ACKNOWLEDGED_WINDOW: Duration = Duration::from_secs(1);
/// What the path delivers is measured over this much arrival time: short, so that a decrease follows a
/// link that just got narrower, long enough to hold a few frames.
const DELIVERED_WINDOW: Duration = Duration::from_millis(500);
/// Where the path pushed back lately at less than this share of the most it carried before, gentle
/// probes look for whether it widened again.
const RECOVERY_SHARE: f64 = 0.5;
/// A batch of feedback that starts with this many packets unacknowledged follows a feedback that was lost
/// (random loss makes such a run about once in a thousand batches at 10 %).
const LOST_FEEDBACK_RUN: usize = 3;
/// The round trip assumed before feedback has measured one.
const FIRST_RTT: Duration = Duration::from_millis(100);

/// What last held the estimate where it is: which half of congestion control acted (the tests read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    /// Nothing yet: the estimate is ramping up from its start.
    #[default]
    Ramping,
    /// The path's capacity: a queue built up when sending more.
    Bandwidth,
    /// Loss beyond what the path loses anyway.
    Loss,
}

/// See the module documentation.
pub(crate) struct CongestionControl {
    trend: DelayTrend,
    loss: LossWatch,
    rate: RateControl,
    acknowledged: Throughput,
    delivered: Throughput,
    /// The first departure ever reported, the origin of the acknowledged rate's timeline.
    origin: Option<Instant>,
    rtt: Option<Duration>,
    limit: Limit,
    probe: ProbePlan,
    /// The most the path has been seen to carry in this call (delivered when it pushed back, or a
    /// probe's result).
    peak_bps: f64,
    /// Where probe orders are left for the pacer.
    orders: ProbeOrders,
    /// The estimate published to the encoder, in bits per second (`f64` bits).
    estimate: Arc<AtomicU64>,
}

impl CongestionControl {
    /// Starts at `start_bps`, within `min_bps..=max_bps`; publishes the estimate in `estimate` and leaves
    /// probe orders for the pacer in `orders`.
    pub(crate) fn new(
        start_bps: f64,
        min_bps: f64,
        max_bps: f64,
        estimate: Arc<AtomicU64>,
        orders: ProbeOrders,
    ) -> Self {
        let control = Self {
            trend: DelayTrend::default(),
            loss: LossWatch::default(),
            rate: RateControl::new(start_bps, min_bps, max_bps),
            acknowledged: Throughput::new(ACKNOWLEDGED_WINDOW),
            delivered: Throughput::new(DELIVERED_WINDOW),
            origin: None,
            rtt: None,
            limit: Limit::Ramping,
            probe: ProbePlan::default(),
            peak_bps: 0.0,
            orders,
            estimate,
        };
        control.publish();
        control
    }

    /// What holds the estimate where it is.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> Limit {
        self.limit
    }

    fn publish(&self) {
        self.estimate.store(self.rate.target().to_bits(), Ordering::Relaxed);
    }
}

impl BandwidthEstimator for CongestionControl {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        let Some(first) = reports.first() else { return };
        let origin = *self.origin.get_or_insert(first.departure);
        let mut usage = self.trend.usage();
        let mut newest = None;
        let mut lost = 0;
        // What a lost feedback covered comes first in the next batch, all unacknowledged: that is not
        // known to be lost, and on a path losing 10 % it would double the loss counted, in bursts.
        let unknown = reports.iter().take_while(|report| !report.arrived).count();
        let unknown = if unknown >= LOST_FEEDBACK_RUN { unknown } else { 0 };
        for report in &reports[unknown..] {
            match report.arrival {
                Some(arrival) if report.arrived => {
                    self.acknowledged.add(report.departure.saturating_duration_since(origin), report.size);
                    self.delivered.add(arrival, report.size);
                    self.probe.arrived(report.departure, arrival, report.size);
                    usage = self.trend.add(report.departure, arrival);
                    newest = Some(newest.map_or(report.departure, |newest: Instant| newest.max(report.departure)));
                }
                _ => lost += 1,
            }
        }
        if let Some(newest) = newest {
            let sample = now.saturating_duration_since(newest);
            self.rtt = Some(self.rtt.map_or(sample, |rtt| rtt.mul_f64(0.875) + sample.mul_f64(0.125)));
        }
        let rtt = self.rtt.unwrap_or(FIRST_RTT);
        let delivered = self.delivered.bits_per_second();
        let congestion = self.loss.add(now, lost, reports.len() - unknown);
        let pushed_back = congestion.is_some() || usage == Usage::Over;
        let mut held_back = false;
        if pushed_back && self.probe.probing() {
            // A probe is an experiment on the path: its result says what the path carries.
            self.probe.pushed_back();
        } else if let Some(congestion) = congestion {
            if self.rate.cut(now, congestion.keep(), rtt) {
                tracing::debug!(?congestion, ?delivered, target = self.rate.target(), "loss: estimate lowered");
            }
            self.limit = Limit::Loss;
        } else {
            match usage {
                Usage::Over => {
                    self.peak_bps = self.peak_bps.max(delivered.unwrap_or_default());
                    if self.rate.decrease(now, delivered, rtt) {
                        tracing::debug!(?delivered, target = self.rate.target(), "queue building: estimate lowered");
                    }
                    self.limit = Limit::Bandwidth;
                }
                Usage::Under => self.rate.hold(now),
                Usage::Normal if !self.loss.allows_increase() => self.rate.hold(now),
                Usage::Normal => {
                    let ceiling = self
                        .acknowledged
                        .bits_per_second()
                        .map(|acknowledged| acknowledged * OVER_ACKNOWLEDGED + OVER_ACKNOWLEDGED_BPS);
                    held_back = self.rate.increase(now, delivered, rtt, ceiling);
                    if self.rate.capacity().is_none() {
                        self.limit = Limit::Ramping;
                    }
                }
            }
        }
        match self.probe.result(now, rtt) {
            // Where a queue built, the probe's packets arrived at the bottleneck's rate: that is the path.
            Some(Outcome { carried: Some(carried), pushed_back: true }) => {
                self.peak_bps = self.peak_bps.max(carried);
                self.rate.settle_at(now, carried);
                self.limit = Limit::Bandwidth;
                tracing::debug!(carried, target = self.rate.target(), "a probe found the path's rate");
            }
            Some(Outcome { carried: Some(carried), pushed_back: false }) => {
                self.peak_bps = self.peak_bps.max(carried);
                if self.rate.raise_to(carried) {
                    tracing::debug!(carried, target = self.rate.target(), "a probe raised the estimate");
                    self.probe.raised(now);
                }
            }
            Some(Outcome { carried: None, pushed_back: true }) => {
                self.rate.decrease(now, delivered, rtt);
                self.limit = Limit::Bandwidth;
            }
            Some(Outcome { carried: None, pushed_back: false }) => {}
            None => {
                let calm = usage == Usage::Normal && self.loss.allows_increase() && congestion.is_none();
                let target = self.rate.target();
                let boldness = match self.rate.capacity() {
                    None => Some(Boldness::Bold),
                    Some(_) if target < RECOVERY_SHARE * self.peak_bps => Some(Boldness::Gentle),
                    // The path pushed back lately near this rate: probing would only fill its queue.
                    Some(_) => None,
                };
                if let Some(order) = self.probe.start(now, target, self.rate.max(), held_back, calm, boldness) {
                    tracing::debug!(extra_bps = order.extra_bps, target = self.rate.target(), "probing");
                    *crate::lock(&self.orders) = Some(order);
                }
            }
        }
        self.publish();
    }

    /// What the pacer is set to (see [`PACING_FACTOR`]); the encoder reads the estimate itself.
    fn target_bitrate(&self) -> f64 {
        self.rate.target() * PACING_FACTOR
    }

    fn stats(&self) -> EstimatorStats {
        let mut stats = EstimatorStats::default();
        stats.delay_based_bitrate = Some(self.rate.target());
        stats.packet_loss = self.loss.last();
        stats.round_trip_time = self.rtt;
        stats
    }
}
