//! The call on screen and calls ringing here, as the engine's call events change them.

use std::time::Instant;

use dialtone_engine::{Event, MediaLinkState};
use dialtone_protocol::{CallId, CallInfo, CallKind, EndReason, MediaState, UserId};

use super::*;

impl Model {
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
            trouble: None,
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

    /// One event about a call (see `Model::apply`).
    pub(super) fn call_event(&mut self, event: Event, now: Instant, now_unix_ms: u64) {
        match event {
            Event::OutgoingCall { call, users, kind, group, media } => {
                if self.call.as_ref().is_none_or(|c| c.id != call) {
                    self.placing(call, &users, kind, group, media, now_unix_ms);
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
            Event::MediaStats {
                call,
                peer,
                rtt_ms,
                packets_lost,
                packets_received,
                video_freezes,
                send_estimate_kbps,
                ..
            } => {
                if let Some(p) = self.call.as_mut().filter(|c| c.id == call).and_then(|c| c.participant(&peer.user)) {
                    let (lost_before, received_before) = p.packets;
                    let lost = (packets_lost - lost_before).max(0) as f64;
                    let received = packets_received.saturating_sub(received_before) as f64;
                    let loss = if lost + received > 0.0 { lost / (lost + received) } else { 0.0 };
                    let freezes = video_freezes.saturating_sub(p.freezes);
                    let (quality, trouble) = Quality::assess(rtt_ms, loss, freezes, Some(send_estimate_kbps));
                    (p.quality, p.trouble) = (Some(quality), trouble);
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
            other => tracing::debug!(?other, "not a call event"),
        }
    }
}
