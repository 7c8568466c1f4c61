//! An interceptor that lets keyframe requests through to the application.
//!
//! webrtc 0.21 ends inbound RTCP at its interceptors; a PLI or FIR from the receiver of our video would
//! never reach the encoder. This interceptor, placed last, keeps exactly those packets and marks them for
//! delivery, so a local track's `poll` yields them and the sender can answer with a keyframe.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where in the interceptor chain it sits: after the built-in ones, which act on all RTCP first.
pub(crate) const SLOT: usize = 14_000;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct KeyframeRequests {
    inbound: VecDeque<TaggedPacket>,
    outbound: VecDeque<TaggedPacket>,
}

fn asks_for_keyframe(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    queued_protocol!();

    fn handle_read(&mut self, mut message: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &message.message.packet {
            let wanted: Vec<_> = packets.iter().filter(|p| asks_for_keyframe(p.as_ref())).cloned().collect();
            if wanted.is_empty() {
                return Ok(()); // reports, NACKs, feedback: the other interceptors have used them
            }
            message.message.packet = Packet::Rtcp(wanted);
            message.message.add(Attribute::DeliverToApplication);
        }
        self.inbound.push_back(message);
        Ok(())
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Error> {
        self.outbound.push_back(message);
        Ok(())
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// When a receiver may ask for a keyframe again. Each request is answered with a large frame; on a
/// narrow path that frame can itself be lost, and asking again at a fixed short interval then fills
/// the path with keyframes that are all lost (seen under a 400 kbit/s shaper: no picture for 15 s).
/// So the wait doubles with each request until a keyframe arrives.
#[derive(Debug)]
pub(crate) struct RequestPacing {
    last: Option<Instant>,
    wait: std::time::Duration,
}

/// The first wait, and the longest.
const FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(300);
const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_millis(2_400);

impl Default for RequestPacing {
    fn default() -> Self {
        Self { last: None, wait: FIRST_WAIT }
    }
}

impl RequestPacing {
    /// Whether a request may go now; if so, it counts as made.
    pub(crate) fn may_request(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.wait => false,
            Some(_) => {
                self.wait = (self.wait * 2).min(LONGEST_WAIT);
                self.last = Some(now);
                true
            }
            None => {
                self.last = Some(now);
                true
            }
        }
    }

    /// A keyframe arrived: the next loss may ask again quickly.
    pub(crate) fn keyframe_arrived(&mut self) {
        self.wait = FIRST_WAIT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn requests_back_off_until_a_keyframe_arrives() {
        let start = Instant::now();
        let mut pacing = RequestPacing::default();
        let at = |ms| start + Duration::from_millis(ms);
        assert!(pacing.may_request(at(0)));
        assert!(!pacing.may_request(at(200)));
        assert!(pacing.may_request(at(300)), "first wait 300 ms");
        assert!(!pacing.may_request(at(800)));
        assert!(pacing.may_request(at(900)), "then 600 ms");
        assert!(!pacing.may_request(at(2_000)));
        assert!(pacing.may_request(at(2_100)), "then 1.2 s");
        assert!(pacing.may_request(at(4_500)), "then 2.4 s");
        assert!(!pacing.may_request(at(6_800)), "at most 2.4 s");
        assert!(pacing.may_request(at(6_900)));
        pacing.keyframe_arrived();
        assert!(pacing.may_request(at(7_200)), "back to 300 ms");
    }
}
