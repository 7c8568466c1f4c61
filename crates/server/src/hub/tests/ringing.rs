//! Ringing: the ring timeout, every device of an invitee, busy, glare, missed calls, who may answer,
//! decline or cancel.

use super::*;

// ----- timeouts -----

#[test]
fn ring_timeout_fires_exactly_at_the_deadline() {
    let config = HubConfig::default();
    let cases = [
        ("server default", None, config.ring_timeout),
        ("shorter timeout asked for", Some(5_000), secs(5)),
        ("longer than the maximum", Some(10 * 60 * 1000), config.max_ring_timeout),
    ];
    for (case, ring_timeout_ms, expected) in cases {
        let mut h = TestHub::with_config(config.clone());
        h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
        h.sign_in(h.t0, BOB_PHONE, "bob/phone");
        let invited_at = h.at(secs(1));
        let message = ClientMessage::Invite {
            call: call_id("c1"),
            kind: CallKind::Audio,
            users: vec![user("bob")],
            group: false,
            ring_timeout_ms,
        };
        h.send(invited_at, ALICE_LAPTOP, message);
        let deadline = invited_at + expected;
        assert_eq!(h.hub.poll_timeout(), Some(deadline), "{case}");
        h.discard_all();

        h.hub.handle_timeout(deadline - ms(1));
        h.assert_silent(case);
        assert_eq!(h.hub.call_count(), 1, "{case}");
        assert_eq!(h.hub.poll_timeout(), Some(deadline), "{case}");

        h.hub.handle_timeout(deadline);
        assert_eq!(h.take(ALICE_LAPTOP), vec![ended("c1", EndReason::NoAnswer)], "{case}");
        assert_eq!(h.take(BOB_PHONE), vec![ended("c1", EndReason::NoAnswer)], "{case}");
        assert_eq!(h.hub.call_count(), 0, "{case}");
        assert_eq!(h.hub.poll_timeout(), None, "{case}");
    }
}

// ----- multiple devices -----

#[test]
fn accepting_on_one_device_stops_the_others_and_tells_the_winner_the_call_state() {
    let cases = [(BOB_LAPTOP, "laptop", BOB_PHONE), (BOB_PHONE, "phone", BOB_LAPTOP)];
    for (winner, winner_device, loser) in cases {
        let mut h = call_to_bob_on_two_devices();
        h.send(h.at(secs(2)), winner, accept("c1"));

        assert_eq!(h.take(loser), vec![ended("c1", EndReason::AnsweredOnAnotherDevice)], "{winner_device}");
        let winner_got = h.take(winner);
        let [ServerMessage::CallState { call }] = winner_got.as_slice() else {
            panic!("{winner_device}: expected only a call state, got {winner_got:?}");
        };
        let bob = call.member(&user("bob")).expect("bob is a member");
        assert_eq!((bob.status, bob.device.clone()), (MemberStatus::Joined, Some(device(winner_device))));
        let joined = ServerMessage::Joined {
            call: call_id("c1"),
            user: user("bob"),
            device: device(winner_device),
            media: MediaState::for_kind(CallKind::Audio),
        };
        assert_eq!(h.take(ALICE_LAPTOP), vec![joined], "{winner_device}");

        // The device that lost the race cannot answer any more.
        let seq = h.send(h.at(secs(3)), loser, accept("c1"));
        assert_eq!(only_error(&h.take(loser)), (ErrorCode::NotAllowed, Some(seq), Some(call_id("c1"))));
        h.assert_silent(winner_device);
    }
}

#[test]
fn declining_on_one_device_ends_the_ringing_on_the_others() {
    // (busy, group call with carol too, what alice is told)
    let cases = [
        (false, false, ended("c1", EndReason::Declined)),
        (true, false, ended("c1", EndReason::Busy)),
        (false, true, ServerMessage::Left { call: call_id("c1"), user: user("bob"), reason: EndReason::Declined }),
        (true, true, ServerMessage::Left { call: call_id("c1"), user: user("bob"), reason: EndReason::Busy }),
    ];
    for (busy, group, alice_is_told) in cases {
        let mut h = TestHub::new();
        h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
        h.sign_in(h.t0, BOB_PHONE, "bob/phone");
        h.sign_in(h.t0, BOB_LAPTOP, "bob/laptop");
        h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
        let invitees: &[&str] = if group { &["bob", "carol"] } else { &["bob"] };
        h.send(h.t0, ALICE_LAPTOP, invite("c1", invitees));
        h.discard_all();

        h.send(h.at(secs(2)), BOB_PHONE, decline("c1", busy));
        let own_reason = if busy { EndReason::Busy } else { EndReason::Declined };
        let case = format!("busy {busy}, group {group}");
        assert_eq!(h.take(BOB_PHONE), vec![ended("c1", own_reason)], "{case}");
        assert_eq!(h.take(BOB_LAPTOP), vec![ended("c1", EndReason::DeclinedOnAnotherDevice)], "{case}");
        assert_eq!(h.take(ALICE_LAPTOP), vec![alice_is_told], "{case}");
        assert_eq!(h.take(CAROL_PHONE), vec![], "{case}");
        assert_eq!(h.hub.call_count(), usize::from(group), "{case}");
    }
}

