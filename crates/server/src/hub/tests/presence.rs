//! Presence: pushed only to watchers, only on change.

use super::*;

type PresenceStep = fn(&mut TestHub, Instant);

/// (user, display name, online, devices, in call)
type Seen = (&'static str, &'static str, bool, u32, bool);

fn presence_pushes(messages: Vec<ServerMessage>) -> Vec<(String, String, bool, u32, bool)> {
    messages
        .into_iter()
        .map(|m| match m {
            ServerMessage::PresenceChanged { entry } => {
                (entry.user.to_string(), entry.profile.display_name, entry.online, entry.devices, entry.in_call)
            }
            other => panic!("expected only presence changes, got {other:?}"),
        })
        .collect()
}

fn owned(seen: &[Seen]) -> Vec<(String, String, bool, u32, bool)> {
    seen.iter().map(|(u, n, o, d, c)| (u.to_string(), n.to_string(), *o, *d, *c)).collect()
}

#[test]
fn presence_changes_are_pushed_only_to_watchers_and_only_when_something_changed() {
    let mut h = TestHub::new();
    h.sign_in(h.t0, DAVE_PHONE, "dave/phone");
    h.sign_in(h.t0, ERIN_PHONE, "erin/phone");
    h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
    h.send(h.t0, DAVE_PHONE, ClientMessage::WatchPresence { users: Some(vec![user("bob")]) });
    h.send(h.t0, ERIN_PHONE, ClientMessage::WatchPresence { users: None });
    h.discard_all();

    // (step, what dave (watching bob) is pushed, what erin (watching everyone) is pushed besides)
    let steps: [(&str, PresenceStep, &[Seen], &[Seen]); 11] = [
        (
            "bob signs in on his phone",
            |h, t| h.sign_in(t, BOB_PHONE, "bob/phone"),
            &[("bob", "bob", true, 1, false)],
            &[],
        ),
        (
            "alice signs in",
            |h, t| h.sign_in(t, ALICE_LAPTOP, "alice/laptop"),
            &[],
            &[("alice", "alice", true, 1, false)],
        ),
        (
            "bob signs in on his laptop",
            |h, t| h.sign_in(t, BOB_LAPTOP, "bob/laptop"),
            &[("bob", "bob", true, 2, false)],
            &[],
        ),
        (
            "bob sets the name he has",
            |h, t| {
                h.send(t, BOB_PHONE, ClientMessage::SetProfile { display_name: Some("bob".into()), avatar: None });
            },
            &[],
            &[],
        ),
        (
            "bob's phone joins a call, his laptop is free",
            |h, t| {
                h.send(t, BOB_PHONE, invite("b1", &["zoe"]));
            },
            &[],
            &[],
        ),
        (
            "bob's laptop joins a call too",
            |h, t| {
                h.send(t, BOB_LAPTOP, invite("b2", &["zoe"]));
            },
            &[("bob", "bob", true, 2, true)],
            &[],
        ),
        (
            "bob renames himself",
            |h, t| {
                h.send(t, BOB_PHONE, ClientMessage::SetProfile { display_name: Some("Bobby".into()), avatar: None });
            },
            &[("bob", "Bobby", true, 2, true)],
            &[],
        ),
        (
            "bob pings",
            |h, t| {
                h.send(t, BOB_PHONE, ClientMessage::Ping { nonce: 1 });
            },
            &[],
            &[],
        ),
        ("bob's phone goes away", |h, t| h.hub.disconnect(t, BOB_PHONE), &[("bob", "Bobby", true, 1, true)], &[]),
        (
            "carol, watched only by erin, goes away",
            |h, t| h.hub.disconnect(t, CAROL_PHONE),
            &[],
            &[("carol", "carol", false, 0, false)],
        ),
        ("bob's laptop goes away", |h, t| h.hub.disconnect(t, BOB_LAPTOP), &[("bob", "Bobby", false, 0, false)], &[]),
    ];
    for (i, (step, act, dave_sees, erin_also_sees)) in steps.into_iter().enumerate() {
        let now = h.at(secs(i as u64 + 1));
        act(&mut h, now);
        h.pump();
        // What was sent to the devices acting in the step is not presence; drop it.
        for conn in [ALICE_LAPTOP, BOB_PHONE, BOB_LAPTOP] {
            h.inbox.remove(&conn);
        }
        assert_eq!(presence_pushes(h.take(DAVE_PHONE)), owned(dave_sees), "dave: {step}");
        let mut erin_sees = owned(dave_sees);
        erin_sees.extend(owned(erin_also_sees));
        erin_sees.sort();
        let mut erin_got = presence_pushes(h.take(ERIN_PHONE));
        erin_got.sort();
        assert_eq!(erin_got, erin_sees, "erin: {step}");
        assert_eq!(h.take(CAROL_PHONE), vec![], "carol watches nobody: {step}");
        h.assert_silent(step);
    }
}
