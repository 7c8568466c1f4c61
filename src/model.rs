//! What the app knows, built only from engine events and the user's own actions: connection,
//! contacts and presence, the call on screen, calls ringing here, notices and history entries.
//!
//! No egui and no clock in here: every change takes `now` (and the wall-clock time for history) as
//! arguments, so the tests below replay event sequences with made-up instants.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dialtone_engine::{ABSENT_ID, DeviceInfo, DeviceKind, DeviceList, Event, MediaLinkState};
use dialtone_protocol::{CallId, CallInfo, CallKind, DeviceId, EndReason, MediaState, MemberStatus, Profile, UserId};

use crate::history::{self, Direction, Entry, Outcome};

/// How long a notice ("Answered on another device") stays on screen.
pub const NOTICE_FOR: Duration = Duration::from_secs(4);

/// The connection to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// Connecting (`attempt` 0 is the first).
    Connecting {
        /// Reconnect attempt number.
        attempt: u32,
    },
    /// Signed in.
    Online,
    /// Lost; trying again at `retry_at`.
    Reconnecting {
        /// Why it was lost.
        reason: String,
        /// When the next attempt starts.
        retry_at: Instant,
    },
    /// The engine stopped for good (bad token, shut down).
    Stopped {
        /// Why.
        reason: String,
    },
}

/// Someone this user can call.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Their id.
    pub user: UserId,
    /// Their profile.
    pub profile: Profile,
    /// Signed in on at least one device.
    pub online: bool,
    /// In a call now.
    pub in_call: bool,
}

/// A named group of contacts that is called together (the demo group).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// What it is called.
    pub name: String,
    /// Its members.
    pub members: Vec<UserId>,
}

/// Where the call on screen stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// This user called; the invitation is on its way or ringing.
    Ringing,
    /// Answered (here or by them); media is being connected.
    Connecting,
    /// In the call.
    Active,
}

/// A network-quality grade for one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    /// Losses or delay a person notices.
    Poor,
    /// Some loss or delay.
    Fair,
    /// Fine.
    Good,
}

impl Quality {
    /// Grades round-trip time, the fraction of packets lost and the video freezes over the last period.
    pub fn grade(rtt_ms: Option<f64>, loss: f64, freezes: u64) -> Quality {
        let rtt = rtt_ms.unwrap_or(0.0);
        if loss > 0.08 || rtt > 400.0 || freezes > 1 {
            Quality::Poor
        } else if loss > 0.02 || rtt > 150.0 || freezes == 1 {
            Quality::Fair
        } else {
            Quality::Good
        }
    }

    /// What the indicator's tooltip says.
    pub fn label(self) -> &'static str {
        match self {
            Quality::Good => "Good connection",
            Quality::Fair => "Fair connection",
            Quality::Poor => "Poor connection",
        }
    }
}

/// Someone else in the call on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    /// Their id.
    pub user: UserId,
    /// Their profile.
    pub profile: Profile,
    /// Ringing, or joined on `device`.
    pub joined: bool,
    /// The device they answered on.
    pub device: Option<DeviceId>,
    /// Muted, camera on.
    pub media: MediaState,
    /// The latest network grade.
    pub quality: Option<Quality>,
    /// The peer connection's state.
    pub link: Option<MediaLinkState>,
    /// Why no connection to them could be made, until one is being tried again.
    pub unreachable: Option<String>,
    /// Totals from the last statistics, to grade the next period's loss.
    packets: (i64, u64),
    /// Video freezes counted at the last statistics.
    freezes: u64,
}

/// The call on screen (outgoing ringing, connecting, or in progress).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentCall {
    /// Its id.
    pub id: CallId,
    /// Audio or video.
    pub kind: CallKind,
    /// A group call (grid view).
    pub group: bool,
    /// Who placed it.
    pub direction: Direction,
    /// Where it stands.
    pub stage: Stage,
    /// Everyone else, in the order they appeared.
    pub participants: Vec<Participant>,
    /// What this device sends.
    pub my_media: MediaState,
    /// When it became active.
    pub active_since: Option<Instant>,
    /// When it started, for the history.
    pub started_unix_ms: u64,
    /// Who speaks now.
    pub speaker: Option<UserId>,
}

