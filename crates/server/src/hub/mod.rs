//! The server's call logic, free of sockets and clocks.
//!
//! The [`Hub`] takes inputs (a device signed in, a message arrived, a device went away, time passed) with
//! the current time, and queues [`Output`]s: messages for connections and connections to close. The
//! network layer feeds it and drains it; tests drive it directly with made-up instants, so every flow
//! runs deterministically and faster than real time.
//!
//! This module holds the hub itself and routes each input to the concern that handles it:
//!
//! - `state`: the records kept (connections, users, devices, calls, members, pictures, timers).
//! - `presence`: who is online and in a call, pushed to the connections that watch.
//! - `profile`: display names and profile pictures.
//! - `members`: who is in a call and how they leave it; the end of a call; the idle timer.
//! - `ringing`: starting a call, ringing every free device, busy, glare, answering, declining,
//!   cancelling, the ring timeout.
//! - `devices`: signing in and going away, and the grace that keeps a dropped device's place in its call.
//! - `relay`: what members send each other: signals between devices taking part, media changes.
//! - `restart`: calls taken up again after the server restarted.
//!
//! Each concern calls on only those listed before it (and this module), so no two call each other. The
//! records and the invitation are named from `state` and here, never from a sibling, so the files'
//! imports run one way too.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use dialtone_protocol::{CallId, CallKind, ClientMessage, DeviceAddress, DeviceId, ErrorCode, ServerMessage, UserId};

use crate::ice::IceConfig;

mod devices;
mod members;
mod presence;
mod profile;
mod relay;
mod restart;
mod ringing;
mod state;

pub use state::ConnId;
use state::{Call, Conn, Device, Picture, Status, Timer, Users, refuse};

/// Timeouts and bounds of the call logic.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// How long invitees ring when the inviter names no timeout.
    pub ring_timeout: Duration,
    /// The longest ring timeout an inviter may ask for.
    pub max_ring_timeout: Duration,
    /// How long someone may stay alone in a group call.
    pub idle_timeout: Duration,
    /// How often clients must send something; told to them in the welcome.
    pub heartbeat: Duration,
    /// Most members (joined and ringing) in one call.
    pub max_call_members: usize,
    /// Most missed-call records kept per user; the oldest go first.
    pub max_missed_calls: usize,
    /// STUN and TURN servers told to clients at sign-in.
    pub ice: IceConfig,
    /// How long a device whose connection dropped keeps its place in the call it is in: signing in
    /// again within it resumes the call, and nobody else is told it was gone. Zero: it leaves at once.
    pub resume_grace: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(30),
            max_ring_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(180),
            heartbeat: Duration::from_secs(15),
            max_call_members: 16,
            max_missed_calls: 100,
            ice: IceConfig::default(),
            resume_grace: Duration::from_secs(20),
        }
    }
}

/// Something the hub wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a message to a connection.
    Send(ConnId, ServerMessage),
    /// Close a connection (after sending what was queued for it).
    Close(ConnId),
}

/// What an invite message asks for.
#[derive(Debug)]
struct Invitation {
    /// The call's id, chosen by the inviter: a new call, or one the inviter is in or may join.
    call: CallId,
    kind: CallKind,
    /// As sent: may repeat someone or name the inviter.
    invitees: Vec<UserId>,
    /// A group call even with one invitee (more than one always makes it one).
    group: bool,
    ring_timeout_ms: Option<u64>,
}

/// The call logic. See the module documentation.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    epoch: Instant,
    epoch_unix_ms: u64,
    conns: HashMap<ConnId, Conn>,
    users: Users,
    calls: HashMap<CallId, Call>,
    /// Profile pictures by name (`sha256:…`).
    pictures: HashMap<String, Picture>,
    timers: BTreeSet<(Instant, Timer)>,
    watch_all: HashSet<ConnId>,
    watchers: HashMap<UserId, HashSet<ConnId>>,
    watching: HashMap<ConnId, Vec<UserId>>,
    /// Set while a device's old connection is replaced by a new one.
    presence_paused: bool,
    outputs: VecDeque<Output>,
}

impl Hub {
    /// A hub whose clock reads `epoch` at Unix time `epoch_unix_ms`.
    pub fn new(config: HubConfig, epoch: Instant, epoch_unix_ms: u64) -> Self {
        Self {
            config,
            epoch,
            epoch_unix_ms,
            conns: HashMap::new(),
            users: HashMap::new(),
            calls: HashMap::new(),
            pictures: HashMap::new(),
            timers: BTreeSet::new(),
            watch_all: HashSet::new(),
            watchers: HashMap::new(),
            watching: HashMap::new(),
            presence_paused: false,
            outputs: VecDeque::new(),
        }
    }

