//! Video on the move: the capture-and-encode loop that feeds every peer of a call, the receiving side
//! that reassembles, decodes and publishes frames, and the "latest frame" slot a UI reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::frame::{I420Frame, RgbaFrame};
use super::pattern::{Stamp, TestPattern, now_us, read_stamp};
use super::rate::{RateAdapter, Rung};
use super::reorder::{Released, ReorderBuffer};
use super::reserve::CodecReserve;
use super::vp8::{CodecError, EncodedFrame, Vp8Decoder, Vp8Encoder};
use crate::config::CameraConfig;
use crate::devices::camera::CameraInput;
use crate::devices::{DeviceKind, DeviceNotify, DevicePick, Fallback};
use crate::feed::Feed;
use crate::keyframe;
use crate::send::LinkSender;

/// Called when something new is ready for a UI (a decoded frame).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// One decoded picture and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFrame {
    /// The picture.
    pub picture: RgbaFrame,
    /// The test pattern's stamp, when the sender is a fake camera.
    pub stamp: Option<Stamp>,
    /// When it was decoded, microseconds since the Unix epoch.
    pub decoded_us: u64,
    /// Counts decoded frames of this stream, from 1.
    pub index: u64,
}

/// The latest frame of one incoming video stream. Readers never block and never see a queue: a new
/// frame replaces the old one.
pub struct VideoSlot {
    latest: ArcSwapOption<DecodedFrame>,
    decoded: AtomicU64,
    keyframes: AtomicU64,
    /// Whole frames that arrived but could not be shown (undecodable, or waiting for a keyframe).
    dropped: AtomicU64,
    freezes: std::sync::Mutex<FreezeCounter>,
    /// Someone read the slot since the last picture was shown: see [`VideoSlot::watched`].
    read: AtomicBool,
    wake: Option<Wake>,
}

/// Counts freezes as WebRTC's statistics define them: a gap between two shown frames longer than three
/// typical gaps and longer than a typical gap plus 150 ms.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct FreezeCounter {
    last: Option<std::time::Instant>,
    /// Mean gap between frames (exponentially weighted over about 30 frames), in seconds.
    typical_gap: Option<f64>,
    /// Freezes so far.
    pub count: u64,
    /// Their total length.
    pub total: Duration,
}

impl FreezeCounter {
    /// Notes a frame shown at `now`.
    pub fn frame(&mut self, now: std::time::Instant) {
        if let Some(last) = self.last.replace(now) {
            let gap = now.saturating_duration_since(last).as_secs_f64();
            match self.typical_gap {
                Some(typical) if gap > (3.0 * typical).max(typical + 0.150) => {
                    self.count += 1;
                    self.total += Duration::from_secs_f64(gap);
                }
                // A freeze does not count towards what is typical.
                Some(typical) => self.typical_gap = Some(typical + (gap - typical) / 30.0),
                None => self.typical_gap = Some(gap),
            }
        }
    }
}

impl std::fmt::Debug for VideoSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSlot").field("decoded", &self.decoded).finish_non_exhaustive()
    }
}

impl VideoSlot {
    /// An empty slot; `wake` is called whenever a frame lands.
    pub fn new(wake: Option<Wake>) -> Arc<Self> {
        Arc::new(Self {
            latest: ArcSwapOption::empty(),
            decoded: AtomicU64::new(0),
            keyframes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            freezes: std::sync::Mutex::new(FreezeCounter::default()),
            read: AtomicBool::new(true),
            wake,
        })
    }

    /// The latest frame, if any arrived yet.
    pub fn latest(&self) -> Option<Arc<DecodedFrame>> {
        self.read.store(true, Ordering::Relaxed);
        self.latest.load_full()
    }

    /// Whether the slot was read since the last picture was shown (or none was): a preview that
    /// nobody looks at (a headless engine, a hidden window) is not worth converting to RGBA.
    pub fn watched(&self) -> bool {
        self.read.load(Ordering::Relaxed)
    }

    /// How many frames were decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }

    /// How many of them were keyframes.
    pub fn keyframes_decoded(&self) -> u64 {
        self.keyframes.load(Ordering::Relaxed)
    }

