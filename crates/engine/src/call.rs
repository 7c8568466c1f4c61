//! One call as this device sees it: an explicit phase, and a pure transition function.
//!
//! [`Call::handle`] takes an input (a local command, a server message, the passing of time, the loss of
//! the connection) and the current time, updates the phase, and returns the effects: messages to send
//! and events to emit. It does no I/O and reads no clock, so the tests below drive it by tables.

use std::time::{Duration, Instant};

use dialtone_protocol::{
    CallId, CallInfo, CallKind, CallMember, ClientMessage, DeviceId, EndReason, ErrorCode, MediaState, MemberStatus,
    Profile, ServerMessage, UserId,
};

use crate::api::Event;

/// Where this device stands in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// We invited; the server has not confirmed yet.
    Placing,
    /// Our invitation rings; nobody has answered yet.
    Ringing,
    /// This device rings.
    Incoming,
    /// We answered; the server has not confirmed yet.
    Answering,
    /// In the call with others (or alone in a group call after the others left).
    Active,
    /// Over, for this reason.
    Ended(EndReason),
}

impl Phase {
    /// Ringing on either side, or about to.
    pub fn is_ringing(self) -> bool {
        match self {
            Phase::Placing | Phase::Ringing | Phase::Incoming => true,
            Phase::Answering | Phase::Active | Phase::Ended(_) => false,
        }
    }

    /// This device is a member that sends into the call (the server has it as joined).
    pub fn is_joined(self) -> bool {
        match self {
            Phase::Ringing | Phase::Active => true,
            Phase::Placing | Phase::Incoming | Phase::Answering | Phase::Ended(_) => false,
        }
    }

    /// The call is over for this device.
    pub fn is_over(self) -> bool {
        match self {
            Phase::Ended(_) => true,
            Phase::Placing | Phase::Ringing | Phase::Incoming | Phase::Answering | Phase::Active => false,
        }
    }
}

/// Whom a placed call invites, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The invitees.
    pub users: Vec<UserId>,
    /// Audio or video.
    pub kind: CallKind,
    /// A group call even with one invitee.
    pub group: bool,
    /// Ring for this long instead of the server's default.
    pub ring_timeout: Option<Duration>,
    /// What to send from the start; `None`: what the kind sends.
    pub media: Option<MediaState>,
}

/// Who started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This device placed it.
    Outgoing,
    /// Someone called this user.
    Incoming,
}

/// An input to [`Call::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Answer on this device.
    Accept(MediaState),
    /// Decline on this device.
    Decline {
        /// As busy.
        busy: bool,
    },
    /// Withdraw our unanswered call.
    Cancel,
    /// Leave.
    Hangup,
    /// Invite more people.
    Invite(Vec<UserId>),
    /// Change what we send.
    SetMedia(MediaState),
    /// A server message about this call.
    Server(ServerMessage),
    /// The server refused a request about this call.
    Refused(ErrorCode, String),
    /// Time passed; deadlines may be due.
    Tick,
    /// The connection to the server is gone.
    ConnectionLost,
}

/// What [`Call::handle`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send this to the server.
    Send(ClientMessage),
    /// Report this.
    Emit(Event),
}

/// One call. See the module documentation.
#[derive(Debug, Clone)]
pub struct Call {
    info: CallInfo,
    me: UserId,
    direction: Direction,
    phase: Phase,
    media: MediaState,
    active_since: Option<Instant>,
    /// When the current phase gives up waiting (server confirmation, or an incoming ring nobody ends).
    deadline: Option<Instant>,
    request_timeout: Duration,
}

