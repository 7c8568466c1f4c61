//! The engine core by tables, with time passed in: reconnecting within the server's grace period and
//! after it, a restarted server, commands while offline, glare (merged calls), inviting more people,
//! what becomes of media link events, and the loudest speaker.

use super::*;
use crate::call::tests::{device, member, profile, user};
use dialtone_protocol::{CallKind, MediaState};
use rand::SeedableRng;

const GRACE: Duration = Duration::from_secs(20);

fn call_id(name: &str) -> CallId {
    CallId::new(name).unwrap()
}

fn peer(name: &str) -> DeviceAddress {
    DeviceAddress { user: user(name), device: device("phone") }
}

/// A group audio call `id` alice (this device: her laptop) is in, with these others joined.
fn in_call(id: &str, others: &[&str]) -> CallInfo {
    let mut members = vec![member("alice", MemberStatus::Joined)];
    members.extend(others.iter().map(|name| member(name, MemberStatus::Joined)));
    CallInfo { call: call_id(id), kind: CallKind::Audio, group: true, initiator: user("alice"), members }
}

fn welcome(calls: Vec<CallInfo>, server_started_ms: u64) -> SignedIn {
    SignedIn {
        user: user("alice"),
        device: device("laptop"),
        profile: profile("Alice"),
        ice_servers: Vec::new(),
        calls,
        resume_grace: GRACE,
        server_started_ms,
    }
}

/// A core on a clock that starts at `start`, and what it gave out so far.
struct Bench {
    core: Core,
    start: Instant,
}

impl Bench {
    fn new(media: bool) -> Self {
        let config = CoreConfig { request_timeout: Duration::from_secs(10), watch_presence: None, media };
        Self { core: Core::new(config, StdRng::seed_from_u64(7)), start: Instant::now() }
    }

    fn at(&self, seconds: f64) -> Instant {
        self.start + Duration::from_secs_f64(seconds)
    }

    /// Signed in at `seconds` with these calls kept; what came out is dropped.
    fn sign_in(&mut self, seconds: f64, calls: Vec<CallInfo>, server_started_ms: u64) {
        self.core.signed_in(welcome(calls, server_started_ms), self.at(seconds));
        self.outputs();
    }

    /// The events and link changes given out since last asked.
    fn outputs(&mut self) -> (Vec<Event>, Vec<LinkChange>) {
        let (mut events, mut links) = (Vec::new(), Vec::new());
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Event(event) => events.push(event),
                Output::Link(change) => links.push(change),
            }
        }
        (events, links)
    }

    /// The events given out since last asked, by name (`call_ended`, `error`, …).
    fn event_names(&mut self) -> Vec<String> {
        self.outputs().0.iter().map(name).collect()
    }

    /// The messages for the server, by name (`hangup`, `resume`, …).
    fn send_names(&mut self) -> Vec<String> {
        self.core.take_sends().iter().map(|message| tag(serde_json::to_value(message).unwrap(), "type")).collect()
    }
}

fn name(event: &Event) -> String {
    tag(serde_json::to_value(event).unwrap(), "event")
}

fn tag(value: serde_json::Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("no {field} in {value}")).to_owned()
}

#[test]
fn a_call_goes_on_through_a_lost_connection_as_long_as_the_server_keeps_its_place() {
    // (what happens after the connection drops at 100 s, the events then, the messages sent on return)
    type Step = fn(&mut Bench);
    let cases: [(&str, Step, &[&str], &[&str]); 5] = [
        ("back in 5 s, the call kept", |b| b.sign_in(105.0, vec![in_call("c1", &["bob"])], 1), &[], &[]),
        (
            "back in 5 s, the server ended the call meanwhile",
            |b| b.core.signed_in(welcome(vec![], 1), b.at(105.0)),
            &["signed_in", "call_ended"],
            &[],
        ),
        ("20 s without the server", |b| b.core.timeout(b.at(120.0)), &["call_ended"], &[]),
        ("19 s without the server", |b| b.core.timeout(b.at(119.0)), &[], &[]),
        (
            "hung up offline, back in 5 s",
            |b| {
                b.core.command(Command::Hangup { call: call_id("c1") }, b.at(102.0));
                assert_eq!(b.event_names(), ["call_ended"]);
                b.sign_in(105.0, vec![in_call("c1", &["bob"])], 1);
            },
            &[],
            &["hangup"],
        ),
    ];
    for (case, step, events, sends) in cases {
        let mut bench = Bench::new(true);
        bench.sign_in(0.0, vec![in_call("c1", &["bob"])], 1);
        assert!(bench.core.is_live(&call_id("c1")), "{case}: the call was joined again at sign-in");
        bench.send_names();
        bench.core.connection_lost(bench.at(100.0));
        assert_eq!(bench.event_names(), Vec::<String>::new(), "{case}: nothing to tell when the connection drops");
        assert_eq!(bench.core.poll_timeout(), Some(bench.at(120.0)), "{case}: the grace ends at 120 s");
        step(&mut bench);
        assert_eq!(bench.event_names(), events, "{case}");
        assert_eq!(bench.send_names(), sends, "{case}");
    }
}