    /// How many whole frames arrived but could not be shown.
    pub fn frames_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The freezes seen so far.
    pub fn freezes(&self) -> FreezeCounter {
        *crate::lock(&self.freezes)
    }

    /// Drops the held frame: the stream is over (or the camera off).
    pub fn clear(&self) {
        self.latest.store(None);
    }

    /// Puts a new picture in; returns the one it replaced, whose buffer the receiver may reuse.
    fn publish(&self, picture: RgbaFrame, keyframe: bool) -> Option<Arc<DecodedFrame>> {
        if keyframe {
            self.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        let index = self.decoded.fetch_add(1, Ordering::Relaxed) + 1;
        crate::lock(&self.freezes).frame(std::time::Instant::now());
        let stamp = read_stamp(&picture);
        let replaced = self.latest.swap(Some(Arc::new(DecodedFrame { picture, stamp, decoded_us: now_us(), index })));
        if let Some(wake) = &self.wake {
            wake();
        }
        replaced
    }
}

/// The pixel buffer of a picture a slot no longer shows, to draw the next one into; empty (a fresh
/// allocation) while a reader still holds it.
fn reclaim_pixels(spent: Option<Arc<DecodedFrame>>) -> Vec<u8> {
    spent.and_then(|spent| Arc::try_unwrap(spent).ok()).map(|frame| frame.picture.pixels).unwrap_or_default()
}

/// Reassembles VP8 frames from RTP packets, decodes them and publishes them into a slot.
pub(crate) struct VideoReceiver {
    depacketizer: Vp8Packet,
    decoder: Vp8Decoder,
    frame: Vec<u8>,
    /// The frame being assembled began with its first packet.
    frame_started: bool,
    expected_sequence: Option<u16>,
    /// A packet was lost: frames are skipped until the next keyframe.
    broken: bool,
    slot: Arc<VideoSlot>,
    /// The picture the last one replaced; its pixels are reused once no reader holds it.
    spent: Option<Arc<DecodedFrame>>,
}

/// What the receive loop should do after a packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReceiveOutcome {
    /// Nothing to do.
    Continue,
    /// A keyframe was decoded: the stream is whole again.
    Keyframe,
    /// The stream is broken until a keyframe comes: ask the sender for one.
    NeedKeyframe,
}

impl VideoReceiver {
    /// A receiver publishing into `slot` what `decoder` decodes.
    pub(crate) fn new(slot: Arc<VideoSlot>, decoder: Vp8Decoder) -> Self {
        Self {
            depacketizer: Vp8Packet::default(),
            decoder,
            frame: Vec::new(),
            frame_started: false,
            expected_sequence: None,
            broken: true,
            slot,
            spent: None,
        }
    }

    /// Drops the frame being assembled (a packet of it is missing) and waits for a keyframe.
    fn break_frame(&mut self) {
        self.frame.clear();
        self.frame_started = false;
        self.broken = true;
    }

