//! What goes in and out of the engine: configuration, commands and events.

use std::sync::Arc;
use std::time::Duration;

use dialtone_protocol::{
    CallId, CallInfo, CallKind, DeviceAddress, DeviceId, EndReason, ErrorCode, Fingerprint, MediaState, MissedCall,
    PresenceEntry, Profile, SignalPayload, UserId,
};
use serde::Serialize;

use crate::backoff::Backoff;
/// Where a peer connection stands (see [`Event::MediaLink`]); serialized in snake_case.
pub use dialtone_media::LinkState as MediaLinkState;
pub use dialtone_media::{ABSENT_ID, DeviceChoice, DeviceInfo, DeviceKind, DeviceList, DevicePick};
pub use dialtone_media::{CandidateKind, MediaConfig, MediaPath};

/// Called after every event, from the engine's task: a UI uses it to request a repaint.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// How to reach the server and who to be.
#[derive(Clone)]
pub struct EngineConfig {
    /// The server's `wss://` URL (`ws://` for a server on this machine, or with `allow_clear_text`).
    pub server_url: String,
    /// Trust only the server certificate with this fingerprint (a self-signed server; invite links
    /// carry it); `None` trusts the system's roots.
    pub server_fingerprint: Option<Fingerprint>,
    /// Send the sign-in token over `ws://` to another machine (a network the user trusts).
    pub allow_clear_text: bool,
    /// A sign-in token from `dialtone-server token`.
    pub token: String,
    /// This device's name, unique among the user's devices.
    pub device: DeviceId,
    /// Presence to watch once signed in: `None` watches nobody, `Some(None)` everyone,
    /// `Some(Some(users))` those users.
    pub watch_presence: Option<Option<Vec<UserId>>>,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// How long to wait for the server to confirm a call request before giving up on it.
    pub request_timeout: Duration,
    /// How long a connection attempt (TCP, WebSocket and hello) may take.
    pub connect_timeout: Duration,
    /// Seeds call ids and reconnect jitter; `None` draws a seed from the operating system.
    pub seed: Option<u64>,
    /// Called after every event and every decoded remote picture.
    pub waker: Option<Waker>,
    /// Called when the local preview has a new picture; `None` calls `waker`. A UI that repaints for
    /// remote pictures anyway can make this one lazy, so that the preview rides along with them.
    pub preview_waker: Option<Waker>,
    /// Peer connections: `None` runs signaling only, and relayed signals come out as [`Event::Signal`].
    pub media: Option<MediaConfig>,
}

