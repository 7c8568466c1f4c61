//! The sending side of a link: what a link shows the camera and microphone feeds (whether it is ready,
//! whether it wants a keyframe, what the path carries) and the tracks their encoded output goes into.
//! The link sets it up; the feeds only send through it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rtc::media::Sample;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use crate::error::LinkError;

/// One negotiated outgoing track: where samples go and how they are labelled.
pub(crate) struct Outgoing {
    pub(crate) track: Arc<TrackLocalStaticSample>,
    pub(crate) ssrc: u32,
    pub(crate) payload_type: u8,
}

/// What a link and the feeds sending through it share.
#[derive(Debug)]
pub(crate) struct SendSide {
    /// ICE and DTLS are up.
    pub(crate) connected: AtomicBool,
    /// Set once both descriptions are in and the payload types are known.
    pub(crate) video_out: OnceLock<Outgoing>,
    pub(crate) audio_out: OnceLock<Outgoing>,
    /// The remote side has no keyframe from us yet (new connection, or it asked for one).
    pub(crate) wants_keyframe: AtomicBool,
    /// Congestion control's estimate of what the path carries, bits per second (`f64` bits).
    pub(crate) send_estimate: Arc<AtomicU64>,
    /// What the audio takes of it.
    audio_kbps: u32,
}

impl SendSide {
    /// Nothing negotiated yet; the first frame sent will have to be a keyframe.
    pub(crate) fn new(audio_kbps: u32) -> Self {
        Self {
            connected: AtomicBool::new(false),
            video_out: OnceLock::new(),
            audio_out: OnceLock::new(),
            wants_keyframe: AtomicBool::new(true),
            send_estimate: Arc::new(AtomicU64::new(0)),
            audio_kbps,
        }
    }

    /// Congestion control's current estimate.
    pub(crate) fn send_estimate_kbps(&self) -> f64 {
        f64::from_bits(self.send_estimate.load(Ordering::Relaxed)) / 1000.0
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").field("ssrc", &self.ssrc).field("payload_type", &self.payload_type).finish()
    }
}

/// The sending side of a link, for the video sender that feeds every link of a call.
#[derive(Debug, Clone)]
pub struct LinkSender(Arc<SendSide>);

impl LinkSender {
    /// The handle to one link's sending side.
    pub(crate) fn new(side: Arc<SendSide>) -> Self {
        Self(side)
    }

    /// Connected and negotiated: frames sent now arrive.
    pub fn is_ready(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed) && self.0.video_out.get().is_some()
    }

    /// The remote side needs a keyframe before anything else is of use to it.
    pub fn wants_keyframe(&self) -> bool {
        self.0.wants_keyframe.load(Ordering::Relaxed)
    }

    /// A keyframe is on its way.
    pub fn keyframe_sent(&self) {
        self.0.wants_keyframe.store(false, Ordering::Relaxed);
    }

    /// What congestion control estimates the path to this device carries, audio and video together;
    /// `None` until connected.
    pub fn send_estimate_kbps(&self) -> Option<u32> {
        self.is_ready().then(|| self.0.send_estimate_kbps() as u32)
    }

    /// The video's share of [`Self::send_estimate_kbps`]: what is left after the audio, less the video
    /// packets' own header overhead (about 5 %).
    pub fn video_budget_kbps(&self) -> Option<u32> {
        self.send_estimate_kbps().map(|estimate| (f64::from(estimate.saturating_sub(self.0.audio_kbps)) * 0.95) as u32)
    }

    /// Sends one encoded video frame.
    pub async fn send_video(&self, data: Bytes, duration: Duration) -> Result<(), LinkError> {
        Self::send(self.0.video_out.get(), data, duration).await
    }

    /// Sends one Opus packet.
    pub async fn send_audio(&self, data: Bytes, duration: Duration) -> Result<(), LinkError> {
        Self::send(self.0.audio_out.get(), data, duration).await
    }

    async fn send(out: Option<&Outgoing>, data: Bytes, duration: Duration) -> Result<(), LinkError> {
        let Some(out) = out else { return Ok(()) };
        let sample = Sample { data, duration, ..Sample::new(std::time::Instant::now()) };
        out.track.sample_writer(out.ssrc, out.payload_type).write_sample(&sample).await?;
        Ok(())
    }
}
