//! The server's call logic, free of sockets and clocks.
//!
//! The [`Hub`] takes inputs (a device signed in, a message arrived, a device went away, time passed) with
//! the current time, and queues [`Output`]s: messages for connections and connections to close. The
//! network layer feeds it and drains it; tests drive it directly with made-up instants, so every flow
//! runs deterministically and faster than real time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::ice::IceConfig;

use dialtone_protocol::{
    CallId, CallInfo, CallKind, CallMember, ClientMessage, DeviceAddress, DeviceId, EndReason, ErrorCode,
    MAX_AVATAR_REF_BYTES, MAX_DISPLAY_NAME_CHARS, MAX_PICTURE_BYTES, MediaState, MemberStatus, MissedCall,
    PROTOCOL_VERSION, PictureKind, PresenceEntry, Profile, ServerMessage, UserId, picture_ref,
};

/// Identifies one signed-in connection.
pub type ConnId = u64;

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

#[derive(Debug)]
struct Conn {
    user: UserId,
    device: DeviceId,
}

#[derive(Debug, Default)]
struct Device {
    conn: ConnId,
    /// Its connection dropped while it was in a call; it keeps its place until then.
    away_until: Option<Instant>,
    /// The call this device is joined to.
    joined: Option<CallId>,
    /// Calls ringing on this device.
    ringing: BTreeSet<CallId>,
}

#[derive(Debug)]
struct User {
    profile: Profile,
    devices: BTreeMap<DeviceId, Device>,
    missed: VecDeque<MissedCall>,
    /// Calls in which this user is a ringing member.
    invited_to: BTreeSet<CallId>,
    /// The presence last pushed to watchers, to push only changes.
    published: Option<PresenceEntry>,
}

#[derive(Debug, Clone)]
enum Status {
    Ringing {
        devices: BTreeSet<DeviceId>,
        deadline: Instant,
        invited_by: UserId,
        invited_at_unix_ms: u64,
        /// Some device has rung for this invitation; only invitees it never reached get a missed call.
        rang: bool,
    },
    Joined {
        device: DeviceId,
        media: MediaState,
    },
}

#[derive(Debug, Clone)]
struct Member {
    user: UserId,
    status: Status,
}

#[derive(Debug)]
struct Call {
    id: CallId,
    kind: CallKind,
    group: bool,
    initiator: UserId,
    members: Vec<Member>,
    /// Someone other than the initiator has joined at some point.
    answered: bool,
    /// Users who were in the call and left; they may join it again by its id.
    former: BTreeSet<UserId>,
    idle_deadline: Option<Instant>,
    /// Taken up again after a server restart: the joined devices that have not claimed it yet.
    expected: Vec<(UserId, DeviceId)>,
}

impl Call {
    fn member(&self, user: &UserId) -> Option<&Member> {
        self.members.iter().find(|m| &m.user == user)
    }

