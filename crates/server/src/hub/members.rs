//! Who is in a call and how they leave it: joining (and joining a group call again), hanging up,
//! dropping out, a ringing member taken out, the end of the whole call, and the idle timer of a group
//! call with one person left in it.

use std::time::Instant;

use dialtone_protocol::{CallId, DeviceId, EndReason, ErrorCode, MediaState, MissedCall, ServerMessage, UserId};

use super::Hub;
use super::state::{Member, Refusal, Status, Timer, profile_of, refuse, unknown_call};

impl Hub {
    /// Refuses when the device is already in a call: it must hang up first.
    pub(super) fn ensure_free(&self, user: &UserId, device: &DeviceId) -> Result<(), Refusal> {
        match self.device_state(user, device).and_then(|d| d.joined.as_ref()) {
            Some(current) => refuse(ErrorCode::NotAllowed, format!("this device is in call {current}; hang up first")),
            None => Ok(()),
        }
    }

    /// Bookkeeping once `user` joined on `device`: tell the device the call, the others the joiner.
    pub(super) fn joined(
        &mut self,
        now: Instant,
        call_id: &CallId,
        user: &UserId,
        device: &DeviceId,
        media: MediaState,
    ) {
        self.set_joined(user, device, Some(call_id.clone()));
        let Some(info) = self.calls.get(call_id).map(|call| call.info(&self.users)) else { return };
        self.send_device(user, device, ServerMessage::CallState { call: info });
        let message =
            ServerMessage::Joined { call: call_id.clone(), user: user.clone(), device: device.clone(), media };
        self.send_joined(call_id, Some(user), message);
        self.update_idle(now, call_id);
    }

    /// A former member of a group call joins it again by its id.
    pub(super) fn rejoin(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
    ) -> Result<(), Refusal> {
        self.ensure_free(user, device)?;
        let Some(call) = self.calls.get_mut(call_id) else {
            return unknown_call(call_id);
        };
        let media = MediaState::for_kind(call.kind);
        call.members.push(Member { user: user.clone(), status: Status::Joined { device: device.clone(), media } });
        self.joined(now, call_id, user, device, media);
        Ok(())
    }

    pub(super) fn hangup(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return unknown_call(call_id);
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
    pub(super) fn leave(&mut self, now: Instant, call_id: &CallId, user: &UserId, reason: EndReason) {
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
    pub(super) fn remove_member(&mut self, now: Instant, call_id: &CallId, user: &UserId, reason: EndReason) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        call.members.retain(|m| &m.user != user);
        call.former.insert(user.clone());
        let (group, joined, ringing, answered) = (call.group, call.joined_count(), call.ringing_count(), call.answered);
        if let Some(state) = self.users.get_mut(user) {
            state.invited_to.remove(call_id);
        }
        if !group {
            let for_others = if reason == EndReason::Hangup { EndReason::RemoteHangup } else { reason };
            self.end_call(call_id, for_others);
            return;
        }
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

    /// Ends the ringing on every device of a ringing member, telling each device `reason` (the one named
    /// in `exempt` is told its own reason, or nothing), and forgets the invitation on the user.
    pub(super) fn stop_ringing(
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
            _ => Default::default(),
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

    /// Keeps a missed call for a ringing member whose devices never rang for it, for their next sign-in.
    pub(super) fn record_missed(&mut self, call_id: &CallId, user: &UserId, reason: EndReason) {
        let Some(call) = self.calls.get(call_id) else { return };
        let Some(Member { status: Status::Ringing { invited_by, invited_at_unix_ms, rang: false, .. }, .. }) =
            call.member(user)
        else {
            return;
        };
        let record = MissedCall {
            call: call_id.clone(),
            from: invited_by.clone(),
            from_profile: profile_of(&self.users, invited_by),
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

    /// Starts or stops the idle timer of a group call: it runs while one member is alone in it.
    pub(super) fn update_idle(&mut self, now: Instant, call_id: &CallId) {
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

    /// The idle timer of a call fired: it ends if its member is still alone.
    pub(super) fn idle_timed_out(&mut self, now: Instant, call_id: &CallId) {
        let due = self.calls.get(call_id).and_then(|c| c.idle_deadline).is_some_and(|d| d <= now);
        if due {
            self.end_call(call_id, EndReason::IdleTimeout);
        }
    }

    /// Ends the whole call: every joined device hears `reason`, every ringing device too; invitees who
    /// never rang anywhere get a missed-call record.
    pub(super) fn end_call(&mut self, call_id: &CallId, reason: EndReason) {
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
}
