//! End-to-end call flows: a real server on 127.0.0.1 and real engines over WebSockets.

mod common;

use std::time::Duration;

use common::*;
use dialtone_engine::{Command, Event};
use dialtone_protocol::{CallKind, DeviceAddress, DeviceId, EndReason, ErrorCode, MediaState, SignalPayload};

#[tokio::test]
async fn one_to_one_call_rings_connects_and_hangs_up() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;

    let call = alice.call(&["bob"], CallKind::Video, false).await;
    let incoming = bob.incoming(&call).await;
    let Event::IncomingCall { call: info, from } = incoming else { unreachable!() };
    assert_eq!(from, user("alice"));
    assert_eq!(info.kind, CallKind::Video);
    assert!(!info.group);
    assert_eq!(info.member(&user("alice")).unwrap().profile.display_name, "ALICE");
    alice
        .expect("ringing", |e| matches!(e, Event::Ringing { user, devices: 1, .. } if *user == common::user("bob")))
        .await;

    bob.accept(&call, CallKind::Video).await;
    alice.expect("active", |e| matches!(e, Event::CallActive { .. })).await;
    assert_eq!(alice.joined(&call, "bob").await, DeviceId::new("phone").unwrap());

    alice.send(Command::Hangup { call: call.clone() });
    alice.ended(&call, EndReason::Hangup).await;
    bob.ended(&call, EndReason::RemoteHangup).await;
    server.shutdown().await;
}

#[tokio::test]
async fn every_device_rings_and_the_first_to_answer_wins() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut phone = Client::sign_in(&server, "bob", "phone").await;
    let mut desk = Client::sign_in(&server, "bob", "desk").await;

    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    phone.incoming(&call).await;
    desk.incoming(&call).await;
    alice.expect("two devices ring", |e| matches!(e, Event::Ringing { devices: 2, .. })).await;

    desk.accept(&call, CallKind::Audio).await;
    phone.ended(&call, EndReason::AnsweredOnAnotherDevice).await;
    assert_eq!(alice.joined(&call, "bob").await, DeviceId::new("desk").unwrap());

    // The loser can no longer answer.
    phone.send(Command::Accept { call: call.clone(), media: MediaState::for_kind(CallKind::Audio) });
    phone.expect("refusal", |e| matches!(e, Event::Error { code: None, .. })).await;

    desk.send(Command::Hangup { call: call.clone() });
    alice.ended(&call, EndReason::RemoteHangup).await;
}

#[tokio::test]
async fn a_decline_on_one_device_stops_the_others_and_tells_the_caller() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut phone = Client::sign_in(&server, "bob", "phone").await;
    let mut desk = Client::sign_in(&server, "bob", "desk").await;

    let call = alice.call(&["bob"], CallKind::Video, false).await;
    phone.incoming(&call).await;
    desk.incoming(&call).await;
    phone.send(Command::Decline { call: call.clone(), busy: false });
    phone.ended(&call, EndReason::Declined).await;
    desk.ended(&call, EndReason::DeclinedOnAnotherDevice).await;
    alice.ended(&call, EndReason::Declined).await;
}

#[tokio::test]
async fn a_callee_in_another_call_is_busy() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;
    let mut carol = Client::sign_in(&server, "carol", "tablet").await;

    let first = carol.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&first).await;
    bob.accept(&first, CallKind::Audio).await;

    let second = alice.call(&["bob"], CallKind::Audio, false).await;
    alice.ended(&second, EndReason::Busy).await;
    bob.expect_none("a second ring", Duration::from_millis(200), |e| matches!(e, Event::IncomingCall { .. })).await;

    // Declining as busy says busy too.
    let mut dave = Client::sign_in(&server, "dave", "pc").await;
    let third = alice.call(&["dave"], CallKind::Audio, false).await;
    dave.incoming(&third).await;
    dave.send(Command::Decline { call: third.clone(), busy: true });
    alice.ended(&third, EndReason::Busy).await;
}

