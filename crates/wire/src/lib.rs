//! A stretch of network for tests, since this kernel has no netem: frames that cross it are delayed,
//! jittered, lost at random, or lost for a while (an outage), each way on its own.
//!
//! [`Wire`] is the logic without sockets or clocks: frames go in with the time they arrived, and come
//! out when they are due ([`Wire::poll_transmit`], [`Wire::poll_timeout`]); randomness comes from a
//! seed, so a run can be repeated. The `dialtone-wire` binary puts it between two network interfaces
//! (raw sockets in a namespace of their own), where it is transparent: addresses, NAT and ICE work as
//! without it.

#![warn(missing_docs)]

pub mod link;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which way a frame crosses the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From interface A to interface B.
    AtoB,
    /// From interface B to interface A.
    BtoA,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }
}

/// What the wire does to frames going one way.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    /// Added to every frame.
    pub delay: Duration,
    /// Up to this much more, at random (uniform). Frames keep their order, as on one path: a frame is
    /// never sent before the one that arrived before it.
    pub jitter: Duration,
    /// The share of frames lost at random, 0 to 1.
    pub loss: f64,
    /// Random loss begins this long after the wire starts (a call set up on a clean path that then
    /// turns lossy).
    pub loss_from: Duration,
    /// Every frame is lost from `start` after the wire starts, for `length`.
    pub outage: Option<Outage>,
}

/// A stretch of time in which every frame is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When it begins, from the wire's start.
    pub start: Duration,
    /// How long it lasts.
    pub length: Duration,
}

/// A setting that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImpairmentError {
    /// A loss share outside 0..=1.
    #[error("loss must be between 0 and 100 %, not {0} %")]
    Loss(f64),
}

impl Impairment {
    /// Checks the settings.
    pub fn checked(self) -> Result<Self, ImpairmentError> {
        if !(0.0..=1.0).contains(&self.loss) || self.loss.is_nan() {
            return Err(ImpairmentError::Loss(self.loss * 100.0));
        }
        Ok(self)
    }
}

/// What became of the frames, each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Frames that came in.
    pub arrived: u64,
    /// Frames lost at random.
    pub lost: u64,
    /// Frames lost to an outage.
    pub cut: u64,
    /// Frames sent on.
    pub sent: u64,
}

/// See the crate documentation.
pub struct Wire {
    started: Instant,
    ways: [Way; 2],
    rng: StdRng,
}

struct Way {
    impairment: Impairment,
    /// Frames on their way, in order, with when each is due.
    queue: VecDeque<(Instant, Vec<u8>)>,
    counts: Counts,
}

impl Wire {
    /// A wire started at `now`, impairing frames from A to B by `a_to_b` and back by `b_to_a`; `seed`
    /// makes its randomness repeatable.
    pub fn new(now: Instant, a_to_b: Impairment, b_to_a: Impairment, seed: u64) -> Self {
        let way = |impairment| Way { impairment, queue: VecDeque::new(), counts: Counts::default() };
        Self { started: now, ways: [way(a_to_b), way(b_to_a)], rng: StdRng::seed_from_u64(seed) }
    }

    /// A frame arrived going `direction` at `now`.
    pub fn push(&mut self, direction: Direction, frame: Vec<u8>, now: Instant) {
        let since_start = now.saturating_duration_since(self.started);
        let way = &mut self.ways[direction.index()];
        way.counts.arrived += 1;
        let impairment = way.impairment;
        if impairment.outage.is_some_and(|o| since_start >= o.start && since_start < o.start + o.length) {
            way.counts.cut += 1;
            return;
        }
        if impairment.loss > 0.0 && since_start >= impairment.loss_from && self.rng.random::<f64>() < impairment.loss {
            way.counts.lost += 1;
            return;
        }
        let jitter = impairment.jitter.mul_f64(self.rng.random::<f64>());
        let mut due = now + impairment.delay + jitter;
        if let Some((last, _)) = way.queue.back() {
            due = due.max(*last);
        }
        way.queue.push_back((due, frame));
    }

