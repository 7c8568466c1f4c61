//! Pacing that never holds audio behind video.
//!
//! The library's pacer is one queue for everything: an audio packet sent just after a keyframe waits
//! until the whole frame has drained at the paced rate (30 kB at 2.5 x 80 kbit/s is more than a
//! second) and reaches the receiver after its playout time, where it is as good as lost. As in
//! libwebrtc, audio goes out at once and video is paced: audio's bits are still charged to the budget,
//! so the video behind it makes room. RTCP is not paced either (feedback is only useful while fresh).
//!
//! It also sends congestion control's probes ([`ProbeOrder`]): copies of recent video over RTX, on top of
//! the media, while the video queue is empty. Every RTX packet leaves numbered by it, the NACK
//! responder's retransmissions and the probes alike, so that the two share one sequence of numbers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, AttributedPacket, Interceptor, Pacer, Packet, StreamInfo, TaggedPacket};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;

use crate::repair::repair_packet;

/// The most video packets held before new ones are refused (the library's limit too); at 720p that is
/// seconds of video, which congestion control never lets build up.
const QUEUE_LIMIT: usize = 4096;

/// What the pacer starts at before congestion control's first estimate arrives.
const FIRST_BITRATE_BPS: f64 = 1_000_000.0;

/// Retransmissions may take this share of the pacing rate (with the pacer at 2.5 times the estimate,
/// half the estimate) ...
const RETRANSMISSION_SHARE: f64 = 0.2;
/// ... gathering at most this many bits while there are none; beyond it they are dropped. On a path that
/// congestion made lossy, unbounded retransmissions (each asked for more than once, and again when lost)
/// sent nearly twice the narrow link's rate and kept it lossy.
const RETRANSMISSION_BURST_BITS: f64 = 8.0 * 1_200.0 * 8.0;
/// How many recent video packets are kept to be copied in probes.
const RECENT_FOR_PROBES: usize = 64;
/// While probing, the pacer wakes this often to send the next copy.
const PROBE_TICK: Duration = Duration::from_millis(2);
/// The most probe bits that may gather between two sends (a few packets), so that a late wake-up does not
/// send a burst; a probe starts with none.
const PROBE_BURST_BITS: f64 = 4.0 * 1_200.0 * 8.0;

/// Congestion control's request for probing traffic: this many bits per second on top of the media, until
/// the instant given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProbeOrder {
    pub(crate) until: Instant,
    pub(crate) extra_bps: f64,
}

/// Where congestion control leaves its probe order for the pacer (both sit in one link's chain).
pub(crate) type ProbeOrders = Arc<Mutex<Option<ProbeOrder>>>;

/// A video stream's RTX stream.
#[derive(Debug, Clone, Copy)]
struct Repair {
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
}

/// See the module documentation. It takes the place of the library's pacer (`Slot::Pacer`).
pub(crate) struct AudioFirstPacer {
    bucket: Pacer,
    /// The local audio streams' SSRCs, from the streams bound to the chain.
    audio: HashSet<u32>,
    /// Each video stream's RTX stream, by the video stream's SSRC ...
    repairs: HashMap<u32, Repair>,
    /// ... and the video stream of each RTX stream, by the RTX stream's SSRC.
    repaired: HashMap<u32, u32>,
    /// The last video packets sent, to copy in probes, and which to copy next.
    recent: VecDeque<(TransportContext, rtp::Packet)>,
    next_copy: usize,
    orders: ProbeOrders,
    /// The order being sent, and what it may send (a bucket at its rate, starting empty).
    probe: Option<(ProbeOrder, Pacer)>,
    /// What retransmissions may send: a bucket at [`RETRANSMISSION_SHARE`] of the pacing rate.
    retransmissions: Pacer,
    /// Retransmissions dropped for want of budget, for the log.
    retransmissions_dropped: u64,
    /// The latest instant the pacer was given (a wake-up's, a packet's).
    last_seen: Option<Instant>,
    /// Video waiting for the budget, in order.
    video: VecDeque<TaggedPacket>,
    /// Ready to go on towards the wire: audio, RTCP and the video the budget released.
    outbound: VecDeque<TaggedPacket>,
    inbound: VecDeque<TaggedPacket>,
}