    /// The next queued output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Hub::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// How many connections are signed in.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// How many calls are going on (ringing or joined).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// A message from a signed-in connection.
    pub fn message(&mut self, now: Instant, conn: ConnId, seq: Option<u64>, message: ClientMessage) {
        let Some(sender) = self.conns.get(&conn) else { return };
        let (user, device) = (sender.user.clone(), sender.device.clone());
        let call = message.call().cloned();
        let result = match message {
            ClientMessage::Hello { .. } => refuse(ErrorCode::AlreadySignedIn, "this connection is already signed in"),
            ClientMessage::Ping { nonce } => {
                self.send(conn, ServerMessage::Pong { nonce });
                Ok(())
            }
            ClientMessage::SetPicture { mime, data } => self.set_picture(&user, &mime, &data),
            ClientMessage::Resume { calls } => {
                for info in calls {
                    let id = info.call.clone();
                    if let Err((code, message)) = self.resume(now, &user, &device, info) {
                        self.send(conn, ServerMessage::Error { seq, code, message, call: Some(id) });
                    }
                }
                Ok(())
            }
            ClientMessage::GetPicture { avatar } => self.get_picture(conn, avatar),
            ClientMessage::WatchPresence { users } => {
                self.watch(conn, users);
                Ok(())
            }
            ClientMessage::SetProfile { display_name, avatar } => self.set_profile(&user, display_name, avatar),
            ClientMessage::Invite { call, kind, users, group, ring_timeout_ms } => {
                let invitation = Invitation { call, kind, invitees: users, group, ring_timeout_ms };
                self.invite(now, &user, &device, invitation)
            }
            ClientMessage::Accept { call, media } => self.accept(now, &user, &device, &call, media),
            ClientMessage::Decline { call, busy } => self.decline(now, &user, &device, &call, busy),
            ClientMessage::Cancel { call } => self.cancel(&user, &device, &call),
            ClientMessage::Hangup { call } => self.hangup(now, &user, &device, &call),
            ClientMessage::SetMedia { call, media } => self.set_media(&user, &device, &call, media),
            ClientMessage::Signal { call, to, payload } => {
                let from = DeviceAddress { user: user.clone(), device: device.clone() };
                self.relay(&call, from, to, payload)
            }
        };
        if let Err((code, message)) = result {
            self.send(conn, ServerMessage::Error { seq, code, message, call });
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, timer)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer.clone()));
            match timer {
                Timer::Ring(call, user) => self.ring_timed_out(now, &call, &user),
                Timer::Idle(call) => self.idle_timed_out(now, &call),
                Timer::Expected(call) => self.claims_timed_out(&call),
                Timer::Away(user, device) => self.grace_timed_out(now, &user, &device),
            }
        }
    }

    // ----- helpers every concern uses -----

    fn unix_ms(&self, now: Instant) -> u64 {
        self.epoch_unix_ms + now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn device_state(&self, user: &UserId, device: &DeviceId) -> Option<&Device> {
        self.users.get(user)?.devices.get(device)
    }

    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        self.outputs.push_back(Output::Send(conn, message));
    }

    fn send_device(&mut self, user: &UserId, device: &DeviceId, message: ServerMessage) {
        // A device that is away misses what happens meanwhile; the welcome on its return has the state.
        let device = self.device_state(user, device).filter(|d| d.away_until.is_none());
        if let Some(conn) = device.map(|d| d.conn) {
            self.send(conn, message);
        }
    }

    /// Sends to the joined device of every joined member except `except`.
    fn send_joined(&mut self, call: &CallId, except: Option<&UserId>, message: ServerMessage) {
        let Some(targets) = self.calls.get(call).map(|c| {
            c.members
                .iter()
                .filter(|m| Some(&m.user) != except)
                .filter_map(|m| match &m.status {
                    Status::Joined { device, .. } => Some((m.user.clone(), device.clone())),
                    Status::Ringing { .. } => None,
                })
                .collect::<Vec<_>>()
        }) else {
            return;
        };
        for (user, device) in targets {
            self.send_device(&user, &device, message.clone());
        }
    }
}

#[cfg(test)]
mod tests;
