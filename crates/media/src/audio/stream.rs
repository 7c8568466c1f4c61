//! Audio on the move: the microphone loop that encodes once for every peer, the receiving jitter buffer
//! that reorders, recovers and conceals, and the slot that holds what was heard.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::opus_codec::{OpusDecoder, OpusEncoder, OpusError};
use super::tone::ToneSource;
use super::{FRAME_SAMPLES, SAMPLE_RATE, dominant_frequency};
use crate::config::MicrophoneConfig;
use crate::devices::sound::SoundInput;
use crate::devices::{DeviceKind, DeviceNotify, DevicePick, Fallback};
use crate::feed::Feed;
use crate::send::LinkSender;

/// How much recent audio a slot keeps for the tone analysis: 100 ms, what its 10 Hz steps need (a
/// longer stretch would cost more and resolve nothing finer).
const KEPT_SAMPLES: usize = SAMPLE_RATE as usize / 10;

/// The most decoded audio a slot queues for a consumer (a speaker or a mirror) before dropping the
/// oldest: 120 ms, so a sender whose clock runs fast never builds up more delay than that.
const QUEUED_SAMPLES: usize = SAMPLE_RATE as usize * 120 / 1000;

/// How much a slot holds before a consumer starts taking from it (again, after running dry): the
/// playout delay that absorbs packets arriving unevenly, 40 ms.
const PLAYOUT_SAMPLES: usize = FRAME_SAMPLES * 2;

/// Packets held back to reorder before a missing one is given up on (3 × 20 ms).
const JITTER_DEPTH: usize = 3;

#[derive(Debug, Default)]
struct Heard {
    recent: VecDeque<i16>,
    /// Decoded audio not yet taken by a consumer.
    queued: VecDeque<i16>,
    /// A consumer is taking from `queued`, which held [`PLAYOUT_SAMPLES`] when it started.
    playing: bool,
    decoded: u64,
    recovered: u64,
    concealed: u64,
    level: f32,
    last_frame: Option<Instant>,
}

/// What arrived from one peer's microphone: counters and the last half second.
#[derive(Debug, Default)]
pub struct AudioSlot {
    heard: Mutex<Heard>,
}

impl AudioSlot {
    /// An empty slot.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn read<T>(&self, f: impl FnOnce(&Heard) -> T) -> T {
        let heard = crate::lock(&self.heard);
        f(&heard)
    }

    /// Frames decoded from packets that arrived.
    pub fn frames_decoded(&self) -> u64 {
        self.read(|h| h.decoded)
    }

    /// Lost frames rebuilt from the next packet's in-band FEC.
    pub fn frames_recovered(&self) -> u64 {
        self.read(|h| h.recovered)
    }

    /// Lost frames invented by the decoder's concealment.
    pub fn frames_concealed(&self) -> u64 {
        self.read(|h| h.concealed)
    }

    /// The loudness now: the latest frame's [`AudioSlot::last_level`], or 0 when nothing arrived for
    /// 100 ms (muted, or gone).
    pub fn level(&self) -> f32 {
        self.read(
            |h| if h.last_frame.is_some_and(|at| at.elapsed() < Duration::from_millis(100)) { h.level } else { 0.0 },
        )
    }

    /// The loudness of the latest frame, however old, 0 (silence) to 1 (full scale), RMS.
    pub fn last_level(&self) -> f32 {
        self.read(|h| h.level)
    }

    /// Records a captured frame (a local microphone's meter); counted as decoded.
    pub fn show(&self, frame: &[i16; FRAME_SAMPLES]) {
        self.push(frame, Decoded::Arrived);
    }

    /// The strongest frequency of the last 100 ms (for checking the tone source).
    pub fn dominant_frequency(&self) -> Option<f32> {
        dominant_frequency(&self.read(|h| h.recent.iter().copied().collect::<Vec<_>>()))
    }

    fn push(&self, frame: &[i16; FRAME_SAMPLES], how: Decoded) {
        let mut heard = crate::lock(&self.heard);
        match how {
            Decoded::Arrived => heard.decoded += 1,
            Decoded::Recovered => heard.recovered += 1,
            Decoded::Concealed => heard.concealed += 1,
        }
        let square_sum: f64 = frame.iter().map(|s| f64::from(*s).powi(2)).sum();
        heard.level = ((square_sum / FRAME_SAMPLES as f64).sqrt() / f64::from(i16::MAX)) as f32;
        heard.last_frame = Some(Instant::now());
        heard.recent.extend(frame.iter().copied());
        let excess = heard.recent.len().saturating_sub(KEPT_SAMPLES);
        heard.recent.drain(..excess);
        heard.queued.extend(frame.iter().copied());
        let excess = heard.queued.len().saturating_sub(QUEUED_SAMPLES);
        heard.queued.drain(..excess);
    }

    /// Takes the oldest 20 ms of decoded audio that no consumer took yet, if there is that much; after
    /// running dry, only once 40 ms have gathered again (so uneven arrival does not become gaps).
    pub fn take_frame(&self) -> Option<[i16; FRAME_SAMPLES]> {
        let mut heard = crate::lock(&self.heard);
        let needed = if heard.playing { FRAME_SAMPLES } else { PLAYOUT_SAMPLES };
        heard.playing = heard.queued.len() >= needed;
        if !heard.playing {
            return None;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        for (out, sample) in frame.iter_mut().zip(heard.queued.drain(..FRAME_SAMPLES)) {
            *out = sample;
        }
        Some(frame)
    }
}