impl EngineConfig {
    /// Defaults for everything but the server, the token and the device.
    pub fn new(server_url: impl Into<String>, token: impl Into<String>, device: DeviceId) -> Self {
        Self {
            server_url: server_url.into(),
            server_fingerprint: None,
            allow_clear_text: false,
            token: token.into(),
            device,
            watch_presence: None,
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            seed: None,
            waker: None,
            preview_waker: None,
            media: None,
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("server_url", &self.server_url)
            .field("device", &self.device)
            .field("watch_presence", &self.watch_presence)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// What the engine is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Call people. Without an id the engine makes one; with the id of an existing call, the server adds
    /// the users to it.
    Call {
        /// The call's id, or `None` for a fresh one.
        call: Option<CallId>,
        /// Whom to call.
        users: Vec<UserId>,
        /// Audio or video.
        kind: CallKind,
        /// A group call even with one invitee.
        group: bool,
        /// Ring for this long instead of the server's default.
        ring_timeout: Option<Duration>,
        /// What to send from the start (muted, camera off); `None`: what the kind sends (sound, and
        /// the camera for a video call). The server hears of it once it has the call.
        media: Option<MediaState>,
    },
    /// Answer a ringing call (camera off for "audio only").
    Accept {
        /// The call.
        call: CallId,
        /// What to send.
        media: MediaState,
    },
    /// Decline a ringing call, optionally as busy.
    Decline {
        /// The call.
        call: CallId,
        /// Say busy instead of declined.
        busy: bool,
    },
    /// Withdraw an unanswered outgoing call.
    Cancel {
        /// The call.
        call: CallId,
    },
    /// Leave a call (cancels it if still unanswered).
    Hangup {
        /// The call.
        call: CallId,
    },
    /// Invite more people into a call this device is in.
    Invite {
        /// The call.
        call: CallId,
        /// Whom.
        users: Vec<UserId>,
    },
    /// Mute or unmute, camera on or off (camera on upgrades an audio call).
    SetMedia {
        /// The call.
        call: CallId,
        /// The new state.
        media: MediaState,
    },
    /// Relay a session description or candidate to a device in the call.
    Signal {
        /// The call.
        call: CallId,
        /// The receiving device.
        to: DeviceAddress,
        /// What to send.
        payload: SignalPayload,
    },
    /// Watch presence: `None` everyone, or a list of users.
    WatchPresence(Option<Vec<UserId>>),
    /// Change the display name or avatar.
    SetProfile {
        /// A new display name.
        display_name: Option<String>,
        /// A new avatar reference; empty clears it.
        avatar: Option<String>,
    },
    /// Set this user's profile picture (PNG, JPEG or WebP, at most 64 KiB; the server checks), which
    /// every device that sees the profile can fetch; `None` takes it away.
    SetPicture(Option<Vec<u8>>),
    /// Fetch the picture a profile's `avatar` names (`sha256:…`); it arrives as [`Event::Picture`].
    GetPicture {
        /// The picture's name.
        avatar: String,
    },
    /// Show what the camera captures in [`crate::Engine::local_video`], and the microphone's level in
    /// [`crate::Engine::local_audio`], even outside calls (settings, the ringing view of an outgoing video
    /// call), or stop doing so.
    Preview {
        /// Whether to show it.
        on: bool,
    },
    /// Report the microphones, speakers and cameras there are now ([`Event::Devices`]).
    ListDevices,
    /// Use these devices from now on, also in calls going on (each switch is reported by
    /// [`Event::DeviceInUse`]).
    UseDevices(DeviceChoice),
    /// Connect only through a TURN relay (`true`), so the others never learn this device's addresses,
    /// or any way that works; for connections made from now on.
    RelayOnly(bool),
    /// Try again to connect to the devices of a call that could not be reached (see
    /// [`Event::MediaLink`]'s `reason`).
    RetryMedia {
        /// The call.
        call: CallId,
    },
    /// Hang up everything, sign out and stop.
    Shutdown,
}

impl Command {
    /// Whether the command concerns only this device (devices, the preview), so it works while the
    /// engine is not connected to the server.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Preview { .. } | Self::ListDevices | Self::UseDevices(_) | Self::RelayOnly(_))
    }
}

/// What the engine reports. Serialized as one JSON object with an `event` field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Connecting to the server (first time or again).
    Connecting {
        /// The server.
        url: String,
        /// 0 for the first attempt, then counting reconnects.
        attempt: u32,
    },
    /// Signed in.
    SignedIn {
        /// Who.
        user: UserId,
        /// On which device.
        device: DeviceId,
        /// The profile the server holds.
        profile: Profile,
    },
    /// The connection was lost or could not be made; the engine tries again after `retry_in_ms`.
    Reconnecting {
        /// Why the last connection ended or failed.
        reason: String,
        /// Reconnect attempt number, from 1.
        attempt: u32,
        /// Delay before the attempt.
        retry_in_ms: u64,
    },
    /// Everyone watched.
    Presence {
        /// Their entries.
        users: Vec<PresenceEntry>,
    },
    /// One watched user changed.
    PresenceChanged {
        /// The new entry.
        entry: PresenceEntry,
    },
    /// The server has this device in the call again after the connection dropped (within the grace
    /// period, or taken up again after the server restarted); media went on meanwhile.
    CallResumed {
        /// The call.
        call: CallId,
    },
    /// A profile picture asked for with [`Command::GetPicture`].
    Picture {
        /// Its name (`sha256:…`), as profiles carry it.
        avatar: String,
        /// Its media type.
        mime: String,
        /// The picture's bytes (not printed in JSON).
        #[serde(skip_serializing)]
        data: Vec<u8>,
    },
    /// Calls missed while signed out.
    MissedCalls {
        /// Oldest first.
        calls: Vec<MissedCall>,
    },
    /// This device placed a call; the server is being asked.
    OutgoingCall {
        /// The call (its id chosen by the engine unless the command gave one).
        call: CallId,
        /// Whom it calls.
        users: Vec<UserId>,
        /// Audio or video.
        kind: CallKind,
        /// A group call.
        group: bool,
        /// What this device sends.
        media: MediaState,
    },
    /// This device rings.
    IncomingCall {
        /// The call with its members.
        call: CallInfo,
        /// Who invites.
        from: UserId,
    },
    /// An invitee's devices ring (0: offline for now).
    Ringing {
        /// The call.
        call: CallId,
        /// The invitee.
        user: UserId,
        /// How many devices ring.
        devices: u32,
    },
    /// This device is in the call with someone else: the caller's first answer, or the callee's accept
    /// confirmed.
    CallActive {
        /// The call as it stands.
        call: CallInfo,
    },
    /// Someone answered, on which device.
    ParticipantJoined {
        /// The call.
        call: CallId,
        /// Who.
        user: UserId,
        /// Their device.
        device: DeviceId,
        /// What they send.
        media: MediaState,
    },
    /// Someone left or was removed (declined, busy, no answer, hung up, lost).
    ParticipantLeft {
        /// The call.
        call: CallId,
        /// Who.
        user: UserId,
        /// Why.
        reason: EndReason,
    },
    /// A member muted, unmuted, or turned their camera on or off.
    MediaChanged {
        /// The call.
        call: CallId,
        /// Who.
        user: UserId,
        /// The new state.
        media: MediaState,
    },
    /// The call became a video call.
    KindChanged {
        /// The call.
        call: CallId,
        /// The new kind.
        kind: CallKind,
        /// Who upgraded it.
        by: UserId,
    },
    /// Two people called each other at once; this device's call `call` became `into`.
    Merged {
        /// The call this device placed.
        call: CallId,
        /// The call both are in.
        into: CallId,
    },
    /// A relayed session description or candidate.
    Signal {
        /// The call.
        call: CallId,
        /// Which device sent it.
        from: DeviceAddress,
        /// What it is.
        payload: SignalPayload,
    },
    /// A peer connection to another device of the call changed state. Devices connect while the call
    /// rings, so that media starts the moment someone answers.
    MediaLink {
        /// The call.
        call: CallId,
        /// The other device.
        peer: DeviceAddress,
        /// The new state.
        state: MediaLinkState,
        /// Time since this device started setting up the connection.
        after_ms: u64,
        /// Why it failed, when no path to the other device was found.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Network and media figures of the connection to one other device, every two seconds: what a UI
    /// turns into a network-quality indicator.
    MediaStats {
        /// The call.
        call: CallId,
        /// The other device.
        peer: DeviceAddress,
        /// Round-trip time, once measured.
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_ms: Option<f64>,
        /// Sending rate to that device.
        send_kbps: f64,
        /// What congestion control estimates the path to that device carries; the video sent to
        /// everyone fits the narrowest path.
        send_estimate_kbps: f64,
        /// Receiving rate from that device.
        receive_kbps: f64,
        /// Packets from that device that never arrived, since the start.
        packets_lost: i64,
        /// Packets from that device that arrived, since the start.
        packets_received: u64,
        /// Video frames decoded from that device, since the start.
        video_frames: u64,
        /// Whole video frames from that device that could not be shown (undecodable, or waiting for
        /// a keyframe after a loss), since the start.
        video_frames_dropped: u64,
        /// Times its video froze (a gap longer than three typical frame gaps and 150 ms), since the start.
        video_freezes: u64,
        /// How long those freezes lasted together.
        video_frozen_ms: u64,
        /// Video frames per second over the last period.
        video_fps: f64,
        /// The size of its latest picture (0 before any).
        video_width: u32,
        /// The size of its latest picture (0 before any).
        video_height: u32,
        /// Lost audio frames that had to be concealed, since the start.
        audio_concealed: u64,
        /// Which way media goes (direct, through a NAT's address, or relayed), once connected.
        path: Option<MediaPath>,
    },
    /// Who is loudest in a call now; `None` when nobody speaks. Sent when it changes.
    ActiveSpeaker {
        /// The call.
        call: CallId,
        /// The speaker.
        user: Option<UserId>,
    },
    /// The devices there are, after [`Command::ListDevices`].
    Devices {
        /// Real ones first, each kind's fake twin last.
        devices: DeviceList,
    },
    /// A microphone, speaker or camera started; when it is not the one picked (missing, unusable,
    /// unplugged during a call), `problem` says why and `device` is the stand-in (the fake twin). Sent
    /// again when a lost device comes back.
    DeviceInUse {
        /// Microphone, speaker or camera.
        kind: DeviceKind,
        /// The device now in use.
        device: DeviceInfo,
        /// Why it is not the one picked.
        #[serde(skip_serializing_if = "Option::is_none")]
        problem: Option<String>,
    },
    /// This device's part in a call ended.
    CallEnded {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
        /// How long it was active, if it was.
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
    /// A request failed (server error code) or a command did not fit (no code).
    Error {
        /// The server's code, when the server refused.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
        /// What happened.
        message: String,
        /// The call concerned.
        #[serde(skip_serializing_if = "Option::is_none")]
        call: Option<CallId>,
    },
    /// The engine stopped: after [`Command::Shutdown`], or because signing in can never succeed (bad
    /// token, version mismatch).
    Stopped {
        /// Why.
        reason: String,
    },
}
