//! The messages themselves, and the small data types they carry.

use serde::{Deserialize, Serialize};

use crate::{CallId, DeviceAddress, DeviceId, UserId};

/// Whether a call carries audio only or audio and video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// Audio only.
    Audio,
    /// Audio and video.
    Video,
}

/// What one device sends into a call: seen by every other member. The default is unmuted, camera off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaState {
    /// The microphone is muted.
    #[serde(default)]
    pub audio_muted: bool,
    /// The camera is sending. Turning it on in an audio call upgrades the call to video.
    #[serde(default)]
    pub camera_on: bool,
}

impl MediaState {
    /// The state a device starts a call of `kind` with: unmuted, camera on for video calls.
    pub fn for_kind(kind: CallKind) -> Self {
        Self { audio_muted: false, camera_on: kind == CallKind::Video }
    }
}

/// How a user presents themself to others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The name shown to others.
    pub display_name: String,
    /// A reference to an avatar picture (a URL or content hash), if the user set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// A STUN or TURN server a client may use for its peer connections, as the server hands them out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp` and the like.
    pub urls: Vec<String>,
    /// TURN user name (for a server-issued credential: its expiry in Unix seconds, a colon, the user).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// TURN password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential: String,
}

/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 80;
/// Longest avatar reference accepted, in bytes.
pub const MAX_AVATAR_REF_BYTES: usize = 512;

/// One user's presence, as pushed to the clients that watch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// Whose presence this is.
    pub user: UserId,
    /// Their profile.
    pub profile: Profile,
    /// Whether at least one of their devices is signed in.
    pub online: bool,
    /// How many of their devices are signed in.
    pub devices: u32,
    /// Whether every signed-in device is in a call.
    pub in_call: bool,
}

/// Where a member of a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Invited; their devices are ringing (or they are offline and may still sign in and answer).
    Ringing,
    /// In the call on one device.
    Joined,
}

/// One member of a call, as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMember {
    /// The member.
    pub user: UserId,
    /// Their profile.
    pub profile: Profile,
    /// Ringing or joined.
    pub status: MemberStatus,
    /// The device they joined on, once joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// What they send, once joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaState>,
}

/// A call as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The call.
    pub call: CallId,
    /// Audio or video.
    pub kind: CallKind,
    /// A group call goes on while members remain; a 1v1 call ends when either side leaves.
    pub group: bool,
    /// Who started the call.
    pub initiator: UserId,
    /// Everyone joined or ringing, initiator first.
    pub members: Vec<CallMember>,
}

impl CallInfo {
    /// The member entry of `user`, if they are in the call.
    pub fn member(&self, user: &UserId) -> Option<&CallMember> {
        self.members.iter().find(|member| &member.user == user)
    }
}

/// Why a call, or one member's part in it, ended. This is the one documented list: every ending
/// carries exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// This device hung up.
    Hangup,
    /// The other side of a 1v1 call hung up.
    RemoteHangup,
    /// The caller cancelled before anyone answered.
    Cancelled,
    /// The invitee declined.
    Declined,
    /// The invitee declined on another of their devices.
    DeclinedOnAnotherDevice,
    /// The invitee answered on another of their devices.
    AnsweredOnAnotherDevice,
    /// The invitee was busy: every device in another call, or declined as busy.
    Busy,
    /// Nobody answered before the ring timeout.
    NoAnswer,
    /// Alone in a group call for the idle timeout.
    IdleTimeout,
    /// The connection to the server (or to the peer) was lost.
    ConnectionLost,
    /// Something went wrong that is none of the above (see the accompanying error).
    Failed,
}

impl EndReason {
    /// Every reason, in documentation order.
    pub const ALL: [EndReason; 11] = [
        EndReason::Hangup,
        EndReason::RemoteHangup,
        EndReason::Cancelled,
        EndReason::Declined,
        EndReason::DeclinedOnAnotherDevice,
        EndReason::AnsweredOnAnotherDevice,
        EndReason::Busy,
        EndReason::NoAnswer,
        EndReason::IdleTimeout,
        EndReason::ConnectionLost,
        EndReason::Failed,
    ];