#[test]
fn an_invitee_is_busy_only_when_every_device_is_in_a_call() {
    // (bob's devices already in a call, which of bob's connections ring)
    let cases: [(&[ConnId], &[ConnId]); 3] =
        [(&[], &[BOB_PHONE, BOB_LAPTOP]), (&[BOB_PHONE], &[BOB_LAPTOP]), (&[BOB_PHONE, BOB_LAPTOP], &[])];
    for (in_a_call, ringing) in cases {
        let mut h = TestHub::new();
        h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
        h.sign_in(h.t0, BOB_PHONE, "bob/phone");
        h.sign_in(h.t0, BOB_LAPTOP, "bob/laptop");
        for (i, conn) in in_a_call.iter().enumerate() {
            // Calling someone who never signed in keeps the device in that call.
            h.send(h.t0, *conn, invite(&format!("other{i}"), &["zoe"]));
        }
        h.discard_all();

        h.send(h.at(secs(1)), ALICE_LAPTOP, invite("c1", &["bob"]));
        for conn in [BOB_PHONE, BOB_LAPTOP] {
            let expected: &[&str] = if ringing.contains(&conn) { &["incoming"] } else { &[] };
            assert_eq!(kinds(&h.take(conn)), expected, "busy {in_a_call:?}, conn {conn}");
        }
        let alice_got = h.take(ALICE_LAPTOP);
        assert_eq!(kind_of(&alice_got[0]), "call_state", "busy {in_a_call:?}");
        let expected_next = if ringing.is_empty() {
            ended("c1", EndReason::Busy)
        } else {
            ServerMessage::Ringing {
                call: call_id("c1"),
                user: user("bob"),
                profile: Profile { display_name: "bob".into(), avatar: None },
                devices: ringing.len() as u32,
                invited_by: user("alice"),
            }
        };
        assert_eq!(alice_got[1..], [expected_next], "busy {in_a_call:?}");
        assert_eq!(h.hub.call_count(), in_a_call.len() + usize::from(!ringing.is_empty()), "busy {in_a_call:?}");
    }
}

// ----- glare -----

#[test]
fn glare_merges_and_tells_the_second_inviter_merged_before_the_call_state() {
    let mut h = TestHub::new();
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, BOB_PHONE, "bob/phone");
    h.send(h.t0, ALICE_LAPTOP, invite("from-alice", &["bob"]));
    h.discard_all();

    h.send(h.at(ms(300)), BOB_PHONE, invite("from-bob", &["alice"]));
    let bob_got = h.take(BOB_PHONE);
    assert_eq!(kinds(&bob_got), ["merged", "call_state"]);
    let (ServerMessage::Merged { call, into }, ServerMessage::CallState { call: state }) = (&bob_got[0], &bob_got[1])
    else {
        unreachable!()
    };
    assert_eq!(call, &call_id("from-bob"));
    assert_eq!(into.call, call_id("from-alice"));
    assert_eq!(into, state, "merged into the call whose state follows");
    assert!(into.members.iter().all(|m| m.status == MemberStatus::Joined), "{into:?}");

    let alice_got = h.take(ALICE_LAPTOP);
    assert_eq!(kinds(&alice_got), ["joined"], "alice's call was answered; no second invitation");
    assert_eq!(h.hub.call_count(), 1);
}

// ----- missed calls -----

#[derive(Debug, Clone, Copy)]
enum BobWhileRinging {
    OfflineThroughout,
    OnlineThroughout,
    SignsInAndOutAgain,
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    AliceCancels,
    RingTimeout,
}