impl Call {
    /// A call this device places: it asks the server to send `invitation`.
    pub fn place(
        id: CallId,
        me: (UserId, DeviceId, Profile),
        invitation: Invitation,
        now: Instant,
        request_timeout: Duration,
    ) -> (Self, Vec<Effect>) {
        let Invitation { users, kind, group, ring_timeout, media } = invitation;
        let (user, device, profile) = me;
        let media = media.unwrap_or(MediaState::for_kind(kind));
        let mut members = vec![CallMember {
            user: user.clone(),
            profile,
            status: MemberStatus::Joined,
            device: Some(device),
            media: Some(media),
        }];
        members.extend(users.iter().map(|u| CallMember {
            user: u.clone(),
            profile: Profile { display_name: u.to_string(), avatar: None },
            status: MemberStatus::Ringing,
            device: None,
            media: None,
        }));
        let group = group || users.len() > 1;
        let info = CallInfo { call: id.clone(), kind, group, initiator: user.clone(), members };
        let call = Self {
            info,
            me: user,
            direction: Direction::Outgoing,
            phase: Phase::Placing,
            media,
            active_since: None,
            deadline: Some(now + request_timeout),
            request_timeout,
        };
        let effects = vec![
            Effect::Send(ClientMessage::Invite {
                call: id.clone(),
                kind,
                users: users.clone(),
                group,
                ring_timeout_ms: ring_timeout.map(|t| t.as_millis() as u64),
            }),
            Effect::Emit(Event::OutgoingCall { call: id, users, kind, group, media }),
        ];
        (call, effects)
    }

    /// The server has the call this device placed, and assumes it sends what the kind sends: tells it
    /// what it sends instead (started muted, or with the camera off).
    fn announce(&mut self, placed: MediaState, server_has: Option<MediaState>) -> Option<Effect> {
        self.media = placed;
        if let Some(me) = self.info.members.iter_mut().find(|m| m.user == self.me) {
            me.media = Some(placed);
        }
        (server_has != Some(placed))
            .then(|| Effect::Send(ClientMessage::SetMedia { call: self.info.call.clone(), media: placed }))
    }

    /// A call ringing on this device. It rings until the server ends it, or at the latest after
    /// `ring_limit`.
    pub fn incoming(
        info: CallInfo,
        from: UserId,
        me: UserId,
        now: Instant,
        ring_limit: Duration,
        request_timeout: Duration,
    ) -> (Self, Vec<Effect>) {
        let media = MediaState::for_kind(info.kind);
        let call = Self {
            info: info.clone(),
            me,
            direction: Direction::Incoming,
            phase: Phase::Incoming,
            media,
            active_since: None,
            deadline: Some(now + ring_limit),
            request_timeout,
        };
        (call, vec![Effect::Emit(Event::IncomingCall { call: info, from })])
    }

    /// A call someone else placed that the server put this device in without it ringing here first (a
    /// glare merge, or rejoining a group call).
    pub fn joined(info: CallInfo, me: UserId, now: Instant, request_timeout: Duration) -> (Self, Vec<Effect>) {
        let media = info.member(&me).and_then(|m| m.media).unwrap_or(MediaState::for_kind(info.kind));
        let mut call = Self {
            info,
            me,
            direction: Direction::Incoming,
            phase: Phase::Ringing,
            media,
            active_since: None,
            deadline: None,
            request_timeout,
        };
        let effects = if call.others_joined() { call.activate(now) } else { Vec::new() };
        (call, effects)
    }

    /// The call's id.
    pub fn id(&self) -> &CallId {
        &self.info.call
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Who placed it.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The call as this device knows it.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// When [`Input::Tick`] should next be given.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn others_joined(&self) -> bool {
        self.info.members.iter().any(|m| m.user != self.me && m.status == MemberStatus::Joined)
    }

    fn activate(&mut self, now: Instant) -> Vec<Effect> {
        self.phase = Phase::Active;
        self.deadline = None;
        self.active_since = Some(now);
        vec![Effect::Emit(Event::CallActive { call: self.info.clone() })]
    }

    fn end(&mut self, reason: EndReason, now: Instant) -> Vec<Effect> {
        self.phase = Phase::Ended(reason);
        // An ended call waits a little for the server's confirmation, then is forgotten.
        self.deadline = Some(now + self.request_timeout);
        let duration_ms = self.active_since.map(|since| now.saturating_duration_since(since).as_millis() as u64);
        vec![Effect::Emit(Event::CallEnded { call: self.info.call.clone(), reason, duration_ms })]
    }

    fn rejected(&self, what: &str) -> Vec<Effect> {
        let phase = match self.phase {
            Phase::Placing => "being placed",
            Phase::Ringing => "ringing the others",
            Phase::Incoming => "ringing here",
            Phase::Answering => "being answered",
            Phase::Active => "in progress",
            Phase::Ended(_) => "over",
        };
        vec![Effect::Emit(Event::Error {
            code: None,
            message: format!("cannot {what}: call {} is {phase}", self.info.call),
            call: Some(self.info.call.clone()),
        })]
    }