    /// Takes one RTP packet (sequence number, marker bit, payload).
    pub(crate) fn packet(&mut self, sequence: u16, marker: bool, payload: &Bytes) -> ReceiveOutcome {
        let in_order = self.expected_sequence.is_none_or(|expected| expected == sequence);
        self.expected_sequence = Some(sequence.wrapping_add(1));
        if !in_order {
            // A gap: this frame cannot be completed, and later frames refer to it.
            self.break_frame();
        }
        if payload.is_empty() {
            // Padding only (a browser's bandwidth probe, with transport-wide congestion control and no
            // RTX): no media, but its number counted above, so the next packet is no false gap.
            return if in_order { ReceiveOutcome::Continue } else { ReceiveOutcome::NeedKeyframe };
        }
        let Ok(data) = self.depacketizer.depacketize(payload) else {
            self.break_frame();
            return ReceiveOutcome::NeedKeyframe;
        };
        if self.depacketizer.is_partition_head(payload) {
            self.frame.clear();
            self.frame_started = true;
        }
        self.frame.extend_from_slice(&data);
        if !marker {
            return if in_order { ReceiveOutcome::Continue } else { ReceiveOutcome::NeedKeyframe };
        }
        let frame = std::mem::take(&mut self.frame);
        // Only a frame assembled from its first packet has a frame tag at the front (the tail of a frame
        // whose start was lost can look like a keyframe's).
        let whole = std::mem::replace(&mut self.frame_started, false);
        // VP8's frame tag: bit 0 clear means a keyframe.
        let keyframe = whole && frame.first().is_some_and(|tag| tag & 1 == 0);
        if self.broken && !keyframe {
            self.slot.dropped.fetch_add(1, Ordering::Relaxed);
            return ReceiveOutcome::NeedKeyframe;
        }
        match self.decoder.decode_into(&frame, reclaim_pixels(self.spent.take())) {
            Ok(Some(picture)) => {
                self.broken = false;
                self.spent = self.slot.publish(picture, keyframe);
                if keyframe { ReceiveOutcome::Keyframe } else { ReceiveOutcome::Continue }
            }
            Ok(None) => ReceiveOutcome::Continue,
            Err(error) => {
                tracing::debug!(%error, "undecodable video frame");
                self.slot.dropped.fetch_add(1, Ordering::Relaxed);
                self.broken = true;
                ReceiveOutcome::NeedKeyframe
            }
        }
    }
}

/// Where a camera's pictures come from.
#[derive(Clone, Default)]
pub enum VideoSource {
    /// The stamped test pattern.
    #[default]
    TestPattern,
    /// A camera (the test pattern stands in when it cannot be used; `notify` hears which is in use).
    Device {
        /// Which camera.
        pick: DevicePick,
        /// Hears which device is in use and why.
        notify: DeviceNotify,
    },
    /// Whatever picture this returns, re-encoded: a mirror sends back what it receives (the echo
    /// contact). Nothing is sent while it returns `None`.
    Mirror(Arc<dyn Fn() -> Option<Arc<DecodedFrame>> + Send + Sync>),
}

impl std::fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TestPattern => "TestPattern",
            Self::Device { .. } => "Device",
            Self::Mirror(_) => "Mirror",
        })
    }
}

impl VideoSlot {
    /// Shows a captured picture (a local preview): the slot's counters count it as decoded. Returns
    /// the picture it replaced, whose buffer the caller may reuse.
    pub fn show(&self, picture: RgbaFrame) -> Option<Arc<DecodedFrame>> {
        self.read.store(false, Ordering::Relaxed);
        self.publish(picture, false)
    }
}

/// Captures from the (fake) camera, encodes once, and sends every frame to every target link.
#[derive(Debug)]
pub struct VideoSender {
    feed: Feed,
}

/// The capture side of a camera: fills the frame to encode; false when there is nothing new to send.
struct Capture {
    source: Pictures,
    pattern: TestPattern,
    /// The rate asked of a camera.
    fps: u32,
    last: LastSent,
    preview: Option<Arc<VideoSlot>>,
    /// Previews are shown at most at this interval (a UI needs no more than ~15 fps for a thumbnail).
    preview_every: u32,
    /// The preview picture the last one replaced; its pixels are reused once no reader holds it.
    spent_preview: Option<Arc<DecodedFrame>>,
    captured: u32,
    /// The size of the camera's (or mirrored) pictures, whose shape the encoded size keeps; `None` while
    /// the test pattern draws.
    picture_size: Option<(u32, u32)>,
}

/// The capture thread's end of a [`VideoSource`].
enum Pictures {
    Pattern,
    /// A camera, or the pattern standing in for it.
    Camera(Fallback<CameraInput>),
    Mirror(Arc<dyn Fn() -> Option<Arc<DecodedFrame>> + Send + Sync>),
}

impl From<VideoSource> for Pictures {
    fn from(source: VideoSource) -> Self {
        match source {
            VideoSource::TestPattern => Self::Pattern,
            VideoSource::Device { pick, notify } => Self::Camera(Fallback::new(DeviceKind::Camera, pick, notify)),
            VideoSource::Mirror(latest) => Self::Mirror(latest),
        }
    }
}

