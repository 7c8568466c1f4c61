//! The hub driven directly: made-up instants, no sockets, every output checked per connection. This
//! module holds the harness and the scenes several concerns start from; each concern's tables are in
//! the module of its name.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dialtone_protocol::{
    CallId, CallInfo, CallKind, CallMember, ClientMessage, DeviceAddress, DeviceId, EndReason, ErrorCode,
    MAX_PICTURE_BYTES, MediaState, MemberStatus, MissedCall, Profile, ServerMessage, UserId, picture_ref,
};

use super::*;

mod devices;
mod members;
mod presence;
mod profile;
mod relay;
mod restart;
mod ringing;

const EPOCH_UNIX_MS: u64 = 1_700_000_000_000;

const ALICE_LAPTOP: ConnId = 1;
const BOB_PHONE: ConnId = 2;
const BOB_LAPTOP: ConnId = 3;
const CAROL_PHONE: ConnId = 4;
const DAVE_PHONE: ConnId = 5;
const ERIN_PHONE: ConnId = 6;
const ALICE_TABLET: ConnId = 7;

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

fn call_id(name: &str) -> CallId {
    CallId::new(name).unwrap()
}

/// `"bob/phone"` as an address.
fn addr(user_and_device: &str) -> DeviceAddress {
    let (u, d) = user_and_device.split_once('/').expect("user/device");
    DeviceAddress { user: user(u), device: device(d) }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn invite(call: &str, users: &[&str]) -> ClientMessage {
    ClientMessage::Invite {
        call: call_id(call),
        kind: CallKind::Audio,
        users: users.iter().map(|u| user(u)).collect(),
        group: false,
        ring_timeout_ms: None,
    }
}

fn group_invite(call: &str, users: &[&str]) -> ClientMessage {
    ClientMessage::Invite {
        call: call_id(call),
        kind: CallKind::Audio,
        users: users.iter().map(|u| user(u)).collect(),
        group: true,
        ring_timeout_ms: None,
    }
}

fn accept(call: &str) -> ClientMessage {
    ClientMessage::Accept { call: call_id(call), media: MediaState::for_kind(CallKind::Audio) }
}

fn decline(call: &str, busy: bool) -> ClientMessage {
    ClientMessage::Decline { call: call_id(call), busy }
}

fn cancel(call: &str) -> ClientMessage {
    ClientMessage::Cancel { call: call_id(call) }
}

fn hangup(call: &str) -> ClientMessage {
    ClientMessage::Hangup { call: call_id(call) }
}

fn offer() -> dialtone_protocol::SignalPayload {
    dialtone_protocol::SignalPayload::Offer { sdp: "v=0".into() }
}

fn signal(call: &str, to: &str) -> ClientMessage {
    ClientMessage::Signal { call: call_id(call), to: addr(to), payload: offer() }
}

fn ended(call: &str, reason: EndReason) -> ServerMessage {
    ServerMessage::Ended { call: call_id(call), reason }
}

fn kind_of(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Welcome { .. } => "welcome",
        ServerMessage::Error { .. } => "error",
        ServerMessage::Presence { .. } => "presence",
        ServerMessage::PresenceChanged { .. } => "presence_changed",
        ServerMessage::CallState { .. } => "call_state",
        ServerMessage::Incoming { .. } => "incoming",
        ServerMessage::Ringing { .. } => "ringing",
        ServerMessage::Joined { .. } => "joined",
        ServerMessage::Left { .. } => "left",
        ServerMessage::Ended { .. } => "ended",
        ServerMessage::MediaChanged { .. } => "media_changed",
        ServerMessage::KindChanged { .. } => "kind_changed",
        ServerMessage::Signal { .. } => "signal",
        ServerMessage::Merged { .. } => "merged",
        ServerMessage::MissedCalls { .. } => "missed_calls",
        ServerMessage::Pong { .. } => "pong",
        ServerMessage::Picture { .. } => "picture",
    }
}

fn kinds(messages: &[ServerMessage]) -> Vec<&'static str> {
    messages.iter().map(kind_of).collect()
}

/// The code, seq and call of the only message, which must be an error.
fn only_error(messages: &[ServerMessage]) -> (ErrorCode, Option<u64>, Option<CallId>) {
    match messages {
        [ServerMessage::Error { code, seq, call, .. }] => (*code, *seq, call.clone()),
        other => panic!("expected exactly one error, got {other:?}"),
    }
}

/// A hub plus everything it has sent, sorted by connection.
struct TestHub {
    hub: Hub,
    t0: Instant,
    inbox: BTreeMap<ConnId, Vec<ServerMessage>>,
    closed: Vec<ConnId>,
    next_seq: u64,
}

impl TestHub {
    /// A hub where a dropped device is gone at once: most tables are about what follows when it is gone;
    /// the grace before that has its own.
    fn new() -> Self {
        Self::with_config(HubConfig { resume_grace: Duration::ZERO, ..HubConfig::default() })
    }

    fn with_config(config: HubConfig) -> Self {
        let t0 = Instant::now();
        Self { hub: Hub::new(config, t0, EPOCH_UNIX_MS), t0, inbox: BTreeMap::new(), closed: Vec::new(), next_seq: 1 }
    }

    fn config(&self) -> &HubConfig {
        &self.hub.config
    }

    /// `t0 + offset`.
    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    /// Signs `"user/device"` in on `conn`; the token's name is the user id.
    fn sign_in(&mut self, now: Instant, conn: ConnId, who: &str) {
        let DeviceAddress { user, device } = addr(who);
        let name = user.to_string();
        self.hub.connect(now, conn, user, device, name);
    }

    /// Sends a numbered message; returns its seq.
    fn send(&mut self, now: Instant, conn: ConnId, message: ClientMessage) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.hub.message(now, conn, Some(seq), message);
        seq
    }

    fn pump(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send(conn, message) => self.inbox.entry(conn).or_default().push(message),
                Output::Close(conn) => self.closed.push(conn),
            }
        }
    }

    /// Everything sent to `conn` since the last take.
    fn take(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        self.pump();
        self.inbox.remove(&conn).unwrap_or_default()
    }

    fn discard_all(&mut self) {
        self.pump();
        self.inbox.clear();
        self.closed.clear();
    }

    fn assert_silent(&mut self, context: &str) {
        self.pump();
        assert!(self.inbox.values().all(Vec::is_empty), "{context}: unexpected messages {:?}", self.inbox);
        assert!(self.closed.is_empty(), "{context}: unexpected closes {:?}", self.closed);
    }
}

// ----- scenes several concerns start from -----

/// alice/laptop calls bob, who is signed in on his phone and his laptop.
fn call_to_bob_on_two_devices() -> TestHub {
    let mut h = TestHub::new();
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, BOB_PHONE, "bob/phone");
    h.sign_in(h.t0, BOB_LAPTOP, "bob/laptop");
    h.discard_all();
    h.send(h.t0, ALICE_LAPTOP, invite("c1", &["bob"]));
    assert_eq!(kinds(&h.take(BOB_PHONE)), ["incoming"]);
    assert_eq!(kinds(&h.take(BOB_LAPTOP)), ["incoming"]);
    h.discard_all();
    h
}