#[test]
fn missed_calls_reach_invitees_offline_the_whole_time_on_their_next_sign_in_once() {
    use BobWhileRinging::*;
    use Ending::*;
    let cases = [
        (OfflineThroughout, AliceCancels, Some(EndReason::Cancelled)),
        (OfflineThroughout, RingTimeout, Some(EndReason::NoAnswer)),
        (OnlineThroughout, AliceCancels, None),
        (OnlineThroughout, RingTimeout, None),
        (SignsInAndOutAgain, AliceCancels, None),
        (SignsInAndOutAgain, RingTimeout, None),
    ];
    for (bob, ending, expected) in cases {
        let case = format!("{bob:?}, {ending:?}");
        let mut h = TestHub::new();
        h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
        if let OnlineThroughout = bob {
            h.sign_in(h.t0, BOB_PHONE, "bob/phone");
        }
        let invited_at = h.at(secs(1));
        h.send(invited_at, ALICE_LAPTOP, invite("c1", &["bob"]));
        if let SignsInAndOutAgain = bob {
            h.sign_in(h.at(secs(2)), BOB_PHONE, "bob/phone");
            assert!(kinds(&h.take(BOB_PHONE)).contains(&"incoming"), "{case}: rings on sign-in");
            h.hub.disconnect(h.at(secs(3)), BOB_PHONE);
        }
        match ending {
            AliceCancels => {
                h.send(h.at(secs(5)), ALICE_LAPTOP, cancel("c1"));
            }
            RingTimeout => h.hub.handle_timeout(invited_at + h.config().ring_timeout),
        }
        assert_eq!(h.hub.call_count(), 0, "{case}");
        if let OnlineThroughout = bob {
            h.hub.disconnect(h.at(secs(40)), BOB_PHONE);
        }
        h.discard_all();

        h.sign_in(h.at(secs(60)), BOB_LAPTOP, "bob/laptop");
        let got = h.take(BOB_LAPTOP);
        match expected {
            Some(reason) => {
                assert_eq!(kinds(&got), ["welcome", "missed_calls"], "{case}");
                let record = MissedCall {
                    call: call_id("c1"),
                    from: user("alice"),
                    from_profile: Profile { display_name: "alice".into(), avatar: None },
                    kind: CallKind::Audio,
                    group: false,
                    at_unix_ms: EPOCH_UNIX_MS + 1_000,
                    reason,
                };
                assert_eq!(got[1], ServerMessage::MissedCalls { calls: vec![record] }, "{case}");
            }
            None => assert_eq!(kinds(&got), ["welcome"], "{case}"),
        }

        // Delivered once: neither a second device nor a later sign-in gets them again.
        h.sign_in(h.at(secs(61)), BOB_PHONE, "bob/phone");
        assert_eq!(kinds(&h.take(BOB_PHONE)), ["welcome"], "{case}: second device");
        h.hub.disconnect(h.at(secs(62)), BOB_LAPTOP);
        h.hub.disconnect(h.at(secs(62)), BOB_PHONE);
        h.sign_in(h.at(secs(70)), BOB_LAPTOP, "bob/laptop");
        assert_eq!(kinds(&h.take(BOB_LAPTOP)), ["welcome"], "{case}: signing in again");
    }
}

// ----- refusals -----

#[test]
fn only_the_initiating_device_may_cancel_and_only_before_an_answer() {
    // (bob answered first, who cancels, allowed)
    let cases = [
        (false, BOB_PHONE, false),
        (false, CAROL_PHONE, false),
        (false, ALICE_TABLET, false),
        (true, BOB_PHONE, false),
        (true, ALICE_LAPTOP, false),
        (false, ALICE_LAPTOP, true),
    ];
    for (answered, canceller, allowed) in cases {
        let case = format!("answered {answered}, conn {canceller}");
        let mut h = TestHub::new();
        h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
        h.sign_in(h.t0, ALICE_TABLET, "alice/tablet");
        h.sign_in(h.t0, BOB_PHONE, "bob/phone");
        h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
        h.send(h.t0, ALICE_LAPTOP, group_invite("g1", &["bob", "carol"]));
        if answered {
            h.send(h.at(secs(1)), BOB_PHONE, accept("g1"));
        }
        h.discard_all();

        let seq = h.send(h.at(secs(2)), canceller, cancel("g1"));
        if allowed {
            for conn in [ALICE_LAPTOP, BOB_PHONE, CAROL_PHONE] {
                assert_eq!(h.take(conn), vec![ended("g1", EndReason::Cancelled)], "{case}: conn {conn}");
            }
            assert_eq!(h.hub.call_count(), 0, "{case}");
        } else {
            assert_eq!(
                only_error(&h.take(canceller)),
                (ErrorCode::NotAllowed, Some(seq), Some(call_id("g1"))),
                "{case}"
            );
            assert_eq!(h.hub.call_count(), 1, "{case}");
        }
        h.assert_silent(&case);
    }
}

#[test]
fn accepting_a_call_not_ringing_here_is_refused_with_the_seq_echoed() {
    // (who accepts, which call, expected code)
    let cases = [
        (CAROL_PHONE, "c1", ErrorCode::NotAllowed),
        (ALICE_LAPTOP, "c1", ErrorCode::NotAllowed),
        (ALICE_TABLET, "c1", ErrorCode::NotAllowed),
        (BOB_PHONE, "no-such-call", ErrorCode::UnknownCall),
    ];
    for (conn, call, code) in cases {
        let mut h = TestHub::new();
        h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
        h.sign_in(h.t0, ALICE_TABLET, "alice/tablet");
        h.sign_in(h.t0, BOB_PHONE, "bob/phone");
        h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
        h.send(h.t0, ALICE_LAPTOP, invite("c1", &["bob"]));
        h.discard_all();

        h.hub.message(h.at(secs(1)), conn, Some(4242), accept(call));
        assert_eq!(only_error(&h.take(conn)), (code, Some(4242), Some(call_id(call))), "conn {conn}, {call}");
        h.assert_silent(&format!("conn {conn}, {call}"));
        assert_eq!(h.hub.call_count(), 1);
    }
}
