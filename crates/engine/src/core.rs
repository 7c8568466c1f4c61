//! The engine's logic without sockets or clocks, as the server's `Hub` is: commands, server messages,
//! what the media links report and the time (`timeout(now)`) go in; messages for the server, events for
//! the app and changes to the media links are polled out. The runtime (`runtime.rs`) owns the socket, the
//! reconnect backoff and the select loop, and performs what comes out.
//!
//! What it decides: which calls exist and what each is fed ([`Call`] does the rest); what happens to
//! calls while the server connection is down (they go on for the server's grace period, a hangup is
//! kept for the server's return) and when it comes back (the calls it kept are resumed, a restarted
//! server is offered them again); which link events the app hears of.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use dialtone_media::{LinkState, LinkStats};
use dialtone_protocol::{
    CallId, CallInfo, ClientMessage, DeviceAddress, DeviceId, EndReason, ErrorCode, IceServer, MemberStatus, Profile,
    ServerMessage, SignalPayload, UserId,
};
use rand::Rng;
use rand::rngs::StdRng;

use crate::api::{Command, Event};
use crate::call::{Call, Direction, Effect, Input, Invitation, Phase};

/// How long an incoming call may ring here if the server never ends it (the server's own timeout is
/// shorter; this only guards against a server that went quiet).
pub(crate) const INCOMING_RING_LIMIT: Duration = Duration::from_secs(150);

/// What the core needs to know of the engine's configuration.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// How long a request to the server may go unanswered.
    pub(crate) request_timeout: Duration,
    /// Asked for at every sign-in (see `EngineConfig::watch_presence`).
    pub(crate) watch_presence: Option<Option<Vec<UserId>>>,
    /// Whether this engine makes media connections itself (otherwise signals go to the app).
    pub(crate) media: bool,
}

/// What the server said when this device signed in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SignedIn {
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) profile: Profile,
    pub(crate) ice_servers: Vec<IceServer>,
    /// The calls the server kept this device's place in.
    pub(crate) calls: Vec<CallInfo>,
    pub(crate) resume_grace: Duration,
    /// When the server started: a change means it restarted and lost its calls.
    pub(crate) server_started_ms: u64,
}

/// A change to the media links, for the runtime to make.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LinkChange {
    /// Open and close connections as this event says (`Links::follow`).
    Follow {
        /// The event, as the app hears it.
        event: Event,
        /// This device.
        me: DeviceAddress,
        /// A `CallActive` that came from this device joining (not from someone answering its call).
        joined_here: bool,
    },
    /// A signal from another device for its connection with this one.
    Signal { call: CallId, from: DeviceAddress, payload: SignalPayload, me: DeviceAddress },
    /// The camera and the microphone of a call this device is in.
    Media { call: CallId, camera: bool, microphone: bool },
    /// Make again the connections of the call that never came up.
    RetryUnreached { call: CallInfo, me: DeviceAddress },
    /// The STUN and TURN servers the server hands out.
    UseIce(Vec<IceServer>),
    /// Every call is over for this device: close every connection.
    CloseAll,
}

/// What became of a connection whose state changed, as the links decided (they know which connection
/// is current and whether one is worth making again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkFate {
    /// The connection goes on, or ended and was forgotten: its state is news.
    Current,
    /// It failed and is being made again.
    Retried,
    /// A connection already replaced by a newer one: its last word is no news.
    Replaced,
}

/// What arrived from one other device so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Received {
    pub(crate) video_frames: u64,
    pub(crate) video_dropped: u64,
    pub(crate) video_freezes: u64,
    pub(crate) video_frozen: Duration,
    /// The latest picture's size.
    pub(crate) video_size: (u32, u32),
    pub(crate) audio_concealed: u64,
}

/// Why the runtime should drop the server connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disconnect {
    /// Connect again (the server is going away for a while).
    Reconnect(String),
    /// Stop: connecting again would fail the same way.
    Stop(String),
}

/// What the core gives out, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Tell the app.
    Event(Event),
    /// Change the media links.
    Link(LinkChange),
}