/// The number of the camera or mirrored picture last sent, so a still picture is not sent twice.
#[derive(Default)]
struct LastSent {
    number: u64,
    scratch: Vec<u8>,
}

impl LastSent {
    /// Puts `picture` into `frame` unless it is the one sent last; true when it did.
    fn convert(&mut self, number: u64, picture: &RgbaFrame, frame: &mut I420Frame) -> bool {
        if number == self.number {
            return false;
        }
        self.number = number;
        picture.to_i420_into(frame, &mut self.scratch);
        true
    }
}

/// The encoding side of a camera: the encoder, set to the size and bitrate the rate adapter chooses.
struct Encode {
    camera: CameraConfig,
    /// Made (or taken from the reserve) when there is someone to send to: a camera that only shows a
    /// preview encodes nothing.
    encoder: Option<Vp8Encoder>,
    reserve: CodecReserve,
    adapter: RateAdapter,
    rung: Rung,
    /// The picture to encode next, at the encoder's size.
    frame: I420Frame,
    /// Capture ticks, for sending only every n-th picture when the frame rate is stepped down.
    ticks: u32,
    /// When the last keyframe was made, and its size in bytes.
    last_keyframe: Option<(std::time::Instant, usize)>,
}

/// Keyframes asked for take at most this share of the video's budget: each is several times an
/// ordinary frame, and on a narrow path answering every request at once fills it with keyframes.
const KEYFRAME_SHARE: f64 = 0.3;
/// ... but a receiver never waits longer than this for the keyframe it asked for, however low the
/// estimate (a delay-based estimate can drop to its floor on a busy machine).
const MAX_KEYFRAME_SPACING_S: f64 = 2.0;

impl Encode {
    fn new(camera: CameraConfig, capture: &mut Capture, reserve: CodecReserve) -> Self {
        let (width, height) = capture.size_for(camera.width, camera.height);
        Self {
            camera,
            encoder: None,
            reserve,
            adapter: RateAdapter::new(camera.width, camera.bitrate_kbps, std::time::Instant::now()),
            rung: Rung { scale: 1, fps_divider: 1 },
            frame: I420Frame::black(width, height),
            ticks: 0,
            last_keyframe: None,
        }
    }

    /// Whether a keyframe asked for may be made now, given the video's budget.
    fn keyframe_allowed(&self, now: std::time::Instant, budget_kbps: Option<u32>) -> bool {
        let (Some((at, bytes)), Some(budget)) = (self.last_keyframe, budget_kbps) else { return true };
        let spacing = bytes as f64 * 8.0 / (f64::from(budget.max(1)) * 1000.0 * KEYFRAME_SHARE);
        now.saturating_duration_since(at).as_secs_f64() >= spacing.min(MAX_KEYFRAME_SPACING_S)
    }

    /// Follows the rate adapter for the next picture; `None` when this tick sends nothing (frame rate
    /// stepped down), otherwise how long the picture lasts.
    fn prepare(&mut self, budget_kbps: Option<u32>, period: Duration, capture: &mut Capture) -> Option<Duration> {
        let encoding = self.adapter.update(std::time::Instant::now(), budget_kbps);
        self.ticks = self.ticks.wrapping_add(1);
        if !self.ticks.is_multiple_of(encoding.rung.fps_divider) {
            return None;
        }
        let (width, height) =
            capture.size_for(self.camera.width / encoding.rung.scale, self.camera.height / encoding.rung.scale);
        if (width, height) != (self.frame.width, self.frame.height) {
            // A new size (a rung down or up, or pictures of another shape) needs another encoder, which
            // starts with a keyframe.
            self.frame = I420Frame::black(width, height);
            self.encoder = None;
        } else if let Some(encoder) = &mut self.encoder
            && encoding.bitrate_kbps != encoder.bitrate_kbps()
            && let Err(error) = encoder.set_bitrate(encoding.bitrate_kbps)
        {
            tracing::warn!(%error, "cannot change the video bitrate");
        }
        self.rung = encoding.rung;
        Some(period * encoding.rung.fps_divider)
    }

