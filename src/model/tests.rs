//! Event sequences replayed with made-up instants.

use super::*;
use dialtone_protocol::{CallMember, DeviceAddress, EndReason};

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn profile(name: &str) -> Profile {
    Profile { display_name: name.into(), avatar: None }
}

fn member(name: &str, joined: bool) -> CallMember {
    CallMember {
        user: user(name),
        profile: profile(&name.to_uppercase()),
        status: if joined { MemberStatus::Joined } else { MemberStatus::Ringing },
        device: joined.then(|| DeviceId::new("desk").unwrap()),
        media: joined.then(|| MediaState::for_kind(CallKind::Video)),
    }
}

fn info(call: &str, group: bool, members: &[(&str, bool)]) -> CallInfo {
    CallInfo {
        call: CallId::new(call).unwrap(),
        kind: CallKind::Video,
        group,
        initiator: user(members[0].0),
        members: members.iter().map(|(name, joined)| member(name, *joined)).collect(),
    }
}

fn signed_in(at: Instant) -> Model {
    let mut model = Model::default();
    let event = Event::SignedIn { user: user("me"), device: DeviceId::new("desk").unwrap(), profile: profile("Me") };
    model.apply(event, at, 0);
    model
}

#[test]
fn a_call_answered_on_another_device_stops_ringing_here_and_says_so() {
    let t0 = Instant::now();
    let mut model = signed_in(t0);
    model.apply(
        Event::IncomingCall { call: info("c1", false, &[("ada", true), ("me", false)]), from: user("ada") },
        t0,
        1_000,
    );
    assert_eq!(model.incoming.len(), 1);
    let ended = Event::CallEnded {
        call: CallId::new("c1").unwrap(),
        reason: EndReason::AnsweredOnAnotherDevice,
        duration_ms: None,
    };
    model.apply(ended, t0 + Duration::from_secs(2), 3_000);
    assert!(model.incoming.is_empty());
    assert_eq!(model.notices[0].text, "Answered on another device");
    let history = model.take_history();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].outcome, history[0].direction, history[0].at_unix_ms),
        (Outcome::AnsweredElsewhere, Direction::Incoming, 1_000)
    );
    assert_eq!(history[0].peers[0].name, "ADA");
    assert_eq!(model.expire(t0 + NOTICE_FOR + Duration::from_secs(3)), None);
    assert!(model.notices.is_empty());
}

#[test]
fn an_outgoing_call_rings_becomes_active_and_ends_with_its_duration() {
    let t0 = Instant::now();
    let mut model = signed_in(t0);
    let id = CallId::new("c2").unwrap();
    model.placing(id.clone(), &[user("ada")], CallKind::Video, false, MediaState::for_kind(CallKind::Video), 5_000);
    model.apply(Event::Ringing { call: id.clone(), user: user("ada"), devices: 2 }, t0, 5_000);
    let call = model.call.as_ref().unwrap();
    assert_eq!((call.stage, call.participants.len(), call.participants[0].joined), (Stage::Ringing, 1, false));
    model.apply(
        Event::CallActive { call: info("c2", false, &[("me", true), ("ada", true)]) },
        t0 + Duration::from_secs(3),
        8_000,
    );
    let call = model.call.as_ref().unwrap();
    assert_eq!(
        (call.stage, call.participants[0].joined, call.participants[0].profile.display_name.as_str()),
        (Stage::Active, true, "ADA")
    );
    let stats = Event::MediaStats {
        call: id.clone(),
        peer: DeviceAddress { user: user("ada"), device: DeviceId::new("desk").unwrap() },
        rtt_ms: Some(20.0),
        send_kbps: 900.0,
        send_estimate_kbps: 1200.0,
        receive_kbps: 900.0,
        packets_lost: 30,
        packets_received: 270,
        video_frames: 60,
        video_frames_dropped: 0,
        video_freezes: 0,
        video_frozen_ms: 0,
        video_fps: 30.0,
        video_width: 640,
        video_height: 360,
        audio_concealed: 0,
        path: None,
    };
    model.apply(stats, t0 + Duration::from_secs(5), 10_000);
    assert_eq!(model.call.as_ref().unwrap().quality(), Some(Quality::Poor), "10 % loss is poor");
    assert_eq!(model.call.as_ref().unwrap().quality_text(), "Poor connection: 10 % of packets lost");
    model.apply(
        Event::CallEnded { call: id, reason: EndReason::RemoteHangup, duration_ms: Some(62_000) },
        t0 + Duration::from_secs(65),
        70_000,
    );
    assert!(model.call.is_none());
    assert_eq!(model.notices.last().unwrap().text, "ADA hung up");
    let history = model.take_history();
    assert_eq!(
        (history[0].outcome, history[0].duration_ms, history[0].at_unix_ms),
        (Outcome::Answered, Some(62_000), 5_000)
    );
}

