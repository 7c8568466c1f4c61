//! Dialtone's media: WebRTC peer connections between the devices of a call.
//!
//! - [`link`]: one peer connection to one remote device, set up through the call's signaling relay.
//! - [`video`]: frames, the test-pattern camera, and the VP8 codec.
//! - [`audio`]: the tone microphone, Opus, the jitter buffer, playback.
//! - [`devices`]: microphones, speakers and cameras, their fake twins, and falling back to them.

#![warn(missing_docs)]

/// The part of `sansio::Protocol` every interceptor here writes the same way: the associated types, and
/// polling the two queues it keeps in `inbound` (towards the application) and `outbound` (towards the
/// wire). Used inside `impl Protocol<TaggedPacket, TaggedPacket, ()> for …`.
macro_rules! queued_protocol {
    () => {
        type Rout = rtc::interceptor::TaggedPacket;
        type Wout = rtc::interceptor::TaggedPacket;
        type Eout = ();
        type Error = rtc::shared::error::Error;
        type Time = std::time::Instant;

        fn poll_read(&mut self) -> Option<rtc::interceptor::TaggedPacket> {
            self.inbound.pop_front()
        }

        fn poll_write(&mut self) -> Option<rtc::interceptor::TaggedPacket> {
            self.outbound.pop_front()
        }
    };
}

pub mod audio;
pub mod config;
mod congestion;
pub mod devices;
mod error;
mod feed;
mod keyframe;
pub mod link;
mod loss;
mod nack;
mod pacer;
mod repair;
mod send;
pub mod video;

/// Locks a mutex shared with another thread (a device's, a capture thread, the UI's), whose panic must
/// not take the call down with it: the data is plain counters and samples, still usable.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use audio::{AudioSender, AudioSlot, AudioSource, PlaybackSources, Speaker, VoiceProcessing};
pub use config::{CONNECT_LIMIT, CameraConfig, IceServer, MediaConfig, MicrophoneConfig, every_interface};
pub use devices::{
    ABSENT_ID, DeviceChoice, DeviceInfo, DeviceKind, DeviceList, DeviceNotice, DeviceNotify, DevicePick,
};
pub use error::LinkError;
pub use link::{CandidateKind, Link, LinkEvent, LinkEvents, LinkState, LinkStats, MediaPath, Role, STATS_PERIOD};
pub use loss::SimulatedLoss;
pub use send::LinkSender;
pub use video::{
    CodecReserve, DecodedFrame, FreezeCounter, VideoSender, VideoSlot, VideoSource, Wake, release_free_memory,
    tune_allocator,
};
