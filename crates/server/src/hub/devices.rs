//! Devices signing in and going away. A device signing in again replaces its old connection; one that
//! drops while in a call keeps its place there for the resume grace, so that signing in again within it
//! carries on the call without anyone else noticing.

use std::time::Instant;

use dialtone_protocol::{DeviceId, EndReason, ErrorCode, MissedCall, PROTOCOL_VERSION, ServerMessage, UserId};

use super::state::{Conn, Device, Timer, User};
use super::{ConnId, Hub, Output};

impl Hub {
    /// A device signed in (its token already verified by the network layer).
    pub fn connect(&mut self, now: Instant, conn: ConnId, user: UserId, device: DeviceId, token_name: String) {
        // The same device signing in again replaces its old connection, and takes over its place in a
        // call (its old connection may not have been noticed as dropped yet).
        let existing = self.device_state(&user, &device);
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

        let entry = self.users.entry(user.clone()).or_insert_with(|| User::named(token_name));
        if resumed.is_none() {
            entry.devices.insert(device.clone(), Device { conn, ..Device::default() });
        }
        let profile = entry.profile.clone();
        let missed: Vec<MissedCall> = entry.missed.drain(..).collect();
        let pending: Vec<_> = entry.invited_to.iter().cloned().collect();
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
                calls: resumed.iter().filter_map(|id| self.calls.get(id)).map(|call| call.info(&self.users)).collect(),
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

    /// The grace of a device that dropped ran out: unless it came back, it is gone.
    pub(super) fn grace_timed_out(&mut self, now: Instant, user: &UserId, device: &DeviceId) {
        let away = self.device_state(user, device);
        if let Some(conn) = away.filter(|d| d.away_until.is_some_and(|until| until <= now)).map(|d| d.conn) {
            self.drop_device(now, user, device, conn);
        }
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
}