impl AudioFirstPacer {
    /// A pacer that reads congestion control's probe orders from `orders`.
    pub(crate) fn new(orders: ProbeOrders) -> Self {
        Self {
            bucket: Pacer::new(FIRST_BITRATE_BPS),
            audio: HashSet::new(),
            repairs: HashMap::new(),
            repaired: HashMap::new(),
            recent: VecDeque::with_capacity(RECENT_FOR_PROBES),
            next_copy: 0,
            orders,
            probe: None,
            retransmissions: retransmission_budget(),
            retransmissions_dropped: 0,
            last_seen: None,
            video: VecDeque::new(),
            outbound: VecDeque::new(),
            inbound: VecDeque::new(),
        }
    }

    fn bits_of(packet: &TaggedPacket) -> f64 {
        match &packet.message.packet {
            Packet::Rtp(rtp) => (rtp.marshal_size() * 8) as f64,
            _ => 0.0,
        }
    }

    /// Whether a retransmission fits the retransmissions' budget (charging it if so).
    fn retransmission_allowed(&mut self, packet: &TaggedPacket) -> bool {
        self.retransmissions.refill(packet.now);
        let bits = Self::bits_of(packet);
        let allowed = self.retransmissions.can_afford(bits);
        if allowed {
            self.retransmissions.consume(bits);
        }
        allowed
    }

    /// A video packet leaves: an RTX packet gets the next number of its stream; a video packet with an RTX
    /// stream is kept for probes.
    fn leaving(&mut self, mut packet: TaggedPacket, now: Instant) {
        if let Packet::Rtp(rtp) = &mut packet.message.packet {
            if let Some(video) = self.repaired.get(&rtp.header.ssrc)
                && let Some(repair) = self.repairs.get_mut(video)
            {
                rtp.header.sequence_number = repair.next_sequence;
                repair.next_sequence = repair.next_sequence.wrapping_add(1);
            } else if self.repairs.contains_key(&rtp.header.ssrc) {
                if self.recent.len() == RECENT_FOR_PROBES {
                    self.recent.pop_front();
                }
                self.recent.push_back((packet.transport, rtp.clone()));
            }
        }
        // What is wire-side of here (the send history congestion control reads) must see when the packet
        // left, not when it was queued, or the queueing is charged to the network.
        packet.now = now;
        self.outbound.push_back(packet);
    }

    /// Sends what the probe order allows since the last call, while no video waits.
    fn probe(&mut self, now: Instant) {
        let order = *crate::lock(&self.orders);
        let Some(order) = order.filter(|order| now < order.until) else {
            self.probe = None;
            return;
        };
        let budget = match &mut self.probe {
            Some((running, budget)) if *running == order => budget,
            _ => {
                // Empty, filling from the pacer's last wake-up.
                let mut budget = Pacer::new(order.extra_bps).with_burst_bits(PROBE_BURST_BITS);
                budget.refill(self.last_seen.unwrap_or(now));
                budget.consume(budget.budget_bits());
                &mut self.probe.insert((order, budget)).1
            }
        };
        budget.refill(now);
        while !self.recent.is_empty() && self.video.is_empty() {
            let (transport, original) = &self.recent[self.next_copy % self.recent.len()];
            let Some(repair) = self.repairs.get_mut(&original.header.ssrc) else { break };
            let bits = ((original.marshal_size() + 2) * 8) as f64;
            if !budget.can_afford(bits) {
                break;
            }
            budget.consume(bits);
            self.next_copy = self.next_copy.wrapping_add(1);
            let copy = repair_packet(original, repair.ssrc, repair.payload_type, repair.next_sequence);
            repair.next_sequence = repair.next_sequence.wrapping_add(1);
            self.outbound.push_back(TaggedPacket {
                now,
                transport: *transport,
                message: AttributedPacket::new(Packet::Rtp(copy)),
            });
        }
    }
}

