//! Dialtone's call engine, headless: the app, the bot and the tests drive it the same way.
//!
//! Start it with [`Engine::start`]; send [`Command`]s; read [`Event`]s. Inside, one task owns the
//! connection to the server (reconnecting with [`Backoff`]) and one [`call::Call`] state machine per call.
//! The engine never names a UI toolkit; a UI passes a [`Waker`] to be told when events are waiting.
//!
//! Media (peer connections, devices) plugs in through the signaling already here: [`Command::Signal`]
//! sends a session description or candidate to a device in the call, [`Event::Signal`] delivers one.

#![warn(missing_docs)]

pub mod api;
pub mod backoff;
pub mod call;
mod core;
mod links;
mod runtime;
pub mod server;

pub use api::{
    ABSENT_ID, CandidateKind, Command, DeviceChoice, DeviceInfo, DeviceKind, DeviceList, DevicePick, EngineConfig,
    Event, MediaConfig, MediaLinkState, MediaPath, Waker,
};
pub use backoff::Backoff;
pub use dialtone_media::devices::system_messages::route_to_log as route_sound_system_messages_to_log;
pub use dialtone_media::tune_allocator;
pub use dialtone_media::{AudioSlot, CameraConfig, DecodedFrame, MicrophoneConfig, SimulatedLoss, VideoSlot};
pub use links::{RemoteAudio, RemoteVideo, Streams};
pub use runtime::{Engine, EngineHandle, EngineStopped};

/// A log directive that silences webrtc's TURN relayer, which logs an error for every connectivity check
/// the relay refuses (toward addresses it is told not to relay to, as deployments do): a dozen or more
/// per call that mean nothing to a person. A connection that finds no path says why on its own
/// ([`Event::MediaLink`]'s reason).
pub const QUIET_TURN: &str = "webrtc::peer_connection::transport::turn_relayer=off";
pub use server::{ServerUrl, ServerUrlError};