#[test]
fn unanswered_outgoing_calls_are_recorded_by_why_they_ended() {
    for (reason, outcome, text) in [
        (EndReason::Busy, Outcome::Busy, "ada is busy"),
        (EndReason::Declined, Outcome::Rejected, "ada declined"),
        (EndReason::NoAnswer, Outcome::NoAnswer, "ada did not answer"),
        (EndReason::Cancelled, Outcome::Cancelled, "Call ended"),
        (EndReason::ConnectionLost, Outcome::Failed, "Call failed (connection lost)"),
    ] {
        let t0 = Instant::now();
        let mut model = signed_in(t0);
        let id = CallId::new("c3").unwrap();
        model.placing(id.clone(), &[user("ada")], CallKind::Audio, false, MediaState::default(), 0);
        model.apply(Event::CallEnded { call: id, reason, duration_ms: None }, t0, 0);
        assert_eq!(model.take_history()[0].outcome, outcome, "{reason:?}");
        assert_eq!(model.notices[0].text, text, "{reason:?}");
    }
}

#[test]
fn a_group_call_keeps_going_as_members_leave_and_names_who_left() {
    let t0 = Instant::now();
    let mut model = signed_in(t0);
    model.apply(
        Event::IncomingCall {
            call: info("g", true, &[("ada", true), ("me", false), ("bo", false)]),
            from: user("ada"),
        },
        t0,
        0,
    );
    model.answering(&CallId::new("g").unwrap(), MediaState { audio_muted: true, camera_on: false });
    let call = model.call.as_ref().unwrap();
    assert_eq!((call.stage, call.group, call.participants.len()), (Stage::Connecting, true, 2));
    assert!(call.my_media.audio_muted);
    model.apply(Event::CallActive { call: info("g", true, &[("ada", true), ("me", true), ("bo", false)]) }, t0, 0);
    let joined = Event::ParticipantJoined {
        call: CallId::new("g").unwrap(),
        user: user("bo"),
        device: DeviceId::new("phone").unwrap(),
        media: MediaState { audio_muted: true, camera_on: false },
    };
    model.apply(joined, t0, 0);
    assert_eq!(model.call.as_ref().unwrap().joined().count(), 2);
    model.apply(Event::ActiveSpeaker { call: CallId::new("g").unwrap(), user: Some(user("bo")) }, t0, 0);
    let left = Event::ParticipantLeft { call: CallId::new("g").unwrap(), user: user("bo"), reason: EndReason::Hangup };
    model.apply(left, t0, 0);
    let call = model.call.as_ref().unwrap();
    assert_eq!((call.joined().count(), call.speaker.clone()), (1, None));
    assert_eq!(model.notices[0].text, "BO left");
}

#[test]
fn presence_fills_contacts_but_never_lists_this_user() {
    let t0 = Instant::now();
    let mut model = signed_in(t0);
    let entry = |name: &str, online| dialtone_protocol::PresenceEntry {
        user: user(name),
        profile: profile(name),
        online,
        devices: 1,
        in_call: false,
    };
    model.apply(Event::Presence { users: vec![entry("me", true), entry("ada", true), entry("bo", false)] }, t0, 0);
    assert_eq!(model.contacts.keys().map(UserId::as_str).collect::<Vec<_>>(), ["ada", "bo"]);
    model.apply(Event::PresenceChanged { entry: entry("bo", true) }, t0, 0);
    assert!(model.contacts[&user("bo")].online);
    assert_eq!(model.name_of(&user("zed")), "zed");
}

#[test]
fn quality_grades() {
    assert_eq!(Quality::assess(Some(10.0), 0.0, 0, None).0, Quality::Good);
    assert_eq!(Quality::assess(Some(200.0), 0.0, 0, None).0, Quality::Fair);
    assert_eq!(Quality::assess(None, 0.05, 0, None).0, Quality::Fair);
    assert_eq!(Quality::assess(Some(500.0), 0.0, 0, None).0, Quality::Poor);
    assert_eq!(Quality::assess(Some(10.0), 0.0, 1, None).0, Quality::Fair, "a video freeze");
    assert_eq!(Quality::assess(Some(10.0), 0.0, 3, None).0, Quality::Poor, "the video keeps freezing");
    // With what the network carries, and what holds it back.
    assert_eq!(Quality::assess(Some(10.0), 0.0, 0, Some(1500.0)), (Quality::Good, None));
    assert_eq!(Quality::assess(Some(10.0), 0.0, 0, Some(0.0)), (Quality::Good, None), "not measured yet");
    assert_eq!(Quality::assess(Some(10.0), 0.0, 0, Some(200.0)), (Quality::Fair, Some(Trouble::Narrow(200.0))));
    assert_eq!(Quality::assess(Some(10.0), 0.0, 0, Some(90.0)), (Quality::Poor, Some(Trouble::Narrow(90.0))));
    assert_eq!(
        Quality::assess(Some(500.0), 0.05, 0, Some(200.0)),
        (Quality::Poor, Some(Trouble::Delay(500.0))),
        "the worst grade's trouble"
    );
    assert_eq!(Trouble::Delay(512.4).describe(), "512 ms round trip");
    assert_eq!(Trouble::Freezes(1).describe(), "the picture froze");
    assert_eq!(Trouble::Narrow(180.0).describe(), "a narrow network (180 kbit/s)");
}

