//! A restarted server takes calls up again, only on their own devices' claims.

use super::*;

/// The call c1 as alice's and bob's devices knew it before the server restarted.
fn call_before_restart() -> CallInfo {
    let mut info = info_of(&["alice/laptop", "bob/phone"]);
    info.members.push(CallMember {
        user: user("carol"),
        profile: Profile { display_name: "carol".into(), avatar: None },
        status: MemberStatus::Ringing,
        device: None,
        media: None,
    });
    info
}

fn info_of(joined: &[&str]) -> CallInfo {
    CallInfo {
        call: call_id("c1"),
        kind: CallKind::Video,
        group: false,
        initiator: user("alice"),
        members: joined
            .iter()
            .map(|who| {
                let DeviceAddress { user, device } = addr(who);
                CallMember {
                    profile: Profile { display_name: user.to_string(), avatar: None },
                    user,
                    status: MemberStatus::Joined,
                    device: Some(device),
                    media: Some(MediaState::for_kind(CallKind::Video)),
                }
            })
            .collect(),
    }
}

#[test]
fn a_call_is_taken_up_again_only_by_its_own_devices_claims() {
    let mut h = TestHub::with_config(HubConfig::default());
    for (conn, who) in [(ALICE_LAPTOP, "alice/laptop"), (BOB_PHONE, "bob/phone"), (DAVE_PHONE, "dave/phone")] {
        h.sign_in(h.t0, conn, who);
    }
    h.discard_all();
    // Dave cannot claim a call he was not in, nor alice claim it for a device that is not hers.
    let seq = h.send(h.at(secs(1)), DAVE_PHONE, ClientMessage::Resume { calls: vec![call_before_restart()] });
    assert_eq!(only_error(&h.take(DAVE_PHONE)), (ErrorCode::BadRequest, Some(seq), Some(call_id("c1"))));
    // Alice claims it: she is in it again, bob (joined before) is expected, carol (ringing) is not.
    h.send(h.at(secs(1)), ALICE_LAPTOP, ClientMessage::Resume { calls: vec![call_before_restart()] });
    let state = h.take(ALICE_LAPTOP);
    let [ServerMessage::CallState { call }] = state.as_slice() else { panic!("{state:?}") };
    let members: Vec<(&str, MemberStatus)> = call.members.iter().map(|m| (m.user.as_str(), m.status)).collect();
    assert_eq!(members, [("alice", MemberStatus::Joined), ("bob", MemberStatus::Joined)]);
    h.assert_silent("bob is told nothing: his own claim joins him");
    // Dave still cannot get in, even now that the call exists.
    h.send(h.at(secs(2)), DAVE_PHONE, ClientMessage::Resume { calls: vec![info_of(&["alice/laptop", "dave/phone"])] });
    assert_eq!(only_error(&h.take(DAVE_PHONE)).0, ErrorCode::NotAllowed);
    // Bob claims it: the call is whole, relays flow, and a hangup ends it for both.
    h.send(h.at(secs(3)), BOB_PHONE, ClientMessage::Resume { calls: vec![call_before_restart()] });
    assert_eq!(kinds(&h.take(BOB_PHONE)), ["call_state"]);
    h.send(h.at(secs(4)), ALICE_LAPTOP, signal("c1", "bob/phone"));
    assert_eq!(kinds(&h.take(BOB_PHONE)), ["signal"]);
    h.hub.handle_timeout(h.at(secs(60)));
    h.assert_silent("the grace's end changes nothing once everyone is back");
    h.send(h.at(secs(61)), BOB_PHONE, hangup("c1"));
    assert_eq!(h.take(ALICE_LAPTOP), vec![ended("c1", EndReason::RemoteHangup)]);
}

#[test]
fn a_call_taken_up_again_that_nobody_else_claims_ends_after_the_grace() {
    let mut h = TestHub::with_config(HubConfig::default());
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.send(h.t0, ALICE_LAPTOP, ClientMessage::Resume { calls: vec![call_before_restart()] });
    h.discard_all();
    let grace = h.config().resume_grace;
    h.hub.handle_timeout(h.t0 + grace - ms(1));
    h.assert_silent("within the grace");
    h.hub.handle_timeout(h.t0 + grace);
    assert_eq!(h.take(ALICE_LAPTOP), vec![ended("c1", EndReason::ConnectionLost)]);
    assert_eq!(h.hub.call_count(), 0);
}