impl CurrentCall {
    /// The participants who answered.
    pub fn joined(&self) -> impl Iterator<Item = &Participant> {
        self.participants.iter().filter(|p| p.joined)
    }

    /// The worst grade among joined participants, for the call's indicator.
    pub fn quality(&self) -> Option<Quality> {
        self.joined().filter_map(|p| p.quality).min()
    }

    fn participant(&mut self, user: &UserId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| &p.user == user)
    }
}

/// A call ringing on this device.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The call as the invitation described it.
    pub info: CallInfo,
    /// Who invites.
    pub from: UserId,
    /// Wall-clock start, for the history.
    pub at_unix_ms: u64,
}

/// A short message on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What it says.
    pub text: String,
    /// When it goes away.
    pub until: Instant,
}

/// Everything the views draw.
#[derive(Debug, Default)]
pub struct Model {
    /// This user, once signed in.
    pub me: Option<UserId>,
    /// This user's profile as the server holds it.
    pub my_profile: Profile,
    /// The server connection; `None` before the engine said anything.
    pub connection: Option<Connection>,
    /// Everyone watched, by id (this user excluded).
    pub contacts: BTreeMap<UserId, Contact>,
    /// Groups to call together.
    pub groups: Vec<Group>,
    /// The call on screen.
    pub call: Option<CurrentCall>,
    /// Calls ringing here, oldest first.
    pub incoming: Vec<Incoming>,
    /// Messages on screen.
    pub notices: Vec<Notice>,
    /// Entries for the history, taken by [`Model::take_history`].
    finished: Vec<Entry>,
    /// Profiles seen in calls, for names of people not among the contacts.
    profiles: BTreeMap<UserId, Profile>,
    /// Peer-connection states by call and device, also for calls that still ring here (they connect
    /// before anyone answers).
    links: BTreeMap<(CallId, UserId, DeviceId), MediaLinkState>,
    /// The microphones, speakers and cameras there are, as last listed.
    pub devices: DeviceList,
    /// The device of each kind in use, and why it is a stand-in when it is one.
    pub in_use: BTreeMap<DeviceKind, (DeviceInfo, Option<String>)>,
}

impl Model {
    /// A display name for `user`: their profile's, or their id.
    pub fn name_of(&self, user: &UserId) -> String {
        let profile = self.contacts.get(user).map(|c| &c.profile).or_else(|| self.profiles.get(user));
        match profile {
            Some(profile) if !profile.display_name.is_empty() => profile.display_name.clone(),
            _ => user.to_string(),
        }
    }

    /// `user`'s profile, as far as known.
    pub fn profile_of(&self, user: &UserId) -> Profile {
        self.contacts
            .get(user)
            .map(|c| c.profile.clone())
            .or_else(|| self.profiles.get(user).cloned())
            .unwrap_or_default()
    }

