//! What the members of a call send each other through the hub: signals (offers, answers, candidates),
//! only between devices taking part in the call, and changes of their microphone and camera.

use dialtone_protocol::{
    CallId, CallKind, DeviceAddress, DeviceId, ErrorCode, MediaState, ServerMessage, SignalPayload, UserId,
};

use super::Hub;
use super::state::{Member, Refusal, Status, refuse, unknown_call};

impl Hub {
    /// A joined device's microphone or camera changed; turning a camera on makes an audio call a video call.
    pub(super) fn set_media(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        media: MediaState,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get_mut(call_id) else {
            return unknown_call(call_id);
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

    /// Passes a signal from one device taking part in the call (joined, or ringing for it) to another.
    pub(super) fn relay(
        &mut self,
        call_id: &CallId,
        from: DeviceAddress,
        to: DeviceAddress,
        payload: SignalPayload,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return unknown_call(call_id);
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
}