#[tokio::test]
async fn the_caller_can_cancel_before_an_answer() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;

    let call = alice.call(&["bob"], CallKind::Video, false).await;
    bob.incoming(&call).await;
    alice.send(Command::Cancel { call: call.clone() });
    alice.ended(&call, EndReason::Cancelled).await;
    bob.ended(&call, EndReason::Cancelled).await;
}

#[tokio::test]
async fn unanswered_calls_time_out_with_no_answer() {
    let server = server_with(|c| c.hub.ring_timeout = Duration::from_millis(300)).await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;

    let started = tokio::time::Instant::now();
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    bob.ended(&call, EndReason::NoAnswer).await;
    alice.ended(&call, EndReason::NoAnswer).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A per-call timeout overrides the server's.
    alice.send(Command::Call {
        call: None,
        users: vec![user("bob")],
        kind: CallKind::Audio,
        group: false,
        ring_timeout: Some(Duration::from_millis(100)),
        media: None,
    });
    let Event::OutgoingCall { call, .. } = alice.expect("outgoing", |e| matches!(e, Event::OutgoingCall { .. })).await
    else {
        unreachable!()
    };
    let started = tokio::time::Instant::now();
    alice.ended(&call, EndReason::NoAnswer).await;
    assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_group_of_four_with_decline_invite_more_leave_and_idle_timeout() {
    let server = server_with(|c| c.hub.idle_timeout = Duration::from_millis(400)).await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;
    let mut carol = Client::sign_in(&server, "carol", "tablet").await;
    let mut dave = Client::sign_in(&server, "dave", "pc").await;

    let call = alice.call(&["bob", "carol"], CallKind::Video, true).await;
    let Event::IncomingCall { call: info, .. } = bob.incoming(&call).await else { unreachable!() };
    assert!(info.group);
    assert_eq!(info.members.len(), 3);
    carol.incoming(&call).await;

    bob.accept(&call, CallKind::Video).await;
    alice.joined(&call, "bob").await;
    carol.send(Command::Decline { call: call.clone(), busy: false });
    carol.ended(&call, EndReason::Declined).await;
    alice.left(&call, "carol", EndReason::Declined).await;
    bob.left(&call, "carol", EndReason::Declined).await;

    // Any member may invite more.
    bob.send(Command::Invite { call: call.clone(), users: vec![user("dave")] });
    let Event::IncomingCall { call: info, from } = dave.incoming(&call).await else { unreachable!() };
    assert_eq!(from, user("bob"));
    assert_eq!(info.members.iter().filter(|m| m.status == dialtone_protocol::MemberStatus::Joined).count(), 2);
    alice.expect("dave rings", |e| matches!(e, Event::Ringing { user, .. } if *user == common::user("dave"))).await;
    dave.accept(&call, CallKind::Video).await;
    alice.joined(&call, "dave").await;
    bob.joined(&call, "dave").await;

    // Leaving a group call leaves the others in it.
    bob.send(Command::Hangup { call: call.clone() });
    bob.ended(&call, EndReason::Hangup).await;
    alice.left(&call, "bob", EndReason::Hangup).await;
    dave.left(&call, "bob", EndReason::Hangup).await;

    dave.send(Command::Hangup { call: call.clone() });
    alice.left(&call, "dave", EndReason::Hangup).await;
    // Alice is alone now: the idle timeout ends it.
    let alone = tokio::time::Instant::now();
    alice.ended(&call, EndReason::IdleTimeout).await;
    assert!(alone.elapsed() >= Duration::from_millis(300), "{:?}", alone.elapsed());
}

#[tokio::test]
async fn a_one_to_one_call_grows_into_a_group_call() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;
    let mut carol = Client::sign_in(&server, "carol", "tablet").await;

    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Audio).await;

    bob.send(Command::Invite { call: call.clone(), users: vec![user("carol")] });
    let Event::IncomingCall { call: info, .. } = carol.incoming(&call).await else { unreachable!() };
    assert!(info.group, "inviting a third person makes it a group call");
    carol.accept(&call, CallKind::Audio).await;
    alice.joined(&call, "carol").await;

    // The initiator leaves; the others go on.
    alice.send(Command::Hangup { call: call.clone() });
    alice.ended(&call, EndReason::Hangup).await;
    bob.left(&call, "alice", EndReason::Hangup).await;
    carol.left(&call, "alice", EndReason::Hangup).await;
    bob.expect_none("the end", Duration::from_millis(200), |e| matches!(e, Event::CallEnded { .. })).await;
}