#[test]
fn a_call_kept_through_a_blip_is_resumed_with_who_left_meanwhile() {
    let mut bench = Bench::new(true);
    bench.sign_in(0.0, vec![in_call("c1", &["bob", "carol"])], 1);
    bench.core.connection_lost(bench.at(10.0));
    bench.core.signed_in(welcome(vec![in_call("c1", &["bob"])], 1), bench.at(12.0));
    let (events, links) = bench.outputs();
    let names: Vec<String> = events.iter().map(name).collect();
    assert_eq!(names, ["signed_in", "participant_left", "call_resumed"]);
    assert!(matches!(&events[1], Event::ParticipantLeft { user, .. } if user.as_str() == "carol"), "{events:?}");
    assert!(links.contains(&LinkChange::UseIce(Vec::new())));
    assert!(!links.contains(&LinkChange::CloseAll), "media goes on: {links:?}");
}

#[test]
fn a_restarted_server_is_offered_the_calls_in_progress_again() {
    // (the server's answer to the offer, the events then)
    let cases: [(&str, ServerMessage, &[&str]); 2] = [
        ("taken up", ServerMessage::CallState { call: in_call("c1", &["bob"]) }, &["call_resumed"]),
        (
            "refused",
            ServerMessage::Error {
                code: ErrorCode::UnknownCall,
                message: "no such call".into(),
                call: Some(call_id("c1")),
                seq: None,
            },
            &["error", "call_ended"],
        ),
    ];
    for (case, answer, events) in cases {
        let mut bench = Bench::new(true);
        bench.sign_in(0.0, vec![in_call("c1", &["bob"])], 1);
        bench.core.connection_lost(bench.at(10.0));
        bench.sign_in(11.0, vec![], 2);
        let sends = bench.core.take_sends();
        assert!(
            matches!(&sends[..], [ClientMessage::Resume { calls }] if calls.len() == 1 && calls[0].call.as_str() == "c1"),
            "{case}: {sends:?}"
        );
        assert_eq!(bench.core.server_message(answer, bench.at(11.1)), None);
        let names = bench.event_names();
        assert_eq!(&names[..events.len().min(names.len())], events, "{case}: {names:?}");
    }
}

#[test]
fn commands_while_offline_end_calls_here_and_refuse_the_rest() {
    let bob = vec![user("bob")];
    let muted = MediaState { audio_muted: true, ..MediaState::for_kind(CallKind::Audio) };
    // (command, whether a call is kept, the events it gives)
    let cases: [(Command, bool, &[&str]); 4] = [
        (Command::Hangup { call: call_id("c1") }, true, &["call_ended"]),
        (Command::SetMedia { call: call_id("c1"), media: muted }, true, &[]),
        (
            Command::Call {
                call: None,
                users: bob.clone(),
                kind: CallKind::Audio,
                group: false,
                ring_timeout: None,
                media: None,
            },
            true,
            &["error"],
        ),
        (Command::Hangup { call: call_id("c1") }, false, &["error"]),
    ];
    for (command, kept, events) in cases {
        let mut bench = Bench::new(true);
        let calls = if kept { vec![in_call("c1", &["bob"])] } else { vec![] };
        bench.sign_in(0.0, calls, 1);
        bench.core.connection_lost(bench.at(1.0));
        bench.outputs();
        let label = format!("{command:?} (call kept: {kept})");
        bench.core.command(command, bench.at(2.0));
        assert_eq!(bench.event_names(), events, "{label}");
        assert!(bench.core.take_sends().is_empty(), "{label}: nothing is sent offline");
    }
}

#[test]
fn glare_merges_this_devices_call_into_the_other_one() {
    let mut bench = Bench::new(true);
    bench.sign_in(0.0, vec![], 1);
    let place = Command::Call {
        call: Some(call_id("mine")),
        users: vec![user("bob")],
        kind: CallKind::Audio,
        group: false,
        ring_timeout: None,
        media: None,
    };
    bench.core.command(place, bench.at(1.0));
    assert_eq!(bench.send_names(), ["invite"]);
    bench.outputs();
    let theirs = in_call("theirs", &["bob"]);
    bench.core.server_message(ServerMessage::Merged { call: call_id("mine"), into: theirs }, bench.at(1.1));
    let names = bench.event_names();
    assert_eq!(names.first().map(String::as_str), Some("merged"), "{names:?}");
    assert!(names.contains(&"call_active".to_owned()), "{names:?}");
    assert!(!bench.core.is_live(&call_id("mine")));
    assert!(bench.core.is_live(&call_id("theirs")));
}

