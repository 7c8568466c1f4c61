//! Devices: a second sign-in replaces the first, the welcome, and a dropped device's grace.

use super::*;

// ----- connections -----

#[test]
fn signing_in_again_with_the_same_device_replaces_the_old_connection() {
    const OLD: ConnId = 10;
    const NEW: ConnId = 11;
    let mut h = TestHub::new();
    h.sign_in(h.t0, OLD, "alice/laptop");
    h.sign_in(h.t0, BOB_PHONE, "bob/phone");
    h.discard_all();

    h.sign_in(h.at(secs(1)), NEW, "alice/laptop");
    let mut outputs = Vec::new();
    while let Some(output) = h.hub.poll_output() {
        outputs.push(output);
    }
    let [
        Output::Send(OLD, ServerMessage::Error { code: ErrorCode::Replaced, seq: None, .. }),
        Output::Close(OLD),
        Output::Send(NEW, ServerMessage::Welcome { .. }),
    ] = outputs.as_slice()
    else {
        panic!("expected replaced error and close for the old connection, then a welcome: {outputs:?}");
    };
    assert_eq!(h.hub.connection_count(), 2);

    // The network layer reports the old connection gone later; the new one stays signed in.
    h.hub.disconnect(h.at(secs(2)), OLD);
    h.assert_silent("old connection's disconnect");
    assert_eq!(h.hub.connection_count(), 2);
    h.hub.message(h.at(secs(2)), OLD, Some(1), ClientMessage::Ping { nonce: 1 });
    h.assert_silent("old connection's message");
    h.send(h.at(secs(3)), NEW, ClientMessage::Ping { nonce: 9 });
    assert_eq!(h.take(NEW), vec![ServerMessage::Pong { nonce: 9 }]);

    h.send(h.at(secs(4)), BOB_PHONE, invite("c1", &["alice"]));
    assert_eq!(kinds(&h.take(NEW)), ["incoming"]);
    let bob_got = h.take(BOB_PHONE);
    assert!(
        bob_got.iter().any(|m| matches!(m, ServerMessage::Ringing { devices: 1, .. })),
        "alice rings on one device: {bob_got:?}"
    );
    h.assert_silent("after the call to alice");
}

// ----- the welcome -----

#[test]
fn the_welcome_hands_out_stun_and_turn_with_a_credential_for_this_user_and_time() {
    let config = HubConfig {
        ice: crate::ice::IceConfig {
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            turn: Some(crate::ice::TurnConfig {
                urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
                secret: "north-wind".into(),
                ttl: secs(600),
            }),
        },
        ..HubConfig::default()
    };
    let mut h = TestHub::with_config(config);
    h.sign_in(h.at(secs(30)), 1, "ada/desk");
    let welcome = h.take(1).into_iter().next();
    let Some(ServerMessage::Welcome { ice_servers, .. }) = welcome else { panic!("no welcome: {welcome:?}") };
    assert_eq!(ice_servers.len(), 2, "{ice_servers:?}");
    assert_eq!(ice_servers[0].urls, vec!["stun:127.0.0.1:3478".to_owned()]);
    assert!(ice_servers[0].username.is_empty() && ice_servers[0].credential.is_empty());
    // Expires ten minutes after the sign-in, by the hub's clock.
    let expiry = EPOCH_UNIX_MS / 1000 + 30 + 600;
    assert_eq!(ice_servers[1].username, format!("{expiry}:ada"));
    assert_eq!(ice_servers[1].credential, crate::ice::turn_password("north-wind", &ice_servers[1].username));
}

// ----- a device that drops and comes back -----

const BOB_AGAIN: ConnId = 20;

/// Alice calls bob, bob answers on his phone; the hub keeps a dropped device's place for 20 s.
fn answered_call_with_grace() -> TestHub {
    let mut h = TestHub::with_config(HubConfig::default());
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, BOB_PHONE, "bob/phone");
    h.send(h.t0, ALICE_LAPTOP, invite("c1", &["bob"]));
    h.send(h.at(secs(1)), BOB_PHONE, accept("c1"));
    h.discard_all();
    h
}