    fn member_mut(&mut self, user: &UserId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.user == user)
    }

    fn joined_device(&self, user: &UserId) -> Option<&DeviceId> {
        match &self.member(user)?.status {
            Status::Joined { device, .. } => Some(device),
            Status::Ringing { .. } => None,
        }
    }

    fn joined_count(&self) -> usize {
        self.members.iter().filter(|m| matches!(m.status, Status::Joined { .. })).count()
    }

    fn ringing_count(&self) -> usize {
        self.members.iter().filter(|m| matches!(m.status, Status::Ringing { .. })).count()
    }

    /// Whether a device takes part in the call's signaling: joined, or ringing for it.
    fn has_device(&self, user: &UserId, device: &DeviceId) -> bool {
        match self.member(user).map(|m| &m.status) {
            Some(Status::Joined { device: joined, .. }) => joined == device,
            Some(Status::Ringing { devices, .. }) => devices.contains(device),
            None => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring(CallId, UserId),
    Idle(CallId),
    Away(UserId, DeviceId),
    /// The grace for the devices a resumed call expects to claim it again.
    Expected(CallId),
}

/// A profile picture kept for the users who show it.
#[derive(Debug)]
struct Picture {
    mime: &'static str,
    /// Base64, as it is sent.
    data: String,
    users: BTreeSet<UserId>,
}

fn too_large(bytes: usize) -> String {
    format!("the picture is {} KiB; at most {} KiB", bytes.div_ceil(1024), MAX_PICTURE_BYTES / 1024)
}

/// A request failure: the code and a readable message.
type Refusal = (ErrorCode, String);

fn refuse<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, Refusal> {
    Err((code, message.into()))
}

/// The call logic. See the module documentation.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    epoch: Instant,
    epoch_unix_ms: u64,
    conns: HashMap<ConnId, Conn>,
    users: HashMap<UserId, User>,
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

    fn unix_ms(&self, now: Instant) -> u64 {
        self.epoch_unix_ms + now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        self.outputs.push_back(Output::Send(conn, message));
    }

    fn send_device(&mut self, user: &UserId, device: &DeviceId, message: ServerMessage) {
        // A device that is away misses what happens meanwhile; the welcome on its return has the state.
        let device = self.users.get(user).and_then(|u| u.devices.get(device)).filter(|d| d.away_until.is_none());
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

    fn profile_of(&self, user: &UserId) -> Profile {
        self.users
            .get(user)
            .map(|u| u.profile.clone())
            .unwrap_or_else(|| Profile { display_name: user.to_string(), avatar: None })
    }

    fn call_info(&self, call: &Call) -> CallInfo {
        CallInfo {
            call: call.id.clone(),
            kind: call.kind,
            group: call.group,
            initiator: call.initiator.clone(),
            members: call
                .members
                .iter()
                .map(|m| {
                    let (status, device, media) = match &m.status {
                        Status::Ringing { .. } => (MemberStatus::Ringing, None, None),
                        Status::Joined { device, media } => (MemberStatus::Joined, Some(device.clone()), Some(*media)),
                    };
                    CallMember { user: m.user.clone(), profile: self.profile_of(&m.user), status, device, media }
                })
                // Devices a resumed call still expects are shown as the joined members they were.
                .chain(call.expected.iter().map(|(user, device)| CallMember {
                    user: user.clone(),
                    profile: self.profile_of(user),
                    status: MemberStatus::Joined,
                    device: Some(device.clone()),
                    media: None,
                }))
                .collect(),
        }
    }

    // ----- connections -----

    /// A device signed in (its token already verified by the network layer).
    pub fn connect(&mut self, now: Instant, conn: ConnId, user: UserId, device: DeviceId, token_name: String) {
        // The same device signing in again replaces its old connection, and takes over its place in a
        // call (its old connection may not have been noticed as dropped yet).
        let existing = self.users.get(&user).and_then(|u| u.devices.get(&device));
        let old = existing.filter(|d| d.away_until.is_none()).map(|d| d.conn);
        let resumed = existing.and_then(|d| d.joined.clone()).filter(|_| !self.config.resume_grace.is_zero());
        if resumed.is_some() {
            if let Some(state) = self.users.get_mut(&user).and_then(|u| u.devices.get_mut(&device)) {
                state.away_until = None;
                state.conn = conn;
            }
            self.timers.retain(|(_, timer)| !matches!(timer, Timer::Away(u, d) if *u == user && *d == device));
            if let Some(old) = old {
                self.conns.remove(&old);
                self.unwatch(old);
            }
        }
        if let Some(old) = old {
            self.send(
                old,
                ServerMessage::Error {
                    seq: None,
                    code: ErrorCode::Replaced,
                    message: format!("{user}/{device} signed in again on another connection"),
                    call: None,
                },
            );
            self.outputs.push_back(Output::Close(old));
            // The device stays online throughout: watchers see no offline blip.
            self.presence_paused = true;
            self.disconnect(now, old);
            self.presence_paused = false;
        }

        let entry = self.users.entry(user.clone()).or_insert_with(|| User {
            profile: Profile { display_name: token_name, avatar: None },
            devices: BTreeMap::new(),
            missed: VecDeque::new(),
            invited_to: BTreeSet::new(),
            published: None,
        });
        if resumed.is_none() {
            entry.devices.insert(device.clone(), Device { conn, ..Device::default() });
        }
        let profile = entry.profile.clone();
        let missed: Vec<MissedCall> = entry.missed.drain(..).collect();
        let pending: Vec<CallId> = entry.invited_to.iter().cloned().collect();
        self.conns.insert(conn, Conn { user: user.clone(), device: device.clone() });

        self.send(
            conn,
            ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
                user: user.clone(),
                device: device.clone(),
                profile,
                heartbeat_ms: self.config.heartbeat.as_millis() as u64,
                ice_servers: self.config.ice.servers_for(&user, self.unix_ms(now) / 1000),
                calls: resumed.iter().filter_map(|id| self.calls.get(id)).map(|call| self.call_info(call)).collect(),
                resume_grace_ms: self.config.resume_grace.as_millis() as u64,
                server_started_ms: self.epoch_unix_ms,
            },
        );
        if let Some(call) = &resumed {
            tracing::debug!(%user, %device, %call, "a device resumed its call");
        }
        if !missed.is_empty() {
            self.send(conn, ServerMessage::MissedCalls { calls: missed });
        }
        // Invitations still ringing reach the new device too.
        for call in pending {
            self.ring_device(&call, &user, &device);
        }
        self.publish_presence(&user);
    }

    /// A connection went away (closed, timed out or replaced).
    pub fn disconnect(&mut self, now: Instant, conn: ConnId) {
        let Some(Conn { user, device }) = self.conns.remove(&conn) else { return };
        self.unwatch(conn);
        let grace = self.config.resume_grace;
        // In a call: its place is kept for the grace period, and it stops ringing for other calls.
        let kept = self
            .users
            .get_mut(&user)
            .and_then(|u| u.devices.get_mut(&device))
            .filter(|d| d.conn == conn && d.joined.is_some() && !grace.is_zero());
        if let Some(state) = kept {
            let until = now + grace;
            state.away_until = Some(until);
            let ringing = std::mem::take(&mut state.ringing);
            self.timers.insert((until, Timer::Away(user.clone(), device.clone())));
            for call in ringing {
                self.remove_ringing_device(&call, &user, &device);
            }
            return;
        }
        self.drop_device(now, &user, &device, conn);
    }

    /// A device is gone: it leaves its call and stops ringing, and its user's presence says so.
    fn drop_device(&mut self, now: Instant, user: &UserId, device: &DeviceId, conn: ConnId) {
        let (user, device) = (user.clone(), device.clone());
        let Some(state) = self.users.get_mut(&user).and_then(|u| {
            // Only the device's current connection owns it; a replaced one does not.
            if u.devices.get(&device).is_some_and(|d| d.conn == conn) { u.devices.remove(&device) } else { None }
        }) else {
            return;
        };
        if let Some(call) = state.joined {
            self.leave(now, &call, &user, EndReason::ConnectionLost);
        }
        for call in state.ringing {
            self.remove_ringing_device(&call, &user, &device);
        }
        self.publish_presence(&user);
    }

    // ----- presence -----

    fn presence_of(&self, user: &UserId) -> Option<PresenceEntry> {
        let state = self.users.get(user)?;
        let devices = state.devices.len() as u32;
        Some(PresenceEntry {
            user: user.clone(),
            profile: state.profile.clone(),
            online: devices > 0,
            devices,
            in_call: devices > 0 && state.devices.values().all(|d| d.joined.is_some()),
        })
    }

    fn publish_presence(&mut self, user: &UserId) {
        if self.presence_paused {
            return;
        }
        let Some(entry) = self.presence_of(user) else { return };
        let state = self.users.get_mut(user).expect("presence_of found the user");
        if state.published.as_ref() == Some(&entry) {
            return;
        }
        state.published = Some(entry.clone());
        let mut targets: Vec<ConnId> = self.watch_all.iter().copied().collect();
        if let Some(watchers) = self.watchers.get(user) {
            targets.extend(watchers.iter().copied().filter(|c| !self.watch_all.contains(c)));
        }
        for conn in targets {
            self.send(conn, ServerMessage::PresenceChanged { entry: entry.clone() });
        }
    }

    fn unwatch(&mut self, conn: ConnId) {
        self.watch_all.remove(&conn);
        for user in self.watching.remove(&conn).unwrap_or_default() {
            if let Some(set) = self.watchers.get_mut(&user) {
                set.remove(&conn);
                if set.is_empty() {
                    self.watchers.remove(&user);
                }
            }
        }
    }

    // ----- messages -----

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
                let device = self.conns[&conn].device.clone();
                for info in calls {
                    let id = info.call.clone();
                    if let Err((code, message)) = self.resume(now, &user, &device, info) {
                        self.send(conn, ServerMessage::Error { seq, code, message, call: Some(id) });
                    }
                }
                Ok(())
            }
            ClientMessage::GetPicture { avatar } => match self.pictures.get(&avatar) {
                Some(picture) => {
                    let (mime, data) = (picture.mime.to_owned(), picture.data.clone());
                    self.send(conn, ServerMessage::Picture { avatar, mime, data });
                    Ok(())
                }
                None => refuse(ErrorCode::BadRequest, format!("no picture {avatar}")),
            },
            ClientMessage::WatchPresence { users } => {
                self.watch(conn, users);
                Ok(())
            }
            ClientMessage::SetProfile { display_name, avatar } => self.set_profile(&user, display_name, avatar),
            ClientMessage::Invite { call, kind, users, group, ring_timeout_ms } => {
                self.invite(now, &user, &device, call, kind, users, group, ring_timeout_ms)
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

    fn watch(&mut self, conn: ConnId, users: Option<Vec<UserId>>) {
        self.unwatch(conn);
        let entries: Vec<PresenceEntry> = match users {
            None => {
                self.watch_all.insert(conn);
                let mut all: Vec<&UserId> = self.users.keys().collect();
                all.sort();
                all.into_iter().filter_map(|u| self.presence_of(u)).collect()
            }
            Some(users) => {
                for user in &users {
                    self.watchers.entry(user.clone()).or_default().insert(conn);
                }
                let entries = users
                    .iter()
                    .map(|u| {
                        self.presence_of(u).unwrap_or_else(|| PresenceEntry {
                            user: u.clone(),
                            profile: self.profile_of(u),
                            online: false,
                            devices: 0,
                            in_call: false,
                        })
                    })
                    .collect();
                self.watching.insert(conn, users);
                entries
            }
        };
        self.send(conn, ServerMessage::Presence { users: entries });
    }

    /// Takes up a call a device was in before the server restarted. The first device to claim it makes
    /// it again with itself joined; the other joined devices it lists are expected to claim it within the
    /// grace period, and only their own claim joins them (a claim cannot put anyone else into a call).
    fn resume(&mut self, now: Instant, user: &UserId, device: &DeviceId, info: CallInfo) -> Result<(), Refusal> {
        let me = info.members.iter().find(|m| &m.user == user);
        let Some(media) = me.filter(|m| m.status == MemberStatus::Joined && m.device.as_ref() == Some(device)) else {
            return refuse(ErrorCode::BadRequest, "a call taken up again must list this device as joined");
        };
        let media = media.media.unwrap_or_else(|| MediaState::for_kind(info.kind));
        let busy = self.users.get(user).and_then(|u| u.devices.get(device)).and_then(|d| d.joined.clone());
        if busy.as_ref().is_some_and(|joined| joined != &info.call) {
            return refuse(ErrorCode::NotAllowed, "this device is in another call");
        }
        let joined = Status::Joined { device: device.clone(), media };
        match self.calls.get_mut(&info.call) {
            Some(call)
                if call
                    .member(user)
                    .is_some_and(|m| matches!(&m.status, Status::Joined { device: d, .. } if d == device)) => {}
            Some(call) if call.expected.iter().any(|(u, d)| u == user && d == device) => {
                call.expected.retain(|(u, d)| !(u == user && d == device));
                call.members.push(Member { user: user.clone(), status: joined });
            }
            Some(_) => return refuse(ErrorCode::NotAllowed, "this device is not in that call"),
            None => {
                let expected = info
                    .members
                    .iter()
                    .filter(|m| &m.user != user && m.status == MemberStatus::Joined)
                    .filter_map(|m| Some((m.user.clone(), m.device.clone()?)))
                    .collect::<Vec<_>>();
                if expected.is_empty() {
                    return refuse(ErrorCode::BadRequest, "a call taken up again needs someone else in it");
                }
                let until = now + self.config.resume_grace;
                self.timers.insert((until, Timer::Expected(info.call.clone())));
                let call = Call {
                    id: info.call.clone(),
                    kind: info.kind,
                    group: info.group,
                    initiator: info.initiator.clone(),
                    members: vec![Member { user: user.clone(), status: joined }],
                    answered: true,
                    former: BTreeSet::new(),
                    idle_deadline: None,
                    expected,
                };
                self.calls.insert(info.call.clone(), call);
            }
        }
        self.set_joined(user, device, Some(info.call.clone()));
        let state = self.call_info(&self.calls[&info.call]);
        self.send_device(user, device, ServerMessage::CallState { call: state });
        Ok(())
    }

    /// Checks and keeps a user's new picture (the one it replaces goes, unless someone else has it too).
    fn set_picture(&mut self, user: &UserId, mime: &str, data: &str) -> Result<(), Refusal> {
        use base64::Engine as _;
        // Base64 is 4/3 of the bytes: anything longer cannot be small enough.
        if data.len() > MAX_PICTURE_BYTES.div_ceil(3) * 4 + 4 {
            return refuse(ErrorCode::BadRequest, too_large(data.len() / 4 * 3));
        }
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
            return refuse(ErrorCode::BadRequest, "the picture is not base64");
        };
        if bytes.len() > MAX_PICTURE_BYTES {
            return refuse(ErrorCode::BadRequest, too_large(bytes.len()));
        }
        let Some(kind) = PictureKind::of(&bytes) else {
            return refuse(ErrorCode::BadRequest, "that is not a PNG, JPEG or WebP picture");
        };
        if kind.mime() != mime {
            return refuse(ErrorCode::BadRequest, format!("the picture is {}, not {mime}", kind.mime()));
        }
        let name = picture_ref(&bytes);
        let state = self.users.get_mut(user).expect("a signed-in user has an entry");
        let old = state.profile.avatar.replace(name.clone());
        self.pictures
            .entry(name)
            .or_insert_with(|| Picture { mime: kind.mime(), data: data.to_owned(), users: BTreeSet::new() })
            .users
            .insert(user.clone());
        if let Some(old) = old {
            self.release_picture(&old, user);
        }
        self.publish_presence(user);
        Ok(())
    }

    /// `user` no longer shows the picture `name`; it goes when nobody does.
    fn release_picture(&mut self, name: &str, user: &UserId) {
        let in_use = self.users.get(user).and_then(|u| u.profile.avatar.as_deref()) == Some(name);
        if let Some(picture) = self.pictures.get_mut(name).filter(|_| !in_use) {
            picture.users.remove(user);
            if picture.users.is_empty() {
                self.pictures.remove(name);
            }
        }
    }

    fn set_profile(&mut self, user: &UserId, name: Option<String>, avatar: Option<String>) -> Result<(), Refusal> {
        if let Some(name) = &name {
            let chars = name.trim().chars().count();
            if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS {
                return refuse(
                    ErrorCode::BadRequest,
                    format!("display name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"),
                );
            }
        }
        if avatar.as_ref().is_some_and(|a| a.len() > MAX_AVATAR_REF_BYTES) {
            return refuse(
                ErrorCode::BadRequest,
                format!("avatar reference must be at most {MAX_AVATAR_REF_BYTES} bytes"),
            );
        }
        let state = self.users.get_mut(user).expect("a signed-in user has an entry");
        if let Some(name) = name {
            state.profile.display_name = name.trim().to_owned();
        }
        let mut released = None;
        if let Some(avatar) = avatar {
            released = std::mem::replace(&mut state.profile.avatar, (!avatar.is_empty()).then_some(avatar));
        }
        if let Some(old) = released {
            self.release_picture(&old, user);
        }
        self.publish_presence(user);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn invite(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        call_id: CallId,
        kind: CallKind,
        invitees: Vec<UserId>,
        group: bool,
        ring_timeout_ms: Option<u64>,
    ) -> Result<(), Refusal> {
        let mut unique = Vec::new();
        for invitee in invitees {
            if &invitee != user && !unique.contains(&invitee) {
                unique.push(invitee);
            }
        }
        let ring_timeout = ring_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.config.ring_timeout)
            .min(self.config.max_ring_timeout);

        if let Some(call) = self.calls.get(&call_id) {
            if call.joined_device(user) == Some(device) {
                return self.invite_more(now, user, &call_id, unique, ring_timeout);
            }
            if call.has_device(user, device) {
                // Inviting into a call that rings here means joining it.
                return self.accept(now, user, device, &call_id, MediaState::for_kind(call.kind));
            }
            if call.group && call.former.contains(user) && call.member(user).is_none() {
                return self.rejoin(now, user, device, &call_id);
            }
            return refuse(ErrorCode::NotAllowed, format!("call {call_id} exists and you are not in it"));
        }

        if unique.is_empty() {
            return refuse(ErrorCode::BadRequest, "invite names nobody to call besides yourself");
        }
        if unique.len() + 1 > self.config.max_call_members {
            return refuse(
                ErrorCode::BadRequest,
                format!("a call holds at most {} members", self.config.max_call_members),
            );
        }
        self.ensure_free(user, device)?;

        // Glare: the one person we call is calling us right now; join their call instead.
        if let [callee] = unique.as_slice() {
            let crossing = self.users.get(user).into_iter().flat_map(|u| u.invited_to.iter()).find(|id| {
                self.calls
                    .get(*id)
                    .is_some_and(|c| !c.group && &c.initiator == callee && !c.answered && c.has_device(user, device))
            });
            if let Some(existing) = crossing.cloned() {
                let media = MediaState::for_kind(kind);
                let position = self.outputs.len();
                self.accept(now, user, device, &existing, media)?;
                // The device learns of the merge before the state of the call it is merged into.
                let into = self.call_info(&self.calls[&existing]);
                if let Some(conn) = self.device_state(user, device).map(|d| d.conn) {
                    self.outputs.insert(position, Output::Send(conn, ServerMessage::Merged { call: call_id, into }));
                }
                return Ok(());
            }
        }

        let call = Call {
            id: call_id.clone(),
            kind,
            group: group || unique.len() > 1,
            initiator: user.clone(),
            members: vec![Member {
                user: user.clone(),
                status: Status::Joined { device: device.clone(), media: MediaState::for_kind(kind) },
            }],
            answered: false,
            former: BTreeSet::new(),
            idle_deadline: None,
            expected: Vec::new(),
        };
        self.calls.insert(call_id.clone(), call);
        self.set_joined(user, device, Some(call_id.clone()));
        self.add_invitees(now, &call_id, &unique, user, ring_timeout);
        let info = self.call_info(&self.calls[&call_id]);
        self.send_device(user, device, ServerMessage::CallState { call: info });
        self.ring_users(now, &call_id, &unique);
        Ok(())
    }

    fn invite_more(
        &mut self,
        now: Instant,
        user: &UserId,
        call_id: &CallId,
        invitees: Vec<UserId>,
        ring_timeout: Duration,
    ) -> Result<(), Refusal> {
        let call = &self.calls[call_id];
        let fresh: Vec<UserId> = invitees.into_iter().filter(|u| call.member(u).is_none()).collect();
        if fresh.is_empty() {
            return refuse(ErrorCode::BadRequest, "everyone named is already in the call");
        }
        if call.members.len() + fresh.len() > self.config.max_call_members {
            return refuse(
                ErrorCode::BadRequest,
                format!("a call holds at most {} members", self.config.max_call_members),
            );
        }
        // A 1v1 call grows into a group call.
        self.calls.get_mut(call_id).expect("checked above").group = true;
        self.add_invitees(now, call_id, &fresh, user, ring_timeout);
        self.ring_users(now, call_id, &fresh);
        Ok(())
    }

    fn rejoin(&mut self, now: Instant, user: &UserId, device: &DeviceId, call_id: &CallId) -> Result<(), Refusal> {
        self.ensure_free(user, device)?;
        let call = self.calls.get_mut(call_id).expect("caller checked");
        let media = MediaState::for_kind(call.kind);
        call.members.push(Member { user: user.clone(), status: Status::Joined { device: device.clone(), media } });
        self.joined(now, call_id, user, device, media);
        Ok(())
    }

    /// Refuses when the device is already in a call: it must hang up first.
    fn ensure_free(&self, user: &UserId, device: &DeviceId) -> Result<(), Refusal> {
        match self.device_state(user, device).and_then(|d| d.joined.as_ref()) {
            Some(current) => refuse(ErrorCode::NotAllowed, format!("this device is in call {current}; hang up first")),
            None => Ok(()),
        }
    }

    fn device_state(&self, user: &UserId, device: &DeviceId) -> Option<&Device> {
        self.users.get(user)?.devices.get(device)
    }

    fn set_joined(&mut self, user: &UserId, device: &DeviceId, call: Option<CallId>) {
        if let Some(state) = self.users.get_mut(user).and_then(|u| u.devices.get_mut(device)) {
            state.joined = call;
        }
        self.publish_presence(user);
    }

    /// Adds the invitees as ringing members. All are added before any rings, so that a busy first invitee
    /// does not end a group call the others are still to join, and the call state lists everyone.
    fn add_invitees(
        &mut self,
        now: Instant,
        call_id: &CallId,
        invitees: &[UserId],
        invited_by: &UserId,
        timeout: Duration,
    ) {
        let deadline = now + timeout;
        let invited_at_unix_ms = self.unix_ms(now);
        let call = self.calls.get_mut(call_id).expect("inviting into a live call");
        for invitee in invitees {
            call.members.push(Member {
                user: invitee.clone(),
                status: Status::Ringing {
                    devices: BTreeSet::new(),
                    deadline,
                    invited_by: invited_by.clone(),
                    invited_at_unix_ms,
                    rang: false,
                },
            });
        }
    }

    /// Rings each invitee's free devices (see [`Hub::ring_user`]).
    fn ring_users(&mut self, now: Instant, call_id: &CallId, invitees: &[UserId]) {
        for invitee in invitees {
            if !self.calls.contains_key(call_id) {
                break; // a busy 1v1 callee ended it
            }
            self.ring_user(now, call_id, invitee);
        }
    }

    /// Rings a ringing member's free devices, or removes them as busy when every device is in a call.
    fn ring_user(&mut self, now: Instant, call_id: &CallId, invitee: &UserId) {
        let Some(Member { status: Status::Ringing { deadline, .. }, .. }) =
            self.calls.get(call_id).and_then(|c| c.member(invitee))
        else {
            return;
        };
        let deadline = *deadline;
        let (online, free): (bool, Vec<DeviceId>) = match self.users.get(invitee) {
            Some(state) => (
                !state.devices.is_empty(),
                state.devices.iter().filter(|(_, d)| d.joined.is_none()).map(|(id, _)| id.clone()).collect(),
            ),
            None => (false, Vec::new()),
        };
        if online && free.is_empty() {
            // Every device is in another call.
            self.remove_member(now, call_id, invitee, EndReason::Busy);
            return;
        }
        self.timers.insert((deadline, Timer::Ring(call_id.clone(), invitee.clone())));
        self.users
            .entry(invitee.clone())
            // Never signed in: keep an entry so the missed call reaches them later.
            .or_insert_with(|| User {
                profile: Profile { display_name: invitee.to_string(), avatar: None },
                devices: BTreeMap::new(),
                missed: VecDeque::new(),
                invited_to: BTreeSet::new(),
                published: None,
            })
            .invited_to
            .insert(call_id.clone());
        for device in &free {
            self.ring_device_quietly(call_id, invitee, device);
        }
        self.announce_ringing(call_id, invitee);
    }

    /// Rings one more device of a ringing member (a device that signed in while it rang).
    fn ring_device(&mut self, call_id: &CallId, user: &UserId, device: &DeviceId) {
        if self.device_state(user, device).is_some_and(|d| d.joined.is_some()) {
            return;
        }
        if self.ring_device_quietly(call_id, user, device) {
            self.announce_ringing(call_id, user);
        }
    }

    fn ring_device_quietly(&mut self, call_id: &CallId, user: &UserId, device: &DeviceId) -> bool {
        let Some(call) = self.calls.get_mut(call_id) else { return false };
        let Some(Member { status: Status::Ringing { devices, invited_by, rang, .. }, .. }) = call.member_mut(user)
        else {
            return false;
        };
        devices.insert(device.clone());
        *rang = true;
        let from = invited_by.clone();
        let info = self.call_info(&self.calls[call_id]);
        if let Some(state) = self.users.get_mut(user).and_then(|u| u.devices.get_mut(device)) {
            state.ringing.insert(call_id.clone());
        }
        self.send_device(user, device, ServerMessage::Incoming { call: info, from });
        true
    }

    fn announce_ringing(&mut self, call_id: &CallId, user: &UserId) {
        let Some(Member { status: Status::Ringing { devices, invited_by, .. }, .. }) =
            self.calls.get(call_id).and_then(|c| c.member(user))
        else {
            return;
        };
        let message = ServerMessage::Ringing {
            call: call_id.clone(),
            user: user.clone(),
            profile: self.profile_of(user),
            devices: devices.len() as u32,
            invited_by: invited_by.clone(),
        };
        self.send_joined(call_id, None, message);
    }

    /// Stops `device` ringing for `call` because it went away; the member stays, ringing elsewhere or
    /// waiting for a sign-in until the timeout.
    fn remove_ringing_device(&mut self, call_id: &CallId, user: &UserId, device: &DeviceId) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        if let Some(Member { status: Status::Ringing { devices, .. }, .. }) = call.member_mut(user) {
            devices.remove(device);
            self.announce_ringing(call_id, user);
        }
    }

    /// Ends the ringing on every device of a ringing member, telling each device `reason` (the one named
    /// in `exempt` is told its own reason, or nothing), and forgets the invitation on the user.
    fn stop_ringing(
        &mut self,
        call_id: &CallId,
        user: &UserId,
        reason: EndReason,
        exempt: Option<(&DeviceId, Option<EndReason>)>,
    ) {
        let devices = match self.calls.get(call_id).and_then(|c| c.member(user)).map(|m| &m.status) {
            Some(Status::Ringing { devices, deadline, .. }) => {
                self.timers.remove(&(*deadline, Timer::Ring(call_id.clone(), user.clone())));
                devices.clone()
            }
            _ => BTreeSet::new(),
        };
        for device in &devices {
            let told = match exempt {
                Some((exempt, exempt_reason)) if exempt == device => exempt_reason,
                _ => Some(reason),
            };
            if let Some(state) = self.users.get_mut(user).and_then(|u| u.devices.get_mut(device)) {
                state.ringing.remove(call_id);
            }
            if let Some(reason) = told {
                self.send_device(user, device, ServerMessage::Ended { call: call_id.clone(), reason });
            }
        }
        if let Some(state) = self.users.get_mut(user) {
            state.invited_to.remove(call_id);
        }
    }

    fn record_missed(&mut self, call_id: &CallId, user: &UserId, reason: EndReason) {
        let Some(call) = self.calls.get(call_id) else { return };
        let Some(Member { status: Status::Ringing { invited_by, invited_at_unix_ms, rang: false, .. }, .. }) =
            call.member(user)
        else {
            return;
        };
        let record = MissedCall {
            call: call_id.clone(),
            from: invited_by.clone(),
            from_profile: self.profile_of(invited_by),
            kind: call.kind,
            group: call.group,
            at_unix_ms: *invited_at_unix_ms,
            reason,
        };
        let limit = self.config.max_missed_calls;
        if let Some(state) = self.users.get_mut(user) {
            state.missed.push_back(record);
            while state.missed.len() > limit {
                state.missed.pop_front();
            }
        }
    }

    fn accept(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        media: MediaState,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return refuse(ErrorCode::UnknownCall, format!("no call {call_id}"));
        };
        match call.member(user).map(|m| &m.status) {
            Some(Status::Ringing { devices, .. }) if devices.contains(device) => {}
            Some(Status::Joined { .. }) => return refuse(ErrorCode::NotAllowed, "you are already in this call"),
            _ => return refuse(ErrorCode::NotAllowed, format!("call {call_id} is not ringing on this device")),
        }
        self.ensure_free(user, device)?;
        // The winning device is told the call state instead of an ending.
        self.stop_ringing(call_id, user, EndReason::AnsweredOnAnotherDevice, Some((device, None)));
        let call = self.calls.get_mut(call_id).expect("checked above");
        call.answered = true;
        if let Some(member) = call.member_mut(user) {
            member.status = Status::Joined { device: device.clone(), media };
        }
        self.joined(now, call_id, user, device, media);

        // This device stops ringing for any other call: it is busy now.
        let other_calls: Vec<CallId> = self
            .device_state(user, device)
            .map(|d| d.ringing.iter().filter(|c| *c != call_id).cloned().collect())
            .unwrap_or_default();
        for other in other_calls {
            if let Some(state) = self.users.get_mut(user).and_then(|u| u.devices.get_mut(device)) {
                state.ringing.remove(&other);
            }
            self.send_device(user, device, ServerMessage::Ended { call: other.clone(), reason: EndReason::Busy });
            let still_ringing = match self.calls.get_mut(&other).and_then(|c| c.member_mut(user)) {
                Some(Member { status: Status::Ringing { devices, .. }, .. }) => {
                    devices.remove(device);
                    !devices.is_empty()
                }
                _ => true,
            };
            if still_ringing {
                self.announce_ringing(&other, user);
            } else {
                self.stop_ringing(&other, user, EndReason::Busy, None);
                self.remove_member(now, &other, user, EndReason::Busy);
            }
        }
        Ok(())
    }

    /// Bookkeeping once `user` joined on `device`: tell the device the call, the others the joiner.
    fn joined(&mut self, now: Instant, call_id: &CallId, user: &UserId, device: &DeviceId, media: MediaState) {
        self.set_joined(user, device, Some(call_id.clone()));
        let info = self.call_info(&self.calls[call_id]);
        self.send_device(user, device, ServerMessage::CallState { call: info });
        let message =
            ServerMessage::Joined { call: call_id.clone(), user: user.clone(), device: device.clone(), media };
        self.send_joined(call_id, Some(user), message);
        self.update_idle(now, call_id);
    }

    fn decline(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        busy: bool,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return refuse(ErrorCode::UnknownCall, format!("no call {call_id}"));
        };
        match call.member(user).map(|m| &m.status) {
            Some(Status::Ringing { devices, .. }) if devices.contains(device) => {}
            Some(Status::Joined { .. }) => {
                return refuse(ErrorCode::NotAllowed, "you are in this call: hang up instead");
            }
            _ => return refuse(ErrorCode::NotAllowed, format!("call {call_id} is not ringing on this device")),
        }
        let reason = if busy { EndReason::Busy } else { EndReason::Declined };
        self.stop_ringing(call_id, user, EndReason::DeclinedOnAnotherDevice, Some((device, Some(reason))));
        self.remove_member(now, call_id, user, reason);
        Ok(())
    }

    fn cancel(&mut self, user: &UserId, device: &DeviceId, call_id: &CallId) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return refuse(ErrorCode::UnknownCall, format!("no call {call_id}"));
        };
        if &call.initiator != user || call.joined_device(user) != Some(device) {
            return refuse(ErrorCode::NotAllowed, "only the device that started the call can cancel it");
        }
        if call.answered {
            return refuse(ErrorCode::NotAllowed, "the call was answered: hang up instead");
        }
        self.end_call(call_id, EndReason::Cancelled);
        Ok(())
    }

    fn hangup(&mut self, now: Instant, user: &UserId, device: &DeviceId, call_id: &CallId) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return refuse(ErrorCode::UnknownCall, format!("no call {call_id}"));
        };
        if call.joined_device(user) != Some(device) {
            return refuse(ErrorCode::NotAllowed, format!("this device is not in call {call_id}"));
        }
        if &call.initiator == user && !call.answered {
            // Hanging up before anyone answered is cancelling.
            self.end_call(call_id, EndReason::Cancelled);
            return Ok(());
        }
        self.send_device(user, device, ServerMessage::Ended { call: call_id.clone(), reason: EndReason::Hangup });
        self.leave(now, call_id, user, EndReason::Hangup);
        Ok(())
    }

    /// A joined member leaves (hung up or lost); the device has been told already, if it is still there.
    fn leave(&mut self, now: Instant, call_id: &CallId, user: &UserId, reason: EndReason) {
        let Some(call) = self.calls.get(call_id) else { return };
        if &call.initiator == user && !call.answered {
            // The caller vanished while it rang: nobody is left to answer to.
            self.end_call(call_id, EndReason::Cancelled);
            return;
        }
        if let Some(device) = call.joined_device(user).cloned() {
            self.set_joined(user, &device, None);
        }
        self.remove_member(now, call_id, user, reason);
    }

    /// Takes `user` out of the call for `reason` and tells the others; a 1v1 call ends with it.
    fn remove_member(&mut self, now: Instant, call_id: &CallId, user: &UserId, reason: EndReason) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        call.members.retain(|m| &m.user != user);
        call.former.insert(user.clone());
        if let Some(state) = self.users.get_mut(user) {
            state.invited_to.remove(call_id);
        }
        let call = &self.calls[call_id];
        if !call.group {
            let for_others = if reason == EndReason::Hangup { EndReason::RemoteHangup } else { reason };
            self.end_call(call_id, for_others);
            return;
        }
        let (joined, ringing, answered) = (call.joined_count(), call.ringing_count(), call.answered);
        let message = ServerMessage::Left { call: call_id.clone(), user: user.clone(), reason };
        self.send_joined(call_id, None, message);
        if joined == 0 {
            self.end_call(call_id, EndReason::Cancelled);
        } else if joined == 1 && ringing == 0 && !answered {
            // Everyone invited declined, was busy or did not answer.
            self.end_call(call_id, reason);
        } else {
            self.update_idle(now, call_id);
        }
    }

    /// Starts or stops the idle timer of a group call: it runs while one member is alone in it.
    fn update_idle(&mut self, now: Instant, call_id: &CallId) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        let alone = call.group && call.answered && call.joined_count() == 1;
        match (alone, call.idle_deadline) {
            (true, None) => {
                let deadline = now + self.config.idle_timeout;
                call.idle_deadline = Some(deadline);
                self.timers.insert((deadline, Timer::Idle(call_id.clone())));
            }
            (false, Some(deadline)) => {
                call.idle_deadline = None;
                self.timers.remove(&(deadline, Timer::Idle(call_id.clone())));
            }
            _ => {}
        }
    }

    /// Ends the whole call: every joined device hears `reason`, every ringing device too; invitees who
    /// never rang anywhere get a missed-call record.
    fn end_call(&mut self, call_id: &CallId, reason: EndReason) {
        let Some(call) = self.calls.get(call_id) else { return };
        let members = call.members.clone();
        for member in &members {
            match &member.status {
                Status::Joined { device, .. } => {
                    self.set_joined(&member.user, device, None);
                    self.send_device(&member.user, device, ServerMessage::Ended { call: call_id.clone(), reason });
                }
                Status::Ringing { devices, .. } => {
                    if devices.is_empty() {
                        self.record_missed(call_id, &member.user, reason);
                    }
                    self.stop_ringing(call_id, &member.user, reason, None);
                }
            }
        }
        // Ring timers went with stop_ringing above.
        let Some(call) = self.calls.remove(call_id) else { return };
        if let Some(deadline) = call.idle_deadline {
            self.timers.remove(&(deadline, Timer::Idle(call_id.clone())));
        }
    }

    fn set_media(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        media: MediaState,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get_mut(call_id) else {
            return refuse(ErrorCode::UnknownCall, format!("no call {call_id}"));
        };
        let Some(Member { status: Status::Joined { device: joined, media: current }, .. }) = call.member_mut(user)
        else {
            return refuse(ErrorCode::NotAllowed, format!("this device is not in call {call_id}"));
        };
        if joined != device {
            return refuse(ErrorCode::NotAllowed, format!("this device is not in call {call_id}"));
        }
        *current = media;
        let upgrade = media.camera_on && call.kind == CallKind::Audio;
        if upgrade {
            call.kind = CallKind::Video;
            let message = ServerMessage::KindChanged { call: call_id.clone(), kind: CallKind::Video, by: user.clone() };
            self.send_joined(call_id, None, message);
        }
        let message = ServerMessage::MediaChanged { call: call_id.clone(), user: user.clone(), media };
        self.send_joined(call_id, Some(user), message);
        Ok(())
    }

    fn relay(
        &mut self,
        call_id: &CallId,
        from: DeviceAddress,
        to: DeviceAddress,
        payload: dialtone_protocol::SignalPayload,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return refuse(ErrorCode::UnknownCall, format!("no call {call_id}"));
        };
        if !call.has_device(&from.user, &from.device) {
            return refuse(ErrorCode::NotAllowed, format!("this device is not in call {call_id}"));
        }
        if from == to || !call.has_device(&to.user, &to.device) {
            return refuse(ErrorCode::NotAllowed, format!("{to} is not in call {call_id}"));
        }
        let message = ServerMessage::Signal { call: call_id.clone(), from, payload };
        self.send_device(&to.user, &to.device, message);
        Ok(())
    }

    // ----- time -----

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, timer)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer.clone()));
            match timer {
                Timer::Ring(call_id, user) => {
                    let due = matches!(
                        self.calls.get(&call_id).and_then(|c| c.member(&user)).map(|m| &m.status),
                        Some(Status::Ringing { deadline, .. }) if *deadline <= now
                    );
                    if due {
                        if self.calls[&call_id]
                            .member(&user)
                            .is_some_and(|m| matches!(&m.status, Status::Ringing { devices, .. } if devices.is_empty()))
                        {
                            self.record_missed(&call_id, &user, EndReason::NoAnswer);
                        }
                        self.stop_ringing(&call_id, &user, EndReason::NoAnswer, None);
                        self.remove_member(now, &call_id, &user, EndReason::NoAnswer);
                    }
                }
                Timer::Idle(call_id) => {
                    let due = self.calls.get(&call_id).and_then(|c| c.idle_deadline).is_some_and(|d| d <= now);
                    if due {
                        self.end_call(&call_id, EndReason::IdleTimeout);
                    }
                }
                Timer::Expected(call_id) => {
                    let Some(call) = self.calls.get_mut(&call_id) else { continue };
                    if std::mem::take(&mut call.expected).is_empty() {
                        continue;
                    }
                    // Someone never came back: a call left with one person in it is over.
                    if call.joined_count() < 2 {
                        self.end_call(&call_id, EndReason::ConnectionLost);
                    }
                }
                Timer::Away(user, device) => {
                    let away = self.users.get(&user).and_then(|u| u.devices.get(&device));
                    if let Some(conn) = away.filter(|d| d.away_until.is_some_and(|until| until <= now)).map(|d| d.conn)
                    {
                        self.drop_device(now, &user, &device, conn);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