#[test]
fn calling_with_a_live_calls_id_invites_more_people_into_it() {
    let mut bench = Bench::new(true);
    bench.sign_in(0.0, vec![in_call("c1", &["bob"])], 1);
    bench.send_names();
    let more = Command::Call {
        call: Some(call_id("c1")),
        users: vec![user("carol")],
        kind: CallKind::Audio,
        group: true,
        ring_timeout: None,
        media: None,
    };
    bench.core.command(more, bench.at(1.0));
    let sends = bench.core.take_sends();
    assert!(
        matches!(&sends[..], [ClientMessage::Invite { call, users, .. }] if call.as_str() == "c1" && users == &[user("carol")]),
        "{sends:?}"
    );
    // A new id starts a new call.
    let fresh = Command::Call {
        call: None,
        users: vec![user("dave")],
        kind: CallKind::Audio,
        group: false,
        ring_timeout: None,
        media: None,
    };
    bench.core.command(fresh, bench.at(2.0));
    let sends = bench.core.take_sends();
    assert!(matches!(&sends[..], [ClientMessage::Invite { call, .. }] if call.as_str() != "c1"), "{sends:?}");
}

#[test]
fn media_link_states_are_told_unless_a_newer_connection_replaced_them() {
    // (state, what the links made of it, a ping sent, the app told)
    let cases = [
        (LinkState::Connected, LinkFate::Current, false, true),
        (LinkState::Disconnected, LinkFate::Current, true, true),
        (LinkState::Disconnected, LinkFate::Replaced, true, false),
        (LinkState::Failed, LinkFate::Retried, false, true),
        (LinkState::Failed, LinkFate::Replaced, false, false),
        (LinkState::Closed, LinkFate::Current, false, true),
    ];
    for (state, fate, ping, told) in cases {
        let mut bench = Bench::new(true);
        bench.sign_in(0.0, vec![in_call("c1", &["bob"])], 1);
        bench.send_names();
        bench.core.link_state(call_id("c1"), peer("bob"), state, Duration::from_millis(40), None, fate);
        let label = format!("{state:?} {fate:?}");
        assert_eq!(bench.send_names() == ["ping"], ping, "{label}");
        assert_eq!(bench.event_names() == ["media_link"], told, "{label}");
    }
}

#[test]
fn frame_rates_count_the_frames_since_the_last_statistics() {
    let mut bench = Bench::new(true);
    bench.sign_in(0.0, vec![in_call("c1", &["bob"])], 1);
    let stats = LinkStats {
        rtt_ms: Some(10.0),
        send_kbps: 0.0,
        receive_kbps: 0.0,
        packets_lost: 0,
        packets_received: 0,
        send_estimate_kbps: 0.0,
        path: None,
    };
    let period = dialtone_media::STATS_PERIOD.as_secs_f64();
    for (frames, fps) in [(60, 60.0 / period), (120, 60.0 / period), (120, 0.0)] {
        let received = Received { video_frames: frames, ..Received::default() };
        bench.core.link_stats(call_id("c1"), peer("bob"), stats, received);
        let events = bench.outputs().0;
        assert!(matches!(&events[..], [Event::MediaStats { video_fps, .. }] if *video_fps == fps), "{events:?}");
    }
}

#[test]
fn the_loudest_speaker_is_told_when_it_changes() {
    let mut bench = Bench::new(true);
    bench.sign_in(0.0, vec![in_call("c1", &["bob", "carol"])], 1);
    assert_eq!(bench.core.active_calls(), [call_id("c1")]);
    let rounds: [(Option<&str>, bool); 5] =
        [(None, false), (Some("bob"), true), (Some("bob"), false), (Some("carol"), true), (None, true)];
    for (loudest, told) in rounds {
        bench.core.speakers(vec![(call_id("c1"), loudest.map(user))]);
        assert_eq!(bench.event_names() == ["active_speaker"], told, "{loudest:?}");
    }
}

#[test]
fn without_media_signals_go_to_the_app_and_the_links_are_never_asked() {
    let mut bench = Bench::new(false);
    bench.sign_in(0.0, vec![in_call("c1", &["bob"])], 1);
    let from = peer("bob");
    let payload = SignalPayload::EndOfCandidates;
    bench.core.server_message(ServerMessage::Signal { call: call_id("c1"), from, payload }, bench.at(1.0));
    bench.core.connection_lost(bench.at(2.0));
    bench.core.timeout(bench.at(30.0));
    let (events, links) = bench.outputs();
    let names: Vec<String> = events.iter().map(name).collect();
    assert_eq!(names, ["signal", "call_ended"]);
    assert!(links.is_empty(), "{links:?}");
}
