//! Probing: when the call sends less than the estimate allows (an easy picture, a small picture after the
//! path narrowed), feedback cannot show that the path would carry more, and the estimate may not rise
//! past 1.5 times what was acknowledged. So now and then the pacer sends a short burst of copies of recent
//! video over RTX on top of the media ([`ProbeOrder`]), and what the path delivered of that burst, as the
//! receiver's arrival times tell, is what it is known to carry (libwebrtc probes in the same way).

use std::time::{Duration, Instant};

use crate::pacer::ProbeOrder;

/// A probe sends this multiple of the estimate on top of the media where the path's rate is unknown (at
/// the start, or once the call has outgrown the rate it last pushed back at) ...
const BOLD_EXTRA: f64 = 2.0;
/// ... and this much where it is known but far below what the path carried before (a narrowed link that
/// may have widened again): probing a still narrow link only queues for a moment.
const GENTLE_EXTRA: f64 = 1.0;
/// ... for this long: long enough for a few packets at a call's lowest estimate, short enough that a
/// path that cannot carry it only queues for a moment (at 500 kbit/s a tenth of a second of twice the
/// estimate queues ~100 ms, within a 150 ms bucket).
const PROBE_FOR: Duration = Duration::from_millis(100);
/// A probe's result needs at least this many of its packets to have arrived.
const MIN_PACKETS: usize = 5;
/// The first probe comes this long after the first feedback ...
const FIRST_AFTER: Duration = Duration::from_secs(1);
/// ... the next this long after one that raised the estimate ...
const AGAIN_AFTER_RAISE: Duration = Duration::from_secs(2);
/// ... or after one that found nothing more (as libwebrtc probes a call held back by what it sends).
const AGAIN_AFTER_NOTHING: Duration = Duration::from_secs(4);
/// The estimate is raised to this share of what a probe showed the path carries.
const RESULT_SHARE: f64 = 0.9;
/// Feedback on a probe's last packets is waited for this long beyond a round trip.
const FEEDBACK_SLACK: Duration = Duration::from_millis(100);

/// How much a probe sends on top of the media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boldness {
    /// [`BOLD_EXTRA`]: what the path carries is unknown.
    Bold,
    /// [`GENTLE_EXTRA`]: the path pushed back lately, far below what it carried before.
    Gentle,
}

/// The first third of a probe's packets (at least one) is left out of its rate: a token bucket lets its
/// burst through at the line's rate before it holds the rest to its own (a 16 kbit burst read a 500 kbit/s
/// link as 650 over 100 ms), and the first packet's bytes arrived before the span measured began.
const LEADING_SHARE: usize = 3;

/// What one probe's packets showed as they arrived: (arrival on the receiver's clock, bytes).
type Arrivals = Vec<(Duration, usize)>;

/// The rate `arrivals` came in at, leaving out the leading packets (see [`LEADING_SHARE`]); `None` with
/// too few packets to say.
fn arrival_rate(mut arrivals: Arrivals) -> Option<f64> {
    if arrivals.len() < MIN_PACKETS {
        return None;
    }
    arrivals.sort_by_key(|(at, _)| *at);
    let measured = &arrivals[(arrivals.len() / LEADING_SHARE).max(1) - 1..];
    let (first, last) = (measured.first()?.0, measured.last()?.0);
    let bytes: usize = measured[1..].iter().map(|(_, size)| size).sum();
    (last > first).then(|| bytes as f64 * 8.0 / (last - first).as_secs_f64())
}

