//! Presence: who is online, on how many devices, and whether in a call, pushed to the connections
//! that watch (everyone, or a list of users) only when it changes.

use dialtone_protocol::{CallId, DeviceId, PresenceEntry, ServerMessage, UserId};

use super::state::profile_of;
use super::{ConnId, Hub};

impl Hub {
    fn presence_of(&self, user: &UserId) -> Option<PresenceEntry> {
        Some(self.users.get(user)?.presence(user))
    }

    /// Pushes `user`'s presence to its watchers, if it changed since the last push.
    pub(super) fn publish_presence(&mut self, user: &UserId) {
        if self.presence_paused {
            return;
        }
        let Some(state) = self.users.get_mut(user) else { return };
        let entry = state.presence(user);
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

    /// Records the call a device is joined to (or none); being in a call shows in presence.
    pub(super) fn set_joined(&mut self, user: &UserId, device: &DeviceId, call: Option<CallId>) {
        if let Some(state) = self.users.get_mut(user).and_then(|u| u.devices.get_mut(device)) {
            state.joined = call;
        }
        self.publish_presence(user);
    }

    /// Watches everyone (`None`) or the users listed, instead of what `conn` watched before; the current
    /// presence of each comes at once.
    pub(super) fn watch(&mut self, conn: ConnId, users: Option<Vec<UserId>>) {
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
                            profile: profile_of(&self.users, u),
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

    pub(super) fn unwatch(&mut self, conn: ConnId) {
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
}
