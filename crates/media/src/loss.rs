//! Simulated packet loss on the way out, for tests and demonstrations of a bad network.
//!
//! This machine's kernel has no netem, and loss made by a firewall needs root; an interceptor next to the
//! wire drops a share of the outgoing RTP packets after every other part of the stack has counted them as
//! sent, which is what a lossy path does. The choice is made by a seeded generator, so a run can be
//! repeated exactly.

use std::collections::VecDeque;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where in the interceptor chain it sits: closer to the wire than congestion control (1 000), so the
/// packets it drops have been numbered, paced and kept for retransmission.
pub(crate) const SLOT: usize = 100;

/// How much of what a link sends to lose on purpose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedLoss {
    /// The share of outgoing RTP packets dropped, 0.0 to 1.0 (RTCP always gets through).
    pub rate: f64,
    /// Seeds the choice of packets.
    pub seed: u64,
}

/// See the module documentation.
pub(crate) struct LossInterceptor {
    /// Drop when a draw from `0..u64::MAX` falls under this.
    threshold: u64,
    state: u64,
    inbound: VecDeque<TaggedPacket>,
    outbound: VecDeque<TaggedPacket>,
}

impl LossInterceptor {
    pub(crate) fn new(loss: SimulatedLoss) -> Self {
        let threshold = (loss.rate.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        // xorshift has one bad state, zero.
        Self { threshold, state: loss.seed | 1, inbound: VecDeque::new(), outbound: VecDeque::new() }
    }

    /// xorshift64*: small, fast and good enough to choose packets.
    fn draw(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for LossInterceptor {
    queued_protocol!();

    fn handle_read(&mut self, message: TaggedPacket) -> Result<(), Error> {
        self.inbound.push_back(message);
        Ok(())
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Error> {
        if matches!(message.message.packet, Packet::Rtp(_)) && self.draw() < self.threshold {
            return Ok(());
        }
        self.outbound.push_back(message);
        Ok(())
    }
}

impl Interceptor for LossInterceptor {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_dropped_is_the_rate_and_the_seed_repeats_it() {
        let draws = |seed| {
            let mut loss = LossInterceptor::new(SimulatedLoss { rate: 0.1, seed });
            (0..10_000).map(|_| loss.draw() < loss.threshold).collect::<Vec<_>>()
        };
        let dropped = draws(7).iter().filter(|&&d| d).count();
        assert!((900..1100).contains(&dropped), "{dropped} of 10000");
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }
}