    /// The next frame due by `now`, and which way it goes.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(Direction, Vec<u8>)> {
        for direction in [Direction::AtoB, Direction::BtoA] {
            let way = &mut self.ways[direction.index()];
            if way.queue.front().is_some_and(|(due, _)| *due <= now) {
                let (_, frame) = way.queue.pop_front()?;
                way.counts.sent += 1;
                return Some((direction, frame));
            }
        }
        None
    }

    /// When the next frame is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ways.iter().filter_map(|way| way.queue.front().map(|(due, _)| *due)).min()
    }

    /// What became of the frames going `direction` so far.
    pub fn counts(&self, direction: Direction) -> Counts {
        self.ways[direction.index()].counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Pushes one frame a millisecond going A→B for `frames` ms, and returns when each came out (in ms
    /// from the start) and which frame it was.
    fn run(impairment: Impairment, frames: u64) -> (Vec<(u64, u8)>, Counts) {
        let start = Instant::now();
        let mut wire = Wire::new(start, impairment, Impairment::default(), 7);
        let mut out = Vec::new();
        for t in 0..frames + 2_000 {
            let now = start + ms(t);
            if t < frames {
                wire.push(Direction::AtoB, vec![(t % 256) as u8], now);
            }
            while let Some((direction, frame)) = wire.poll_transmit(now) {
                assert_eq!(direction, Direction::AtoB);
                out.push((t, frame[0]));
            }
        }
        (out, wire.counts(Direction::AtoB))
    }

    #[test]
    fn frames_come_out_late_by_the_delay_plus_at_most_the_jitter_in_order() {
        // (delay, jitter): every frame is out within [delay, delay + jitter], none overtakes another.
        for (delay, jitter) in [(0, 0), (50, 0), (75, 15), (150, 30)] {
            let impairment = Impairment { delay: ms(delay), jitter: ms(jitter), ..Impairment::default() };
            let (out, counts) = run(impairment, 1_000);
            assert_eq!(out.len(), 1_000, "{delay}+{jitter}: none lost");
            assert_eq!(counts, Counts { arrived: 1_000, lost: 0, cut: 0, sent: 1_000 });
            let order: Vec<u8> = out.iter().map(|(_, frame)| *frame).collect();
            let sent: Vec<u8> = (0..1_000u64).map(|t| (t % 256) as u8).collect();
            assert_eq!(order, sent, "{delay}+{jitter}: in order");
            for (index, (at, _)) in out.iter().enumerate() {
                let late = at - index as u64;
                assert!(late >= delay && late <= delay + jitter, "{delay}+{jitter}: frame {index} late by {late}");
            }
            if jitter > 0 {
                let spread = out.iter().enumerate().map(|(i, (at, _))| at - i as u64 - delay).max();
                assert!(spread >= Some(jitter / 2), "{delay}+{jitter}: the jitter shows ({spread:?})");
            }
        }
    }

    #[test]
    fn a_share_of_frames_is_lost_and_an_outage_loses_all_in_it() {
        // (loss, outage from..for ms, frames that should arrive, tolerance)
        let cases = [(0.0, None, 10_000, 0), (0.1, None, 9_000, 150), (0.2, None, 8_000, 200), (1.0, None, 0, 0)];
        for (loss, outage, expected, tolerance) in cases {
            let impairment = Impairment { loss, outage, ..Impairment::default() };
            let (out, counts) = run(impairment, 10_000);
            let got = out.len() as i64;
            assert!((got - expected).abs() <= tolerance, "loss {loss}: {got} arrived");
            assert_eq!(counts.lost as i64, 10_000 - got);
        }
        let late = Impairment { loss: 1.0, loss_from: ms(3_000), ..Impairment::default() };
        let (out, counts) = run(late, 5_000);
        assert_eq!((out.len(), counts.lost), (3_000, 2_000), "loss only from 3 s on");
        let outage = Some(Outage { start: ms(2_000), length: ms(1_000) });
        let (out, counts) = run(Impairment { outage, ..Impairment::default() }, 5_000);
        assert_eq!(counts.cut, 1_000);
        assert!(out.iter().all(|(at, _)| !(2_000..3_000).contains(at)), "nothing comes through the outage");
        assert_eq!(out.len(), 4_000);
    }

    #[test]
    fn the_same_seed_loses_the_same_frames_and_each_way_is_its_own() {
        let lossy = Impairment { loss: 0.3, jitter: ms(20), ..Impairment::default() };
        assert_eq!(run(lossy, 2_000), run(lossy, 2_000));
        let start = Instant::now();
        let mut wire =
            Wire::new(start, Impairment { delay: ms(100), ..Impairment::default() }, Impairment::default(), 1);
        wire.push(Direction::AtoB, vec![1], start);
        wire.push(Direction::BtoA, vec![2], start);
        assert_eq!(wire.poll_transmit(start), Some((Direction::BtoA, vec![2])), "B→A has no delay");
        assert_eq!(wire.poll_transmit(start), None);
        assert_eq!(wire.poll_timeout(), Some(start + ms(100)));
        assert_eq!(wire.poll_transmit(start + ms(100)), Some((Direction::AtoB, vec![1])));
    }

    #[test]
    fn a_loss_outside_0_to_100_percent_is_refused() {
        assert!(Impairment { loss: 1.5, ..Impairment::default() }.checked().is_err());
        assert!(Impairment { loss: -0.1, ..Impairment::default() }.checked().is_err());
        assert!(Impairment { loss: f64::NAN, ..Impairment::default() }.checked().is_err());
        assert!(Impairment { loss: 0.25, ..Impairment::default() }.checked().is_ok());
    }
}