#[tokio::test]
async fn two_people_calling_each_other_end_up_in_one_call() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;

    alice.send(Command::Call {
        call: None,
        users: vec![user("bob")],
        kind: CallKind::Video,
        group: false,
        ring_timeout: None,
        media: None,
    });
    bob.send(Command::Call {
        call: None,
        users: vec![user("alice")],
        kind: CallKind::Video,
        group: false,
        ring_timeout: None,
        media: None,
    });

    let Event::CallActive { call: on_alice } = alice.expect("active", |e| matches!(e, Event::CallActive { .. })).await
    else {
        unreachable!()
    };
    let Event::CallActive { call: on_bob } = bob.expect("active", |e| matches!(e, Event::CallActive { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(on_alice.call, on_bob.call, "both sides are in the same call");
    let merged = alice.seen.iter().chain(bob.seen.iter()).filter(|e| matches!(e, Event::Merged { .. })).count();
    assert_eq!(merged, 1, "exactly one side's call was merged into the other's");

    alice.send(Command::Hangup { call: on_alice.call.clone() });
    bob.ended(&on_bob.call, EndReason::RemoteHangup).await;
}

#[tokio::test]
async fn mute_camera_and_upgrade_to_video_reach_the_others() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;

    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Audio).await;
    alice.joined(&call, "bob").await;

    bob.send(Command::SetMedia { call: call.clone(), media: MediaState { audio_muted: true, camera_on: false } });
    alice
        .expect("bob muted", |e| {
            matches!(e, Event::MediaChanged { user, media, .. } if *user == common::user("bob") && media.audio_muted)
        })
        .await;

    alice.send(Command::SetMedia { call: call.clone(), media: MediaState { audio_muted: false, camera_on: true } });
    bob.expect(
        "upgrade",
        |e| matches!(e, Event::KindChanged { kind: CallKind::Video, by, .. } if *by == common::user("alice")),
    )
    .await;
    bob.expect("alice's camera", |e| matches!(e, Event::MediaChanged { media, .. } if media.camera_on)).await;
}

#[tokio::test]
async fn offline_invitees_get_a_missed_call_when_they_sign_in() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;

    let call = alice.call(&["carol"], CallKind::Video, false).await;
    alice.expect("carol is offline", |e| matches!(e, Event::Ringing { devices: 0, .. })).await;
    alice.send(Command::Cancel { call: call.clone() });
    alice.ended(&call, EndReason::Cancelled).await;

    let mut carol = Client::sign_in(&server, "carol", "phone").await;
    let Event::MissedCalls { calls } = carol.expect("missed calls", |e| matches!(e, Event::MissedCalls { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call, call);
    assert_eq!(calls[0].from, user("alice"));
    assert_eq!(calls[0].reason, EndReason::Cancelled);
    assert_eq!(calls[0].kind, CallKind::Video);

    // Delivered once: the server counts them delivered when it sends them, so another device signing in
    // at once hears nothing of them.
    drop(carol);
    let mut again = Client::sign_in(&server, "carol", "tablet").await;
    again
        .expect_none("missed calls twice", Duration::from_millis(200), |e| matches!(e, Event::MissedCalls { .. }))
        .await;
}

#[tokio::test]
async fn a_device_that_signs_in_while_it_rings_rings_too() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    alice.expect("offline", |e| matches!(e, Event::Ringing { devices: 0, .. })).await;

    let mut bob = Client::sign_in(&server, "bob", "phone").await;
    bob.incoming(&call).await;
    alice.expect("now ringing", |e| matches!(e, Event::Ringing { devices: 1, .. })).await;
    bob.accept(&call, CallKind::Audio).await;
    alice.joined(&call, "bob").await;
}

