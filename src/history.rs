//! Call history: one entry per call this user took part in or missed, newest first, kept in
//! `history.toml` (see [`crate::store`]).

use serde::{Deserialize, Serialize};

/// How many entries are kept; older ones are dropped.
pub const MAX_ENTRIES: usize = 500;

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Someone called this user.
    Incoming,
    /// This user called.
    Outgoing,
}

/// How a call went, from this user's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Talked (see the duration).
    Answered,
    /// Rang here and nobody answered (or the caller gave up first).
    Missed,
    /// This user declined.
    Declined,
    /// Answered on another of this user's devices.
    AnsweredElsewhere,
    /// Declined on another of this user's devices.
    DeclinedElsewhere,
    /// This user called and cancelled before an answer.
    Cancelled,
    /// This user called and the other side declined.
    Rejected,
    /// This user called and nobody answered.
    NoAnswer,
    /// This user called and the other side was busy.
    Busy,
    /// The call could not be made or was cut off before anyone answered.
    Failed,
}

impl Outcome {
    /// How the history list says it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Answered => "Answered",
            Outcome::Missed => "Missed",
            Outcome::Declined => "Declined",
            Outcome::AnsweredElsewhere => "Answered on another device",
            Outcome::DeclinedElsewhere => "Declined on another device",
            Outcome::Cancelled => "Cancelled",
            Outcome::Rejected => "Declined by them",
            Outcome::NoAnswer => "No answer",
            Outcome::Busy => "Busy",
            Outcome::Failed => "Failed",
        }
    }

    /// Whether it counts as a missed call (shown in red, counted on the tray icon).
    pub fn is_missed(self) -> bool {
        self == Outcome::Missed
    }
}

/// Someone on the other end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Their user id.
    pub user: String,
    /// Their display name at the time.
    pub name: String,
}

/// One call in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The call's id.
    pub call: String,
    /// Who placed it.
    pub direction: Direction,
    /// The others.
    pub peers: Vec<Peer>,
    /// A group call.
    pub group: bool,
    /// A video call (else audio).
    pub video: bool,
    /// When it started ringing, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// How long it was active, when it was.
    pub duration_ms: Option<u64>,
    /// How it went.
    pub outcome: Outcome,
}

/// The whole history, newest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// Newest first.
    pub entries: Vec<Entry>,
    /// Missed calls up to this time (milliseconds since the Unix epoch) were seen in the history
    /// list; the History tab counts only those after it. Absent in older files: 0.
    pub seen_until_unix_ms: u64,
}

impl History {
    /// Adds an entry at the top (replacing an entry of the same call), keeping at most [`MAX_ENTRIES`].
    pub fn record(&mut self, entry: Entry) {
        self.entries.retain(|existing| existing.call != entry.call);
        self.entries.insert(0, entry);
        self.entries.truncate(MAX_ENTRIES);
    }

    /// Missed calls not yet seen in the history list: the run of missed calls at the top (a call taken
    /// or made since says the user was there) that came after the list was last looked at.
    pub fn unseen_missed(&self) -> usize {
        self.entries.iter().take_while(|e| e.outcome.is_missed() && e.at_unix_ms > self.seen_until_unix_ms).count()
    }

    /// Notes that the list was looked at; false when nothing was unseen (nothing to save).
    pub fn mark_seen(&mut self) -> bool {
        let newest = self.entries.first().map_or(0, |e| e.at_unix_ms);
        if newest <= self.seen_until_unix_ms {
            return false;
        }
        self.seen_until_unix_ms = newest;
        true
    }

    /// Missed calls newer than `since_unix_ms` (for the tray's missed-call badge).
    pub fn missed_since(&self, since_unix_ms: u64) -> usize {
        self.entries.iter().filter(|e| e.outcome.is_missed() && e.at_unix_ms > since_unix_ms).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(call: &str, outcome: Outcome, at: u64) -> Entry {
        Entry {
            call: call.into(),
            direction: Direction::Incoming,
            peers: vec![Peer { user: "ada".into(), name: "Ada".into() }],
            group: false,
            video: true,
            at_unix_ms: at,
            duration_ms: None,
            outcome,
        }
    }

    #[test]
    fn newest_first_one_entry_per_call_and_bounded() {
        let mut history = History::default();
        history.record(entry("a", Outcome::Missed, 1));
        history.record(entry("b", Outcome::Answered, 2));
        history.record(entry("a", Outcome::Declined, 3));
        let calls: Vec<_> = history.entries.iter().map(|e| (e.call.as_str(), e.outcome)).collect();
        assert_eq!(calls, [("a", Outcome::Declined), ("b", Outcome::Answered)]);
        for n in 0..MAX_ENTRIES + 10 {
            history.record(entry(&n.to_string(), Outcome::Missed, 10 + n as u64));
        }
        assert_eq!(history.entries.len(), MAX_ENTRIES);
        assert_eq!(history.missed_since(MAX_ENTRIES as u64), 10 + 9);
    }

    #[test]
    fn missed_calls_count_until_the_list_is_seen_and_new_ones_count_again() {
        let mut history = History::default();
        history.record(entry("old", Outcome::Missed, 1));
        history.record(entry("talked", Outcome::Answered, 2));
        history.record(entry("m1", Outcome::Missed, 3));
        history.record(entry("m2", Outcome::Missed, 4));
        // Only the run at the top: the answered call says the user was there after the old one.
        assert_eq!(history.unseen_missed(), 2);
        assert!(history.mark_seen());
        assert_eq!(history.unseen_missed(), 0);
        assert!(!history.mark_seen(), "nothing new to note");
        history.record(entry("m3", Outcome::Missed, 5));
        assert_eq!(history.unseen_missed(), 1);
    }

    #[test]
    fn a_file_from_before_the_seen_marker_still_loads() {
        let mut history = History::default();
        history.record(entry("a", Outcome::Missed, 5));
        let text = toml::to_string(&history).unwrap().replace("seen_until_unix_ms = 0\n", "");
        assert!(!text.contains("seen_until"), "{text}");
        let loaded = toml::from_str::<History>(&text).unwrap();
        assert_eq!((loaded.unseen_missed(), loaded.entries.len()), (1, 1));
    }

    #[test]
    fn it_round_trips_through_toml() {
        let mut history = History::default();
        history.record(entry("a", Outcome::AnsweredElsewhere, 5));
        history.seen_until_unix_ms = 5;
        let text = toml::to_string(&history).unwrap();
        assert_eq!(toml::from_str::<History>(&text).unwrap(), history);
    }
}