/// The calls a welcome says the device is still in.
fn welcomed_into(messages: &[ServerMessage]) -> Vec<CallId> {
    match messages.first() {
        Some(ServerMessage::Welcome { calls, resume_grace_ms: 20_000, .. }) => {
            calls.iter().map(|c| c.call.clone()).collect()
        }
        other => panic!("expected a welcome with the grace, got {other:?}"),
    }
}

#[test]
fn a_dropped_device_keeps_its_place_in_its_call_for_the_grace_period() {
    #[derive(Debug, Clone, Copy)]
    enum Return {
        /// Signs in again 5 s after its connection dropped.
        Within,
        /// Signs in again on a new connection before the old one was noticed as dropped.
        BeforeTheDropIsNoticed,
        /// Never comes back.
        Never,
    }
    for case in [Return::Within, Return::BeforeTheDropIsNoticed, Return::Never] {
        let mut h = answered_call_with_grace();
        let dropped = h.at(secs(10));
        let grace = h.config().resume_grace;
        if !matches!(case, Return::BeforeTheDropIsNoticed) {
            h.hub.disconnect(dropped, BOB_PHONE);
            h.assert_silent(&format!("{case:?}: nobody is told bob dropped"));
            // What happens meanwhile is not sent to the dropped connection.
            h.send(dropped + secs(1), ALICE_LAPTOP, signal("c1", "bob/phone"));
            h.discard_all();
        }
        match case {
            Return::Within | Return::BeforeTheDropIsNoticed => {
                h.sign_in(dropped + secs(5), BOB_AGAIN, "bob/phone");
                let messages = h.take(BOB_AGAIN);
                assert_eq!(welcomed_into(&messages), vec![call_id("c1")], "{case:?}");
                if matches!(case, Return::BeforeTheDropIsNoticed) {
                    let old = h.take(BOB_PHONE);
                    assert!(
                        matches!(old.as_slice(), [ServerMessage::Error { code: ErrorCode::Replaced, .. }]),
                        "{old:?}"
                    );
                    assert_eq!(std::mem::take(&mut h.closed), vec![BOB_PHONE]);
                    h.hub.disconnect(dropped + secs(6), BOB_PHONE);
                }
                h.assert_silent(&format!("{case:?}: the others see nothing of it"));
                // The grace's timer is gone: nothing happens when it would have run out.
                h.hub.handle_timeout(dropped + grace + secs(1));
                h.assert_silent(&format!("{case:?}: after the grace"));
                // The call goes on with the new connection.
                h.send(dropped + grace + secs(2), ALICE_LAPTOP, signal("c1", "bob/phone"));
                assert_eq!(kinds(&h.take(BOB_AGAIN)), vec!["signal"], "{case:?}");
                h.send(dropped + grace + secs(3), ALICE_LAPTOP, hangup("c1"));
                assert_eq!(h.take(BOB_AGAIN), vec![ended("c1", EndReason::RemoteHangup)], "{case:?}");
            }
            Return::Never => {
                h.hub.handle_timeout(dropped + grace - ms(1));
                h.assert_silent("before the grace runs out");
                h.hub.handle_timeout(dropped + grace);
                assert_eq!(h.take(ALICE_LAPTOP), vec![ended("c1", EndReason::ConnectionLost)]);
                // Signing in later: the call is gone.
                h.sign_in(dropped + grace + secs(1), BOB_AGAIN, "bob/phone");
                assert_eq!(welcomed_into(&h.take(BOB_AGAIN)), Vec::<CallId>::new());
            }
        }
    }
}

#[test]
fn a_device_dropped_while_only_ringing_stops_ringing_at_once() {
    let mut h = TestHub::with_config(HubConfig::default());
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, BOB_PHONE, "bob/phone");
    h.sign_in(h.t0, BOB_LAPTOP, "bob/laptop");
    h.send(h.t0, ALICE_LAPTOP, invite("c1", &["bob"]));
    h.discard_all();
    h.hub.disconnect(h.at(secs(1)), BOB_PHONE);
    let alice = h.take(ALICE_LAPTOP);
    assert!(
        matches!(alice.as_slice(), [ServerMessage::Ringing { devices: 1, .. }]),
        "bob rings on his laptop alone now: {alice:?}"
    );
}
