//! Starting a call and ringing: an invitation rings every free device of each invitee; a user whose
//! devices are all in calls is busy; two people calling each other at once (glare) end up in one call;
//! the first device to answer wins and the others stop; declining, cancelling, and the ring timeout.

use std::time::{Duration, Instant};

use dialtone_protocol::{CallId, DeviceId, EndReason, ErrorCode, MediaState, ServerMessage, UserId};

use super::state::{Call, Member, Refusal, Status, Timer, User, profile_of, refuse, unknown_call};
use super::{Hub, HubConfig, Invitation, Output};

impl Invitation {
    /// The invitees besides `inviter`, each once, in the order named.
    fn others_than(&self, inviter: &UserId) -> Vec<UserId> {
        let mut unique = Vec::new();
        for invitee in &self.invitees {
            if invitee != inviter && !unique.contains(invitee) {
                unique.push(invitee.clone());
            }
        }
        unique
    }

    /// How long invitees ring: as asked, within the configured maximum.
    fn ring_timeout(&self, config: &HubConfig) -> Duration {
        self.ring_timeout_ms.map(Duration::from_millis).unwrap_or(config.ring_timeout).min(config.max_ring_timeout)
    }
}

impl Hub {
    /// Starts a call, or, for a call that exists: invites more people into it (its joined device), answers
    /// it (a device it rings on) or joins it again (a former member of a group call).
    pub(super) fn invite(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        invitation: Invitation,
    ) -> Result<(), Refusal> {
        let invitees = invitation.others_than(user);
        let ring_timeout = invitation.ring_timeout(&self.config);
        let Invitation { call: call_id, kind, group, .. } = invitation;

        if let Some(call) = self.calls.get(&call_id) {
            if call.joined_device(user) == Some(device) {
                return self.invite_more(now, user, &call_id, invitees, ring_timeout);
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

        if invitees.is_empty() {
            return refuse(ErrorCode::BadRequest, "invite names nobody to call besides yourself");
        }
        if invitees.len() + 1 > self.config.max_call_members {
            return refuse(
                ErrorCode::BadRequest,
                format!("a call holds at most {} members", self.config.max_call_members),
            );
        }
        self.ensure_free(user, device)?;

        // Glare: the one person we call is calling us right now; join their call instead.
        if let [callee] = invitees.as_slice() {
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
                let into = self.calls.get(&existing).map(|call| call.info(&self.users));
                let conn = self.device_state(user, device).map(|d| d.conn);
                if let (Some(into), Some(conn)) = (into, conn) {
                    self.outputs.insert(position, Output::Send(conn, ServerMessage::Merged { call: call_id, into }));
                }
                return Ok(());
            }
        }

        let mut call = Call {
            id: call_id.clone(),
            kind,
            group: group || invitees.len() > 1,
            initiator: user.clone(),
            members: vec![Member {
                user: user.clone(),
                status: Status::Joined { device: device.clone(), media: MediaState::for_kind(kind) },
            }],
            answered: false,
            former: Default::default(),
            idle_deadline: None,
            expected: Vec::new(),
        };
        // All invitees are members before any rings, so that a busy first invitee does not end a group
        // call the others are still to join, and the call state lists everyone.
        call.add_ringing(&invitees, user, now + ring_timeout, self.unix_ms(now));
        let info = call.info(&self.users);
        self.calls.insert(call_id.clone(), call);
        self.set_joined(user, device, Some(call_id.clone()));
        self.send_device(user, device, ServerMessage::CallState { call: info });
        self.ring_users(now, &call_id, &invitees);
        Ok(())
    }

    /// Rings more people into a call `user` is in; a 1v1 call becomes a group call.
    fn invite_more(
        &mut self,
        now: Instant,
        user: &UserId,
        call_id: &CallId,
        invitees: Vec<UserId>,
        ring_timeout: Duration,
    ) -> Result<(), Refusal> {
        let invited_at_unix_ms = self.unix_ms(now);
        let Some(call) = self.calls.get_mut(call_id) else {
            return unknown_call(call_id);
        };
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
        call.group = true;
        call.add_ringing(&fresh, user, now + ring_timeout, invited_at_unix_ms);
        self.ring_users(now, call_id, &fresh);
        Ok(())
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
            .or_insert_with(|| User::named(invitee.to_string()))
            .invited_to
            .insert(call_id.clone());
        for device in &free {
            self.ring_device_quietly(call_id, invitee, device);
        }
        self.announce_ringing(call_id, invitee);
    }

    /// Rings one more device of a ringing member (a device that signed in while it rang).
    pub(super) fn ring_device(&mut self, call_id: &CallId, user: &UserId, device: &DeviceId) {
        if self.device_state(user, device).is_some_and(|d| d.joined.is_some()) {
            return;
        }
        if self.ring_device_quietly(call_id, user, device) {
            self.announce_ringing(call_id, user);
        }
    }

    /// Rings `device` without telling the call's members; whether it rang.
    fn ring_device_quietly(&mut self, call_id: &CallId, user: &UserId, device: &DeviceId) -> bool {
        let Some(call) = self.calls.get_mut(call_id) else { return false };
        let Some(Member { status: Status::Ringing { devices, invited_by, rang, .. }, .. }) = call.member_mut(user)
        else {
            return false;
        };
        devices.insert(device.clone());
        *rang = true;
        let from = invited_by.clone();
        let info = call.info(&self.users);
        if let Some(state) = self.users.get_mut(user).and_then(|u| u.devices.get_mut(device)) {
            state.ringing.insert(call_id.clone());
        }
        self.send_device(user, device, ServerMessage::Incoming { call: info, from });
        true
    }

    /// Tells the joined members on how many devices `user` rings now.
    fn announce_ringing(&mut self, call_id: &CallId, user: &UserId) {
        let Some(Member { status: Status::Ringing { devices, invited_by, .. }, .. }) =
            self.calls.get(call_id).and_then(|c| c.member(user))
        else {
            return;
        };
        let message = ServerMessage::Ringing {
            call: call_id.clone(),
            user: user.clone(),
            profile: profile_of(&self.users, user),
            devices: devices.len() as u32,
            invited_by: invited_by.clone(),
        };
        self.send_joined(call_id, None, message);
    }

    /// Stops `device` ringing for `call` because it went away; the member stays, ringing elsewhere or
    /// waiting for a sign-in until the timeout.
    pub(super) fn remove_ringing_device(&mut self, call_id: &CallId, user: &UserId, device: &DeviceId) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        if let Some(Member { status: Status::Ringing { devices, .. }, .. }) = call.member_mut(user) {
            devices.remove(device);
            self.announce_ringing(call_id, user);
        }
    }