#[derive(Debug)]
enum State {
    /// No probe before this instant (`None`: before the first feedback).
    Idle(Option<Instant>),
    /// Packets departing in `from..until` belong to the probe; whether the path pushed back meanwhile.
    Probing { from: Instant, until: Instant, arrivals: Arrivals, pushed_back: bool },
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outcome {
    /// The share ([`RESULT_SHARE`]) of the rate its packets arrived at, if enough arrived to say.
    pub(crate) carried: Option<f64>,
    /// Whether the path pushed back while it ran (a queue built, or loss beyond the path's own): then
    /// its packets arrived at the bottleneck's rate, and the estimate settles there.
    pub(crate) pushed_back: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ProbePlan {
    state: State,
}

impl Default for ProbePlan {
    fn default() -> Self {
        Self { state: State::Idle(None) }
    }
}

impl ProbePlan {
    /// Whether a probe is under way (sent or awaiting its feedback).
    pub(crate) fn probing(&self) -> bool {
        matches!(self.state, State::Probing { .. })
    }

    /// A probe to send now, if one is due: the call is held back by what it sends (`app_limited`), the
    /// path shows no sign of congestion (`calm`), the estimate is under the most the call wants, and what
    /// the path carries is unknown or may have grown (`boldness`: `None` when there is nothing to learn).
    pub(crate) fn start(
        &mut self,
        now: Instant,
        estimate_bps: f64,
        max_bps: f64,
        app_limited: bool,
        calm: bool,
        boldness: Option<Boldness>,
    ) -> Option<ProbeOrder> {
        let State::Idle(next) = self.state else { return None };
        let Some(next) = next else {
            self.state = State::Idle(Some(now + FIRST_AFTER));
            return None;
        };
        let boldness = boldness?;
        if now < next || !app_limited || !calm || estimate_bps >= max_bps {
            return None;
        }
        let until = now + PROBE_FOR;
        self.state = State::Probing { from: now, until, arrivals: Arrivals::new(), pushed_back: false };
        let extra = match boldness {
            Boldness::Bold => BOLD_EXTRA,
            Boldness::Gentle => GENTLE_EXTRA,
        };
        Some(ProbeOrder { until, extra_bps: estimate_bps * extra })
    }

    /// Counts a packet that arrived, if it left during the probe.
    pub(crate) fn arrived(&mut self, departure: Instant, arrival: Duration, size: usize) {
        if let State::Probing { from, until, arrivals, .. } = &mut self.state
            && (*from..*until).contains(&departure)
        {
            arrivals.push((arrival, size));
        }
    }

    /// The path pushed back while a probe ran.
    pub(crate) fn pushed_back(&mut self) {
        if let State::Probing { pushed_back, .. } = &mut self.state {
            *pushed_back = true;
        }
    }

    /// Once a probe's feedback is in, what it found.
    pub(crate) fn result(&mut self, now: Instant, rtt: Duration) -> Option<Outcome> {
        let State::Probing { until, pushed_back, .. } = self.state else { return None };
        if now < until + rtt + FEEDBACK_SLACK {
            return None;
        }
        let State::Probing { arrivals, .. } =
            std::mem::replace(&mut self.state, State::Idle(Some(now + AGAIN_AFTER_NOTHING)))
        else {
            return None;
        };
        let carried = arrival_rate(arrivals).map(|rate| rate * RESULT_SHARE);
        Some(Outcome { carried, pushed_back })
    }

    /// The probe raised the estimate: the next may come sooner.
    pub(crate) fn raised(&mut self, now: Instant) {
        self.state = State::Idle(Some(now + AGAIN_AFTER_RAISE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_waits_for_a_held_back_calm_call_and_measures_what_arrived() {
        let start = Instant::now();
        let mut plan = ProbePlan::default();
        assert_eq!(plan.start(start, 300_000.0, 2_000_000.0, true, true, Some(Boldness::Bold)), None, "first feedback");
        let later = start + FIRST_AFTER;
        assert_eq!(
            plan.start(later, 300_000.0, 2_000_000.0, false, true, Some(Boldness::Bold)),
            None,
            "the call sends what it may"
        );
        assert_eq!(
            plan.start(later, 300_000.0, 2_000_000.0, true, false, Some(Boldness::Bold)),
            None,
            "the path pushes back"
        );
        assert_eq!(
            plan.start(later, 2_000_000.0, 2_000_000.0, true, true, Some(Boldness::Bold)),
            None,
            "at the most it wants"
        );
        let order = plan.start(later, 300_000.0, 2_000_000.0, true, true, Some(Boldness::Bold)).expect("a probe");
        assert_eq!(order, ProbeOrder { until: later + PROBE_FOR, extra_bps: 600_000.0 });
        assert!(plan.probing());
        // Eleven packets of 1000 bytes leave during the probe and arrive 1 ms apart: 8 Mbit/s; one left
        // before it and does not count.
        plan.arrived(later - Duration::from_millis(1), Duration::from_millis(1), 1000);
        for n in 0..11 {
            plan.arrived(later + Duration::from_millis(n * 5), Duration::from_millis(100 + n), 1000);
        }
        let rtt = Duration::from_millis(40);
        assert_eq!(plan.result(later + PROBE_FOR + rtt, rtt), None, "feedback still on its way");
        let outcome = plan.result(later + PROBE_FOR + rtt + FEEDBACK_SLACK, rtt).expect("a result");
        let rate = outcome.carried.expect("enough packets");
        assert!((rate - 8_000_000.0 * RESULT_SHARE).abs() < 1.0, "{rate}");
        assert!(!outcome.pushed_back);
        assert!(!plan.probing());
        let next = later + PROBE_FOR + rtt + FEEDBACK_SLACK;
        assert_eq!(
            plan.start(next + AGAIN_AFTER_RAISE, 300_000.0, 2_000_000.0, true, true, Some(Boldness::Bold)),
            None,
            "found nothing: 10 s"
        );
        plan.raised(next);
        assert!(
            plan.start(next + AGAIN_AFTER_RAISE, 300_000.0, 2_000_000.0, true, true, Some(Boldness::Bold)).is_some(),
            "raised: 3 s"
        );
    }

    #[test]
    fn a_buckets_burst_at_the_start_of_a_probe_is_left_out_of_its_rate() {
        // A 16 kbit burst (two packets of 1000 bytes) at once, then 500 kbit/s: one packet every 16 ms.
        let mut arrivals: Arrivals = vec![(Duration::ZERO, 1000), (Duration::from_micros(10), 1000)];
        arrivals.extend((1..=7).map(|n| (Duration::from_millis(16 * n), 1000)));
        let rate = arrival_rate(arrivals).expect("enough packets");
        assert!((rate - 500_000.0).abs() < 1.0, "{rate}");
        assert_eq!(arrival_rate(vec![(Duration::ZERO, 1000); 4]), None, "too few");
    }

    #[test]
    fn a_probe_the_path_pushed_back_on_still_reports_what_arrived() {
        let start = Instant::now();
        let mut plan = ProbePlan::default();
        plan.start(start, 300_000.0, 2_000_000.0, true, true, Some(Boldness::Bold));
        let at = start + FIRST_AFTER;
        plan.start(at, 300_000.0, 2_000_000.0, true, true, Some(Boldness::Bold)).expect("a probe");
        for n in 0..3 {
            plan.arrived(at + Duration::from_millis(n * 10), Duration::from_millis(100 + n * 20), 1000);
        }
        plan.pushed_back();
        let outcome = plan.result(at + Duration::from_secs(1), Duration::from_millis(40)).expect("done");
        assert_eq!(outcome, Outcome { carried: None, pushed_back: true }, "three packets are too few to say");
        assert!(!plan.probing());
    }
}