    /// Finished calls for the history since the last call, oldest first.
    pub fn take_history(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.finished)
    }

    /// Shows a message for [`NOTICE_FOR`].
    pub fn notify(&mut self, text: impl Into<String>, now: Instant) {
        self.notices.push(Notice { text: text.into(), until: now + NOTICE_FOR });
    }

    /// Drops notices whose time is up; returns when the next one expires.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.notices.retain(|n| n.until > now);
        self.notices.iter().map(|n| n.until).min()
    }

    /// The user placed a call (the engine's `OutgoingCall` confirms it).
    pub fn placing(
        &mut self,
        call: CallId,
        users: &[UserId],
        kind: CallKind,
        group: bool,
        my_media: MediaState,
        now_unix_ms: u64,
    ) {
        let participants = users.iter().map(|user| self.new_participant(user.clone())).collect();
        self.call = Some(CurrentCall {
            id: call,
            kind,
            group: group || users.len() > 1,
            direction: Direction::Outgoing,
            stage: Stage::Ringing,
            participants,
            my_media,
            active_since: None,
            started_unix_ms: now_unix_ms,
            speaker: None,
        });
    }

    /// The user answered a ringing call: it becomes the call on screen.
    pub fn answering(&mut self, call: &CallId, my_media: MediaState) {
        let Some(at) = self.incoming.iter().position(|i| &i.info.call == call) else {
            return;
        };
        let incoming = self.incoming.remove(at);
        let me = self.me.clone();
        let participants = incoming
            .info
            .members
            .iter()
            .filter(|m| Some(&m.user) != me.as_ref())
            .map(|m| self.member_participant(call, m))
            .collect();
        self.call = Some(CurrentCall {
            id: call.clone(),
            kind: incoming.info.kind,
            group: incoming.info.group,
            direction: Direction::Incoming,
            stage: Stage::Connecting,
            participants,
            my_media,
            active_since: None,
            started_unix_ms: incoming.at_unix_ms,
            speaker: None,
        });
    }

    /// The user muted, unmuted, or turned the camera on or off.
    pub fn set_my_media(&mut self, media: MediaState) {
        if let Some(call) = &mut self.call {
            call.my_media = media;
            if media.camera_on {
                call.kind = CallKind::Video;
            }
        }
    }

    fn new_participant(&self, user: UserId) -> Participant {
        Participant {
            profile: self.profile_of(&user),
            user,
            joined: false,
            device: None,
            media: MediaState::default(),
            quality: None,
            link: None,
            unreachable: None,
            packets: (0, 0),
            freezes: 0,
        }
    }

    /// The person asked to try again to reach those who could not be reached: the reasons go until the
    /// next failure says them again.
    pub fn retrying(&mut self) {
        if let Some(call) = self.call.as_mut() {
            for participant in &mut call.participants {
                participant.unreachable = None;
            }
        }
    }

    /// A participant as the server describes a call member, with any connection made while it rang.
    fn member_participant(&self, call: &CallId, member: &dialtone_protocol::CallMember) -> Participant {
        let mut participant = self.new_participant(member.user.clone());
        if !member.profile.display_name.is_empty() {
            participant.profile = member.profile.clone();
        }
        participant.joined = member.status == MemberStatus::Joined;
        participant.device = member.device.clone();
        participant.media = member.media.unwrap_or_default();
        participant.link = member
            .device
            .as_ref()
            .and_then(|device| self.links.get(&(call.clone(), member.user.clone(), device.clone())).copied());
        participant
    }

    fn remember(&mut self, info: &CallInfo) {
        for member in &info.members {
            if !member.profile.display_name.is_empty() {
                self.profiles.insert(member.user.clone(), member.profile.clone());
            }
        }
    }

    /// Applies one engine event.
    pub fn apply(&mut self, event: Event, now: Instant, now_unix_ms: u64) {
        match event {
            Event::Connecting { attempt, .. } => self.connection = Some(Connection::Connecting { attempt }),
            Event::SignedIn { user, profile, .. } => {
                self.contacts.remove(&user);
                self.me = Some(user);
                self.my_profile = profile;
                self.connection = Some(Connection::Online);
            }
            Event::Reconnecting { reason, retry_in_ms, .. } => {
                self.connection =
                    Some(Connection::Reconnecting { reason, retry_at: now + Duration::from_millis(retry_in_ms) });
            }
            Event::Stopped { reason } => self.connection = Some(Connection::Stopped { reason }),
            Event::Presence { users } => {
                self.contacts.clear();
                for entry in users {
                    self.presence(entry);
                }
            }
            Event::PresenceChanged { entry } => self.presence(entry),
            Event::MissedCalls { calls } => {
                for missed in calls {
                    self.profiles.insert(missed.from.clone(), missed.from_profile.clone());
                    self.finished.push(Entry {
                        call: missed.call.to_string(),
                        direction: Direction::Incoming,
                        peers: vec![history::Peer { user: missed.from.to_string(), name: self.name_of(&missed.from) }],
                        group: missed.group,
                        video: missed.kind == CallKind::Video,
                        at_unix_ms: missed.at_unix_ms,
                        duration_ms: None,
                        outcome: Outcome::Missed,
                    });
                }
            }
            Event::OutgoingCall { call, users, kind } => {
                if self.call.as_ref().is_none_or(|c| c.id != call) {
                    self.placing(call, &users, kind, users.len() > 1, MediaState::for_kind(kind), now_unix_ms);
                }
            }
            Event::IncomingCall { call, from } => {
                self.remember(&call);
                self.incoming.retain(|i| i.info.call != call.call);
                self.incoming.push(Incoming { info: call, from, at_unix_ms: now_unix_ms });
            }
            Event::Ringing { call, user, .. } => {
                if let Some(current) = self.call.as_mut().filter(|c| c.id == call)
                    && current.participant(&user).is_none()
                {
                    let participant = self.new_participant(user);
                    if let Some(current) = &mut self.call {
                        current.participants.push(participant);
                    }
                }
            }
            Event::CallActive { call } => {
                self.remember(&call);
                let me = self.me.clone();
                if self.call.as_ref().is_none_or(|c| c.id != call.call) {
                    // Joined from elsewhere (a rejoin): show it.
                    self.call = Some(CurrentCall {
                        id: call.call.clone(),
                        kind: call.kind,
                        group: call.group,
                        direction: if me.as_ref() == Some(&call.initiator) {
                            Direction::Outgoing
                        } else {
                            Direction::Incoming
                        },
                        stage: Stage::Active,
                        participants: Vec::new(),
                        my_media: MediaState::for_kind(call.kind),
                        active_since: None,
                        started_unix_ms: now_unix_ms,
                        speaker: None,
                    });
                }
                let fresh: Vec<Participant> = call
                    .members
                    .iter()
                    .filter(|m| Some(&m.user) != me.as_ref())
                    .map(|m| self.member_participant(&call.call, m))
                    .collect();
                if let Some(current) = &mut self.call {
                    current.stage = Stage::Active;
                    current.kind = call.kind;
                    current.group = call.group;
                    current.active_since.get_or_insert(now);
                    for participant in fresh {
                        match current.participant(&participant.user) {
                            Some(existing) => {
                                existing.joined = participant.joined;
                                existing.device = participant.device;
                                existing.media = participant.media;
                                existing.link = participant.link.or(existing.link);
                                if !participant.profile.display_name.is_empty() {
                                    existing.profile = participant.profile;
                                }
                            }
                            None => current.participants.push(participant),
                        }
                    }
                }
            }
            Event::ParticipantJoined { call, user, device, media } => {
                let participant = self.new_participant(user.clone());
                let link = self.links.get(&(call.clone(), user.clone(), device.clone())).copied();
                if let Some(current) = self.call.as_mut().filter(|c| c.id == call) {
                    if current.participant(&user).is_none() {
                        current.participants.push(participant);
                    }
                    if let Some(p) = current.participant(&user) {
                        p.joined = true;
                        p.device = Some(device);
                        p.media = media;
                        p.link = link;
                    }
                }
            }
            Event::ParticipantLeft { call, user, reason } => {
                let name = self.name_of(&user);
                let Some(current) = self.call.as_mut().filter(|c| c.id == call) else {
                    return;
                };
                current.participants.retain(|p| p.user != user);
                if current.speaker.as_ref() == Some(&user) {
                    current.speaker = None;
                }
                if current.group {
                    let text = match reason {
                        EndReason::Declined | EndReason::DeclinedOnAnotherDevice => {
                            format!("{name} declined")
                        }
                        EndReason::Busy => format!("{name} is busy"),
                        EndReason::NoAnswer => format!("{name} did not answer"),
                        EndReason::ConnectionLost => format!("{name} lost the connection"),
                        _ => format!("{name} left"),
                    };
                    self.notify(text, now);
                }
            }
            Event::MediaChanged { call, user, media } => {
                if Some(&user) == self.me.as_ref() {
                    self.set_my_media(media);
                } else if let Some(p) = self.call.as_mut().filter(|c| c.id == call).and_then(|c| c.participant(&user)) {
                    p.media = media;
                }
            }
            Event::KindChanged { call, kind, .. } => {
                if let Some(current) = self.call.as_mut().filter(|c| c.id == call) {
                    current.kind = kind;
                }
            }
            Event::Merged { call, into } => {
                if let Some(current) = self.call.as_mut().filter(|c| c.id == call) {
                    current.id = into.clone();
                }
                // Both called each other: the other's call is this one, so it is not ringing here.
                self.incoming.retain(|i| i.info.call != into);
            }
            Event::MediaLink { call, peer, state, reason, .. } => {
                self.links.insert((call.clone(), peer.user.clone(), peer.device.clone()), state);
                if let Some(p) = self.call.as_mut().filter(|c| c.id == call).and_then(|c| c.participant(&peer.user))
                    && p.device.as_ref().is_none_or(|d| d == &peer.device)
                {
                    p.link = Some(state);
                    // Said until a connection comes up: the engine's own retries do not clear it.
                    match (state, reason) {
                        (MediaLinkState::Failed, Some(reason)) => p.unreachable = Some(reason),
                        (MediaLinkState::Connected, _) => p.unreachable = None,
                        _ => {}
                    }
                }
            }
            Event::MediaStats { call, peer, rtt_ms, packets_lost, packets_received, video_freezes, .. } => {
                if let Some(p) = self.call.as_mut().filter(|c| c.id == call).and_then(|c| c.participant(&peer.user)) {
                    let (lost_before, received_before) = p.packets;
                    let lost = (packets_lost - lost_before).max(0) as f64;
                    let received = packets_received.saturating_sub(received_before) as f64;
                    let loss = if lost + received > 0.0 { lost / (lost + received) } else { 0.0 };
                    p.quality = Some(Quality::grade(rtt_ms, loss, video_freezes.saturating_sub(p.freezes)));
                    p.packets = (packets_lost, packets_received);
                    p.freezes = video_freezes;
                }
            }
            Event::ActiveSpeaker { call, user } => {
                if let Some(current) = self.call.as_mut().filter(|c| c.id == call) {
                    current.speaker = user;
                }
            }
            Event::CallEnded { call, reason, duration_ms } => self.ended(call, reason, duration_ms, now),
            Event::Error { message, call, .. } => {
                // Errors about a call that is on screen or ringing are worth saying; the rest go to the log.
                let concerns_user = call.as_ref().is_some_and(|c| {
                    self.call.as_ref().is_some_and(|current| &current.id == c)
                        || self.incoming.iter().any(|i| &i.info.call == c)
                });
                if concerns_user || call.is_none() {
                    self.notify(message, now);
                }
            }
            // Pictures are kept by the app (a cache on disk), not the model.
            Event::Signal { .. } | Event::Picture { .. } | Event::CallResumed { .. } => {}
            Event::Devices { devices } => self.devices = devices,
            Event::DeviceInUse { kind, device, problem } => {
                // Each start of a camera or microphone reports; a problem is told once until it changes.
                let told = self.in_use.get(&kind).and_then(|(_, told)| told.as_ref());
                if let Some(problem) = problem.as_ref().filter(|p| Some(*p) != told) {
                    self.notify(format!("{} — {}", capitalised(problem), stand_in(kind, &device)), now);
                } else if problem.is_none() && told.is_some() {
                    self.notify(format!("Now using {}", device.name), now);
                }
                self.in_use.insert(kind, (device, problem));
            }
        }
    }

    fn presence(&mut self, entry: dialtone_protocol::PresenceEntry) {
        if Some(&entry.user) == self.me.as_ref() {
            self.my_profile = entry.profile;
            return;
        }
        self.contacts.insert(
            entry.user.clone(),
            Contact { user: entry.user, profile: entry.profile, online: entry.online, in_call: entry.in_call },
        );
    }

    fn ended(&mut self, call: CallId, reason: EndReason, duration_ms: Option<u64>, now: Instant) {
        self.links.retain(|(c, _, _), _| c != &call);
        if let Some(at) = self.incoming.iter().position(|i| i.info.call == call) {
            let incoming = self.incoming.remove(at);
            let outcome = match reason {
                EndReason::AnsweredOnAnotherDevice => Outcome::AnsweredElsewhere,
                EndReason::DeclinedOnAnotherDevice => Outcome::DeclinedElsewhere,
                EndReason::Declined | EndReason::Busy => Outcome::Declined,
                _ => Outcome::Missed,
            };
            match outcome {
                Outcome::AnsweredElsewhere => self.notify("Answered on another device", now),
                Outcome::DeclinedElsewhere => self.notify("Declined on another device", now),
                Outcome::Missed => self.notify(format!("Missed call from {}", self.name_of(&incoming.from)), now),
                _ => {}
            }
            let me = self.me.clone();
            let peers = incoming
                .info
                .members
                .iter()
                .filter(|m| Some(&m.user) != me.as_ref())
                .map(|m| history::Peer { user: m.user.to_string(), name: self.name_of(&m.user) })
                .collect();
            self.finished.push(Entry {
                call: call.to_string(),
                direction: Direction::Incoming,
                peers,
                group: incoming.info.group,
                video: incoming.info.kind == CallKind::Video,
                at_unix_ms: incoming.at_unix_ms,
                duration_ms: None,
                outcome,
            });
            return;
        }
        let Some(current) = self.call.take_if(|c| c.id == call) else {
            return;
        };
        let answered = current.active_since.is_some() || duration_ms.is_some();
        let outcome = match (current.direction, answered, reason) {
            (_, true, _) => Outcome::Answered,
            (Direction::Incoming, false, EndReason::AnsweredOnAnotherDevice) => Outcome::AnsweredElsewhere,
            (Direction::Incoming, false, _) => Outcome::Failed,
            (Direction::Outgoing, false, EndReason::Cancelled | EndReason::Hangup) => Outcome::Cancelled,
            (Direction::Outgoing, false, EndReason::Declined | EndReason::DeclinedOnAnotherDevice) => Outcome::Rejected,
            (Direction::Outgoing, false, EndReason::Busy) => Outcome::Busy,
            (Direction::Outgoing, false, EndReason::NoAnswer) => Outcome::NoAnswer,
            (Direction::Outgoing, false, _) => Outcome::Failed,
        };
        let who = current.participants.iter().map(|p| self.name_of(&p.user)).collect::<Vec<_>>().join(", ");
        let text = match (outcome, reason) {
            (Outcome::Answered, EndReason::RemoteHangup) => format!("{who} hung up"),
            (Outcome::Answered, EndReason::ConnectionLost) => "Call dropped: the connection was lost".to_owned(),
            (Outcome::Answered, EndReason::IdleTimeout) => "Call ended: everyone else left".to_owned(),
            (Outcome::Answered | Outcome::Cancelled, _) => "Call ended".to_owned(),
            (Outcome::Rejected, _) => format!("{who} declined"),
            (Outcome::Busy, _) => format!("{who} is busy"),
            (Outcome::NoAnswer, _) => format!("{who} did not answer"),
            (Outcome::AnsweredElsewhere, _) => "Answered on another device".to_owned(),
            _ => format!("Call failed ({})", reason.as_str().replace('_', " ")),
        };
        self.notify(text, now);
        let duration_ms =
            duration_ms.or_else(|| current.active_since.map(|at| now.duration_since(at).as_millis() as u64));
        self.finished.push(Entry {
            call: current.id.to_string(),
            direction: current.direction,
            peers: current
                .participants
                .iter()
                .map(|p| history::Peer { user: p.user.to_string(), name: self.name_of(&p.user) })
                .collect(),
            group: current.group,
            video: current.kind == CallKind::Video,
            at_unix_ms: current.started_unix_ms,
            duration_ms: if answered { duration_ms } else { None },
            outcome,
        });
    }
}

#[cfg(test)]
mod tests;

/// What standing in for a device that cannot be used means, in words.
pub fn stand_in(kind: DeviceKind, device: &DeviceInfo) -> String {
    match kind {
        DeviceKind::Speaker if device.fake => "calls play silently".to_owned(),
        DeviceKind::Microphone if device.id == ABSENT_ID => "the others hear silence from you".to_owned(),
        DeviceKind::Camera if device.id == ABSENT_ID => "the others see your picture instead of video".to_owned(),
        _ => format!("using {} instead", device.name),
    }
}

/// The text with its first letter in upper case.
pub(crate) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
