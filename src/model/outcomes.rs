//! How a call ended, for this user: the notice that says so and the entry the history keeps.

use std::time::Instant;

use dialtone_protocol::{CallId, CallKind, EndReason};

use super::*;

impl Model {
    /// This device's part in `call` is over (or the call stopped ringing here).
    pub(super) fn ended(&mut self, call: CallId, reason: EndReason, duration_ms: Option<u64>, now: Instant) {
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
