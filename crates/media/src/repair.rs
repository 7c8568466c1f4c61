//! Retransmissions on a stream of their own (RTX, RFC 4588), counted by congestion control.
//!
//! A retransmission on the media stream itself repeats a sequence number the receiver's SRTP has seen
//! or has moved past: a second copy is dropped as a replay, and a packet more than 64 behind the newest
//! is dropped as too old (at 2 Mbit/s that is a quarter of a second of video, less than a long path's
//! round trip). RTX packets have sequence numbers of their own. The library sends them and takes them
//! apart on arrival, but its transport-wide numbering and its congestion control's send history track
//! only the media streams they were told of, so retransmissions and probes would be invisible to
//! congestion control: [`WithRepairStreams`] tells them of each RTX stream too.

use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// The RTX payload type, repairing VP8's 96 (`apt=96`), as browsers number them.
pub(crate) const RTX_PAYLOAD_TYPE: u8 = 97;

/// The original sequence number an RTX packet carries in its first two bytes; `None` for a packet with
/// none (padding).
pub(crate) fn original_sequence_number(payload: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]))
}

/// `original` sent again on an RTX stream (`ssrc`, `payload_type`, its own `sequence_number`): the
/// original's sequence number leads the payload ([`original_sequence_number`] reads it back), the rest of
/// the header is the original's.
pub(crate) fn repair_packet(original: &rtp::Packet, ssrc: u32, payload_type: u8, sequence_number: u16) -> rtp::Packet {
    let mut payload = Vec::with_capacity(original.payload.len() + 2);
    payload.extend_from_slice(&original.header.sequence_number.to_be_bytes());
    payload.extend_from_slice(&original.payload);
    let header = rtp::header::Header { ssrc, payload_type, sequence_number, padding: false, ..original.header.clone() };
    rtp::Packet { header, payload: payload.into() }
}

/// One of the library's interceptors, told of each local stream's RTX stream as of a stream of its own.
pub(crate) struct WithRepairStreams<I>(pub(crate) I);

impl<I> WithRepairStreams<I> {
    /// The RTX stream of `info`, described as a stream of its own with the same header extensions.
    fn repair_stream(info: &StreamInfo) -> Option<StreamInfo> {
        let ssrc = info.ssrc_rtx?;
        Some(StreamInfo { ssrc, payload_type: info.payload_type_rtx?, ssrc_rtx: None, ..info.clone() })
    }
}

impl<I> Protocol<TaggedPacket, TaggedPacket, ()> for WithRepairStreams<I>
where
    I: Protocol<
            TaggedPacket,
            TaggedPacket,
            (),
            Rout = TaggedPacket,
            Wout = TaggedPacket,
            Eout = (),
            Error = Error,
            Time = Instant,
        >,
{
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, message: TaggedPacket) -> Result<(), Error> {
        self.0.handle_read(message)
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.0.poll_read()
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Error> {
        self.0.handle_write(message)
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.0.poll_write()
    }

    fn handle_event(&mut self, event: ()) -> Result<(), Error> {
        self.0.handle_event(event)
    }

    fn poll_event(&mut self) -> Option<()> {
        self.0.poll_event()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.0.handle_timeout(now)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn close(&mut self) -> Result<(), Error> {
        self.0.close()
    }
}

impl<I: Interceptor> Interceptor for WithRepairStreams<I> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.0.bind_local_stream(info);
        if let Some(repair) = Self::repair_stream(info) {
            self.0.bind_local_stream(&repair);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_local_stream(info);
        if let Some(repair) = Self::repair_stream(info) {
            self.0.unbind_local_stream(&repair);
        }
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.bind_remote_stream(info);
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_remote_stream(info);
    }
}

#[cfg(test)]
mod tests {
    use rtc::interceptor::{AttributedPacket, Packet, RTPHeaderExtension, TwccSenderBuilder, TwccSenderInterceptor};
    use rtc::rtp::extension::transport_cc_extension::TransportCcExtension;
    use rtc::shared::TransportContext;
    use rtc::shared::marshal::Unmarshal;

    use super::*;

    const VIDEO: u32 = 10;
    const REPAIR: u32 = 11;
    const EXTENSION_ID: u8 = 5;

    fn sent(sender: &mut WithRepairStreams<TwccSenderInterceptor>, ssrc: u32) -> Option<u16> {
        let rtp = rtp::Packet { header: rtp::header::Header { ssrc, ..Default::default() }, ..Default::default() };
        let packet = TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(rtp)),
        };
        sender.handle_write(packet).unwrap();
        let Packet::Rtp(rtp) = sender.poll_write().expect("passed on").message.packet else { panic!("RTP") };
        let extension = rtp.header.get_extension(EXTENSION_ID)?;
        Some(TransportCcExtension::unmarshal(&mut extension.as_ref()).ok()?.transport_sequence)
    }

    #[test]
    fn retransmissions_are_numbered_for_transport_wide_feedback_like_the_media() {
        let mut sender = WithRepairStreams(TwccSenderBuilder::new().build());
        let info = StreamInfo {
            ssrc: VIDEO,
            ssrc_rtx: Some(REPAIR),
            payload_type: 96,
            payload_type_rtx: Some(RTX_PAYLOAD_TYPE),
            rtp_header_extensions: vec![RTPHeaderExtension {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
                id: u16::from(EXTENSION_ID),
            }],
            ..Default::default()
        };
        sender.bind_local_stream(&info);
        let (first, repair, next) = (sent(&mut sender, VIDEO), sent(&mut sender, REPAIR), sent(&mut sender, VIDEO));
        assert_eq!((first, repair, next), (Some(first.unwrap()), first.map(|n| n + 1), first.map(|n| n + 2)));
        assert_eq!(sent(&mut sender, 99), None, "a stream never bound is left alone");
        sender.unbind_local_stream(&info);
        assert_eq!(sent(&mut sender, REPAIR), None);
    }

    #[test]
    fn the_original_sequence_number_leads_the_payload() {
        assert_eq!(original_sequence_number(&[0x12, 0x34, 0xaa]), Some(0x1234));
        assert_eq!(original_sequence_number(&[0x12]), None);
        let original = rtp::Packet {
            header: rtp::header::Header {
                ssrc: VIDEO,
                sequence_number: 0x1234,
                timestamp: 9000,
                marker: true,
                ..Default::default()
            },
            payload: vec![0xaa, 0xbb].into(),
        };
        let repair = repair_packet(&original, REPAIR, RTX_PAYLOAD_TYPE, 7);
        assert_eq!((repair.header.ssrc, repair.header.payload_type, repair.header.sequence_number), (REPAIR, 97, 7));
        assert_eq!((repair.header.timestamp, repair.header.marker), (9000, true), "the rest of the header kept");
        assert_eq!(original_sequence_number(&repair.payload), Some(0x1234));
        assert_eq!(&repair.payload[2..], &[0xaa, 0xbb]);
    }
}
