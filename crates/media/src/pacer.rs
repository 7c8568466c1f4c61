//! Pacing that never holds audio behind video.
//!
//! The library's pacer is one queue for everything: an audio packet sent just after a keyframe waits
//! until the whole frame has drained at the paced rate (30 kB at 2.5 x 80 kbit/s is more than a
//! second) and reaches the receiver after its playout time, where it is as good as lost. As in
//! libwebrtc, audio goes out at once and video is paced: audio's bits are still charged to the budget,
//! so the video behind it makes room. RTCP is not paced either (feedback is only useful while fresh).

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Pacer, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;

/// The most video packets held before new ones are refused (the library's limit too); at 720p that is
/// seconds of video, which congestion control never lets build up.
const QUEUE_LIMIT: usize = 4096;

/// What the pacer starts at before congestion control's first estimate arrives.
const FIRST_BITRATE_BPS: f64 = 1_000_000.0;

/// See the module documentation. It takes the place of the library's pacer (`Slot::Pacer`).
pub(crate) struct AudioFirstPacer {
    bucket: Pacer,
    /// The local audio streams' SSRCs, from the streams bound to the chain.
    audio: HashSet<u32>,
    /// Video waiting for the budget, in order.
    video: VecDeque<TaggedPacket>,
    /// Ready to go on towards the wire: audio, RTCP and the video the budget released.
    outbound: VecDeque<TaggedPacket>,
    inbound: VecDeque<TaggedPacket>,
}

impl AudioFirstPacer {
    pub(crate) fn new() -> Self {
        Self {
            bucket: Pacer::new(FIRST_BITRATE_BPS),
            audio: HashSet::new(),
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
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for AudioFirstPacer {
    queued_protocol!();

    fn handle_read(&mut self, message: TaggedPacket) -> Result<(), Error> {
        // Congestion control sits on the wire side; its estimate rides inbound packets past here.
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            message.message.get(&Attribute::TargetBitrateChanged { bits_per_second: 0.0 })
        {
            self.bucket.set_target_bitrate(*bits_per_second);
        }
        self.inbound.push_back(message);
        Ok(())
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Error> {
        let Packet::Rtp(rtp) = &message.message.packet else {
            self.outbound.push_back(message); // RTCP
            return Ok(());
        };
        let audio = self.audio.contains(&rtp.header.ssrc);
        self.bucket.refill(message.now);
        if audio {
            self.bucket.consume(Self::bits_of(&message));
            self.outbound.push_back(message);
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
            let mut packet = self.video.pop_front().expect("front just checked");
            self.bucket.consume(bits);
            // What is wire-side of here (the send history congestion control reads) must see when the
            // packet left, not when it was queued, or the queueing is charged to the network.
            packet.now = now;
            self.outbound.push_back(packet);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let head = self.video.front()?;
        self.bucket.releasable_at(Self::bits_of(head))
    }
}

impl Interceptor for AudioFirstPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio.insert(info.ssrc);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio.remove(&info.ssrc);
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
        let mut pacer = AudioFirstPacer::new();
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
        let mut pacer = AudioFirstPacer::new();
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
}