#[tokio::test]
async fn signals_are_relayed_only_between_members() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut phone = Client::sign_in(&server, "bob", "phone").await;
    let mut desk = Client::sign_in(&server, "bob", "desk").await;

    let call = alice.call(&["bob"], CallKind::Video, false).await;
    phone.incoming(&call).await;
    desk.incoming(&call).await;
    let alice_laptop = DeviceAddress { user: user("alice"), device: DeviceId::new("laptop").unwrap() };

    // Ringing devices may signal already: that is how media connects while it rings.
    phone.send(Command::Signal {
        call: call.clone(),
        to: alice_laptop.clone(),
        payload: SignalPayload::Offer { sdp: "v=0 phone".into() },
    });
    desk.send(Command::Signal {
        call: call.clone(),
        to: alice_laptop.clone(),
        payload: SignalPayload::Offer { sdp: "v=0 desk".into() },
    });
    // The two devices' offers may arrive in either order.
    let mut offers_from = std::collections::BTreeSet::new();
    while offers_from.len() < 2 {
        let Event::Signal { from, .. } = alice.expect("offer", |e| matches!(e, Event::Signal { .. })).await else {
            unreachable!()
        };
        offers_from.insert(from.device.to_string());
    }
    assert_eq!(offers_from, ["desk".to_owned(), "phone".to_owned()].into());

    desk.accept(&call, CallKind::Video).await;
    phone.ended(&call, EndReason::AnsweredOnAnotherDevice).await;

    // The device that lost is no longer a member: the server refuses to relay to it.
    let phone_address = DeviceAddress { user: user("bob"), device: DeviceId::new("phone").unwrap() };
    alice.send(Command::Signal { call: call.clone(), to: phone_address, payload: SignalPayload::EndOfCandidates });
    alice.expect("refused", |e| matches!(e, Event::Error { code: Some(ErrorCode::NotAllowed), .. })).await;

    // Nor can a stranger signal into the call.
    let mut eve = Client::sign_in(&server, "eve", "pc").await;
    eve.send(Command::Signal { call: call.clone(), to: alice_laptop, payload: SignalPayload::EndOfCandidates });
    eve.expect("no such call here", |e| matches!(e, Event::Error { code: None, .. })).await;

    let desk_address = DeviceAddress { user: user("bob"), device: DeviceId::new("desk").unwrap() };
    alice.send(Command::Signal {
        call: call.clone(),
        to: desk_address,
        payload: SignalPayload::Answer { sdp: "v=0 answer".into() },
    });
    desk.expect("answer", |e| matches!(e, Event::Signal { payload: SignalPayload::Answer { .. }, .. })).await;
    alice
        .expect_none(
            "relay to strangers",
            Duration::from_millis(100),
            |e| matches!(e, Event::Signal { from, .. } if from.user.as_str() == "eve"),
        )
        .await;
}

