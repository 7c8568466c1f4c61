//! Dialtone's media: WebRTC peer connections between the devices of a call.
//!
//! - [`link`]: one peer connection to one remote device, set up through the call's signaling relay.
//! - [`video`]: frames, the test-pattern camera, and the VP8 codec.
//! - [`audio`]: the tone microphone, Opus, the jitter buffer, playback.
//! - [`devices`]: microphones, speakers and cameras, their fake twins, and falling back to them.

#![warn(missing_docs)]

pub mod audio;
pub mod devices;
mod feed;
mod keyframe;
pub mod link;
pub mod video;

pub use link::{IceServer, Link, LinkError, LinkEvent, LinkEvents, LinkSender, LinkState, LinkStats, MediaConfig, Role, STATS_PERIOD};
pub use audio::{AudioSender, AudioSlot, AudioSource, MicrophoneConfig, PlaybackSources, Speaker, VoiceProcessing};
pub use devices::{DeviceChoice, DeviceInfo, DeviceKind, DeviceList, DeviceNotice, DeviceNotify, DevicePick};
pub use video::{CameraConfig, DecodedFrame, VideoSender, VideoSlot, VideoSource, Wake};