#[derive(Debug, Clone, Copy)]
enum Decoded {
    Arrived,
    Recovered,
    Concealed,
}

/// Orders Opus packets by sequence number, decodes them, and fills gaps from FEC or concealment.
pub(crate) struct AudioReceiver {
    decoder: OpusDecoder,
    /// Packets waiting, by extended (never wrapping) sequence number.
    pending: BTreeMap<u64, Bytes>,
    /// The extended sequence number to play next.
    next: Option<u64>,
    slot: Arc<AudioSlot>,
}

impl AudioReceiver {
    pub(crate) fn new(slot: Arc<AudioSlot>) -> Result<Self, OpusError> {
        Ok(Self { decoder: OpusDecoder::new()?, pending: BTreeMap::new(), next: None, slot })
    }

    fn extend(&self, sequence: u16) -> u64 {
        match self.next {
            None => u64::from(sequence) + (1 << 32),
            Some(next) => {
                let offset = i64::from(sequence.wrapping_sub(next as u16) as i16);
                (next as i64 + offset) as u64
            }
        }
    }

    /// Takes one RTP packet.
    pub(crate) fn packet(&mut self, sequence: u16, payload: Bytes) {
        let extended = self.extend(sequence);
        let next = *self.next.get_or_insert(extended);
        if extended < next {
            return; // too late: its slot was already filled
        }
        self.pending.insert(extended, payload);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(next) = self.next {
            let outcome = if let Some(packet) = self.pending.remove(&next) {
                self.decoder.decode(&packet).map(|frame| (frame, Decoded::Arrived))
            } else if self.pending.len() >= JITTER_DEPTH {
                match self.pending.get(&(next + 1)) {
                    Some(following) => self.decoder.recover(following).map(|frame| (frame, Decoded::Recovered)),
                    None => self.decoder.conceal().map(|frame| (frame, Decoded::Concealed)),
                }
            } else {
                return;
            };
            match outcome {
                Ok((frame, how)) => self.slot.push(&frame, how),
                Err(error) => tracing::debug!(%error, "undecodable audio packet"),
            }
            self.next = Some(next + 1);
        }
    }
}

/// Why the microphone could not start.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The encoder refused its settings.
    #[error("opus: {0}")]
    Opus(#[from] OpusError),
    /// No thread for capturing.
    #[error("microphone thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Where a microphone's sound comes from.
#[derive(Clone, Default)]
pub enum AudioSource {
    /// A sine tone at the microphone's `tone_hz`.
    #[default]
    Tone,
    /// A microphone (the tone stands in when it cannot be used; `notify` hears which is in use).
    Device {
        /// Which microphone.
        pick: DevicePick,
        /// Hears which device is in use and why.
        notify: DeviceNotify,
        /// Echo cancellation, noise suppression and gain control for a real microphone (the tone that
        /// stands in for one is sent as it is).
        processing: Option<super::VoiceProcessing>,
    },
    /// Whatever 20 ms frame this returns: a mirror sends back what it receives (the echo contact).
    /// Nothing is sent while it returns `None`.
    Mirror(Arc<dyn Fn() -> Option<[i16; FRAME_SAMPLES]> + Send + Sync>),
}

impl std::fmt::Debug for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tone => "Tone",
            Self::Device { .. } => "Device",
            Self::Mirror(_) => "Mirror",
        })
    }
}

/// A microphone on the capture thread.
struct DeviceCapture {
    microphone: Fallback<SoundInput>,
    /// Plays when the fake twin is picked (a real microphone that cannot be used sends silence).
    stand_in: ToneSource,
    processing: Option<super::VoiceProcessing>,
}

/// The capture thread's end of an [`AudioSource`].
enum Capture {
    Tone(ToneSource),
    /// Boxed: a device's state is large, and a tone needs none of it.
    Device(Box<DeviceCapture>),
    Mirror(Arc<dyn Fn() -> Option<[i16; FRAME_SAMPLES]> + Send + Sync>),
}

impl Capture {
    fn new(source: AudioSource, tone_hz: f32) -> Self {
        match source {
            AudioSource::Tone => Self::Tone(ToneSource::new(tone_hz)),
            AudioSource::Device { pick, notify, processing } => Self::Device(Box::new(DeviceCapture {
                microphone: Fallback::new(DeviceKind::Microphone, pick, notify),
                stand_in: ToneSource::new(tone_hz),
                processing,
            })),
            AudioSource::Mirror(take) => Self::Mirror(take),
        }
    }

