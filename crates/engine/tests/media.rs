//! Peer connections made while the call rings: engines with media on, a real server, loopback.

mod common;

use std::time::Duration;

use common::*;
use dialtone_engine::{Command, Event, MediaConfig, MediaLinkState};
use dialtone_protocol::{CallKind, EndReason, MediaState};

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
        if let Event::MediaLink { peer, state: MediaLinkState::Connected, .. } = alice
            .expect("a connection", |e| matches!(e, Event::MediaLink { state: MediaLinkState::Connected, .. }))
            .await
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

/// Waits until `count` frames from `peer` have been decoded, returning when the first one landed
/// (microseconds since the Unix epoch) and the frame numbers seen.
async fn frames_from(
    client: &Client,
    call: &dialtone_protocol::CallId,
    peer: (&str, &str),
    count: usize,
) -> (u64, Vec<u32>) {
    let wait = WAIT;
    let peer = dialtone_protocol::DeviceAddress {
        user: user(peer.0),
        device: dialtone_protocol::DeviceId::new(peer.1).unwrap(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen: Vec<std::sync::Arc<dialtone_engine::DecodedFrame>> = Vec::new();
    while seen.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: {} frames from {peer} in {wait:?}",
            client.name,
            seen.len()
        );
        if let Some(frame) = client.engine.remote_video().get(call, &peer).and_then(|slot| slot.latest())
            && seen.last().is_none_or(|last| last.index != frame.index)
        {
            seen.push(frame);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (seen[0].decoded_us, seen.iter().map(|f| f.stamp.expect("test pattern").frame).collect())
}

/// alice/laptop calls bob/phone (video); returns once bob's phone rings and both sides are connected.
async fn ringing_video_call(server: &dialtone_server::ServerHandle) -> (Client, Client, dialtone_protocol::CallId) {
    let mut alice = with_media(server, "alice", "laptop").await;
    let mut bob = with_media(server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Video, false).await;
    bob.incoming(&call).await;
    bob.expect("pre-connected", |e| link_is(e, "laptop", MediaLinkState::Connected)).await;
    alice.expect("pre-connected", |e| link_is(e, "phone", MediaLinkState::Connected)).await;
    (alice, bob, call)
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_flows_both_ways_as_soon_as_the_call_is_answered() {
    let server = server().await;
    let (alice, bob, call) = ringing_video_call(&server).await;
    assert!(
        alice
            .engine
            .remote_video()
            .get(
                &call,
                &dialtone_protocol::DeviceAddress {
                    user: user("bob"),
                    device: dialtone_protocol::DeviceId::new("phone").unwrap()
                }
            )
            .is_some_and(|slot| slot.frames_decoded() == 0),
        "no media before the answer"
    );

    let accepted_us = now_us();
    bob.send(Command::Accept { call: call.clone(), media: MediaState::for_kind(CallKind::Video) });
    let (first_at_alice, numbers) = frames_from(&alice, &call, ("bob", "phone"), 10).await;
    let accept_to_first_frame_ms = (first_at_alice - accepted_us) as f64 / 1e3;
    eprintln!("accept -> first decoded frame at the caller: {accept_to_first_frame_ms:.1} ms");
    assert!(accept_to_first_frame_ms < 1_000.0, "{accept_to_first_frame_ms} ms");
    assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "{numbers:?}");
    let (_, numbers) = frames_from(&bob, &call, ("alice", "laptop"), 10).await;
    assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "{numbers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_audio_only_sends_no_video_and_the_camera_can_come_on_later() {
    let server = server().await;
    let (mut alice, mut bob, call) = ringing_video_call(&server).await;
    bob.send(Command::Accept { call: call.clone(), media: MediaState { audio_muted: false, camera_on: false } });
    bob.expect("active", |e| matches!(e, Event::CallActive { .. })).await;
    frames_from(&bob, &call, ("alice", "laptop"), 5).await;
    let bob_phone = dialtone_protocol::DeviceAddress {
        user: user("bob"),
        device: dialtone_protocol::DeviceId::new("phone").unwrap(),
    };
    let slot = alice.engine.remote_video().get(&call, &bob_phone).expect("a connection to bob");
    assert_eq!(slot.frames_decoded(), 0, "bob's camera is off");

    bob.send(Command::SetMedia { call: call.clone(), media: MediaState { audio_muted: false, camera_on: true } });
    frames_from(&alice, &call, ("bob", "phone"), 5).await;
    alice.expect("bob's camera on", |e| matches!(e, Event::MediaChanged { media, .. } if media.camera_on)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_four_in_mesh_sees_every_other_member() {
    let server = server().await;
    let config = |name: &str| {
        let mut config = engine_config(&server.url(), name, "pc");
        // Small frames: four members encode and decode twelve streams on two cores.
        config.media = Some(MediaConfig {
            camera: dialtone_engine::CameraConfig {
                width: 256,
                height: 144,
                fps: 15,
                bitrate_kbps: 200,
                detailed: false,
            },
            ..MediaConfig::default()
        });
        config
    };
    let mut members = Vec::new();
    for name in ["alice", "bob", "carol", "dave"] {
        members.push(Client::start(config(name), name).await);
    }
    let call = members[0].call(&["bob", "carol", "dave"], CallKind::Video, true).await;
    for member in &mut members[1..] {
        member.incoming(&call).await;
        member.accept(&call, CallKind::Video).await;
    }
    for (index, member) in members.iter().enumerate() {
        for (other_index, other) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
            if index != other_index {
                let (_, numbers) = frames_from(member, &call, (other, "pc"), 5).await;
                assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "{} from {other}: {numbers:?}", member.name);
            }
        }
    }
}

async fn with_tone(server: &dialtone_server::ServerHandle, name: &str, tone_hz: f32) -> Client {
    let mut config = engine_config(&server.url(), name, "pc");
    config.media = Some(MediaConfig {
        microphone: dialtone_engine::MicrophoneConfig { tone_hz, ..Default::default() },
        ..MediaConfig::default()
    });
    Client::start(config, name).await
}

/// Waits until the audio from `peer` has lasted long enough to analyse, and returns its tone.
async fn tone_from(client: &Client, call: &dialtone_protocol::CallId, peer: &str) -> f32 {
    let peer =
        dialtone_protocol::DeviceAddress { user: user(peer), device: dialtone_protocol::DeviceId::new("pc").unwrap() };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(slot) = client.engine.remote_audio().get(call, &peer)
            && slot.frames_decoded() >= 25
            && let Some(frequency) = slot.dominant_frequency()
        {
            return frequency;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}: no audio from {peer}", client.name);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Alice (440 Hz) calls bob (660 Hz), who answers: an audio call going on.
async fn audio_call(server: &dialtone_server::ServerHandle) -> (Client, Client, dialtone_protocol::CallId) {
    let mut alice = with_tone(server, "alice", 440.0).await;
    let mut bob = with_tone(server, "bob", 660.0).await;
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Audio).await;
    (alice, bob, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_hears_the_others_tone_and_muting_stops_it() {
    let server = server().await;
    let (mut alice, bob, call) = audio_call(&server).await;
    assert_eq!(tone_from(&bob, &call, "alice").await, 440.0);
    assert_eq!(tone_from(&alice, &call, "bob").await, 660.0);
    alice
        .expect("bob speaking", |e| matches!(e, Event::ActiveSpeaker { user: Some(u), .. } if *u == user("bob")))
        .await;
    // The first figures come two seconds after the connection started; on a loaded machine fewer than 50
    // packets may have arrived by then, so wait for figures that cover at least a second of audio.
    let Event::MediaStats { rtt_ms, packets_received, packets_lost, receive_kbps, send_estimate_kbps, path, .. } =
        alice
            .expect(
                "network figures",
                |e| matches!(e, Event::MediaStats { packets_received, .. } if *packets_received > 50),
            )
            .await
    else {
        unreachable!()
    };
    assert!(rtt_ms.is_some_and(|rtt| rtt < 50.0), "{rtt_ms:?}");
    assert!(packets_received > 50 && packets_lost == 0, "{packets_received} received, {packets_lost} lost");
    assert!(receive_kbps > 10.0, "{receive_kbps}");
    assert!(send_estimate_kbps >= 80.0, "congestion control estimates the path: {send_estimate_kbps}");
    // On one machine media goes between two local addresses, never through a NAT's address or a relay;
    // the other side's may be learned from its first check before its candidate arrives (peer-reflexive).
    use dialtone_engine::CandidateKind::{Host, Prflx};
    assert!(matches!(path, Some(dialtone_engine::MediaPath { local: Host, remote: Host | Prflx })), "{path:?}");

    bob.send(Command::SetMedia { call: call.clone(), media: MediaState { audio_muted: true, camera_on: false } });
    alice.expect("bob muted", |e| matches!(e, Event::MediaChanged { media, .. } if media.audio_muted)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bob_pc =
        dialtone_protocol::DeviceAddress { user: user("bob"), device: dialtone_protocol::DeviceId::new("pc").unwrap() };
    let slot = alice.engine.remote_audio().get(&call, &bob_pc).unwrap();
    let before = slot.frames_decoded();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slot.frames_decoded(), before, "a muted microphone sends nothing");
    alice.expect("nobody speaking", |e| matches!(e, Event::ActiveSpeaker { user: None, .. })).await;
}

/// Waits until `slot` has held `hz` as its dominant frequency.
async fn until_heard(what: &str, slot: &dialtone_engine::AudioSlot, hz: Option<f32>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while slot.dominant_frequency() != hz {
        assert!(tokio::time::Instant::now() < deadline, "{what}: heard {:?}, not {hz:?}", slot.dominant_frequency());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speaker_plays_everyone_and_devices_switch_during_the_call() {
    use dialtone_engine::{DeviceChoice, DeviceKind, DevicePick};
    let server = server().await;
    let (alice, mut bob, call) = audio_call(&server).await;

    // What each speaker plays is the other's tone, through the whole chain.
    until_heard("bob's speaker", &bob.engine.played_audio(), Some(440.0)).await;
    until_heard("alice's speaker", &alice.engine.played_audio(), Some(660.0)).await;
    let Event::DeviceInUse { device, problem, .. } = bob
        .expect_ever("the speaker in use", |e| matches!(e, Event::DeviceInUse { kind: DeviceKind::Speaker, .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!((device.id.as_str(), problem), ("fake:null", None));

    // Bob switches his microphone to one that does not exist: he is told why, and alice hears silence
    // (never a tone that bob did not choose).
    let missing = DeviceChoice { microphone: DevicePick::Id("alsa:unplugged".into()), ..DeviceChoice::fake() };
    bob.send(Command::UseDevices(missing));
    let Event::DeviceInUse { device, problem, .. } = bob
        .expect("the stand-in microphone", |e| {
            matches!(e, Event::DeviceInUse { kind: DeviceKind::Microphone, problem: Some(_), .. })
        })
        .await
    else {
        unreachable!()
    };
    assert!(
        device.id == dialtone_engine::ABSENT_ID && problem.as_deref().is_some_and(|p| p.contains("alsa:unplugged")),
        "{device:?} {problem:?}"
    );
    until_heard("alice's speaker while bob has no microphone", &alice.engine.played_audio(), None).await;
    // Then to ALSA's null device, which captures silence: alice's speaker goes quiet, the call goes on.
    bob.send(Command::UseDevices(DeviceChoice {
        microphone: DevicePick::Id("alsa:null".into()),
        ..DeviceChoice::fake()
    }));
    bob.expect("the null microphone", |e| {
        matches!(e, Event::DeviceInUse { kind: DeviceKind::Microphone, device, problem: None } if device.id == "alsa:null")
    })
    .await;
    until_heard("alice's speaker after the switch", &alice.engine.played_audio(), None).await;
    until_heard("bob's speaker still", &bob.engine.played_audio(), Some(440.0)).await;

    // Listing shows the twins.
    bob.send(Command::ListDevices);
    let Event::Devices { devices } = bob.expect("the device list", |e| matches!(e, Event::Devices { .. })).await else {
        unreachable!()
    };
    assert_eq!(devices.microphones.last().map(|d| d.id.as_str()), Some("fake:tone"));
    alice.send(Command::Hangup { call: call.clone() });
    bob.ended(&call, EndReason::RemoteHangup).await;
}

/// A coturn TURN server on loopback that accepts credentials made with `secret` (TURN REST API), for as
/// long as this lives.
struct Coturn {
    child: std::process::Child,
    url: String,
}

impl Coturn {
    fn start(secret: &str) -> Coturn {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free port").port();
        let child = std::process::Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--realm=dialtone"])
            .arg(format!("--listening-port={port}"))
            .args(["--use-auth-secret", &format!("--static-auth-secret={secret}")])
            // Loopback peers are refused by default; here every peer is on loopback.
            .args(["--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-stdout-log"])
            .args(["--log-file=/dev/null", "--min-port=49152", "--max-port=65535"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("coturn's turnserver (Debian package coturn, in scripts/apt-packages.txt)");
        let mut coturn = Coturn { child, url: format!("turn:127.0.0.1:{port}?transport=udp") };
        coturn.wait_until_answering(port);
        coturn
    }

    /// Asks for this machine's address (a STUN binding request, which needs no credentials) until coturn
    /// answers: then its listener is up.
    fn wait_until_answering(&mut self, port: u16) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
        // Binding request, no attributes, the magic cookie, a transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"dialtone-rdy");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut answer = [0u8; 512];
        loop {
            let _ = socket.send_to(&request, ("127.0.0.1", port));
            // A binding success response (0x0101) with our transaction id.
            if let Ok(length) = socket.recv(&mut answer)
                && length >= 20
                && answer[..2] == [0x01, 0x01]
                && answer[8..20] == request[8..20]
            {
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            assert!(exited.is_none() && std::time::Instant::now() < deadline, "coturn never answered ({exited:?})");
        }
    }

    fn ice(&self, secret: &str) -> dialtone_server::IceConfig {
        dialtone_server::IceConfig {
            stun_urls: Vec::new(),
            turn: Some(dialtone_server::TurnConfig {
                urls: vec![self.url.clone()],
                secret: secret.to_owned(),
                ttl: Duration::from_secs(600),
            }),
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn relay_only(server: &dialtone_server::ServerHandle, name: &str, device: &str) -> Client {
    relay_only_with(server, name, device, |_| {}).await
}

async fn relay_only_with(
    server: &dialtone_server::ServerHandle,
    name: &str,
    device: &str,
    tweak: impl FnOnce(&mut MediaConfig),
) -> Client {
    let mut config = engine_config(&server.url(), name, device);
    let mut media = MediaConfig { relay_only: true, ..MediaConfig::default() };
    tweak(&mut media);
    config.media = Some(media);
    Client::start(config, &format!("{name}/{device}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_calls_go_through_turn_with_credentials_the_server_hands_out() {
    let coturn = Coturn::start("shared-with-coturn");
    let server = server_with(|config| config.hub.ice = coturn.ice("shared-with-coturn")).await;
    // Relay only: no host candidates at all, so connecting proves the relay and its credentials work.
    let mut alice = relay_only(&server, "alice", "laptop").await;
    let mut bob = relay_only(&server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Video, false).await;
    bob.incoming(&call).await;
    bob.expect("connected through the relay", |e| link_is(e, "laptop", MediaLinkState::Connected)).await;
    alice.expect("connected through the relay", |e| link_is(e, "phone", MediaLinkState::Connected)).await;
    bob.send(Command::Accept { call: call.clone(), media: MediaState::for_kind(CallKind::Video) });
    let (_, numbers) = frames_from(&alice, &call, ("bob", "phone"), 10).await;
    assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "{numbers:?}");
    let (_, numbers) = frames_from(&bob, &call, ("alice", "laptop"), 10).await;
    assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "{numbers:?}");

    // Credentials made with another secret are refused by the relay: no connection, and after the
    // connect limit each side is told why; trying again tries again.
    let wrong = server_with(|config| config.hub.ice = coturn.ice("not-the-shared-secret")).await;
    // Carol's limit runs out first: the side that offered (dave) makes its connection again the moment
    // it fails, and a new offer arriving first would replace carol's connection before she is told.
    let limit = |ms| move |config: &mut MediaConfig| config.connect_limit = Duration::from_millis(ms);
    let mut carol = relay_only_with(&wrong, "carol", "pc", limit(2_000)).await;
    let mut dave = relay_only_with(&wrong, "dave", "pc", limit(2_500)).await;
    let call = carol.call(&["dave"], CallKind::Audio, false).await;
    dave.incoming(&call).await;
    dave.accept(&call, CallKind::Audio).await;
    carol.expect("active", |e| matches!(e, Event::CallActive { .. })).await;
    let unreachable = |e: &Event| {
        matches!(e, Event::MediaLink { state: MediaLinkState::Failed, reason: Some(reason), .. }
            if reason.contains("relay server could not be used"))
    };
    let waited = tokio::time::Instant::now();
    dave.expect("told the relay could not be used", unreachable).await;
    assert!(
        !dave.seen.iter().any(|e| link_is(e, "pc", MediaLinkState::Connected)),
        "a connection without valid credentials"
    );
    assert!(waited.elapsed() < Duration::from_secs(5), "told within the connect limit");
    dave.send(Command::RetryMedia { call: call.clone() });
    dave.expect("connecting again", |e| link_is(e, "pc", MediaLinkState::Connecting)).await;
    carol.expect_ever("told too", unreachable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_view_pictures_wake_the_ui_through_their_own_waker() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    let server = server().await;
    let (wakes, preview_wakes) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU64::new(0)));
    let mut config = engine_config(&server.url(), "alice", "laptop");
    config.media = Some(MediaConfig::default());
    let counter = wakes.clone();
    config.waker = Some(Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    }));
    let counter = preview_wakes.clone();
    config.preview_waker = Some(Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    }));
    let alice = Client::start(config, "alice/laptop").await;
    let preview = alice.engine.local_video();
    let wakes_before = wakes.load(Ordering::Relaxed);
    alice.send(Command::Preview { on: true });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while preview.frames_decoded() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "the preview shows no pictures");
        // Read it, as a window showing it does: unread, the camera does not draw it.
        preview.latest();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A picture is counted just before its wake, so the wakes may be a moment behind the count.
    let shown = preview.frames_decoded();
    while preview_wakes.load(Ordering::Relaxed) < shown && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(preview_wakes.load(Ordering::Relaxed) >= shown, "every self-view picture wakes the preview waker");
    let event_wakes = wakes.load(Ordering::Relaxed) - wakes_before;
    assert!(event_wakes < 5, "self-view pictures do not wake the event waker ({event_wakes} wakes)");
}

async fn through_blip(blip: &Blip, name: &str, device: &str) -> Client {
    let mut config = engine_config(&blip.url(), name, device);
    config.media = Some(MediaConfig::default());
    Client::start(config, &format!("{name}/{device}")).await
}

fn leaves_or_ends(event: &Event) -> bool {
    matches!(event, Event::CallEnded { .. } | Event::ParticipantLeft { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signaling_blip_keeps_the_call_and_its_media() {
    let server = server().await;
    let blip = Blip::to(server.local_addr()).await;
    let mut alice = through_blip(&blip, "alice", "laptop").await;
    let mut bob = with_media(&server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Video, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Video).await;
    frames_from(&alice, &call, ("bob", "phone"), 10).await;

    let cut_at = tokio::time::Instant::now();
    blip.cut();
    alice.expect("reconnecting", |e| matches!(e, Event::Reconnecting { .. })).await;
    // Media does not need the server: pictures keep coming both ways while signaling is cut.
    frames_from(&alice, &call, ("bob", "phone"), 20).await;
    frames_from(&bob, &call, ("alice", "laptop"), 20).await;
    tokio::time::sleep_until(cut_at + Duration::from_secs(2)).await;
    assert!(!alice.seen.iter().any(leaves_or_ends), "alice's call goes on: {:?}", alice.seen);
    blip.restore();
    let restored = tokio::time::Instant::now();
    alice.expect("signed in again", |e| matches!(e, Event::SignedIn { .. })).await;
    println!("signed in again {:?} after the path came back", restored.elapsed());
    bob.expect_none("bob was never told alice left", Duration::from_millis(300), leaves_or_ends).await;
    assert!(!alice.seen.iter().any(leaves_or_ends), "alice's call goes on: {:?}", alice.seen);

    // The call goes on through the new connection.
    frames_from(&alice, &call, ("bob", "phone"), 10).await;
    alice.send(Command::Hangup { call: call.clone() });
    bob.ended(&call, EndReason::RemoteHangup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_longer_than_the_grace_ends_the_call_on_both_sides() {
    let server = server_with(|config| config.hub.resume_grace = Duration::from_secs(1)).await;
    let blip = Blip::to(server.local_addr()).await;
    let mut alice = through_blip(&blip, "alice", "laptop").await;
    let mut bob = with_media(&server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Audio).await;
    alice.expect("active", |e| matches!(e, Event::CallActive { .. })).await;

    let cut_at = tokio::time::Instant::now();
    blip.cut();
    bob.ended(&call, EndReason::ConnectionLost).await;
    alice.ended(&call, EndReason::ConnectionLost).await;
    assert!(cut_at.elapsed() >= Duration::from_secs(1), "both waited out the grace");
    blip.restore();
    alice.expect("signed in again", |e| matches!(e, Event::SignedIn { .. })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_keeps_the_call_and_its_media() {
    let server = server().await;
    let addr = server.local_addr();
    let mut alice = with_media(&server, "alice", "laptop").await;
    let mut bob = with_media(&server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Video, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Video).await;
    frames_from(&alice, &call, ("bob", "phone"), 10).await;

    server.shutdown().await;
    alice.expect("reconnecting", |e| matches!(e, Event::Reconnecting { .. })).await;
    bob.expect("reconnecting", |e| matches!(e, Event::Reconnecting { .. })).await;
    // No server: the pictures keep coming both ways.
    frames_from(&alice, &call, ("bob", "phone"), 20).await;
    frames_from(&bob, &call, ("alice", "laptop"), 20).await;

    // The restarted server knows nothing; both take the call up again.
    let _server = server_at(addr).await;
    let resumed = |e: &Event| matches!(e, Event::CallResumed { .. });
    alice.expect("the call taken up again", resumed).await;
    bob.expect("the call taken up again", resumed).await;
    assert!(!alice.seen.iter().any(leaves_or_ends), "alice's call goes on: {:?}", alice.seen);
    assert!(!bob.seen.iter().any(leaves_or_ends), "bob's call goes on: {:?}", bob.seen);
    frames_from(&alice, &call, ("bob", "phone"), 10).await;
    alice.send(Command::Hangup { call: call.clone() });
    bob.ended(&call, EndReason::RemoteHangup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_during_a_blip_ends_the_call_here_at_once_and_there_on_return() {
    let server = server().await;
    let blip = Blip::to(server.local_addr()).await;
    let mut alice = through_blip(&blip, "alice", "laptop").await;
    let mut bob = with_media(&server, "bob", "phone").await;
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Audio).await;
    alice.expect("active", |e| matches!(e, Event::CallActive { .. })).await;

    blip.cut();
    alice.expect("reconnecting", |e| matches!(e, Event::Reconnecting { .. })).await;
    alice.send(Command::Hangup { call: call.clone() });
    alice.ended(&call, EndReason::Hangup).await;
    blip.restore();
    alice.expect("signed in again", |e| matches!(e, Event::SignedIn { .. })).await;
    // The leave reaches the server on return: bob hears a hangup, not a lost connection.
    bob.ended(&call, EndReason::RemoteHangup).await;
    alice
        .expect_none("the call joined again", std::time::Duration::from_millis(300), |e| {
            matches!(e, Event::CallActive { .. } | Event::CallResumed { .. })
        })
        .await;
}
