//! Congestion control on simulated paths, faster than real time: a sender that sends what the estimate
//! allows (frames every 33 ms, paced), a bottleneck with a rate and a queue of at most 150 ms (as a token
//! bucket shaper), random loss behind it, delay with jitter that keeps packets in order, and feedback
//! every 50 ms that takes the way back.

use std::collections::VecDeque;

use super::*;
use rtc::interceptor::PacketReport;

/// One millisecond, the simulation's step.
const TICK: Duration = Duration::from_millis(1);
/// A shaper's queue as `tc tbf ... latency 150ms` keeps it: what would wait longer is dropped.
const QUEUE_LIMIT: Duration = Duration::from_millis(150);
const PACKET: usize = 1200;

/// A path: its rate (which may change over time), one-way delay, jitter and random loss.
struct Path {
    rate_bps: Box<dyn Fn(Duration) -> f64>,
    /// The longest a packet may wait in the bottleneck's queue.
    queue: Duration,
    one_way: Duration,
    jitter: Duration,
    loss: f64,
}

/// What happened over a simulated call.
#[derive(Default)]
struct Run {
    /// (time, estimate bps), every 100 ms.
    estimates: Vec<(Duration, f64)>,
    /// (time, bytes) of every packet that reached the receiver.
    arrivals: Vec<(Duration, usize)>,
    /// (time, how long the packet waited in the bottleneck's queue).
    queueing: Vec<(Duration, Duration)>,
    /// When each packet was sent, and when each that arrived was sent.
    sent: Vec<Duration>,
    delivered_sent: Vec<Duration>,
}

impl Run {
    /// The estimate at `at` (the last sample before it).
    fn estimate_at(&self, at: Duration) -> f64 {
        self.estimates.iter().take_while(|(t, _)| *t <= at).last().map_or(0.0, |(_, bps)| *bps)
    }

    /// The first instant from `from` on at which `check` holds for the estimate.
    fn first_estimate(&self, from: Duration, check: impl Fn(f64) -> bool) -> Option<Duration> {
        self.estimates.iter().find(|(t, bps)| *t >= from && check(*bps)).map(|(t, _)| *t - from)
    }

    /// What reached the receiver between `from` and `to`, bits per second.
    fn received_bps(&self, from: Duration, to: Duration) -> f64 {
        let bytes: usize = self.arrivals.iter().filter(|(t, _)| (from..to).contains(t)).map(|(_, b)| b).sum();
        bytes as f64 * 8.0 / (to - from).as_secs_f64()
    }

    /// The share of packets sent between `from` and `to` that never arrived.
    fn lost(&self, from: Duration, to: Duration) -> f64 {
        let sent = self.sent.iter().filter(|t| (from..to).contains(*t)).count();
        let arrived = self.delivered_sent.iter().filter(|t| (from..to).contains(*t)).count();
        1.0 - arrived as f64 / sent.max(1) as f64
    }

    /// The longest any packet waited in the queue between `from` and `to`.
    fn worst_queueing(&self, from: Duration, to: Duration) -> Duration {
        self.queueing.iter().filter(|(t, _)| (from..to).contains(t)).map(|(_, q)| *q).max().unwrap_or_default()
    }
}

/// A seeded xorshift: the same loss and jitter every run.
struct Random(u64);

