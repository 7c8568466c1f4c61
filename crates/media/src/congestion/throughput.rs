//! How many bits a window of packets carried: what was acknowledged by departure time, and what the
//! bottleneck delivered by arrival time.

use std::collections::VecDeque;
use std::time::Duration;

/// Bits per second over the last `span` of some timeline (departures here, arrivals at the receiver),
/// once the packets seen cover a quarter of it (over what they cover, until it is whole).
#[derive(Debug)]
pub(crate) struct Throughput {
    span: Duration,
    /// Instant on the timeline and size of each packet, oldest first.
    packets: VecDeque<(Duration, usize)>,
    bytes: usize,
    /// The earliest instant ever added: until a quarter span has passed, there is no rate.
    first: Option<Duration>,
}

impl Throughput {
    /// A rate measured over the last `span`.
    pub(crate) fn new(span: Duration) -> Self {
        Self { span, packets: VecDeque::new(), bytes: 0, first: None }
    }

    /// Adds a packet of `size` bytes at `at`. Packets may come slightly out of order (arrivals); a packet
    /// older than the window is ignored.
    pub(crate) fn add(&mut self, at: Duration, size: usize) {
        self.first = Some(self.first.map_or(at, |first| first.min(at)));
        let latest = self.packets.back().map_or(at, |&(latest, _)| latest.max(at));
        if latest.saturating_sub(at) > self.span {
            return;
        }
        self.packets.push_back((latest.max(at), size));
        self.bytes += size;
        while let Some(&(oldest, size)) = self.packets.front()
            && latest.saturating_sub(oldest) > self.span
        {
            self.packets.pop_front();
            self.bytes -= size;
        }
    }

    /// Bits per second over the last span, once a quarter span has been seen.
    pub(crate) fn bits_per_second(&self) -> Option<f64> {
        let (first, &(latest, _)) = (self.first?, self.packets.back()?);
        let covered = latest.saturating_sub(first).min(self.span);
        (covered >= self.span / 4).then(|| self.bytes as f64 * 8.0 / covered.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_needs_a_quarter_span_then_follows_the_last_one() {
        let mut rate = Throughput::new(Duration::from_secs(1));
        for i in 0..20 {
            rate.add(Duration::from_millis(i * 10), 1000);
        }
        assert_eq!(rate.bits_per_second(), None, "a fifth of a span");
        for i in 20..50 {
            rate.add(Duration::from_millis(i * 10), 1000);
        }
        // 50 packets over 490 ms.
        let bps = rate.bits_per_second().expect("half a span");
        assert!((800_000.0..=820_000.0).contains(&bps), "{bps}");
        // Then 100 packets of 1000 bytes a second for two seconds: 800 kbit/s.
        for i in 0..200 {
            rate.add(Duration::from_millis(500 + i * 10), 1000);
        }
        let bps = rate.bits_per_second().expect("a whole span");
        assert!((780_000.0..=820_000.0).contains(&bps), "{bps}");
    }

    #[test]
    fn a_late_packet_counts_at_the_latest_instant_and_a_stale_one_not_at_all() {
        let mut rate = Throughput::new(Duration::from_secs(1));
        rate.add(Duration::from_secs(5), 1000);
        rate.add(Duration::from_millis(4900), 1000);
        rate.add(Duration::from_secs(3), 1000);
        rate.add(Duration::from_secs(6), 1000);
        // The window ends at 6 s and starts at 5 s: three packets of 1000 bytes (the stale one is left out).
        assert_eq!(rate.bits_per_second(), Some(24_000.0));
    }
}