    /// The next 20 ms to send; `None` when a mirror has nothing.
    fn next_frame(&mut self) -> Option<[i16; FRAME_SAMPLES]> {
        match self {
            Self::Tone(tone) => Some(tone.next_frame()),
            // Opened here, on the capture thread, so that opening never holds up the engine.
            Self::Device(device) => {
                let DeviceCapture { microphone, stand_in, processing } = &mut **device;
                let twin = microphone.twin_picked();
                match microphone.device(SoundInput::open) {
                    Some(input) => {
                        let mut frame = input.take_frame();
                        if let Some(processing) = processing.as_mut() {
                            processing.captured(&mut frame);
                        }
                        Some(frame)
                    }
                    None if twin => Some(stand_in.next_frame()),
                    None => Some([0; FRAME_SAMPLES]),
                }
            }
            Self::Mirror(take) => take(),
        }
    }
}

/// Captures from the (fake) microphone every 20 ms, encodes once, sends to every target link.
#[derive(Debug)]
pub struct AudioSender {
    feed: Feed,
}

impl AudioSender {
    /// Starts the microphone on `source`: a thread captures and encodes, a task sends. Captured sound
    /// also goes to `meter` (level meters, a local test). Within a tokio runtime.
    pub fn start(
        microphone: MicrophoneConfig,
        source: AudioSource,
        meter: Option<Arc<AudioSlot>>,
    ) -> Result<AudioSender, AudioError> {
        let mut encoder = OpusEncoder::new(microphone.bitrate_bps)?;
        let feed = Feed::default();
        let (packets, mut encoded) = mpsc::channel::<Vec<u8>>(8);
        let period = Duration::from_millis(20);
        let mut capture = Capture::new(source, microphone.tone_hz);
        feed.spawn_paced("dialtone-microphone", period, move || {
            let Some(frame) = capture.next_frame() else { return true };
            if let Some(meter) = &meter {
                meter.show(&frame);
            }
            match encoder.encode(&frame) {
                Ok(packet) => packets.blocking_send(packet).is_ok(),
                Err(error) => {
                    tracing::warn!(%error, "audio encoding failed");
                    true
                }
            }
        })?;
        let targets = feed.targets();
        tokio::spawn(async move {
            while let Some(packet) = encoded.recv().await {
                let data = Bytes::from(packet);
                for target in targets().iter().filter(|t| t.is_ready()) {
                    if let Err(error) = target.send_audio(data.clone(), period).await {
                        tracing::debug!(%error, "sending audio");
                    }
                }
            }
        });
        Ok(AudioSender { feed })
    }

    /// Replaces the links the audio goes to.
    pub fn set_targets(&self, targets: Vec<LinkSender>) {
        self.feed.set_targets(targets);
    }
}

/// Feeds one incoming audio track through the jitter buffer into its slot.
pub(crate) async fn receive_track(
    track: Arc<dyn TrackRemote>,
    slot: Arc<AudioSlot>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let mut receiver = match AudioReceiver::new(slot) {
        Ok(receiver) => receiver,
        Err(error) => {
            tracing::warn!(%error, "no audio decoder");
            return;
        }
    };
    loop {
        let event = tokio::select! {
            event = track.poll() => event,
            _ = closed.wait_for(|closed| *closed) => None,
        };
        match event {
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                receiver.packet(packet.header.sequence_number, packet.payload)
            }
            None | Some(TrackRemoteEvent::OnEnded) => break,
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ToneSource;

    fn packets(count: usize) -> Vec<Bytes> {
        let mut tone = ToneSource::new(600.0);
        let mut encoder = OpusEncoder::new(32_000).unwrap();
        (0..count).map(|_| Bytes::from(encoder.encode(&tone.next_frame()).unwrap())).collect()
    }

    #[test]
    fn reordered_packets_are_played_in_order_and_nothing_is_lost() {
        let packets = packets(20);
        let slot = AudioSlot::new();
        let mut receiver = AudioReceiver::new(slot.clone()).unwrap();
        // Sequence numbers wrap past 65535 on the way.
        let order = [0, 2, 1, 3, 5, 4, 6, 7, 8, 9, 11, 10, 12, 13, 14, 15, 16, 17, 18, 19];
        for index in order {
            receiver.packet(65_530u16.wrapping_add(index as u16), packets[index].clone());
        }
        assert_eq!((slot.frames_decoded(), slot.frames_recovered(), slot.frames_concealed()), (20, 0, 0));
        assert_eq!(slot.dominant_frequency(), Some(600.0));
        assert!(slot.last_level() > 0.1, "{}", slot.last_level());
    }

    #[test]
    fn a_lost_packet_is_recovered_from_fec_and_a_lost_pair_partly_concealed() {
        let packets = packets(20);
        let slot = AudioSlot::new();
        let mut receiver = AudioReceiver::new(slot.clone()).unwrap();
        for index in (0..20).filter(|i| ![5, 12, 13].contains(i)) {
            receiver.packet(index as u16, packets[index].clone());
        }
        assert_eq!(slot.frames_decoded(), 17);
        // 5 and 13 come back from the FEC in the packets after them; 12 has no successor to use.
        assert_eq!(slot.frames_recovered(), 2);
        assert_eq!(slot.frames_concealed(), 1);
    }
}