    /// The wire name, as in the documented list.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Hangup => "hangup",
            EndReason::RemoteHangup => "remote_hangup",
            EndReason::Cancelled => "cancelled",
            EndReason::Declined => "declined",
            EndReason::DeclinedOnAnotherDevice => "declined_on_another_device",
            EndReason::AnsweredOnAnotherDevice => "answered_on_another_device",
            EndReason::Busy => "busy",
            EndReason::NoAnswer => "no_answer",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::ConnectionLost => "connection_lost",
            EndReason::Failed => "failed",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong with a request. Sent in [`ServerMessage::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The hello named another protocol version.
    VersionMismatch,
    /// A message other than hello came before signing in.
    NotSignedIn,
    /// A second hello on a signed-in connection.
    AlreadySignedIn,
    /// The token's signature or format is wrong.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// The frame was not JSON or not a known message.
    Malformed,
    /// The frame was larger than the limit.
    MessageTooLarge,
    /// Too many messages too fast; this one was dropped.
    RateLimited,
    /// No such call.
    UnknownCall,
    /// The request does not fit the call's state for this device (accepting a call you were not invited
    /// to, cancelling one you did not start, relaying to a non-member).
    NotAllowed,
    /// The request itself makes no sense (no invitees, inviting yourself, a bad field).
    BadRequest,
    /// The same user signed in again with the same device name; this connection is closed.
    Replaced,
    /// The server is shutting down.
    ShuttingDown,
}

/// A session description or ICE candidate, relayed between two devices in the same call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalPayload {
    /// An SDP offer.
    Offer {
        /// The session description.
        sdp: String,
    },
    /// An SDP answer.
    Answer {
        /// The session description.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate line.
        candidate: String,
        /// The media stream id it belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// The m-line index it belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
    /// No more candidates will follow.
    EndOfCandidates,
}

/// A call this user missed while none of their devices was signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedCall {
    /// The call.
    pub call: CallId,
    /// Who called.
    pub from: UserId,
    /// The caller's profile.
    pub from_profile: Profile,
    /// Audio or video.
    pub kind: CallKind,
    /// Whether it was a group call.
    pub group: bool,
    /// When the invitation reached the server, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// How the invitation ended (`cancelled`, `no_answer`, ...).
    pub reason: EndReason,
}

/// A client frame: an optional sequence number and the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Echoed in the error a failed request causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The message.
    #[serde(flatten)]
    pub message: ClientMessage,
}

/// Messages from a client device to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: protocol version, token and device name.
    Hello {
        /// Must equal [`crate::PROTOCOL_VERSION`].
        version: u32,
        /// A sign-in token minted by the server's `token` command.
        token: String,
        /// This device; unique among the user's devices.
        device: DeviceId,
    },
    /// Ask for presence pushes: `users: null` watches everyone, a list watches those users.
    /// Answered with a [`ServerMessage::Presence`] snapshot, then [`ServerMessage::PresenceChanged`].
    WatchPresence {
        /// Whom to watch; `None` for everyone.
        #[serde(default)]
        users: Option<Vec<UserId>>,
    },
    /// Change this user's profile; pushed to watchers.
    SetProfile {
        /// A new display name.
        #[serde(default)]
        display_name: Option<String>,
        /// A new avatar reference; an empty string clears it.
        #[serde(default)]
        avatar: Option<String>,
    },
    /// After the server restarted (its `welcome` has a new `server_started_ms`): the calls this device
    /// was in, as it last knew them, to take up again. The server keeps each for the grace period for
    /// the other joined devices to claim it too, and answers each with `call_state` (or an error).
    Resume {
        /// The calls, each listing this device as joined.
        calls: Vec<CallInfo>,
    },
    /// Set this user's profile picture (PNG, JPEG or WebP, at most [`crate::MAX_PICTURE_BYTES`]); the
    /// profile's `avatar` becomes its [`crate::picture_ref`], pushed to watchers.
    SetPicture {
        /// `image/png`, `image/jpeg` or `image/webp`, as the bytes must show.
        mime: String,
        /// The picture, base64 (standard alphabet, padded).
        data: String,
    },
    /// Ask for the picture a profile's `avatar` names; answered with [`ServerMessage::Picture`].
    GetPicture {
        /// The `sha256:…` name.
        avatar: String,
    },
    /// Start a call, or invite more people into one: an id that exists adds `users` to that call.
    Invite {
        /// The call's id, chosen by the client.
        call: CallId,
        /// Audio or video.
        kind: CallKind,
        /// Whom to invite.
        users: Vec<UserId>,
        /// Make it a group call even with one invitee.
        #[serde(default)]
        group: bool,
        /// Ring for this long instead of the server's default (bounded by the server).
        #[serde(default)]
        ring_timeout_ms: Option<u64>,
    },
    /// Answer a ringing call on this device.
    Accept {
        /// The call.
        call: CallId,
        /// What this device starts sending (camera off for "accept audio only").
        media: MediaState,
    },
    /// Decline a ringing call on this device (and so on all of this user's devices).
    Decline {
        /// The call.
        call: CallId,
        /// Decline as busy.
        #[serde(default)]
        busy: bool,
    },
    /// The initiator withdraws the call before anyone answered.
    Cancel {
        /// The call.
        call: CallId,
    },
    /// Leave a joined call.
    Hangup {
        /// The call.
        call: CallId,
    },
    /// Mute, unmute, camera on or off; camera on in an audio call upgrades it to video.
    SetMedia {
        /// The call.
        call: CallId,
        /// The new state.
        media: MediaState,
    },
    /// Relay a session description or candidate to another device in the call.
    Signal {
        /// The call both devices are in.
        call: CallId,
        /// The receiving device.
        to: DeviceAddress,
        /// What to relay.
        payload: SignalPayload,
    },
    /// Keep-alive; answered with [`ServerMessage::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

impl ClientMessage {
    /// The call this message is about, if any.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            ClientMessage::Invite { call, .. }
            | ClientMessage::Accept { call, .. }
            | ClientMessage::Decline { call, .. }
            | ClientMessage::Cancel { call }
            | ClientMessage::Hangup { call }
            | ClientMessage::SetMedia { call, .. }
            | ClientMessage::Signal { call, .. } => Some(call),
            ClientMessage::Hello { .. }
            | ClientMessage::WatchPresence { .. }
            | ClientMessage::SetProfile { .. }
            | ClientMessage::SetPicture { .. }
            | ClientMessage::Resume { .. }
            | ClientMessage::GetPicture { .. }
            | ClientMessage::Ping { .. } => None,
        }
    }
}