#[test]
fn a_connection_made_while_ringing_counts_once_answered() {
    let t0 = Instant::now();
    let mut model = signed_in(t0);
    model.apply(
        Event::IncomingCall { call: info("c9", false, &[("ada", true), ("me", false)]), from: user("ada") },
        t0,
        0,
    );
    let peer = DeviceAddress { user: user("ada"), device: DeviceId::new("desk").unwrap() };
    model.apply(
        Event::MediaLink {
            call: CallId::new("c9").unwrap(),
            peer,
            state: MediaLinkState::Connected,
            after_ms: 12,
            reason: None,
        },
        t0,
        0,
    );
    model.answering(&CallId::new("c9").unwrap(), MediaState::default());
    assert_eq!(model.call.as_ref().unwrap().participants[0].link, Some(MediaLinkState::Connected));
}

#[test]
fn a_stand_in_device_is_told_once_per_problem_and_its_return_is_told() {
    let at = Instant::now();
    let mut model = signed_in(at);
    let usb = DeviceInfo { kind: DeviceKind::Microphone, id: "alsa:usb".into(), name: "USB mic".into(), fake: false };
    let stand_in = |problem: &str| Event::DeviceInUse {
        kind: DeviceKind::Microphone,
        device: DeviceKind::Microphone.absent(),
        problem: Some(problem.into()),
    };
    // Every preview and call start reports again; the same problem is told once.
    model.apply(stand_in("no microphone found"), at, 0);
    model.apply(stand_in("no microphone found"), at, 0);
    let texts: Vec<&str> = model.notices.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["No microphone found — the others hear silence from you"]);
    model.apply(Event::DeviceInUse { kind: DeviceKind::Microphone, device: usb.clone(), problem: None }, at, 0);
    assert_eq!(model.notices.last().map(|n| n.text.as_str()), Some("Now using USB mic"));
    assert_eq!(model.in_use.get(&DeviceKind::Microphone), Some(&(usb, None)));
    // A silent stand-in speaker says what that means.
    let speaker = Event::DeviceInUse {
        kind: DeviceKind::Speaker,
        device: DeviceKind::Speaker.fake(),
        problem: Some("no speaker found".into()),
    };
    model.apply(speaker, at, 0);
    assert_eq!(model.notices.last().map(|n| n.text.as_str()), Some("No speaker found — calls play silently"));
    // A missing camera sends no picture.
    let camera = Event::DeviceInUse {
        kind: DeviceKind::Camera,
        device: DeviceKind::Camera.absent(),
        problem: Some("no camera found".into()),
    };
    model.apply(camera, at, 0);
    assert_eq!(
        model.notices.last().map(|n| n.text.as_str()),
        Some("No camera found — the others see your picture instead of video")
    );
}

#[test]
fn a_participant_who_cannot_be_reached_says_why_until_it_is_tried_again() {
    let t0 = Instant::now();
    let mut model = signed_in(t0);
    let id = CallId::new("c3").unwrap();
    let peer = DeviceAddress { user: user("ada"), device: DeviceId::new("desk").unwrap() };
    model.placing(id.clone(), &[user("ada")], CallKind::Video, false, MediaState::for_kind(CallKind::Video), 0);
    model.apply(Event::CallActive { call: info("c3", false, &[("me", true), ("ada", true)]) }, t0, 1_000);
    let link = |state, reason: Option<&str>| Event::MediaLink {
        call: id.clone(),
        peer: peer.clone(),
        state,
        after_ms: 10_000,
        reason: reason.map(str::to_owned),
    };
    let unreachable = |model: &Model| model.call.as_ref().unwrap().participants[0].unreachable.clone();
    model.apply(link(MediaLinkState::Failed, Some("no direct path answered")), t0, 10_000);
    assert_eq!(unreachable(&model).as_deref(), Some("no direct path answered"));
    // The closing that follows keeps the reason on screen.
    model.apply(link(MediaLinkState::Closed, None), t0, 10_001);
    assert_eq!(unreachable(&model).as_deref(), Some("no direct path answered"));
    // The engine trying again by itself does not hide it; a connection does.
    model.apply(link(MediaLinkState::Connecting, None), t0, 10_002);
    assert_eq!(unreachable(&model).as_deref(), Some("no direct path answered"));
    model.apply(link(MediaLinkState::Connected, None), t0, 12_000);
    assert_eq!(unreachable(&model), None);
    // Asked to try again, it is hidden until a failure says it again.
    model.apply(link(MediaLinkState::Failed, Some("no direct path answered")), t0, 30_000);
    model.retrying();
    assert_eq!(unreachable(&model), None);
}