    /// Encodes the picture in `frame`. An encoder just made or taken from the reserve starts with a
    /// keyframe, whatever `keyframe` says.
    fn encode(&mut self, duration: Duration, keyframe: bool) -> Result<Vec<EncodedFrame>, CodecError> {
        let (encoder, keyframe) = match &mut self.encoder {
            Some(encoder) => (encoder, keyframe),
            None => {
                let (width, height) = (self.frame.width, self.frame.height);
                (self.encoder.insert(self.reserve.encoder(width, height, self.adapter.current().bitrate_kbps)?), true)
            }
        };
        encoder.encode(&self.frame, duration.as_millis() as u32, keyframe)
    }
}

impl Capture {
    /// The size pictures are encoded at for a wanted size: a camera's pictures keep their shape and are
    /// never enlarged, fitting within it; the test pattern (which a missing camera sends too) fills it,
    /// at least 256 pixels wide for its stamp.
    fn size_for(&mut self, width: u32, height: u32) -> (u32, u32) {
        self.pattern.resize(width, height);
        match self.picture_size {
            Some(picture) => fit_within((width, height), picture),
            None => self.pattern.size(),
        }
    }

    /// Takes a camera's or a mirror's picture into `frame`; false when it was sent already, or when its
    /// shape is new and the encoder must change size first (the next tick does that).
    fn take_picture(&mut self, number: u64, picture: &RgbaFrame, frame: &mut I420Frame) -> bool {
        let size = (picture.width, picture.height);
        if self.picture_size != Some(size) {
            self.picture_size = Some(size);
            let (width, height) = (frame.width, frame.height);
            if fit_within((width, height), size) != (width, height) {
                return false;
            }
        }
        self.last.convert(number, picture, frame)
    }

    /// Draws the test pattern into `frame`; false when pictures were coming until now, and the encoder
    /// must go back to the pattern's size first.
    fn take_pattern(&mut self, frame: &mut I420Frame) -> bool {
        if self.picture_size.take().is_some() && (frame.width, frame.height) != self.pattern.size() {
            return false;
        }
        self.pattern.draw(frame, now_us());
        true
    }

    fn fill(&mut self, frame: &mut I420Frame) -> bool {
        let (width, height, fps) = (frame.width, frame.height, self.fps);
        let filled = match &mut self.source {
            Pictures::Pattern => self.take_pattern(frame),
            // Opened here, on the capture thread, so that opening never holds up the engine.
            Pictures::Camera(camera) => {
                match (camera.twin_picked(), camera.device(|pick| CameraInput::open(pick, width, height, fps))) {
                    (_, Some(camera)) => {
                        camera.latest().is_some_and(|(number, picture)| self.take_picture(number, &picture, frame))
                    }
                    (true, None) => self.take_pattern(frame),
                    // A real camera that cannot be used sends nothing: the others see the avatar.
                    (false, None) => false,
                }
            }
            Pictures::Mirror(latest) => {
                let latest = latest();
                latest.is_some_and(|picture| self.take_picture(picture.index, &picture.picture, frame))
            }
        };
        if !filled {
            return false;
        }
        self.captured = self.captured.wrapping_add(1);
        if let Some(preview) = &self.preview
            && self.captured.is_multiple_of(self.preview_every)
            && preview.watched()
        {
            let picture = frame.to_rgba_into(reclaim_pixels(self.spent_preview.take()));
            self.spent_preview = preview.show(picture);
        }
        true
    }
}

/// The largest even size within `bounds` with the shape of `picture`, and no larger than it.
fn fit_within(bounds: (u32, u32), picture: (u32, u32)) -> (u32, u32) {
    let (width, height) = (bounds.0.min(picture.0), bounds.1.min(picture.1));
    let (picture_width, picture_height) = (u64::from(picture.0.max(1)), u64::from(picture.1.max(1)));
    let (width, height) = if u64::from(width) * picture_height <= u64::from(height) * picture_width {
        // Narrower than the picture's shape: the width decides.
        (width, (u64::from(width) * picture_height).div_ceil(picture_width) as u32)
    } else {
        ((u64::from(height) * picture_width).div_ceil(picture_height) as u32, height)
    };
    ((width & !1).max(2), (height & !1).max(2))
}