/// Messages from the server to a client device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Signed in.
    Welcome {
        /// The server's protocol version.
        version: u32,
        /// Who signed in.
        user: UserId,
        /// On which device.
        device: DeviceId,
        /// The user's profile.
        profile: Profile,
        /// The client should send something (a ping) at least this often, or be dropped.
        heartbeat_ms: u64,
        /// STUN and TURN servers for this session's peer connections, with TURN credentials issued
        /// for this user (they expire; a new sign-in brings new ones).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
        /// The calls this device is still in: it signed in again within the grace period after its
        /// connection dropped, and its place in them was kept. A call the client has and this list lacks
        /// is over for this device.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        calls: Vec<CallInfo>,
        /// How long the server keeps a device's place in its calls after its connection drops; 0 when it
        /// keeps none.
        #[serde(default)]
        resume_grace_ms: u64,
        /// When this server process started (Unix milliseconds): a client that sees it change knows the
        /// server restarted and lost its calls, and may take them up again with `resume`.
        #[serde(default)]
        server_started_ms: u64,
    },
    /// A request failed; `seq` names it when the client numbered it.
    Error {
        /// The failed frame's sequence number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// What kind of failure.
        code: ErrorCode,
        /// A readable explanation.
        message: String,
        /// The call the request was about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<CallId>,
    },
    /// Everyone watched, as now.
    Presence {
        /// One entry per watched user who has ever signed in.
        users: Vec<PresenceEntry>,
    },
    /// One watched user's presence or profile changed.
    PresenceChanged {
        /// The new entry.
        entry: PresenceEntry,
    },
    /// The state of a call this device just started or joined.
    CallState {
        /// The call.
        call: CallInfo,
    },
    /// This device is being invited: ring.
    Incoming {
        /// The call, with everyone in it.
        call: CallInfo,
        /// Who invited this user.
        from: UserId,
    },
    /// An invitee's devices are ringing (0 devices: offline for now; they ring on sign-in).
    Ringing {
        /// The call.
        call: CallId,
        /// The invitee.
        user: UserId,
        /// The invitee's profile.
        profile: Profile,
        /// How many of their devices ring.
        devices: u32,
        /// Who invited them.
        invited_by: UserId,
    },
    /// A member answered on one device.
    Joined {
        /// The call.
        call: CallId,
        /// The member.
        user: UserId,
        /// Their device.
        device: DeviceId,
        /// What they send.
        media: MediaState,
    },
    /// A member left or was removed; the call goes on for the others.
    Left {
        /// The call.
        call: CallId,
        /// The member.
        user: UserId,
        /// Why.
        reason: EndReason,
    },
    /// This device's part in the call is over.
    Ended {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
    },
    /// A member's mute or camera state changed.
    MediaChanged {
        /// The call.
        call: CallId,
        /// The member.
        user: UserId,
        /// The new state.
        media: MediaState,
    },
    /// The call changed kind (an audio call upgraded to video).
    KindChanged {
        /// The call.
        call: CallId,
        /// The new kind.
        kind: CallKind,
        /// Who upgraded it.
        by: UserId,
    },
    /// A relayed session description or candidate.
    Signal {
        /// The call.
        call: CallId,
        /// The sending device.
        from: DeviceAddress,
        /// What was relayed.
        payload: SignalPayload,
    },
    /// Glare: this device's call `call` and an invitation from the same person met; both sides are now
    /// in `into`, already joined.
    Merged {
        /// The call this device tried to start, now gone.
        call: CallId,
        /// The call both sides are in.
        into: CallInfo,
    },
    /// Calls missed while no device of this user was signed in.
    MissedCalls {
        /// Oldest first.
        calls: Vec<MissedCall>,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// A profile picture asked for with [`ClientMessage::GetPicture`].
    Picture {
        /// Its `sha256:…` name.
        avatar: String,
        /// Its media type.
        mime: String,
        /// The picture, base64.
        data: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeError, MAX_MESSAGE_BYTES, decode_client, encode};

    #[test]
    fn client_frames_round_trip_with_and_without_seq() {
        let frame = ClientFrame {
            seq: Some(7),
            message: ClientMessage::Invite {
                call: CallId::new("c1").unwrap(),
                kind: CallKind::Video,
                users: vec![UserId::new("bob").unwrap()],
                group: false,
                ring_timeout_ms: None,
            },
        };
        let text = encode(&frame);
        assert!(text.contains("\"type\":\"invite\"") && text.contains("\"seq\":7"), "{text}");
        assert_eq!(decode_client(&text).unwrap(), frame);

        let bare = decode_client(r#"{"type":"ping","nonce":3}"#).unwrap();
        assert_eq!(bare, ClientFrame { seq: None, message: ClientMessage::Ping { nonce: 3 } });
    }

    #[test]
    fn unknown_types_and_fields_are_malformed() {
        assert!(matches!(decode_client(r#"{"type":"launch"}"#), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_client("not json"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_client(r#"{"type":"ping","nonce":1,"extra":true}"#), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing() {
        let big = format!(r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#, "x".repeat(MAX_MESSAGE_BYTES));
        let err = decode_client(&big).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge(_)));
        assert_eq!(err.code(), ErrorCode::MessageTooLarge);
    }

    #[test]
    fn end_reasons_use_the_documented_names() {
        for reason in EndReason::ALL {
            assert_eq!(encode(&reason), format!("\"{}\"", reason.as_str()));
        }
    }

    #[test]
    fn signal_payloads_are_tagged_by_kind() {
        let text = encode(&SignalPayload::Candidate {
            candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        });
        assert!(text.starts_with(r#"{"kind":"candidate""#), "{text}");
    }
}