/// See the module documentation.
pub(crate) struct Core {
    config: CoreConfig,
    rng: StdRng,
    calls: BTreeMap<CallId, Call>,
    me: Option<(UserId, DeviceId, Profile)>,
    /// Messages for the server, kept while the connection is down.
    sends: Vec<ClientMessage>,
    outputs: VecDeque<Output>,
    /// Whether the server connection is up (signed in).
    online: bool,
    /// While offline with calls: until when the server keeps this device's place in them.
    kept_until: Option<Instant>,
    /// How long the server keeps this device's place in its calls after the connection drops (told at
    /// sign-in).
    resume_grace: Duration,
    /// When the server last signed in to started.
    server_started_ms: Option<u64>,
    /// Calls offered to a restarted server to take up again, not yet confirmed.
    resuming: BTreeSet<CallId>,
    /// Video frames counted at the last statistics, per connection, for frame rates.
    video_frames_seen: BTreeMap<(CallId, DeviceAddress), u64>,
    /// The loudest member last reported, per call.
    speakers: BTreeMap<CallId, Option<UserId>>,
}

impl Core {
    /// A core not yet signed in; `rng` makes call ids.
    pub(crate) fn new(config: CoreConfig, rng: StdRng) -> Self {
        Self {
            config,
            rng,
            calls: BTreeMap::new(),
            me: None,
            sends: Vec::new(),
            outputs: VecDeque::new(),
            online: false,
            kept_until: None,
            resume_grace: Duration::ZERO,
            server_started_ms: None,
            resuming: BTreeSet::new(),
            video_frames_seen: BTreeMap::new(),
            speakers: BTreeMap::new(),
        }
    }

    /// The next event or link change.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The messages for the server, while connected (they wait while it is not).
    pub(crate) fn take_sends(&mut self) -> Vec<ClientMessage> {
        if self.online { std::mem::take(&mut self.sends) } else { Vec::new() }
    }