impl VideoSender {
    /// Starts capturing from `source`: a thread captures and encodes at the camera's rate, a task sends.
    /// Captured pictures are also shown in `preview`. Must be called within a tokio runtime.
    pub fn start(
        camera: CameraConfig,
        source: VideoSource,
        preview: Option<Arc<VideoSlot>>,
    ) -> Result<VideoSender, CodecError> {
        Self::start_with(camera, source, preview, &CodecReserve::default())
    }

    /// As [`VideoSender::start`], taking its encoder from `reserve` (made while the call rang) when
    /// there is one of the right size.
    pub fn start_with(
        camera: CameraConfig,
        source: VideoSource,
        preview: Option<Arc<VideoSlot>>,
        reserve: &CodecReserve,
    ) -> Result<VideoSender, CodecError> {
        let feed = Feed::default();
        let keyframe_wanted = Arc::new(AtomicBool::new(true));
        let (frames, mut encoded) = mpsc::channel::<(EncodedFrame, Duration)>(4);
        let period = Duration::from_secs(1) / camera.fps.max(1);
        let mut capture = Capture {
            source: source.into(),
            fps: camera.fps,
            pattern: if camera.detailed {
                TestPattern::new(camera.width, camera.height).detailed()
            } else {
                TestPattern::new(camera.width, camera.height)
            },
            last: LastSent::default(),
            preview,
            preview_every: camera.fps.div_ceil(15).max(1),
            spent_preview: None,
            captured: 0,
            picture_size: None,
        };
        let mut encode = Encode::new(camera, &mut capture, reserve.clone());
        let capture_keyframe = keyframe_wanted.clone();
        let budget_targets = feed.targets();
        let mut failing = false;
        feed.spawn_paced("dialtone-camera", period, move || {
            // The video goes to every link at once, so it fits the narrowest path; no budget means no
            // link is ready for video.
            let budget = budget_targets().iter().filter_map(LinkSender::video_budget_kbps).min();
            let Some(duration) = encode.prepare(budget, period, &mut capture) else {
                return true;
            };
            if !capture.fill(&mut encode.frame) {
                return true;
            }
            if budget.is_none() {
                // Nobody to send to (a preview alone, links still connecting): nothing is encoded, and
                // whoever comes first gets a keyframe.
                capture_keyframe.store(true, Ordering::Relaxed);
                return true;
            }
            let now = std::time::Instant::now();
            let keyframe = capture_keyframe.load(Ordering::Relaxed) && encode.keyframe_allowed(now, budget);
            if keyframe {
                capture_keyframe.store(false, Ordering::Relaxed);
            }
            match encode.encode(duration, keyframe) {
                Ok(packets) => {
                    failing = false;
                    packets.into_iter().all(|packet| {
                        encode.adapter.encoded(packet.data.len());
                        if packet.keyframe {
                            encode.last_keyframe = Some((now, packet.data.len()));
                        }
                        frames.blocking_send((packet, duration)).is_ok()
                    })
                }
                Err(error) => {
                    // Once, not for every picture while it lasts.
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "video encoding failed");
                    }
                    true
                }
            }
        })
        .map_err(|error| CodecError::new("camera thread", error.to_string()))?;

        let targets = feed.targets();
        tokio::spawn(async move {
            while let Some((frame, duration)) = encoded.recv().await {
                let data = Bytes::from(frame.data);
                for target in targets().iter().filter(|t| t.is_ready()) {
                    // A target that has not had a keyframe yet (new, or it asked) gets none of the frames
                    // that depend on one it lacks.
                    if frame.keyframe {
                        tracing::debug!(bytes = data.len(), "sending a keyframe");
                        target.keyframe_sent();
                    } else if target.wants_keyframe() {
                        keyframe_wanted.store(true, Ordering::Relaxed);
                        continue;
                    }
                    if let Err(error) = target.send_video(data.clone(), duration).await {
                        tracing::debug!(%error, "sending video");
                    }
                }
            }
        });
        Ok(VideoSender { feed })
    }

    /// Replaces the links the video goes to.
    pub fn set_targets(&self, targets: Vec<LinkSender>) {
        self.feed.set_targets(targets);
    }
}

