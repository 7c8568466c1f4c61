//! Members of a group call leaving and joining again, and the idle timer of one left alone.

use super::*;

/// alice/laptop calls bob/phone and carol/phone into group call `g1` at t0; both answer at t0 + 1 s; the
/// ring timers (now stale) pass without effect.
fn answered_group_call_of_three() -> TestHub {
    let mut h = TestHub::new();
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, BOB_PHONE, "bob/phone");
    h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
    h.send(h.t0, ALICE_LAPTOP, group_invite("g1", &["bob", "carol"]));
    h.send(h.at(secs(1)), BOB_PHONE, accept("g1"));
    h.send(h.at(secs(1)), CAROL_PHONE, accept("g1"));
    h.discard_all();
    let past_ringing = h.t0 + h.config().ring_timeout;
    h.hub.handle_timeout(past_ringing);
    h.assert_silent("stale ring timers of answered members");
    assert_eq!(h.hub.call_count(), 1);
    h
}

#[derive(Debug, Clone, Copy)]
enum Leaving {
    HangsUp,
    Disconnects,
}

fn leave(h: &mut TestHub, now: Instant, conn: ConnId, call: &str, how: Leaving) {
    match how {
        Leaving::HangsUp => {
            h.send(now, conn, hangup(call));
        }
        Leaving::Disconnects => h.hub.disconnect(now, conn),
    }
}

#[test]
fn idle_timeout_ends_a_group_call_exactly_when_one_member_was_alone_long_enough() {
    let cases = [(Leaving::HangsUp, EndReason::Hangup), (Leaving::Disconnects, EndReason::ConnectionLost)];
    for (how, left_reason) in cases {
        let mut h = answered_group_call_of_three();
        let idle = h.config().idle_timeout;

        h.send(h.at(secs(40)), BOB_PHONE, hangup("g1"));
        assert_eq!(h.take(BOB_PHONE), vec![ended("g1", EndReason::Hangup)]);
        assert_eq!(h.hub.poll_timeout(), None, "{how:?}: two members remain, no idle timer");
        h.discard_all();

        let alone_since = h.at(secs(50));
        leave(&mut h, alone_since, CAROL_PHONE, "g1", how);
        let left = ServerMessage::Left { call: call_id("g1"), user: user("carol"), reason: left_reason };
        assert_eq!(h.take(ALICE_LAPTOP), vec![left], "{how:?}");
        let deadline = alone_since + idle;
        assert_eq!(h.hub.poll_timeout(), Some(deadline), "{how:?}");
        h.discard_all();

        h.hub.handle_timeout(deadline - ms(1));
        h.assert_silent(&format!("{how:?}: before the idle deadline"));
        assert_eq!(h.hub.call_count(), 1);

        h.hub.handle_timeout(deadline);
        assert_eq!(h.take(ALICE_LAPTOP), vec![ended("g1", EndReason::IdleTimeout)], "{how:?}");
        assert_eq!(h.hub.call_count(), 0, "{how:?}");
        assert_eq!(h.hub.poll_timeout(), None, "{how:?}");
    }
}

fn idle_timer_set(h: &TestHub, call: &str, deadline: Instant) -> bool {
    h.hub.timers.contains(&(deadline, Timer::Idle(call_id(call))))
}

#[derive(Debug, Clone, Copy)]
enum Rejoining {
    FormerMemberJoinsByCallId,
    NewInviteeAnswers,
}

#[test]
fn idle_timer_is_cancelled_when_someone_joins_again_and_restarts_when_alone_again() {
    for how in [Rejoining::FormerMemberJoinsByCallId, Rejoining::NewInviteeAnswers] {
        let mut h = answered_group_call_of_three();
        let idle = h.config().idle_timeout;
        h.sign_in(h.t0, DAVE_PHONE, "dave/phone");
        h.send(h.at(secs(40)), BOB_PHONE, hangup("g1"));
        let alone_since = h.at(secs(50));
        h.send(alone_since, CAROL_PHONE, hangup("g1"));
        let first_deadline = alone_since + idle;
        assert_eq!(h.hub.poll_timeout(), Some(first_deadline), "{how:?}");
        h.discard_all();

        let rejoined_at = alone_since + secs(60);
        let joiner = match how {
            Rejoining::FormerMemberJoinsByCallId => {
                h.send(rejoined_at, BOB_PHONE, invite("g1", &[]));
                assert_eq!(kinds(&h.take(BOB_PHONE)), ["call_state"], "{how:?}");
                BOB_PHONE
            }
            Rejoining::NewInviteeAnswers => {
                h.send(rejoined_at - secs(5), ALICE_LAPTOP, invite("g1", &["dave"]));
                assert_eq!(kinds(&h.take(DAVE_PHONE)), ["incoming"], "{how:?}");
                assert!(idle_timer_set(&h, "g1", first_deadline), "{how:?}: ringing is not company");
                h.send(rejoined_at, DAVE_PHONE, accept("g1"));
                assert_eq!(kinds(&h.take(DAVE_PHONE)), ["call_state"], "{how:?}");
                DAVE_PHONE
            }
        };
        assert_eq!(kinds(&h.take(ALICE_LAPTOP)).last(), Some(&"joined"), "{how:?}");
        assert!(!idle_timer_set(&h, "g1", first_deadline), "{how:?}: idle timer still set");

        h.hub.handle_timeout(first_deadline);
        h.assert_silent(&format!("{how:?}: at the cancelled deadline"));
        assert_eq!(h.hub.call_count(), 1, "{how:?}");

        // Alone again: a fresh idle period starts from the new departure.
        let alone_again = first_deadline + secs(10);
        h.send(alone_again, joiner, hangup("g1"));
        h.discard_all();
        h.hub.handle_timeout(alone_again + idle - ms(1));
        h.assert_silent(&format!("{how:?}: before the second idle deadline"));
        h.hub.handle_timeout(alone_again + idle);
        assert_eq!(h.take(ALICE_LAPTOP), vec![ended("g1", EndReason::IdleTimeout)], "{how:?}");
        assert_eq!(h.hub.call_count(), 0, "{how:?}");
    }
}
