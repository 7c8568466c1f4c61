//! Calls taken up again after the server restarted: the hub forgot them, their devices did not. Each
//! device claims its own place; the devices a claim names but that do not claim in time end the call if
//! that leaves someone alone.

use std::collections::hash_map::Entry;
use std::time::Instant;

use dialtone_protocol::{
    CallId, CallInfo, DeviceId, EndReason, ErrorCode, MediaState, MemberStatus, ServerMessage, UserId,
};

use super::Hub;
use super::state::{Call, Member, Refusal, Status, Timer, refuse};

impl Hub {
    /// Takes up a call a device was in before the server restarted. The first device to claim it makes
    /// it again with itself joined; the other joined devices it lists are expected to claim it within the
    /// grace period, and only their own claim joins them (a claim cannot put anyone else into a call).
    pub(super) fn resume(
        &mut self,
        now: Instant,
        user: &UserId,
        device: &DeviceId,
        info: CallInfo,
    ) -> Result<(), Refusal> {
        let me = info.members.iter().find(|m| &m.user == user);
        let Some(media) = me.filter(|m| m.status == MemberStatus::Joined && m.device.as_ref() == Some(device)) else {
            return refuse(ErrorCode::BadRequest, "a call taken up again must list this device as joined");
        };
        let media = media.media.unwrap_or_else(|| MediaState::for_kind(info.kind));
        let busy = self.device_state(user, device).and_then(|d| d.joined.clone());
        if busy.as_ref().is_some_and(|joined| joined != &info.call) {
            return refuse(ErrorCode::NotAllowed, "this device is in another call");
        }
        let joined = Status::Joined { device: device.clone(), media };
        let call = match self.calls.entry(info.call.clone()) {
            Entry::Occupied(entry) => {
                let call = entry.into_mut();
                let claimed = |m: &Member| matches!(&m.status, Status::Joined { device: d, .. } if d == device);
                if call.member(user).is_some_and(claimed) {
                    // Claimed before: nothing changes.
                } else if call.expected.iter().any(|(u, d)| u == user && d == device) {
                    call.expected.retain(|(u, d)| !(u == user && d == device));
                    call.members.push(Member { user: user.clone(), status: joined });
                } else {
                    return refuse(ErrorCode::NotAllowed, "this device is not in that call");
                }
                call
            }
            Entry::Vacant(entry) => {
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
                entry.insert(Call {
                    id: info.call.clone(),
                    kind: info.kind,
                    group: info.group,
                    initiator: info.initiator.clone(),
                    members: vec![Member { user: user.clone(), status: joined }],
                    answered: true,
                    former: Default::default(),
                    idle_deadline: None,
                    expected,
                })
            }
        };
        let state = call.info(&self.users);
        self.set_joined(user, device, Some(info.call.clone()));
        self.send_device(user, device, ServerMessage::CallState { call: state });
        Ok(())
    }

    /// The grace for a resumed call's other devices ran out: if someone never came back, a call left
    /// with one person in it is over.
    pub(super) fn claims_timed_out(&mut self, call_id: &CallId) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        if std::mem::take(&mut call.expected).is_empty() {
            return;
        }
        if call.joined_count() < 2 {
            self.end_call(call_id, EndReason::ConnectionLost);
        }
    }
}
