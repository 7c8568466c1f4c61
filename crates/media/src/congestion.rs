//! Congestion control: Google Congestion Control over transport-wide feedback, kept to what the path
//! has shown it carries, and published for the encoder.
//!
//! The library's GCC raises its estimate whenever delay does not grow, also while the call sends far
//! less than the estimate (a receiver waiting for a keyframe gets no other video; a picture that is easy
//! to encode). On a 400 kbit/s path it climbed to 1.6 Mbit/s that way; the next keyframe, made for that
//! estimate and paced at 2.5 times it, overflowed the bottleneck's queue, and so did every keyframe after
//! it: 15 s without a picture (scripts/netem-call). As in libwebrtc, the estimate therefore never rises
//! above 1.5 times what the receiver acknowledged over the last second, plus 10 kbit/s. It is not
//! lowered for sending little, though: a camera turned on after minutes of audio alone starts at what
//! the path carried before, not at an audio call's rate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};

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

/// The rate at which packets the receiver reported as arrived were sent, over the last
/// [`ACKNOWLEDGED_WINDOW`] of departures.
#[derive(Debug, Default)]
pub(crate) struct AcknowledgedRate {
    /// Departure instant and size of each packet acknowledged, oldest first.
    packets: VecDeque<(Instant, usize)>,
    bytes: usize,
    /// The first departure ever acknowledged: until a whole window has passed, there is no rate.
    first: Option<Instant>,
}

impl AcknowledgedRate {
    /// Adds the packets of one feedback report that arrived.
    pub(crate) fn add(&mut self, reports: &[PacketReport]) {
        for report in reports.iter().filter(|report| report.arrived) {
            self.first.get_or_insert(report.departure);
            self.packets.push_back((report.departure, report.size));
            self.bytes += report.size;
        }
        let Some(&(latest, _)) = self.packets.back() else { return };
        while let Some(&(departure, size)) = self.packets.front()
            && latest.saturating_duration_since(departure) > ACKNOWLEDGED_WINDOW
        {
            self.packets.pop_front();
            self.bytes -= size;
        }
    }

    /// Bits per second, once a whole window of feedback has come in.
    pub(crate) fn bits_per_second(&self) -> Option<f64> {
        let (first, &(latest, _)) = (self.first?, self.packets.back()?);
        (latest.saturating_duration_since(first) >= ACKNOWLEDGED_WINDOW)
            .then(|| self.bytes as f64 * 8.0 / ACKNOWLEDGED_WINDOW.as_secs_f64())
    }
}

/// See the module documentation.
pub(crate) struct CongestionControl {
    gcc: Gcc,
    acknowledged: AcknowledgedRate,
    /// The estimate as last worked out, bits per second.
    current_bps: f64,
    /// The estimate published to the encoder, in bits per second (`f64` bits).
    estimate: Arc<AtomicU64>,
}

impl CongestionControl {
    /// Starts at `start_bps` (what the call would like to send), within `min_bps..=max_bps`.
    pub(crate) fn new(start_bps: f64, min_bps: f64, max_bps: f64, estimate: Arc<AtomicU64>) -> Self {
        let gcc = Gcc::new(start_bps.clamp(min_bps, max_bps), min_bps, max_bps);
        let current_bps = gcc.target_bitrate();
        let control = Self { gcc, acknowledged: AcknowledgedRate::default(), current_bps, estimate };
        control.publish();
        control
    }

    /// Follows GCC down at once, and up only as far as what the path has shown it carries.
    fn update(&mut self) {
        let gcc = self.gcc.target_bitrate();
        self.current_bps = match self.acknowledged.bits_per_second() {
            Some(acknowledged) if gcc > self.current_bps => {
                gcc.min((acknowledged * OVER_ACKNOWLEDGED + OVER_ACKNOWLEDGED_BPS).max(self.current_bps))
            }
            _ => gcc,
        };
        self.publish();
    }

    fn publish(&self) {
        self.estimate.store(self.current_bps.to_bits(), Ordering::Relaxed);
    }
}

impl BandwidthEstimator for CongestionControl {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.gcc.on_reports(now, reports);
        self.acknowledged.add(reports);
        self.update();
    }

    /// What the pacer is set to (see [`PACING_FACTOR`]); the encoder reads the estimate itself.
    fn target_bitrate(&self) -> f64 {
        self.current_bps * PACING_FACTOR
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.gcc.handle_timeout(now);
        self.update();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.gcc.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` packets of 1000 bytes sent evenly over `span` from `start`, all arrived.
    fn reports(start: Instant, span: Duration, count: u32) -> Vec<PacketReport> {
        (0..count)
            .map(|i| PacketReport {
                ssrc: 1,
                id: u64::from(i),
                rtp_sequence_number: i as u16,
                is_twcc: true,
                twcc_sequence_number: i as u16,
                size: 1000,
                arrived: true,
                departure: start + span * i / count,
                arrival: Some(span * i / count),
                ecn: Default::default(),
            })
            .collect()
    }

    #[test]
    fn the_acknowledged_rate_needs_a_whole_window_then_follows_the_last_one() {
        let start = Instant::now();
        let mut rate = AcknowledgedRate::default();
        rate.add(&reports(start, Duration::from_millis(500), 50));
        assert_eq!(rate.bits_per_second(), None);
        // 100 packets of 1000 bytes a second: 800 kbit/s.
        rate.add(&reports(start + Duration::from_millis(500), Duration::from_secs(2), 200));
        let bps = rate.bits_per_second().expect("a whole window");
        assert!((780_000.0..=820_000.0).contains(&bps), "{bps}");
    }

    #[test]
    fn the_estimate_rises_only_to_one_and_a_half_times_what_was_acknowledged() {
        let start = Instant::now();
        let published = Arc::new(AtomicU64::new(0));
        let mut control = CongestionControl::new(2_000_000.0, 80_000.0, 2_000_000.0, published.clone());
        assert_eq!(f64::from_bits(published.load(Ordering::Relaxed)), 2_000_000.0, "starts where asked");
        // As after a loss: GCC is still high, the estimate fell.
        control.current_bps = 150_000.0;
        // A second and a half at 200 kbit/s (25 packets of 1000 bytes a second) all arrive.
        control.on_reports(start + Duration::from_millis(1600), &reports(start, Duration::from_millis(1500), 38));
        let estimate = f64::from_bits(published.load(Ordering::Relaxed));
        assert!(control.gcc.target_bitrate() > 1_000_000.0, "GCC alone: {}", control.gcc.target_bitrate());
        assert!((300_000.0..=330_000.0).contains(&estimate), "1.5 x 200 + 10 kbit/s, was {estimate}");
        assert_eq!(control.target_bitrate(), estimate * PACING_FACTOR);
    }

    #[test]
    fn sending_little_does_not_lower_the_estimate() {
        let start = Instant::now();
        let published = Arc::new(AtomicU64::new(0));
        let mut control = CongestionControl::new(1_000_000.0, 80_000.0, 1_000_000.0, published.clone());
        // Audio only: 2 packets of 1000 bytes every 100 ms is 16 kbit/s.
        control.on_reports(start + Duration::from_secs(2), &reports(start, Duration::from_millis(1500), 3));
        assert_eq!(f64::from_bits(published.load(Ordering::Relaxed)), 1_000_000.0);
    }
}