impl Random {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Simulates `seconds` of a call starting at [`START_BPS`], wanting at most `max_bps` (of which it
/// sends `sends(estimate)`: all of it for a hard picture, less for an easy one) across `path`.
fn simulate(path: &Path, seconds: u64, max_bps: f64, sends: impl Fn(f64) -> f64) -> (Run, CongestionControl) {
    let epoch = Instant::now();
    let published = Arc::new(AtomicU64::new(0));
    let orders = ProbeOrders::default();
    let mut control = CongestionControl::new(START_BPS, 80_000.0, max_bps, published.clone(), orders.clone());
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let mut run = Run::default();
    // Sender: packets waiting for the pacer, and the pacer's budget in bytes.
    let mut paced: VecDeque<usize> = VecDeque::new();
    let mut pacer_budget = 0.0;
    let mut probe_budget = 0.0;
    // Every packet sent: (departure, size); the index is its transport-wide sequence number.
    let mut sent: Vec<(Duration, usize)> = Vec::new();
    // Bottleneck queue: (sequence, entered), and the shaper's budget in bytes.
    let mut queue: VecDeque<(usize, Duration)> = VecDeque::new();
    let mut queued_bytes = 0usize;
    let mut shaper_budget = 0.0;
    // On the way: (sequence, arrival at the receiver), in order.
    let mut flying: VecDeque<(usize, Duration)> = VecDeque::new();
    let mut last_arrival = Duration::ZERO;
    // Receiver: what arrived since the last feedback, and the next sequence not yet reported.
    let mut arrived: Vec<Option<Duration>> = Vec::new();
    let mut reported = 0usize;
    // Feedback on the way back: (reaches the sender at, reports of sequences from..to), and the next
    // sequence the sender has had no report of.
    let mut acknowledged = 0usize;
    let mut feedback: VecDeque<(Duration, usize, usize)> = VecDeque::new();

    let mut now = Duration::ZERO;
    while now < Duration::from_secs(seconds) {
        let estimate = f64::from_bits(published.load(Ordering::Relaxed));
        // A frame every 33 ms, in packets of at most 1200 bytes, and an audio packet every 20 ms.
        if now.as_millis().is_multiple_of(33) {
            let mut bytes = (sends(estimate).min(max_bps) / 30.0 / 8.0) as usize;
            while bytes > 0 {
                paced.push_back(bytes.min(PACKET));
                bytes = bytes.saturating_sub(PACKET);
            }
        }
        if now.as_millis().is_multiple_of(20) {
            paced.push_front(100);
        }
        pacer_budget = (pacer_budget + control.target_bitrate() / 8.0 * TICK.as_secs_f64()).min(2.0 * PACKET as f64);
        // Probes, as the pacer sends them: copies on top of the media while no media waits.
        let order = *crate::lock(&orders);
        match order.filter(|order| epoch + now < order.until) {
            Some(order) => {
                probe_budget = (probe_budget + order.extra_bps / 8.0 * TICK.as_secs_f64()).min(4.0 * PACKET as f64)
            }
            None => probe_budget = 0.0,
        }
        let mut probes = VecDeque::new();
        while probe_budget >= PACKET as f64 && paced.is_empty() {
            probe_budget -= PACKET as f64;
            probes.push_back(PACKET);
        }
        while let Some(size) = if paced.front().is_some() && pacer_budget >= 0.0 {
            pacer_budget -= paced[0] as f64;
            paced.pop_front()
        } else {
            probes.pop_front()
        } {
            let sequence = sent.len();
            sent.push((now, size));
            run.sent.push(now);
            let rate = (path.rate_bps)(now);
            if queued_bytes as f64 * 8.0 / rate < path.queue.as_secs_f64() {
                queue.push_back((sequence, now));
                queued_bytes += size;
            }
        }
        // The bottleneck.
        shaper_budget += (path.rate_bps)(now) / 8.0 * TICK.as_secs_f64();
        while let Some(&(sequence, entered)) = queue.front()
            && shaper_budget >= sent[sequence].1 as f64
        {
            queue.pop_front();
            let size = sent[sequence].1;
            queued_bytes -= size;
            shaper_budget -= size as f64;
            run.queueing.push((now, now - entered));
            if random.unit() >= path.loss {
                let jitter = path.jitter.mul_f64(random.unit());
                let arrival = (now + path.one_way + jitter).max(last_arrival);
                last_arrival = arrival;
                flying.push_back((sequence, arrival));
            }
        }
        if queue.is_empty() {
            shaper_budget = shaper_budget.min(PACKET as f64);
        }
        // The receiver.
        while let Some(&(sequence, arrival)) = flying.front()
            && arrival <= now
        {
            flying.pop_front();
            if arrived.len() <= sequence {
                arrived.resize(sequence + 1, None);
            }
            arrived[sequence] = Some(arrival);
            run.arrivals.push((arrival, sent[sequence].1));
            run.delivered_sent.push(sent[sequence].0);
        }
        if now.as_millis().is_multiple_of(50) && arrived.len() > reported {
            // Feedback crosses the same lossy path back.
            if random.unit() >= path.loss {
                feedback.push_back((now + path.one_way, reported, arrived.len()));
            }
            reported = arrived.len();
        }
        // Feedback reaching the sender.
        while let Some(&(at, from, to)) = feedback.front()
            && at <= now
        {
            feedback.pop_front();
            // As the library's history does: what a lost feedback covered is reported with the next one,
            // as not arrived.
            let reports: Vec<PacketReport> = (acknowledged..to)
                .map(|sequence| PacketReport {
                    ssrc: 1,
                    id: sequence as u64,
                    rtp_sequence_number: sequence as u16,
                    is_twcc: true,
                    twcc_sequence_number: sequence as u16,
                    size: sent[sequence].1,
                    arrived: sequence >= from && arrived[sequence].is_some(),
                    departure: epoch + sent[sequence].0,
                    arrival: arrived[sequence].filter(|_| sequence >= from),
                    ecn: Default::default(),
                })
                .collect();
            acknowledged = to;
            control.on_reports(epoch + now, &reports);
        }
        if now.as_millis().is_multiple_of(100) {
            run.estimates.push((now, f64::from_bits(published.load(Ordering::Relaxed))));
        }
        now += TICK;
    }
    (run, control)
}

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

fn steady(bps: f64) -> Box<dyn Fn(Duration) -> f64> {
    Box::new(move |_| bps)
}

#[test]
fn a_call_starts_gently_and_reaches_a_wide_paths_rate_within_seconds() {
    let path =
        Path { queue: QUEUE_LIMIT, rate_bps: steady(5_000_000.0), one_way: secs(0.02), jitter: secs(0.0), loss: 0.0 };
    let (run, control) = simulate(&path, 10, 2_000_000.0, |estimate| estimate);
    assert_eq!(run.estimate_at(Duration::ZERO), START_BPS);
    let reached = run.first_estimate(Duration::ZERO, |bps| bps >= 1_700_000.0).expect("85 % of what it wants");
    eprintln!("reached 1.7 Mbit/s in {reached:?}");
    assert!(reached <= secs(5.0), "reached in {reached:?}");
    assert_eq!(run.estimate_at(secs(9.9)), 2_000_000.0);
    assert_eq!(control.limit(), Limit::Ramping, "nothing pushed back");
}

#[test]
fn a_narrow_link_is_filled_without_a_standing_queue() {
    let path =
        Path { queue: QUEUE_LIMIT, rate_bps: steady(500_000.0), one_way: secs(0.02), jitter: secs(0.0), loss: 0.0 };
    let (run, control) = simulate(&path, 30, 2_000_000.0, |estimate| estimate);
    let used = run.received_bps(secs(10.0), secs(30.0)) / 500_000.0;
    assert!(used >= 0.85, "used {:.0} % of the link", used * 100.0);
    let queueing = run.worst_queueing(secs(10.0), secs(30.0));
    eprintln!("500 kbit/s: {:.0} % used, queueing up to {queueing:?}", used * 100.0);
    assert!(queueing < secs(0.1), "packets waited up to {queueing:?}");
    assert_eq!(control.limit(), Limit::Bandwidth);
}

#[test]
fn a_policer_that_drops_instead_of_queueing_is_answered_by_the_loss_half() {
    let path = Path {
        queue: Duration::from_millis(30),
        rate_bps: steady(500_000.0),
        one_way: secs(0.02),
        jitter: secs(0.0),
        loss: 0.0,
    };
    let (run, control) = simulate(&path, 30, 2_000_000.0, |estimate| estimate);
    let used = run.received_bps(secs(10.0), secs(30.0)) / 500_000.0;
    let lost = run.lost(secs(10.0), secs(30.0));
    eprintln!("a 500 kbit/s policer: {:.0} % used, {:.1} % lost", used * 100.0, lost * 100.0);
    assert!(used >= 0.7, "used {:.0} % of the link", used * 100.0);
    // A policer drops whatever exceeds it, so some loss is how the path is found.
    assert!(lost <= 0.15, "lost {:.1} %", lost * 100.0);
    assert_ne!(control.limit(), Limit::Ramping);
}

#[test]
fn random_loss_on_a_long_path_is_not_taken_for_congestion() {
    for loss in [0.10, 0.20] {
        let path =
            Path { queue: QUEUE_LIMIT, rate_bps: steady(5_000_000.0), one_way: secs(0.15), jitter: secs(0.015), loss };
        let (run, _) = simulate(&path, 20, 1_500_000.0, |estimate| estimate);
        let lowest =
            run.estimates.iter().filter(|(t, _)| *t >= secs(8.0)).map(|(_, bps)| *bps).fold(f64::MAX, f64::min);
        eprintln!("{:.0} % loss: lowest estimate {lowest:.0}", loss * 100.0);
        assert!(lowest >= 1_200_000.0, "{:.0} % loss: the estimate fell to {lowest}", loss * 100.0);
    }
}

#[test]
fn a_link_that_narrows_mid_call_is_followed_down_within_two_seconds_and_back_up_within_ten() {
    let rate = |at: Duration| if (secs(10.0)..secs(20.0)).contains(&at) { 300_000.0 } else { 2_500_000.0 };
    let path = Path { queue: QUEUE_LIMIT, rate_bps: Box::new(rate), one_way: secs(0.02), jitter: secs(0.0), loss: 0.0 };
    let (run, _) = simulate(&path, 32, 2_000_000.0, |estimate| estimate);
    assert!(run.estimate_at(secs(9.9)) >= 1_700_000.0, "before: {}", run.estimate_at(secs(9.9)));
    let down = run.first_estimate(secs(10.0), |bps| bps <= 300_000.0).expect("follows it down");
    assert!(down <= secs(2.0), "down after {down:?}");
    let used = run.received_bps(secs(13.0), secs(20.0)) / 300_000.0;
    assert!(used >= 0.8, "used {:.0} % of the narrow link", used * 100.0);
    let up = run.first_estimate(secs(20.0), |bps| bps >= 1_700_000.0).expect("back up");
    eprintln!("2.5 Mbit/s -> 300 kbit/s -> back: down after {down:?}, {:.0} % used, up after {up:?}", used * 100.0);
    assert!(up <= secs(10.0), "back up after {up:?}");
}

#[test]
fn an_easy_picture_follows_a_link_down_and_probes_its_way_back_up() {
    let rate = |at: Duration| if (secs(10.0)..secs(20.0)).contains(&at) { 300_000.0 } else { 2_500_000.0 };
    let path = Path { queue: QUEUE_LIMIT, rate_bps: Box::new(rate), one_way: secs(0.02), jitter: secs(0.0), loss: 0.0 };
    // The encoder makes 60 % of what it is given.
    let (run, _) = simulate(&path, 32, 2_000_000.0, |estimate| 0.6 * estimate);
    let before = run.estimate_at(secs(9.9));
    let down = run.first_estimate(secs(10.0), |bps| bps <= 300_000.0);
    let up = run.first_estimate(secs(20.0), |bps| bps >= 0.85 * before);
    let lost = run.lost(secs(10.0), secs(20.0));
    eprintln!(
        "an easy picture: {before:.0} before, down after {down:?}, back after {up:?}; {:.1} % lost while narrow",
        lost * 100.0
    );
    assert!(before >= 1_000_000.0, "before: {before}");
    assert!(down.is_some_and(|down| down <= secs(2.0)), "down after {down:?}");
    assert!(up.is_some_and(|up| up <= secs(10.0)), "back after {up:?}");
}

#[test]
fn a_call_that_sends_little_finds_a_wide_paths_rate_by_probing() {
    let path =
        Path { queue: QUEUE_LIMIT, rate_bps: steady(5_000_000.0), one_way: secs(0.02), jitter: secs(0.0), loss: 0.0 };
    // An easy picture: 150 kbit/s whatever the estimate.
    let (run, _) = simulate(&path, 20, 2_000_000.0, |_| 150_000.0);
    let reached = run.first_estimate(Duration::ZERO, |bps| bps >= 1_700_000.0);
    let probing = run.received_bps(secs(10.0), secs(20.0)) - 150_000.0 - 40_000.0;
    eprintln!("sending 150 kbit/s: 1.7 Mbit/s reached after {reached:?}; probes cost {probing:.0} bit/s after 10 s");
    assert!(reached.is_some_and(|at| at <= secs(10.0)), "reached after {reached:?}");
    assert!(probing < 60_000.0, "probes cost {probing:.0} bit/s");
}

#[test]
fn probing_a_narrow_path_does_not_lift_the_estimate_far_above_it() {
    let path =
        Path { queue: QUEUE_LIMIT, rate_bps: steady(500_000.0), one_way: secs(0.02), jitter: secs(0.0), loss: 0.0 };
    let (run, _) = simulate(&path, 30, 2_000_000.0, |_| 150_000.0);
    let highest = run.estimates.iter().map(|(_, bps)| *bps).fold(0.0, f64::max);
    let lost = run.lost(Duration::ZERO, secs(30.0));
    let queueing = run.worst_queueing(Duration::ZERO, secs(30.0));
    eprintln!(
        "sending 150 kbit/s on a 500 kbit/s path: highest estimate {highest:.0}, {:.1} % lost, queueing up to {queueing:?}",
        lost * 100.0
    );
    assert!(highest <= 500_000.0, "rose to {highest}");
    assert!(run.estimate_at(secs(29.9)) >= 400_000.0, "found {}", run.estimate_at(secs(29.9)));
    // A probe twice the estimate into a full 150 ms queue may overflow it once or twice.
    assert!(lost <= 0.005, "probes overflowed the queue: {:.1} % lost", lost * 100.0);
}
