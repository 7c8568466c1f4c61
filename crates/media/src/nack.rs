//! Asking for lost video packets as soon as they are missed.
//!
//! The library's NACK generator looks for gaps on a fixed timer and repeats at that same interval: a
//! loss waits up to a whole interval before anyone asks for it, and on a path whose round trip is
//! longer than the interval the repeat goes out before the first answer could have come back. As in
//! libwebrtc, this one asks the moment a later packet shows the gap, and asks again only once a round
//! trip has passed without the packet arriving. It takes the library generator's slot.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::repair::original_sequence_number;
use rtc::interceptor::{AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{TransportLayerNack, nack_pairs_from_sequence_numbers};
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use rtc::shared::error::Error;

use crate::video::reorder::SequenceExtender;

/// How many times one packet is asked for. A retransmission follows the packet closely and can be lost
/// in the same burst; at 5 % random loss, two requests left one packet in ~8 000 for good (a freeze
/// until a keyframe every few seconds of 720p), three one in ~160 000. Repeats wait for a round trip,
/// so they are sent only for what really did not come.
pub(crate) const REQUESTS_PER_PACKET: u8 = 3;
/// Each request is sent this many times (see `request_due`).
const COPIES: usize = 3;
/// A round trip to assume until the link has measured one (as on a long path, so repeats are not early).
const UNMEASURED_RTT: Duration = Duration::from_millis(100);
/// Added to the round trip before asking again: the sender's pacing and the receiver's scheduling.
const REPEAT_MARGIN: Duration = Duration::from_millis(10);
/// A jump this large is a restarted stream or an outage, not losses to repair: a keyframe does that.
const MAX_GAP: u64 = 1_000;
/// Packets older than this are of no use to the picture any more.
const MAX_AGE: Duration = Duration::from_secs(1);

/// Our NACKs' sender SSRC, as in our keyframe requests: the media SSRC names the stream; the sender's
/// is informational and a receive-only link has none of its own.
const FEEDBACK_SENDER_SSRC: u32 = 0;

/// The round trip to plan with: the link's measurement in milliseconds (0 until measured) or how long
/// retransmissions have taken to come, whichever is longer (a queue on the path delays them beyond what
/// ICE measured, and asking again before they could come doubles them), else a guess.
pub(crate) fn round_trip(rtt_ms: u32, observed: Option<Duration>) -> Duration {
    match (rtt_ms, observed) {
        (0, Some(observed)) => observed,
        (0, None) => UNMEASURED_RTT,
        (ms, observed) => Duration::from_millis(u64::from(ms)).max(observed.unwrap_or_default()),
    }
}

/// How long to wait for a requested packet before asking again (see [`round_trip`]).
pub(crate) fn repeat_after(rtt_ms: u32, observed: Option<Duration>) -> Duration {
    round_trip(rtt_ms, observed) + REPEAT_MARGIN
}

/// A packet not yet received.
#[derive(Debug, Clone, Copy)]
struct Missing {
    noticed: Instant,
    /// When to ask (again), while requests remain.
    due: Instant,
    requests: u8,
    /// When it was last asked for.
    asked: Option<Instant>,
}

/// What an arriving packet showed.
#[derive(Debug, PartialEq)]
enum Arrival {
    /// Packets before it are missing.
    Gap,
    /// It was asked for, and came this long after the last request.
    Repaired(Duration),
    /// Nothing to act on.
    InOrder,
}

/// What one remote video stream has delivered.
#[derive(Debug, Default)]
struct Stream {
    sequences: SequenceExtender,
    missing: BTreeMap<u64, Missing>,
}

impl Stream {
    /// Notes an arrival.
    fn arrived(&mut self, sequence: u16, now: Instant) -> Arrival {
        let previous = self.sequences.highest();
        let extended = self.sequences.extend(sequence);
        let Some(highest) = previous else { return Arrival::InOrder };
        if extended <= highest {
            // A retransmission or a late packet.
            return match self.missing.remove(&extended).and_then(|missing| missing.asked) {
                Some(asked) => Arrival::Repaired(now.saturating_duration_since(asked)),
                None => Arrival::InOrder,
            };
        }
        let gap = extended - highest - 1;
        if gap == 0 {
            return Arrival::InOrder;
        }
        if gap > MAX_GAP {
            self.missing.clear();
            return Arrival::InOrder;
        }
        for lost in highest + 1..extended {
            self.missing.insert(lost, Missing { noticed: now, due: now, requests: 0, asked: None });
        }
        Arrival::Gap
    }

    /// The sequence numbers to ask for now, marking them asked; forgets what can no longer help.
    fn take_due(&mut self, now: Instant, repeat: Duration) -> Vec<u16> {
        self.missing.retain(|_, missing| {
            now.saturating_duration_since(missing.noticed) < MAX_AGE
                && (missing.requests < REQUESTS_PER_PACKET || missing.due > now)
        });
        let mut due = Vec::new();
        for (sequence, missing) in &mut self.missing {
            if missing.requests < REQUESTS_PER_PACKET && missing.due <= now {
                missing.requests += 1;
                missing.due = now + repeat;
                missing.asked = Some(now);
                due.push(*sequence as u16);
            }
        }
        due
    }

    /// The next moment something needs doing: a request, or forgetting one that had its last chance.
    fn next_deadline(&self) -> Option<Instant> {
        self.missing.values().map(|missing| missing.due.min(missing.noticed + MAX_AGE)).min()
    }
}

/// See the module documentation.
pub(crate) struct NackRequester {
    /// The link's latest round trip in milliseconds (0 until measured).
    rtt_ms: Arc<AtomicU32>,
    /// How long retransmissions have taken to come (smoothed), for repeats before the link has measured
    /// its round trip: early in a call, on a fast path, that is much sooner than a guess would be.
    observed: Option<Duration>,
    streams: HashMap<u32, Stream>,
    /// RTX streams' SSRCs, and the SSRC of the stream each repairs.
    repairs: HashMap<u32, u32>,
    inbound: VecDeque<TaggedPacket>,
    outbound: VecDeque<TaggedPacket>,
}

impl NackRequester {
    /// Reads the round trip from `rtt_ms`, which the link keeps up to date.
    pub(crate) fn new(rtt_ms: Arc<AtomicU32>) -> Self {
        Self {
            rtt_ms,
            observed: None,
            streams: HashMap::new(),
            repairs: HashMap::new(),
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
        }
    }

    fn request_due(&mut self, now: Instant) {
        let repeat = repeat_after(self.rtt_ms.load(Ordering::Relaxed), self.observed);
        for (&media_ssrc, stream) in &mut self.streams {
            let due = stream.take_due(now, repeat);
            if due.is_empty() {
                continue;
            }
            let nack = TransportLayerNack {
                sender_ssrc: FEEDBACK_SENDER_SSRC,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(&due),
            };
            // Three times, in three packets: a NACK is as likely to be lost as the packet it asks for,
            // and the sender answers each copy, so the retransmission goes three times too. On a path that
            // loses 10 % each way, one try in five failed with single copies (a round trip more of frozen
            // picture, 340 ms on a long path), one in thirty with two (a call of 16 s then still waited
            // three round trips, over a second, for some packet in one run of twelve), one in two hundred
            // with three. Retransmissions are held to a share of the estimate by the pacer.
            for _ in 0..COPIES {
                self.outbound.push_back(TaggedPacket {
                    now,
                    transport: TransportContext::default(),
                    message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack.clone())])),
                });
            }
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for NackRequester {
    queued_protocol!();

    fn handle_read(&mut self, message: TaggedPacket) -> Result<(), Error> {
        // A retransmission over RTX stands for the packet whose number it carries (the library unwraps it
        // after this chain); one without (a probe's padding) repairs nothing.
        let arrival = match &message.message.packet {
            Packet::Rtp(rtp) => match self.repairs.get(&rtp.header.ssrc) {
                Some(&media) => original_sequence_number(&rtp.payload).map(|sequence| (media, sequence)),
                None => Some((rtp.header.ssrc, rtp.header.sequence_number)),
            },
            _ => None,
        };
        if let Some((ssrc, sequence)) = arrival
            && let Some(stream) = self.streams.get_mut(&ssrc)
        {
            match stream.arrived(sequence, message.now) {
                Arrival::Gap => self.request_due(message.now),
                Arrival::Repaired(took) => {
                    self.observed = Some(self.observed.map_or(took, |observed| (observed * 7 + took) / 8));
                }
                Arrival::InOrder => {}
            }
        }
        self.inbound.push_back(message);
        Ok(())
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Error> {
        self.outbound.push_back(message);
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.request_due(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.streams.values().filter_map(Stream::next_deadline).min()
    }
}

impl Interceptor for NackRequester {
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        // Generic NACK only ("nack pli" is a keyframe request).
        if info.rtcp_feedback.iter().any(|feedback| feedback.typ == "nack" && feedback.parameter.is_empty()) {
            self.streams.insert(info.ssrc, Stream::default());
            if let Some(repair) = info.ssrc_rtx {
                self.repairs.insert(repair, info.ssrc);
            }
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
        self.repairs.retain(|_, media| *media != info.ssrc);
    }

    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use rtc::interceptor::RTCPFeedback;
    use rtc::rtp;

    use super::*;

    const VIDEO: u32 = 7;

    /// The RTX stream repairing [`VIDEO`].
    const REPAIR: u32 = 8;

    fn requester(rtt_ms: u32) -> NackRequester {
        let mut requester = NackRequester::new(Arc::new(AtomicU32::new(rtt_ms)));
        let feedback = RTCPFeedback { typ: "nack".to_owned(), parameter: String::new() };
        requester.bind_remote_stream(&StreamInfo {
            ssrc: VIDEO,
            ssrc_rtx: Some(REPAIR),
            rtcp_feedback: vec![feedback],
            ..Default::default()
        });
        requester
    }

    fn arrive(requester: &mut NackRequester, ssrc: u32, sequence_number: u16, now: Instant) {
        arrive_with(requester, ssrc, sequence_number, Vec::new(), now);
    }

    fn arrive_with(requester: &mut NackRequester, ssrc: u32, sequence_number: u16, payload: Vec<u8>, now: Instant) {
        let rtp = rtp::Packet {
            header: rtp::header::Header { ssrc, sequence_number, ..Default::default() },
            payload: payload.into(),
        };
        let packet = TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(rtp)),
        };
        requester.handle_read(packet).unwrap();
        assert!(requester.poll_read().is_some(), "every packet goes on to the application");
    }

    /// The sequence numbers asked for in what the requester wants to send now (each request goes out
    /// [`COPIES`] times: checked here, and counted once).
    fn asked(requester: &mut NackRequester) -> Vec<u16> {
        let all = asked_in_every_copy(requester);
        assert_eq!(all.len() % COPIES, 0, "every request in {COPIES} copies: {all:?}");
        let once = all[..all.len() / COPIES].to_vec();
        assert_eq!(all, once.repeat(COPIES), "copies of one request");
        once
    }

    fn asked_in_every_copy(requester: &mut NackRequester) -> Vec<u16> {
        std::iter::from_fn(|| requester.poll_write())
            .flat_map(|packet| match packet.message.packet {
                Packet::Rtcp(packets) => packets,
                _ => panic!("only NACKs"),
            })
            .flat_map(|packet| {
                let nack = packet.as_any().downcast_ref::<TransportLayerNack>().expect("a NACK").clone();
                assert_eq!(nack.media_ssrc, VIDEO);
                nack.nacks.iter().flat_map(|pair| pair.packet_list()).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Runs the requester's timer up to `until`, returning when each request went out.
    fn run_until(requester: &mut NackRequester, until: Instant) -> Vec<(Instant, Vec<u16>)> {
        let mut sent = Vec::new();
        while let Some(next) = requester.poll_timeout().filter(|next| *next <= until) {
            requester.handle_timeout(next).unwrap();
            let asked = asked(requester);
            if !asked.is_empty() {
                sent.push((next, asked));
            }
        }
        sent
    }

    #[test]
    fn a_packet_repaired_over_rtx_counts_as_arrived_and_a_probe_repairs_nothing() {
        let start = Instant::now();
        let mut requester = requester(40);
        arrive(&mut requester, VIDEO, 100, start);
        arrive(&mut requester, VIDEO, 103, start);
        assert_eq!(asked(&mut requester), vec![101, 102]);
        // 101 comes over RTX (its number first in the payload, the RTX stream's own sequence number in the
        // header); a padding-only RTX probe carries no number.
        arrive_with(&mut requester, REPAIR, 7, vec![0, 101, 0x9d, 0x01], start + Duration::from_millis(41));
        arrive_with(&mut requester, REPAIR, 8, vec![], start + Duration::from_millis(42));
        let repeats = run_until(&mut requester, start + Duration::from_secs(2));
        assert!(repeats.iter().all(|(_, asked)| asked == &vec![102]), "only 102 again: {repeats:?}");
        assert_eq!(repeats.len(), 2);
    }

    #[test]
    fn a_gap_is_asked_for_at_once_and_again_after_a_round_trip() {
        let start = Instant::now();
        let mut requester = requester(40);
        arrive(&mut requester, VIDEO, 100, start);
        arrive(&mut requester, VIDEO, 101, start);
        assert!(asked(&mut requester).is_empty());
        let later = start + Duration::from_millis(5);
        arrive(&mut requester, VIDEO, 104, later);
        assert_eq!(asked(&mut requester), vec![102, 103], "asked with the packet that showed the gap");

        // 103 comes back; 102's retransmissions are lost too, so it is asked for again each round trip
        // and margin, three times in all, and then given up.
        arrive(&mut requester, VIDEO, 103, later + Duration::from_millis(41));
        let repeats = run_until(&mut requester, start + Duration::from_secs(2));
        let again = |ms| (later + Duration::from_millis(ms), vec![102]);
        // The second repeat waits for the 41 ms 103's retransmission took, longer than the 40 ms measured.
        assert_eq!(repeats, vec![again(50), again(101)]);
        assert_eq!(requester.poll_timeout(), None, "nothing left to do");
    }

    #[test]
    fn repeats_follow_the_round_trip_and_nothing_is_asked_for_what_arrives_in_time() {
        let start = Instant::now();
        let mut requester = requester(0);
        // Unmeasured, the round trip is taken as 100 ms; the link's measurement is used once there is one.
        arrive(&mut requester, VIDEO, 12, start);
        arrive(&mut requester, VIDEO, 14, start);
        assert_eq!(asked(&mut requester), vec![13]);
        requester.rtt_ms.store(20, Ordering::Relaxed);
        let repeats = run_until(&mut requester, start + Duration::from_millis(199));
        let again = |ms, sequence| (start + Duration::from_millis(ms), vec![sequence]);
        assert_eq!(repeats, vec![again(110, 13), again(140, 13)]);
        arrive(&mut requester, VIDEO, 16, start + Duration::from_millis(200));
        assert_eq!(asked(&mut requester), vec![15]);
        let repeats = run_until(&mut requester, start + Duration::from_millis(299));
        assert_eq!(repeats, vec![again(230, 15), again(260, 15)]);

        // A packet that was only reordered arrives before the repeat: it is not asked for again.
        arrive(&mut requester, VIDEO, 18, start + Duration::from_millis(300));
        assert_eq!(asked(&mut requester), vec![17]);
        arrive(&mut requester, VIDEO, 17, start + Duration::from_millis(303));
        assert!(run_until(&mut requester, start + Duration::from_secs(2)).is_empty());
        assert_eq!(requester.poll_timeout(), None);
    }

    #[test]
    fn before_the_link_measures_a_round_trip_repeats_follow_how_fast_retransmissions_came() {
        let start = Instant::now();
        let mut requester = requester(0);
        arrive(&mut requester, VIDEO, 1, start);
        arrive(&mut requester, VIDEO, 3, start);
        assert_eq!(asked(&mut requester), vec![2]);
        arrive(&mut requester, VIDEO, 2, start + Duration::from_millis(4)); // repaired in 4 ms
        arrive(&mut requester, VIDEO, 5, start + Duration::from_millis(50));
        assert_eq!(asked(&mut requester), vec![4]);
        let repeats = run_until(&mut requester, start + Duration::from_secs(2));
        let again = |ms| (start + Duration::from_millis(ms), vec![4]);
        assert_eq!(repeats, vec![again(64), again(78)], "4 ms and the margin, not a 100 ms guess");
    }

    #[test]
    fn sequence_numbers_wrap_and_huge_jumps_or_other_streams_are_not_repaired() {
        let start = Instant::now();
        let mut requester = requester(10);
        arrive(&mut requester, VIDEO, 65_534, start);
        arrive(&mut requester, VIDEO, 1, start);
        assert_eq!(asked(&mut requester), vec![65_535, 0]);
        arrive(&mut requester, VIDEO, 65_535, start);
        arrive(&mut requester, VIDEO, 0, start);
        arrive(&mut requester, VIDEO, 30_000, start); // a restarted sender
        arrive(&mut requester, 99, 5, start); // a stream without NACK
        arrive(&mut requester, 99, 9, start);
        assert!(asked(&mut requester).is_empty());
        assert!(run_until(&mut requester, start + Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn packets_too_old_to_help_are_forgotten() {
        let start = Instant::now();
        let mut requester = requester(2_000); // a round trip longer than a packet stays useful
        arrive(&mut requester, VIDEO, 1, start);
        arrive(&mut requester, VIDEO, 3, start);
        assert_eq!(asked(&mut requester), vec![2]);
        assert!(run_until(&mut requester, start + Duration::from_secs(5)).is_empty(), "no repeat after a second");
        assert_eq!(requester.poll_timeout(), None);
    }
}