    /// Whether the engine may forget this call: over, and the server has confirmed or had its chance.
    pub fn is_finished(&self, now: Instant) -> bool {
        self.phase.is_over() && self.deadline.is_none_or(|d| d <= now)
    }

    /// Applies one input; see the module documentation.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let id = self.info.call.clone();
        match (self.phase, input) {
            // ----- over: only the server's confirmation, or a refusal, still matters -----
            (Phase::Ended(_), Input::Server(ServerMessage::Ended { .. })) => {
                self.deadline = None;
                Vec::new()
            }
            (Phase::Ended(EndReason::Cancelled), Input::Refused(ErrorCode::NotAllowed, _))
                if self.direction == Direction::Outgoing && self.deadline.is_some() =>
            {
                // Our cancel crossed an answer: the server still has us in the call, so leave it, once.
                // The deadline marks that we still wait for the answer to the cancel; clearing it makes
                // a later refusal (of this hangup, say) fall through instead of hanging up again.
                self.deadline = None;
                vec![Effect::Send(ClientMessage::Hangup { call: id })]
            }
            (Phase::Ended(_), Input::Tick) => {
                if self.deadline.is_some_and(|d| d <= now) {
                    self.deadline = None;
                }
                Vec::new()
            }
            (
                Phase::Ended(_),
                Input::Accept(_)
                | Input::Decline { .. }
                | Input::Cancel
                | Input::Hangup
                | Input::Invite(_)
                | Input::SetMedia(_),
            ) => self.rejected("do that"),
            (Phase::Ended(_), _) => Vec::new(),

            // ----- connection and time -----
            (_, Input::ConnectionLost) => self.end(EndReason::ConnectionLost, now),
            (phase, Input::Tick) => match self.deadline {
                Some(deadline) if deadline <= now => match phase {
                    Phase::Incoming => self.end(EndReason::NoAnswer, now),
                    _ => {
                        let mut effects = vec![Effect::Emit(Event::Error {
                            code: None,
                            message: format!("the server did not confirm call {id} in time"),
                            call: Some(id.clone()),
                        })];
                        effects.extend(self.end(EndReason::Failed, now));
                        effects
                    }
                },
                _ => Vec::new(),
            },

            // ----- the server -----
            (_, Input::Server(ServerMessage::Ended { reason, .. })) => {
                let effects = self.end(reason, now);
                self.deadline = None;
                effects
            }
            (Phase::Placing | Phase::Answering, Input::Refused(code, message)) => {
                let mut effects = vec![Effect::Emit(Event::Error { code: Some(code), message, call: Some(id) })];
                effects.extend(self.end(EndReason::Failed, now));
                self.deadline = None;
                effects
            }
            (_, Input::Refused(code, message)) => {
                vec![Effect::Emit(Event::Error { code: Some(code), message, call: Some(id) })]
            }
            (
                Phase::Placing | Phase::Answering | Phase::Ringing | Phase::Active,
                Input::Server(ServerMessage::CallState { call }),
            ) => {
                let placed = (self.phase == Phase::Placing).then_some(self.media);
                self.info = call;
                if let Some(me) = self.info.member(&self.me) {
                    self.media = me.media.unwrap_or(self.media);
                }
                let mut effects = Vec::new();
                if let Some(placed) = placed {
                    self.phase = Phase::Ringing;
                    self.deadline = None;
                    let server_has = self.info.member(&self.me).and_then(|me| me.media);
                    effects.extend(self.announce(placed, server_has));
                }
                match self.phase {
                    Phase::Answering => effects.extend(self.activate(now)),
                    Phase::Ringing if self.others_joined() => effects.extend(self.activate(now)),
                    _ => {}
                }
                effects
            }
            (_, Input::Server(ServerMessage::Ringing { user, profile, devices, .. })) => {
                self.upsert_member(&user, MemberStatus::Ringing, None, None);
                if let Some(member) = self.info.members.iter_mut().find(|m| m.user == user) {
                    member.profile = profile;
                }
                vec![Effect::Emit(Event::Ringing { call: id, user, devices })]
            }
            (phase, Input::Server(ServerMessage::Joined { user, device, media, .. })) => {
                self.upsert_member(&user, MemberStatus::Joined, Some(device.clone()), Some(media));
                let mut effects = Vec::new();
                if phase == Phase::Placing {
                    // Answered before the server's call state came: what this device sends is news to it.
                    let server_has = MediaState::for_kind(self.info.kind);
                    effects.extend(self.announce(self.media, Some(server_has)));
                }
                if matches!(phase, Phase::Placing | Phase::Ringing) {
                    effects.extend(self.activate(now));
                }
                effects.push(Effect::Emit(Event::ParticipantJoined { call: id, user, device, media }));
                effects
            }
            (_, Input::Server(ServerMessage::Left { user, reason, .. })) => {
                self.info.members.retain(|m| m.user != user);
                vec![Effect::Emit(Event::ParticipantLeft { call: id, user, reason })]
            }
            (_, Input::Server(ServerMessage::MediaChanged { user, media, .. })) => {
                if let Some(member) = self.info.members.iter_mut().find(|m| m.user == user) {
                    member.media = Some(media);
                }
                vec![Effect::Emit(Event::MediaChanged { call: id, user, media })]
            }
            (_, Input::Server(ServerMessage::KindChanged { kind, by, .. })) => {
                self.info.kind = kind;
                vec![Effect::Emit(Event::KindChanged { call: id, kind, by })]
            }
            (_, Input::Server(_)) => Vec::new(),

            // ----- local commands -----
            (Phase::Incoming, Input::Accept(media)) => {
                self.phase = Phase::Answering;
                self.media = media;
                self.deadline = Some(now + self.request_timeout);
                vec![Effect::Send(ClientMessage::Accept { call: id, media })]
            }
            (Phase::Incoming, Input::Decline { busy }) => {
                let mut effects = vec![Effect::Send(ClientMessage::Decline { call: id, busy })];
                effects.extend(self.end(if busy { EndReason::Busy } else { EndReason::Declined }, now));
                effects
            }
            (Phase::Placing | Phase::Ringing, Input::Cancel | Input::Hangup) => {
                let mut effects = vec![Effect::Send(ClientMessage::Cancel { call: id })];
                effects.extend(self.end(EndReason::Cancelled, now));
                effects
            }
            (Phase::Answering | Phase::Active, Input::Hangup) => {
                let mut effects = vec![Effect::Send(ClientMessage::Hangup { call: id })];
                effects.extend(self.end(EndReason::Hangup, now));
                effects
            }
            (Phase::Incoming, Input::Hangup) => {
                let mut effects = vec![Effect::Send(ClientMessage::Decline { call: id, busy: false })];
                effects.extend(self.end(EndReason::Declined, now));
                effects
            }
            (Phase::Ringing | Phase::Active, Input::Invite(users)) => {
                vec![Effect::Send(ClientMessage::Invite {
                    call: id,
                    kind: self.info.kind,
                    users,
                    group: true,
                    ring_timeout_ms: None,
                })]
            }
            (Phase::Ringing | Phase::Active, Input::SetMedia(media)) => {
                self.media = media;
                if let Some(me) = self.info.members.iter_mut().find(|m| m.user == self.me) {
                    me.media = Some(media);
                }
                if media.camera_on {
                    self.info.kind = CallKind::Video;
                }
                vec![Effect::Send(ClientMessage::SetMedia { call: id, media })]
            }
            (_, Input::Accept(_)) => self.rejected("accept"),
            (_, Input::Decline { .. }) => self.rejected("decline"),
            (_, Input::Cancel) => self.rejected("cancel"),
            (_, Input::Invite(_)) => self.rejected("invite"),
            (_, Input::SetMedia(_)) => self.rejected("change media"),
        }
    }

    fn upsert_member(
        &mut self,
        user: &UserId,
        status: MemberStatus,
        device: Option<DeviceId>,
        media: Option<MediaState>,
    ) {
        match self.info.members.iter_mut().find(|m| &m.user == user) {
            Some(member) => {
                member.status = status;
                member.device = device;
                member.media = media;
            }
            None => self.info.members.push(CallMember {
                user: user.clone(),
                profile: Profile { display_name: user.to_string(), avatar: None },
                status,
                device,
                media,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
