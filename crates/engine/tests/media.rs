//! Peer connections made while the call rings: engines with media on, a real server, loopback.

mod common;

use std::time::Duration;

use common::*;
use dialtone_engine::{Command, Event, MediaConfig, MediaLinkState};
use dialtone_protocol::{CallKind, EndReason};

async fn with_media(server: &dialtone_server::ServerHandle, name: &str, device: &str) -> Client {
    let mut config = engine_config(&server.url(), name, device);
    config.media = Some(MediaConfig::default());
    Client::start(config, &format!("{name}/{device}")).await
}

fn link_is(event: &Event, device: &str, wanted: MediaLinkState) -> bool {
    matches!(event, Event::MediaLink { peer, state, .. } if peer.device.as_str() == device && *state == wanted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ringing_device_connects_while_it_rings_and_the_losers_close() {
    let server = server().await;
    let mut alice = with_media(&server, "alice", "laptop").await;
    let mut phone = with_media(&server, "bob", "phone").await;
    let mut desk = with_media(&server, "bob", "desk").await;

    let call = alice.call(&["bob"], CallKind::Video, false).await;
    phone.incoming(&call).await;
    desk.incoming(&call).await;

    // Both of bob's devices connect to alice before anyone answers.
    for device in [&mut phone, &mut desk] {
        let connected = device.expect("connected to alice", |e| link_is(e, "laptop", MediaLinkState::Connected)).await;
        let Event::MediaLink { after_ms, .. } = connected else { unreachable!() };
        assert!(after_ms < 2_000, "{after_ms} ms");
    }
    let mut connected_to = std::collections::BTreeSet::new();
    while connected_to.len() < 2 {
        if let Event::MediaLink { peer, state: MediaLinkState::Connected, .. } =
            alice.expect("a connection", |e| matches!(e, Event::MediaLink { state: MediaLinkState::Connected, .. })).await
        {
            connected_to.insert(peer.device.to_string());
        }
    }
    assert!(!alice.seen.iter().any(|e| matches!(e, Event::CallActive { .. })), "connected while ringing");

    desk.accept(&call, CallKind::Video).await;
    // The device that lost closes its connection, and so does the caller's side of it.
    phone.ended(&call, EndReason::AnsweredOnAnotherDevice).await;
    phone.expect("closed", |e| link_is(e, "laptop", MediaLinkState::Closed)).await;
    alice.expect("phone's connection closed", |e| link_is(e, "phone", MediaLinkState::Closed)).await;
    alice
        .expect_none("desk's connection dropping", Duration::from_millis(300), |e| {
            matches!(e, Event::MediaLink { peer, state, .. } if peer.device.as_str() == "desk" && *state != MediaLinkState::Connected)
        })
        .await;

    alice.send(Command::Hangup { call: call.clone() });
    desk.ended(&call, EndReason::RemoteHangup).await;
    desk.expect("closed after the call", |e| link_is(e, "laptop", MediaLinkState::Closed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_who_answer_together_connect_to_each_other() {
    let server = server().await;
    let mut alice = with_media(&server, "alice", "laptop").await;
    let mut bob = with_media(&server, "bob", "phone").await;
    let mut carol = with_media(&server, "carol", "tablet").await;

    let call = alice.call(&["bob", "carol"], CallKind::Audio, true).await;
    bob.incoming(&call).await;
    carol.incoming(&call).await;
    carol.accept(&call, CallKind::Audio).await;
    bob.accept(&call, CallKind::Audio).await;

    // A full mesh: each pair has one connection, made by whoever joined later.
    bob.expect("bob-carol", |e| link_is(e, "tablet", MediaLinkState::Connected)).await;
    carol.expect("carol-bob", |e| link_is(e, "phone", MediaLinkState::Connected)).await;
    for (client, peer) in [(&mut bob, "laptop"), (&mut carol, "laptop")] {
        if !client.seen.iter().any(|e| link_is(e, peer, MediaLinkState::Connected)) {
            client.expect("to alice", |e| link_is(e, peer, MediaLinkState::Connected)).await;
        }
    }

    // Someone who leaves takes their connections with them.
    bob.send(Command::Hangup { call: call.clone() });
    carol.expect("bob's connection closed", |e| link_is(e, "phone", MediaLinkState::Closed)).await;
}