#[tokio::test]
async fn a_member_whose_connection_drops_is_gone_for_the_others_once_its_grace_runs_out() {
    let server = server_with(|config| config.hub.resume_grace = Duration::from_secs(1)).await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Video, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Video).await;
    alice.joined(&call, "bob").await;

    let killed = tokio::time::Instant::now();
    bob.engine.kill(); // the socket closes without a hangup
    alice.ended(&call, EndReason::ConnectionLost).await;
    assert!(killed.elapsed() >= Duration::from_secs(1), "bob's place is kept for the grace period");
    assert!(killed.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn presence_follows_sign_in_and_out() {
    let server = server().await;
    let mut config = engine_config(&server.url(), "alice", "laptop");
    config.watch_presence = Some(None);
    let mut alice = Client::start(config, "alice").await;
    let Event::Presence { users } = alice.expect("snapshot", |e| matches!(e, Event::Presence { .. })).await else {
        unreachable!()
    };
    assert!(users.iter().any(|p| p.user == user("alice") && p.online));

    let bob = Client::sign_in(&server, "bob", "phone").await;
    alice
        .expect("bob online", |e| {
            matches!(e, Event::PresenceChanged { entry } if entry.user == common::user("bob") && entry.online && entry.profile.display_name == "BOB")
        })
        .await;
    bob.send(Command::SetProfile { display_name: Some("Bobby Tables".into()), avatar: Some("sha256:abc".into()) });
    alice
        .expect("bob's new profile", |e| {
            matches!(e, Event::PresenceChanged { entry } if entry.profile.display_name == "Bobby Tables"
                && entry.profile.avatar.as_deref() == Some("sha256:abc"))
        })
        .await;
    bob.engine.shutdown().await;
    alice
        .expect(
            "bob offline",
            |e| matches!(e, Event::PresenceChanged { entry } if entry.user == common::user("bob") && !entry.online),
        )
        .await;
}

#[tokio::test]
async fn the_engine_reconnects_with_backoff_and_says_so() {
    let server = server().await;
    let addr = server.local_addr();
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut bob = Client::sign_in(&server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;

    server.shutdown().await;
    alice.expect("reconnecting", |e| matches!(e, Event::Reconnecting { attempt: 1, .. })).await;
    alice.expect("still reconnecting", |e| matches!(e, Event::Reconnecting { attempt: 2, .. })).await;

    // A restarted server knows no calls: the call is over once the engine hears so.
    let server = server_at(addr).await;
    alice.expect("signed in again", |e| matches!(e, Event::SignedIn { .. })).await;
    alice.ended(&call, EndReason::ConnectionLost).await;
    bob.expect("signed in again", |e| matches!(e, Event::SignedIn { .. })).await;
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_token_stops_the_engine_with_the_reason() {
    let server = server().await;
    let mut config = engine_config(&server.url(), "alice", "laptop");
    config.token = "dt1.e30.AAAA".into();
    let (_engine, mut events) = dialtone_engine::Engine::start(config);
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, events.recv()).await.expect("an event").expect("open");
        seen.push(event.clone());
        if let Event::Stopped { reason } = event {
            assert!(reason.contains("signature"), "{reason}");
            break;
        }
    }
    assert!(seen.iter().any(|e| matches!(e, Event::Error { code: Some(ErrorCode::InvalidToken), .. })), "{seen:?}");
    assert!(!seen.iter().any(|e| matches!(e, Event::Reconnecting { .. })), "a bad token is not retried: {seen:?}");
}

#[tokio::test]
async fn a_profile_picture_travels_to_whoever_sees_the_profile() {
    let server = server().await;
    let mut alice = Client::sign_in(&server, "alice", "laptop").await;
    let mut config = engine_config(&server.url(), "bob", "phone");
    config.watch_presence = Some(None);
    let mut bob = Client::start(config, "bob").await;
    bob.expect("the presence snapshot", |e| matches!(e, Event::Presence { .. })).await;

    // Not a picture: refused with a reason, nothing pushed.
    alice.send(Command::SetPicture(Some(b"GIF89a, not accepted".to_vec())));
    alice
        .expect("a clear refusal", |e| {
            matches!(e, Event::Error { code: Some(ErrorCode::BadRequest), message, .. } if message.contains("not a PNG, JPEG or WebP"))
        })
        .await;

    let mut picture = b"\x89PNG\r\n\x1a\n".to_vec();
    picture.extend((0..2_000u32).map(|i| (i % 251) as u8));
    alice.send(Command::SetPicture(Some(picture.clone())));
    let name = dialtone_protocol::picture_ref(&picture);
    bob.expect(
        "alice's new avatar",
        |e| matches!(e, Event::PresenceChanged { entry } if entry.profile.avatar.as_deref() == Some(name.as_str())),
    )
    .await;
    bob.send(Command::GetPicture { avatar: name.clone() });
    let Event::Picture { avatar, mime, data } = bob.expect("the picture", |e| matches!(e, Event::Picture { .. })).await
    else {
        unreachable!()
    };
    assert_eq!((avatar, mime.as_str(), data), (name, "image/png", picture));
}
