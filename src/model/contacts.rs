//! Contacts and their presence, and calls missed while away, from the engine's events.

use dialtone_engine::Event;

use super::*;

impl Model {
    /// One event about contacts (see `Model::apply`).
    pub(super) fn contacts_event(&mut self, event: Event) {
        match event {
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
            other => tracing::debug!(?other, "not a contacts event"),
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
}