/// The retransmissions' bucket, full to start with: a call's first losses come together. (The library's
/// bucket starts with a tenth of a second of its rate, so it is made at ten times the burst's rate and then
/// set to the retransmissions' own.)
fn retransmission_budget() -> Pacer {
    let mut budget = Pacer::new(RETRANSMISSION_BURST_BITS * 10.0).with_burst_bits(RETRANSMISSION_BURST_BITS);
    budget.set_target_bitrate(FIRST_BITRATE_BPS * RETRANSMISSION_SHARE);
    budget
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for AudioFirstPacer {
    queued_protocol!();

    fn handle_read(&mut self, message: TaggedPacket) -> Result<(), Error> {
        // Congestion control sits on the wire side; its estimate rides inbound packets past here.
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            message.message.get(&Attribute::TargetBitrateChanged { bits_per_second: 0.0 })
        {
            self.bucket.set_target_bitrate(*bits_per_second);
            self.retransmissions.set_target_bitrate(*bits_per_second * RETRANSMISSION_SHARE);
        }
        self.inbound.push_back(message);
        Ok(())
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Error> {
        self.last_seen = Some(self.last_seen.map_or(message.now, |last| last.max(message.now)));
        let Packet::Rtp(rtp) = &message.message.packet else {
            self.outbound.push_back(message); // RTCP
            return Ok(());
        };
        let audio = self.audio.contains(&rtp.header.ssrc);
        self.bucket.refill(message.now);
        if audio {
            self.bucket.consume(Self::bits_of(&message));
            self.outbound.push_back(message);
        } else if self.repaired.contains_key(&rtp.header.ssrc) && !self.retransmission_allowed(&message) {
            self.retransmissions_dropped += 1;
            if self.retransmissions_dropped.is_power_of_two() {
                tracing::debug!(dropped = self.retransmissions_dropped, "retransmissions over their budget dropped");
            }
        } else if self.video.len() < QUEUE_LIMIT {
            self.video.push_back(message);
        }
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.bucket.refill(now);
        while let Some(head) = self.video.front() {
            let bits = Self::bits_of(head);
            if !self.bucket.can_release(bits) {
                break;
            }
            let packet = self.video.pop_front().expect("front just checked");
            self.bucket.consume(bits);
            self.leaving(packet, now);
        }
        self.probe(now);
        self.last_seen = Some(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let media = self.video.front().and_then(|head| self.bucket.releasable_at(Self::bits_of(head)));
        // A probe order runs: wake every few milliseconds to send its next copies.
        let ordered =
            crate::lock(&self.orders).is_some_and(|order| self.last_seen.is_some_and(|last| last < order.until));
        let probe = self.last_seen.map(|last| last + PROBE_TICK).filter(|_| ordered);
        match (media, probe) {
            (Some(media), Some(probe)) => Some(media.min(probe)),
            (media, probe) => media.or(probe),
        }
    }
}

impl Interceptor for AudioFirstPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio.insert(info.ssrc);
        }
        if let (Some(ssrc), Some(payload_type)) = (info.ssrc_rtx, info.payload_type_rtx) {
            self.repairs.insert(info.ssrc, Repair { ssrc, payload_type, next_sequence: ssrc as u16 });
            self.repaired.insert(ssrc, info.ssrc);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio.remove(&info.ssrc);
        if let Some(repair) = self.repairs.remove(&info.ssrc) {
            self.repaired.remove(&repair.ssrc);
            self.recent.retain(|(_, packet)| packet.header.ssrc != info.ssrc);
        }
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rtc::interceptor::AttributedPacket;
    use rtc::rtp;
    use rtc::shared::TransportContext;

    use super::*;

    fn packet(ssrc: u32, sequence_number: u16, bytes: usize, now: Instant) -> TaggedPacket {
        let rtp = rtp::Packet {
            header: rtp::header::Header { ssrc, sequence_number, ..Default::default() },
            payload: vec![0u8; bytes].into(),
        };
        TaggedPacket { now, transport: TransportContext::default(), message: AttributedPacket::new(Packet::Rtp(rtp)) }
    }

    fn stream(ssrc: u32, mime_type: &str) -> StreamInfo {
        StreamInfo { ssrc, mime_type: mime_type.to_owned(), ..Default::default() }
    }

    fn drain(pacer: &mut AudioFirstPacer) -> Vec<(u32, u16)> {
        std::iter::from_fn(|| pacer.poll_write())
            .map(|p| match p.message.packet {
                Packet::Rtp(rtp) => (rtp.header.ssrc, rtp.header.sequence_number),
                _ => (0, 0),
            })
            .collect()
    }

    #[test]
    fn audio_passes_a_keyframe_queued_at_the_paced_rate() {
        const AUDIO: u32 = 1;
        const VIDEO: u32 = 2;
        let start = Instant::now();
        let mut pacer = AudioFirstPacer::new(ProbeOrders::default());
        pacer.bucket.set_target_bitrate(200_000.0);
        pacer.bind_local_stream(&stream(AUDIO, "audio/opus"));
        pacer.bind_local_stream(&stream(VIDEO, "video/VP8"));

        // A 30-packet keyframe (about 1.4 s at 200 kbit/s), then an audio packet.
        for sequence in 0..30 {
            pacer.handle_write(packet(VIDEO, sequence, 1_200, start)).unwrap();
        }
        pacer.handle_timeout(start).unwrap();
        pacer.handle_write(packet(AUDIO, 7, 100, start)).unwrap();
        let first = drain(&mut pacer);
        assert!(first.contains(&(AUDIO, 7)), "audio went at once: {first:?}");
        assert!(first.iter().filter(|(ssrc, _)| *ssrc == VIDEO).count() < 5, "video is paced: {first:?}");

        // The rest of the video leaves in order, paced: not all of it after 100 ms, all of it later.
        let mut sent: Vec<u16> = first.iter().filter(|(ssrc, _)| *ssrc == VIDEO).map(|(_, s)| *s).collect();
        let mut now = start;
        while let Some(next) = pacer.poll_timeout() {
            assert!(next > now, "a deadline in the future");
            now = next;
            pacer.handle_timeout(now).unwrap();
            sent.extend(drain(&mut pacer).into_iter().map(|(_, s)| s));
        }
        assert_eq!(sent, (0..30).collect::<Vec<_>>());
        let took = now - start;
        assert!(took > Duration::from_millis(1_200) && took < Duration::from_millis(1_600), "{took:?}");
    }

    #[test]
    fn audio_counts_against_the_budget_and_rtcp_is_never_held() {
        let start = Instant::now();
        let mut pacer = AudioFirstPacer::new(ProbeOrders::default());
        pacer.bucket.set_target_bitrate(100_000.0);
        pacer.bind_local_stream(&stream(1, "audio/opus"));
        let full = pacer.bucket.budget_bits();
        pacer.handle_write(packet(1, 0, 988, start)).unwrap();
        assert!(pacer.bucket.budget_bits() < full - 7_900.0, "audio's bits were charged");
        let report = rtc::rtcp::receiver_report::ReceiverReport::default();
        pacer
            .handle_write(TaggedPacket {
                now: start,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(report)])),
            })
            .unwrap();
        assert_eq!(drain(&mut pacer).len(), 2);
        // Once unbound, the stream is paced like video.
        pacer.unbind_local_stream(&stream(1, "audio/opus"));
        pacer.handle_write(packet(1, 1, 988, start)).unwrap();
        assert!(drain(&mut pacer).is_empty());
    }

    #[test]
    fn a_probe_sends_copies_of_recent_video_over_rtx_numbered_with_the_retransmissions() {
        const VIDEO: u32 = 2;
        const REPAIR: u32 = 3;
        let start = Instant::now();
        let orders = ProbeOrders::default();
        let mut pacer = AudioFirstPacer::new(orders.clone());
        pacer.bucket.set_target_bitrate(10_000_000.0);
        pacer.bind_local_stream(&StreamInfo {
            ssrc: VIDEO,
            ssrc_rtx: Some(REPAIR),
            payload_type_rtx: Some(97),
            mime_type: "video/VP8".to_owned(),
            ..Default::default()
        });
        for sequence in 0..4 {
            pacer.handle_write(packet(VIDEO, sequence, 1_000, start)).unwrap();
        }
        // A retransmission from the NACK responder, numbered by it.
        pacer.handle_write(packet(REPAIR, 500, 1_002, start)).unwrap();
        pacer.handle_timeout(start).unwrap();
        let media = drain(&mut pacer);
        let retransmission = media.iter().find(|(ssrc, _)| *ssrc == REPAIR).expect("the retransmission").1;
        assert_eq!(pacer.poll_timeout(), None, "nothing to do without an order");

        // 800 kbit/s for 100 ms: ten copies of about 1 000 bytes.
        *crate::lock(&orders) = Some(ProbeOrder { until: start + Duration::from_millis(100), extra_bps: 800_000.0 });
        let mut copies = Vec::new();
        let mut now = start;
        while let Some(next) = pacer.poll_timeout() {
            now = next;
            pacer.handle_timeout(now).unwrap();
            copies.extend(std::iter::from_fn(|| pacer.poll_write()).map(|p| match p.message.packet {
                Packet::Rtp(rtp) => rtp,
                _ => panic!("RTP only"),
            }));
        }
        assert!(now >= start + Duration::from_millis(100), "probed until the order ran out");
        assert!((9..=11).contains(&copies.len()), "{} copies", copies.len());
        for (n, copy) in copies.iter().enumerate() {
            assert_eq!((copy.header.ssrc, copy.header.payload_type), (REPAIR, 97));
            assert_eq!(copy.header.sequence_number, retransmission.wrapping_add(1 + n as u16), "one sequence");
            let original = u16::from_be_bytes([copy.payload[0], copy.payload[1]]);
            assert_eq!(original, n as u16 % 4, "copies of the recent video in turn");
            assert_eq!(copy.payload.len(), 1_002);
        }
    }

    #[test]
    fn retransmissions_start_with_a_full_burst_and_then_keep_to_their_share() {
        const VIDEO: u32 = 2;
        const REPAIR: u32 = 3;
        let start = Instant::now();
        let mut pacer = AudioFirstPacer::new(ProbeOrders::default());
        pacer.bind_local_stream(&StreamInfo {
            ssrc: VIDEO,
            ssrc_rtx: Some(REPAIR),
            payload_type_rtx: Some(97),
            mime_type: "video/VP8".to_owned(),
            ..Default::default()
        });
        let queued = |pacer: &AudioFirstPacer| pacer.video.len();
        // 988 bytes of payload and a 12-byte header: 8 000 bits each, so the burst holds nine.
        for sequence in 0..12 {
            pacer.handle_write(packet(REPAIR, sequence, 988, start)).unwrap();
        }
        assert_eq!(queued(&pacer), 9, "the burst at once, the rest dropped");
        // A tenth of a second at 0.2 x the first pacing rate (1 Mbit/s) adds 20 000 bits to the 4 800 left:
        // three more.
        for sequence in 12..16 {
            pacer.handle_write(packet(REPAIR, sequence, 988, start + Duration::from_millis(100))).unwrap();
        }
        assert_eq!(queued(&pacer), 12);
    }
}