    /// When [`Core::timeout`] is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.online {
            self.calls.values().filter_map(Call::deadline).min()
        } else {
            self.kept_until.filter(|_| !self.calls.is_empty())
        }
    }

    /// Whether any call is going on (or ringing) here.
    pub(crate) fn has_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// The calls in progress, for asking the links who speaks in each.
    pub(crate) fn active_calls(&self) -> Vec<CallId> {
        self.calls.values().filter(|c| c.phase() == Phase::Active).map(|c| c.id().clone()).collect()
    }

    /// Whether `call` is still going on here.
    pub(crate) fn is_live(&self, call: &CallId) -> bool {
        self.calls.get(call).is_some_and(|c| !c.phase().is_over())
    }

    /// Signed in (again): the calls the server kept go on, updated to what happened meanwhile; the others
    /// are over for this device.
    pub(crate) fn signed_in(&mut self, welcome: SignedIn, now: Instant) {
        self.online = true;
        self.kept_until = None;
        self.me = Some((welcome.user.clone(), welcome.device.clone(), welcome.profile.clone()));
        self.resume_grace = welcome.resume_grace;
        self.link(LinkChange::UseIce(welcome.ice_servers));
        self.emit(Event::SignedIn { user: welcome.user.clone(), device: welcome.device, profile: welcome.profile });
        self.resume(welcome.user, welcome.calls, welcome.server_started_ms, now);
        if let Some(watch) = self.config.watch_presence.clone() {
            self.sends.push(ClientMessage::WatchPresence { users: watch });
        }
    }

    /// The server connection dropped (or never came up): calls go on for the server's grace period.
    pub(crate) fn connection_lost(&mut self, now: Instant) {
        self.online = false;
        let kept_until = *self.kept_until.get_or_insert(now + self.resume_grace);
        if self.calls.is_empty() || now >= kept_until {
            self.lose_calls(now);
        }
    }

    /// The engine cannot go on (stopped, or sign-in refused for good): every call is over.
    pub(crate) fn stopped(&mut self, now: Instant) {
        self.online = false;
        self.lose_calls(now);
    }

    /// Time passed: calls' timers, and the end of the grace period while offline.
    pub(crate) fn timeout(&mut self, now: Instant) {
        if !self.online {
            if self.kept_until.is_some_and(|until| now >= until) && !self.calls.is_empty() {
                self.lose_calls(now);
            }
            return;
        }
        let due: Vec<CallId> =
            self.calls.values().filter(|c| c.deadline().is_some_and(|d| d <= now)).map(|c| c.id().clone()).collect();
        for id in due {
            self.feed(&id, Input::Tick, now);
        }
    }

    /// Hangs up or declines every call (the engine is shutting down).
    pub(crate) fn hang_up_all(&mut self, now: Instant) {
        let ids: Vec<CallId> = self.calls.keys().cloned().collect();
        for id in ids {
            let input = match self.calls[&id].phase() {
                Phase::Incoming => Input::Decline { busy: false },
                Phase::Ended(_) => continue,
                _ => Input::Hangup,
            };
            self.feed(&id, input, now);
        }
    }

    /// One command from the app (device-local ones are the runtime's).
    pub(crate) fn command(&mut self, command: Command, now: Instant) {
        if !self.online {
            // Leaving works offline: the call ends here, and the server is told on return.
            let kept = matches!(command, Command::Hangup { .. } | Command::SetMedia { .. }) && !self.calls.is_empty();
            if !kept {
                return self.error("not connected to the server; reconnecting", None);
            }
        }
        let (Some(me), Some(here)) = (self.me.clone(), self.address()) else {
            return self.error("not signed in yet", None);
        };
        match command {
            Command::Call { call, users, kind, group, ring_timeout, media } => {
                if users.is_empty() {
                    return self.error("a call needs someone to call", None);
                }
                if let Some(existing) = call.as_ref().filter(|id| self.is_live(id)) {
                    let existing = existing.clone();
                    return self.feed(&existing, Input::Invite(users), now);
                }
                let id = call.unwrap_or_else(|| self.new_call_id());
                let invitation = Invitation { users, kind, group, ring_timeout, media };
                let (call, effects) = Call::place(id.clone(), me, invitation, now, self.config.request_timeout);
                self.calls.insert(id, call);
                self.apply(effects);
            }
            Command::Accept { call, media } => self.command_for(call, Input::Accept(media), now),
            Command::Decline { call, busy } => self.command_for(call, Input::Decline { busy }, now),
            Command::Cancel { call } => self.command_for(call, Input::Cancel, now),
            Command::Hangup { call } => self.command_for(call, Input::Hangup, now),
            Command::Invite { call, users } => self.command_for(call, Input::Invite(users), now),
            Command::SetMedia { call, media } => {
                if self.calls.get(&call).is_some_and(|c| c.phase().is_joined()) {
                    let (camera, microphone) = (media.camera_on, !media.audio_muted);
                    self.link(LinkChange::Media { call: call.clone(), camera, microphone });
                }
                self.command_for(call, Input::SetMedia(media), now)
            }
            Command::RetryMedia { call } => match self.calls.get(&call).filter(|c| c.phase().is_joined()) {
                Some(joined) => {
                    let call = joined.info().clone();
                    self.link(LinkChange::RetryUnreached { call, me: here });
                }
                None => self.error(format!("no call {call} in progress"), Some(call)),
            },
            Command::Signal { call, to, payload } => {
                if self.calls.contains_key(&call) {
                    self.sends.push(ClientMessage::Signal { call, to, payload });
                } else {
                    self.error(format!("no call {call}"), Some(call));
                }
            }
            Command::WatchPresence(users) => self.sends.push(ClientMessage::WatchPresence { users }),
            Command::SetProfile { display_name, avatar } => {
                self.sends.push(ClientMessage::SetProfile { display_name, avatar })
            }
            Command::SetPicture(Some(bytes)) => {
                use base64::Engine as _;
                // The server checks the type; an unknown one is sent as such, to be refused with a reason.
                let mime = dialtone_protocol::PictureKind::of(&bytes).map_or("application/octet-stream", |k| k.mime());
                let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
                self.sends.push(ClientMessage::SetPicture { mime: mime.to_owned(), data });
            }
            Command::SetPicture(None) => {
                self.sends.push(ClientMessage::SetProfile { display_name: None, avatar: Some(String::new()) })
            }
            Command::GetPicture { avatar } => self.sends.push(ClientMessage::GetPicture { avatar }),
            Command::Preview { .. }
            | Command::ListDevices
            | Command::UseDevices(_)
            | Command::RelayOnly(_)
            | Command::Shutdown => {
                tracing::error!(?command, "the runtime's command reached the core");
            }
        }
    }

    /// One message from the server; `Some` when the connection should be dropped.
    pub(crate) fn server_message(&mut self, message: ServerMessage, now: Instant) -> Option<Disconnect> {
        let ((me, _, _), here) = (self.me.clone()?, self.address()?);
        if let ServerMessage::CallState { call } = &message
            && self.resuming.remove(&call.call)
        {
            self.emit(Event::CallResumed { call: call.call.clone() });
        }
        match message {
            ServerMessage::Welcome { .. } | ServerMessage::Pong { .. } => {}
            ServerMessage::Error { code: ErrorCode::Replaced, message, .. } => {
                return Some(Disconnect::Stop(format!("signed in elsewhere with this device name: {message}")));
            }
            ServerMessage::Error { code: ErrorCode::ShuttingDown, message, .. } => {
                return Some(Disconnect::Reconnect(message));
            }
            ServerMessage::Error { code, message, call: Some(call), .. } if self.resuming.remove(&call) => {
                // The restarted server would not take the call up again: it is over here too.
                self.emit(Event::Error { code: Some(code), message, call: Some(call.clone()) });
                self.feed(&call, Input::ConnectionLost, now);
            }
            ServerMessage::Error { code, message, call: Some(call), .. } if self.calls.contains_key(&call) => {
                self.feed(&call, Input::Refused(code, message), now);
            }
            ServerMessage::Error { code, message, call, .. } => {
                self.emit(Event::Error { code: Some(code), message, call })
            }
            ServerMessage::Presence { users } => self.emit(Event::Presence { users }),
            ServerMessage::PresenceChanged { entry } => self.emit(Event::PresenceChanged { entry }),
            ServerMessage::Picture { avatar, mime, data } => {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(&data) {
                    Ok(data) if dialtone_protocol::picture_ref(&data) == avatar => {
                        self.emit(Event::Picture { avatar, mime, data })
                    }
                    _ => self.error(format!("the server sent a damaged picture for {avatar}"), None),
                }
            }
            ServerMessage::MissedCalls { calls } => self.emit(Event::MissedCalls { calls }),
            ServerMessage::Incoming { call, from } => {
                // A call this device already left may ring again (invited back into a group call).
                if !self.is_live(&call.call) {
                    let id = call.call.clone();
                    let (call, effects) =
                        Call::incoming(call, from, me, now, INCOMING_RING_LIMIT, self.config.request_timeout);
                    self.calls.insert(id, call);
                    self.apply(effects);
                }
            }
            ServerMessage::Merged { call, into } => {
                // Our call did not fail: it continues as `into`, so it ends without a `call_ended`.
                self.calls.remove(&call);
                self.emit(Event::Merged { call, into: into.call.clone() });
                // The other side's call may be ringing here already; it is joined now.
                self.join(into, me, now);
            }
            ServerMessage::CallState { call } if !self.calls.contains_key(&call.call) => self.join(call, me, now),
            ServerMessage::Signal { call, from, payload } if self.calls.contains_key(&call) => {
                if self.config.media {
                    self.link(LinkChange::Signal { call, from, payload, me: here });
                } else {
                    self.emit(Event::Signal { call, from, payload });
                }
            }
            // A late signal for a call this device has already left.
            ServerMessage::Signal { .. } => {}
            ServerMessage::CallState { call } => {
                let id = call.call.clone();
                self.feed(&id, Input::Server(ServerMessage::CallState { call }), now);
            }
            message @ (ServerMessage::Ringing { .. }
            | ServerMessage::Joined { .. }
            | ServerMessage::Left { .. }
            | ServerMessage::Ended { .. }
            | ServerMessage::MediaChanged { .. }
            | ServerMessage::KindChanged { .. }) => {
                let id = match &message {
                    ServerMessage::Ringing { call, .. }
                    | ServerMessage::Joined { call, .. }
                    | ServerMessage::Left { call, .. }
                    | ServerMessage::Ended { call, .. }
                    | ServerMessage::MediaChanged { call, .. }
                    | ServerMessage::KindChanged { call, .. } => call.clone(),
                    _ => return None,
                };
                self.feed(&id, Input::Server(message), now);
            }
        }
        None
    }

    /// A media connection's signal, for its other end.
    pub(crate) fn link_signal(&mut self, call: CallId, peer: DeviceAddress, payload: SignalPayload) {
        if self.calls.contains_key(&call) {
            self.sends.push(ClientMessage::Signal { call, to: peer, payload });
        }
    }

    /// A media connection's state changed; `fate` is what the links made of it.
    pub(crate) fn link_state(
        &mut self,
        call: CallId,
        peer: DeviceAddress,
        state: LinkState,
        after: Duration,
        reason: Option<String>,
        fate: LinkFate,
    ) {
        if state == LinkState::Disconnected {
            // The network may have changed under this device: a ping now finds out at once whether the
            // server connection went with it (instead of at the next heartbeat), so that it is made again
            // in time for the media connection to be made again over it.
            self.sends.push(ClientMessage::Ping { nonce: 0 });
        }
        if fate == LinkFate::Replaced {
            return;
        }
        if fate == LinkFate::Retried || matches!(state, LinkState::Closed | LinkState::Failed) {
            self.video_frames_seen.remove(&(call.clone(), peer.clone()));
        }
        let after_ms = after.as_millis() as u64;
        self.emit(Event::MediaLink { call, peer, state, after_ms, reason });
    }

    /// A media connection's figures, with what arrived over it.
    pub(crate) fn link_stats(&mut self, call: CallId, peer: DeviceAddress, stats: LinkStats, received: Received) {
        let before = self.video_frames_seen.insert((call.clone(), peer.clone()), received.video_frames).unwrap_or(0);
        let video_fps =
            received.video_frames.saturating_sub(before) as f64 / dialtone_media::STATS_PERIOD.as_secs_f64();
        self.emit(Event::MediaStats {
            call,
            peer,
            rtt_ms: stats.rtt_ms,
            send_kbps: stats.send_kbps,
            send_estimate_kbps: stats.send_estimate_kbps,
            receive_kbps: stats.receive_kbps,
            packets_lost: stats.packets_lost,
            packets_received: stats.packets_received,
            video_frames: received.video_frames,
            video_frames_dropped: received.video_dropped,
            video_freezes: received.video_freezes,
            video_frozen_ms: received.video_frozen.as_millis() as u64,
            video_fps,
            video_width: received.video_size.0,
            video_height: received.video_size.1,
            audio_concealed: received.audio_concealed,
            path: stats.path,
        });
    }

    /// A media connection gave up with an error.
    pub(crate) fn link_error(&mut self, call: CallId, peer: DeviceAddress, message: String) {
        self.error(format!("media connection to {peer}: {message}"), Some(call));
    }

    /// Who is loudest in each call in progress (`None`: nobody above the speaking threshold); reported
    /// when it changes.
    pub(crate) fn speakers(&mut self, loudest: Vec<(CallId, Option<UserId>)>) {
        self.speakers.retain(|call, _| self.calls.contains_key(call));
        for (call, user) in loudest {
            // A call starts with nobody speaking; that needs no event.
            if self.speakers.get(&call).cloned().flatten() != user {
                self.speakers.insert(call.clone(), user.clone());
                self.emit(Event::ActiveSpeaker { call, user });
            }
        }
    }

    fn resume(&mut self, me: UserId, kept: Vec<CallInfo>, server_started_ms: u64, now: Instant) {
        let restarted =
            self.server_started_ms.replace(server_started_ms).is_some_and(|before| before != server_started_ms);
        if restarted && kept.is_empty() {
            // The server restarted and knows no calls: the calls in progress are offered to it again (their
            // media never stopped); calls that were still ringing are over.
            let (active, other): (Vec<CallId>, Vec<CallId>) =
                self.calls.keys().cloned().partition(|id| self.calls[id].phase() == Phase::Active);
            for id in other {
                self.feed(&id, Input::ConnectionLost, now);
            }
            if !active.is_empty() {
                let calls = active.iter().filter_map(|id| self.calls.get(id)).map(|c| c.info().clone()).collect();
                tracing::info!(calls = active.len(), "the server restarted; taking the calls up again");
                self.resuming = active.into_iter().collect();
                self.sends.push(ClientMessage::Resume { calls });
            }
            return;
        }
        let gone: Vec<CallId> =
            self.calls.keys().filter(|id| !kept.iter().any(|info| &info.call == *id)).cloned().collect();
        for id in gone {
            self.feed(&id, Input::ConnectionLost, now);
        }
        for info in kept {
            let id = info.call.clone();
            let Some(call) = self.calls.get(&id).filter(|call| !call.phase().is_over()) else {
                // Left while the connection was down: the leave waits to be sent.
                if self.sends.iter().any(|message| message.call() == Some(&id)) {
                    continue;
                }
                // This device was in it before the engine started (the app restarted): join it again.
                self.join(info, me.clone(), now);
                continue;
            };
            // Who left while this device was away.
            let left: Vec<UserId> = call
                .info()
                .members
                .iter()
                .filter(|m| m.user != me && m.status == MemberStatus::Joined)
                .filter(|m| !info.members.iter().any(|now| now.user == m.user && now.status == m.status))
                .map(|m| m.user.clone())
                .collect();
            for user in left {
                let reason = EndReason::ConnectionLost;
                self.feed(&id, Input::Server(ServerMessage::Left { call: id.clone(), user, reason }), now);
            }
            self.feed(&id, Input::Server(ServerMessage::CallState { call: info }), now);
            self.emit(Event::CallResumed { call: id });
        }
    }

    /// Every call still going on is over: the server ends them too when the connection drops.
    fn lose_calls(&mut self, now: Instant) {
        let calls = std::mem::take(&mut self.calls);
        self.link(LinkChange::CloseAll);
        for (_, mut call) in calls {
            // Nothing can be sent any more; only the events matter.
            for effect in call.handle(Input::ConnectionLost, now) {
                if let Effect::Emit(event) = effect {
                    self.emit(event);
                }
            }
        }
        self.sends.clear();
        self.kept_until = None;
    }

    fn join(&mut self, info: CallInfo, me: UserId, now: Instant) {
        let id = info.call.clone();
        let (call, effects) = Call::joined(info, me, now, self.config.request_timeout);
        self.calls.insert(id, call);
        self.apply(effects);
    }

    fn command_for(&mut self, call: CallId, input: Input, now: Instant) {
        if self.calls.contains_key(&call) {
            self.feed(&call, input, now);
        } else {
            self.error(format!("no call {call}"), Some(call));
        }
    }

    /// Feeds one input to one call and forgets the call once it is finished.
    fn feed(&mut self, id: &CallId, input: Input, now: Instant) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let effects = call.handle(input, now);
        let finished = call.is_finished(now);
        self.apply(effects);
        if finished {
            self.calls.remove(id);
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(message) => self.sends.push(message),
                Effect::Emit(event) => {
                    // The links follow the calls (see the `links` module), before the app hears of them.
                    if let Some(me) = self.address() {
                        let joined_here = match &event {
                            Event::CallActive { call } => {
                                self.calls.get(&call.call).is_some_and(|c| c.direction() == Direction::Incoming)
                            }
                            _ => false,
                        };
                        self.link(LinkChange::Follow { event: event.clone(), me, joined_here });
                    }
                    self.emit(event);
                }
            }
        }
    }

    fn address(&self) -> Option<DeviceAddress> {
        self.me.as_ref().map(|(user, device, _)| DeviceAddress { user: user.clone(), device: device.clone() })
    }

    fn new_call_id(&mut self) -> CallId {
        let value: u64 = self.rng.random();
        CallId::new(format!("c{value:016x}")).expect("a hex id is valid")
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn link(&mut self, change: LinkChange) {
        if self.config.media {
            self.outputs.push_back(Output::Link(change));
        }
    }

    fn error(&mut self, message: impl Into<String>, call: Option<CallId>) {
        self.emit(Event::Error { code: None, message: message.into(), call });
    }
}

#[cfg(test)]
mod tests;