    /// A ringing member's timer fired: if it is still due, they did not answer.
    pub(super) fn ring_timed_out(&mut self, now: Instant, call_id: &CallId, user: &UserId) {
        let rings_nowhere = match self.calls.get(call_id).and_then(|c| c.member(user)).map(|m| &m.status) {
            Some(Status::Ringing { deadline, devices, .. }) if *deadline <= now => devices.is_empty(),
            // Answered, declined or gone since: the timer is stale.
            _ => return,
        };
        if rings_nowhere {
            self.record_missed(call_id, user, EndReason::NoAnswer);
        }
        self.stop_ringing(call_id, user, EndReason::NoAnswer, None);
        self.remove_member(now, call_id, user, EndReason::NoAnswer);
    }

    pub(super) fn accept(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        media: MediaState,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return unknown_call(call_id);
        };
        match call.member(user).map(|m| &m.status) {
            Some(Status::Ringing { devices, .. }) if devices.contains(device) => {}
            Some(Status::Joined { .. }) => return refuse(ErrorCode::NotAllowed, "you are already in this call"),
            _ => return refuse(ErrorCode::NotAllowed, format!("call {call_id} is not ringing on this device")),
        }
        self.ensure_free(user, device)?;
        // The winning device is told the call state instead of an ending.
        self.stop_ringing(call_id, user, EndReason::AnsweredOnAnotherDevice, Some((device, None)));
        // Stopping the ringing leaves the call in place; the lookup cannot miss.
        let Some(call) = self.calls.get_mut(call_id) else {
            return unknown_call(call_id);
        };
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

    pub(super) fn decline(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        busy: bool,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return unknown_call(call_id);
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

    pub(super) fn cancel(&mut self, user: &UserId, device: &DeviceId, call_id: &CallId) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return unknown_call(call_id);
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
}