/// How long the video receiver waits for a missing packet: a NACK goes out as soon as the gap shows,
/// another each round trip while the retransmissions are lost too, and the last takes a round trip.
fn retransmission_wait(rtt_ms: u32) -> Duration {
    // Until the first measurement, the requester's guess of a round trip as on a long path.
    let rtt = crate::nack::round_trip(rtt_ms, None);
    let repeats = u32::from(crate::nack::REQUESTS_PER_PACKET - 1);
    (crate::nack::repeat_after(rtt_ms, None) * repeats + rtt.mul_f32(1.2) + Duration::from_millis(20))
        .clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// What woke the video receiver.
enum VideoWake {
    Track(TrackRemoteEvent),
    /// Asked from outside (see `Link::request_keyframe`).
    KeyframeAsked,
    GapWaitedOut,
    Closed,
}

/// What an incoming video track is received into.
pub(crate) struct Incoming {
    /// Where decoded frames are shown.
    pub(crate) slot: Arc<VideoSlot>,
    /// Where the decoder comes from.
    pub(crate) codecs: CodecReserve,
    /// The link's round trip in milliseconds (0 until measured): how long a gap waits for a retransmission.
    pub(crate) rtt_ms: Arc<AtomicU32>,
}

/// Puts one incoming video track's packets in order (waiting for retransmissions), reassembles, decodes
/// and publishes its frames; asks for keyframes when it must.
pub(crate) async fn receive_track(
    track: Arc<dyn TrackRemote>,
    incoming: Incoming,
    mut closed: tokio::sync::watch::Receiver<bool>,
    mut asked: mpsc::UnboundedReceiver<()>,
) {
    let mut receiver = match incoming.codecs.decoder().await {
        Ok(decoder) => VideoReceiver::new(incoming.slot, decoder),
        Err(error) => {
            tracing::warn!(%error, "no video decoder");
            return;
        }
    };
    // The sender's SSRC, which a keyframe request names; the packets carry it for sure (the track's
    // list can still be empty when the track is announced).
    let mut media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mut pacing = keyframe::RequestPacing::default();
    let mut order = ReorderBuffer::new(retransmission_wait(0));
    loop {
        let deadline = order.deadline().map(Instant::from_std);
        let event = tokio::select! {
            event = track.poll() => event.map_or(VideoWake::Closed, VideoWake::Track),
            Some(()) = asked.recv() => VideoWake::KeyframeAsked,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => VideoWake::GapWaitedOut,
            _ = closed.wait_for(|closed| *closed) => VideoWake::Closed,
        };
        match event {
            VideoWake::Track(TrackRemoteEvent::OnRtpPacket(packet)) => {
                media_ssrc = packet.header.ssrc;
                order.set_hold(retransmission_wait(incoming.rtt_ms.load(Ordering::Relaxed)));
                order.push(packet.header.sequence_number, packet, std::time::Instant::now());
            }
            // The packets behind the gap go on below.
            VideoWake::GapWaitedOut => {}
            VideoWake::KeyframeAsked => {
                pacing.may_request(std::time::Instant::now());
                send_keyframe_request(&track, media_ssrc).await;
                continue;
            }
            VideoWake::Closed | VideoWake::Track(TrackRemoteEvent::OnEnded) => {
                tracing::debug!(late_or_repeated = order.late(), "video track ended");
                break;
            }
            VideoWake::Track(_) => continue,
        }
        let now = std::time::Instant::now();
        while let Some(released) = order.pop(now) {
            // After a gap given up, the next packet's number tells the receiver to break the frame there.
            let packet = match released {
                Released::Packet(packet) => packet,
                Released::Lost(count) => {
                    tracing::debug!(count, "video packets given up after waiting for a retransmission");
                    continue;
                }
            };
            match receiver.packet(packet.header.sequence_number, packet.header.marker, &packet.payload) {
                ReceiveOutcome::Keyframe => pacing.keyframe_arrived(),
                ReceiveOutcome::NeedKeyframe if pacing.may_request(now) => {
                    tracing::debug!(media_ssrc, "asking for a keyframe");
                    send_keyframe_request(&track, media_ssrc).await;
                }
                ReceiveOutcome::NeedKeyframe | ReceiveOutcome::Continue => {}
            }
        }
    }
}

async fn send_keyframe_request(track: &Arc<dyn TrackRemote>, media_ssrc: u32) {
    let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
    if let Err(error) = track.write_rtcp(vec![Box::new(pli)]).await {
        tracing::debug!(%error, "keyframe request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame in one RTP payload: VP8's payload descriptor (start of a partition) and the frame.
    fn one_packet(frame: &[u8]) -> Bytes {
        let mut payload = vec![0x10];
        payload.extend_from_slice(frame);
        Bytes::from(payload)
    }

    #[test]
    fn padding_only_packets_count_in_the_sequence_and_break_nothing() {
        let mut encoder = crate::video::vp8::Vp8Encoder::new(64, 64, 200).unwrap();
        let picture = crate::video::frame::I420Frame::black(64, 64);
        let mut frames = Vec::new();
        for keyframe in [true, false, false] {
            let encoded = encoder.encode(&picture, 33, keyframe).unwrap();
            frames.push(one_packet(&encoded.into_iter().next().expect("a frame").data));
        }
        let slot = VideoSlot::new(None);
        let mut receiver = VideoReceiver::new(slot.clone(), crate::video::vp8::Vp8Decoder::new().unwrap());
        assert_eq!(receiver.packet(1, true, &frames[0]), ReceiveOutcome::Keyframe);
        // A sender's bandwidth probes: padding only, so an empty payload once the padding is removed.
        for sequence in 2..=4 {
            assert_eq!(receiver.packet(sequence, false, &Bytes::new()), ReceiveOutcome::Continue);
        }
        assert_eq!(receiver.packet(5, true, &frames[1]), ReceiveOutcome::Continue);
        // A padding packet lost is still a gap: the next frame cannot be trusted.
        assert_eq!(receiver.packet(7, true, &frames[2]), ReceiveOutcome::NeedKeyframe);
        assert_eq!(slot.frames_decoded(), 2, "the keyframe and the frame after the probes");
    }

    #[test]
    fn a_long_gap_is_a_freeze_and_steady_frames_are_not() {
        let mut at = std::time::Instant::now();
        let mut freezes = FreezeCounter::default();
        for _ in 0..60 {
            at += Duration::from_millis(33);
            freezes.frame(at);
        }
        assert_eq!(freezes.count, 0, "30 fps with no gaps");
        at += Duration::from_millis(120);
        freezes.frame(at);
        assert_eq!(freezes.count, 0, "120 ms is under 33 ms + 150 ms");
        at += Duration::from_millis(400);
        freezes.frame(at);
        assert_eq!((freezes.count, freezes.total), (1, Duration::from_millis(400)));
        for _ in 0..5 {
            at += Duration::from_millis(33);
            freezes.frame(at);
        }
        assert_eq!(freezes.count, 1, "back to normal");
    }

    #[test]
    fn pictures_keep_their_shape_within_the_size_asked_for_and_are_never_enlarged() {
        // A 4:3 camera in a 16:9 box: the height decides.
        assert_eq!(fit_within((1280, 720), (1600, 1200)), (960, 720));
        assert_eq!(fit_within((1280, 720), (1920, 1080)), (1280, 720));
        // A small camera is sent as it is.
        assert_eq!(fit_within((1280, 720), (640, 480)), (640, 480));
        // Portrait (a phone's picture mirrored back): the height decides, widths stay even.
        assert_eq!(fit_within((640, 360), (720, 1280)), (202, 360));
        assert_eq!(fit_within((1280, 720), (0, 0)), (2, 2));
    }

    #[test]
    fn a_slow_but_steady_stream_is_not_frozen() {
        let mut at = std::time::Instant::now();
        let mut freezes = FreezeCounter::default();
        for _ in 0..20 {
            at += Duration::from_millis(500);
            freezes.frame(at);
        }
        assert_eq!(freezes.count, 0, "2 fps, evenly");
    }
}
