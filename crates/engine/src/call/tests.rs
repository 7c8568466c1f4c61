//! `Call::handle` by tables: a starting phase, an input, the phase after and the effects in short.

use super::*;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const RING_LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub(crate) fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

fn this_call() -> CallId {
    CallId::new("c1").unwrap()
}

pub(crate) fn profile(name: &str) -> Profile {
    Profile { display_name: name.into(), avatar: None }
}

fn audio() -> MediaState {
    MediaState::for_kind(CallKind::Audio)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A member of `c1`; joined members are on their `laptop` (alice) or `phone` (everyone else).
pub(crate) fn member(name: &str, status: MemberStatus) -> CallMember {
    let joined = status == MemberStatus::Joined;
    let on = if name == "alice" { "laptop" } else { "phone" };
    CallMember {
        user: user(name),
        profile: profile(name),
        status,
        device: joined.then(|| device(on)),
        media: joined.then(audio),
    }
}

/// Call `c1`, an audio 1v1 call alice started, with these members.
fn info(members: &[(&str, MemberStatus)]) -> CallInfo {
    CallInfo {
        call: this_call(),
        kind: CallKind::Audio,
        group: false,
        initiator: user("alice"),
        members: members.iter().map(|(name, status)| member(name, *status)).collect(),
    }
}

fn server(message: ServerMessage) -> Input {
    Input::Server(message)
}

fn call_state(members: &[(&str, MemberStatus)]) -> Input {
    server(ServerMessage::CallState { call: info(members) })
}

fn server_ended(reason: EndReason) -> Input {
    server(ServerMessage::Ended { call: this_call(), reason })
}

fn bob_joined() -> Input {
    server(ServerMessage::Joined { call: this_call(), user: user("bob"), device: device("phone"), media: audio() })
}

fn invite_carol() -> Input {
    Input::Invite(vec![user("carol")])
}

fn mute() -> Input {
    Input::SetMedia(MediaState { audio_muted: true, camera_on: false })
}

/// How a table row's call is set up; every step happens at `t0`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    /// alice/laptop (this device) calls bob; the server has not confirmed.
    Placing,
    /// ... and the server confirmed: bob's devices ring.
    Ringing,
    /// bob (this device) is called by alice.
    Incoming,
    /// ... and answered; the server has not confirmed.
    Answering,
    /// alice's call, answered by bob.
    Active,
    /// alice's answered call, which she hung up.
    EndedHangup,
    /// alice's unanswered call, which she cancelled.
    EndedCancelled,
}

impl Start {
    const ALL: [Start; 7] = [
        Start::Placing,
        Start::Ringing,
        Start::Incoming,
        Start::Answering,
        Start::Active,
        Start::EndedHangup,
        Start::EndedCancelled,
    ];

    fn phase(self) -> Phase {
        match self {
            Start::Placing => Phase::Placing,
            Start::Ringing => Phase::Ringing,
            Start::Incoming => Phase::Incoming,
            Start::Answering => Phase::Answering,
            Start::Active => Phase::Active,
            Start::EndedHangup => Phase::Ended(EndReason::Hangup),
            Start::EndedCancelled => Phase::Ended(EndReason::Cancelled),
        }
    }

    fn build(self, t0: Instant) -> Call {
        let mut call = match self {
            Start::Placing => {
                let me = (user("alice"), device("laptop"), profile("alice"));
                let users = vec![user("bob")];
                Call::place(
                    this_call(),
                    me,
                    Invitation { users, kind: CallKind::Audio, group: false, ring_timeout: None, media: None },
                    t0,
                    REQUEST_TIMEOUT,
                )
                .0
            }
            Start::Incoming => {
                let ringing = info(&[("alice", MemberStatus::Joined), ("bob", MemberStatus::Ringing)]);
                Call::incoming(ringing, user("alice"), user("bob"), t0, RING_LIMIT, REQUEST_TIMEOUT).0
            }
            Start::Ringing => Start::Placing.build(t0),
            Start::Answering => Start::Incoming.build(t0),
            Start::Active | Start::EndedCancelled => Start::Ringing.build(t0),
            Start::EndedHangup => Start::Active.build(t0),
        };
        let next = match self {
            Start::Placing | Start::Incoming => None,
            Start::Ringing => Some(call_state(&[("alice", MemberStatus::Joined), ("bob", MemberStatus::Ringing)])),
            Start::Answering => Some(Input::Accept(audio())),
            Start::Active => Some(bob_joined()),
            Start::EndedHangup => Some(Input::Hangup),
            Start::EndedCancelled => Some(Input::Cancel),
        };
        if let Some(input) = next {
            call.handle(input, t0);
        }
        assert_eq!(call.phase(), self.phase(), "building {self:?}");
        call
    }
}

fn client_kind(message: &ClientMessage) -> String {
    match message {
        ClientMessage::Invite { .. } => "invite".into(),
        ClientMessage::Accept { .. } => "accept".into(),
        ClientMessage::Decline { busy: false, .. } => "decline".into(),
        ClientMessage::Decline { busy: true, .. } => "decline busy".into(),
        ClientMessage::Cancel { .. } => "cancel".into(),
        ClientMessage::Hangup { .. } => "hangup".into(),
        ClientMessage::SetMedia { .. } => "set_media".into(),
        other => format!("{other:?}"),
    }
}

/// The effects in short: `send <message>`, `ended <reason>`, `error` (no code: a command that did not
/// fit) or `error <Code>` (the server's), `active`, ...
fn summarize(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|effect| match effect {
            Effect::Send(message) => {
                assert_eq!(message.call(), Some(&this_call()), "{message:?}");
                format!("send {}", client_kind(message))
            }
            Effect::Emit(Event::CallEnded { call, reason, .. }) => {
                assert_eq!(call, &this_call());
                format!("ended {reason}")
            }
            Effect::Emit(Event::Error { code, call, .. }) => {
                assert_eq!(call.as_ref(), Some(&this_call()));
                match code {
                    None => "error".into(),
                    Some(code) => format!("error {code:?}"),
                }
            }
            Effect::Emit(Event::CallActive { .. }) => "active".into(),
            Effect::Emit(Event::ParticipantJoined { .. }) => "participant_joined".into(),
            Effect::Emit(other) => format!("{other:?}"),
        })
        .collect()
}

const REJECTED: &[&str] = &["error"];
const NOTHING: &[&str] = &[];

fn check(start: Start, input: Input, now: Instant, t0: Instant, phase: Phase, expected: &[&str]) -> Call {
    let mut call = start.build(t0);
    let case = format!("{start:?} + {input:?}");
    let effects = call.handle(input, now);
    assert_eq!(summarize(&effects), expected, "{case}");
    assert_eq!(call.phase(), phase, "{case}");
    call
}

// ----- local commands -----

#[test]
fn local_commands_in_every_phase() {
    use Start::*;
    let t0 = Instant::now();
    let ended = Phase::Ended;
    let cases: Vec<(Start, Input, Phase, &[&str])> = vec![
        (Placing, Input::Accept(audio()), Phase::Placing, REJECTED),
        (Placing, Input::Decline { busy: false }, Phase::Placing, REJECTED),
        (Placing, Input::Decline { busy: true }, Phase::Placing, REJECTED),
        (Placing, Input::Cancel, ended(EndReason::Cancelled), &["send cancel", "ended cancelled"]),
        (Placing, Input::Hangup, ended(EndReason::Cancelled), &["send cancel", "ended cancelled"]),
        (Placing, invite_carol(), Phase::Placing, REJECTED),
        (Placing, mute(), Phase::Placing, REJECTED),
        //
        (Ringing, Input::Accept(audio()), Phase::Ringing, REJECTED),
        (Ringing, Input::Decline { busy: false }, Phase::Ringing, REJECTED),
        (Ringing, Input::Decline { busy: true }, Phase::Ringing, REJECTED),
        (Ringing, Input::Cancel, ended(EndReason::Cancelled), &["send cancel", "ended cancelled"]),
        (Ringing, Input::Hangup, ended(EndReason::Cancelled), &["send cancel", "ended cancelled"]),
        (Ringing, invite_carol(), Phase::Ringing, &["send invite"]),
        (Ringing, mute(), Phase::Ringing, &["send set_media"]),
        //
        (Incoming, Input::Accept(audio()), Phase::Answering, &["send accept"]),
        (Incoming, Input::Decline { busy: false }, ended(EndReason::Declined), &["send decline", "ended declined"]),
        (Incoming, Input::Decline { busy: true }, ended(EndReason::Busy), &["send decline busy", "ended busy"]),
        (Incoming, Input::Cancel, Phase::Incoming, REJECTED),
        (Incoming, Input::Hangup, ended(EndReason::Declined), &["send decline", "ended declined"]),
        (Incoming, invite_carol(), Phase::Incoming, REJECTED),
        (Incoming, mute(), Phase::Incoming, REJECTED),
        //
        (Answering, Input::Accept(audio()), Phase::Answering, REJECTED),
        (Answering, Input::Decline { busy: false }, Phase::Answering, REJECTED),
        (Answering, Input::Decline { busy: true }, Phase::Answering, REJECTED),
        (Answering, Input::Cancel, Phase::Answering, REJECTED),
        (Answering, Input::Hangup, ended(EndReason::Hangup), &["send hangup", "ended hangup"]),
        (Answering, invite_carol(), Phase::Answering, REJECTED),
        (Answering, mute(), Phase::Answering, REJECTED),
        //
        (Active, Input::Accept(audio()), Phase::Active, REJECTED),
        (Active, Input::Decline { busy: false }, Phase::Active, REJECTED),
        (Active, Input::Decline { busy: true }, Phase::Active, REJECTED),
        (Active, Input::Cancel, Phase::Active, REJECTED),
        (Active, Input::Hangup, ended(EndReason::Hangup), &["send hangup", "ended hangup"]),
        (Active, invite_carol(), Phase::Active, &["send invite"]),
        (Active, mute(), Phase::Active, &["send set_media"]),
        //
        (EndedHangup, Input::Accept(audio()), ended(EndReason::Hangup), REJECTED),
        (EndedHangup, Input::Decline { busy: false }, ended(EndReason::Hangup), REJECTED),
        (EndedHangup, Input::Decline { busy: true }, ended(EndReason::Hangup), REJECTED),
        (EndedHangup, Input::Cancel, ended(EndReason::Hangup), REJECTED),
        (EndedHangup, Input::Hangup, ended(EndReason::Hangup), REJECTED),
        (EndedHangup, invite_carol(), ended(EndReason::Hangup), REJECTED),
        (EndedHangup, mute(), ended(EndReason::Hangup), REJECTED),
        //
        (EndedCancelled, Input::Accept(audio()), ended(EndReason::Cancelled), REJECTED),
        (EndedCancelled, Input::Decline { busy: false }, ended(EndReason::Cancelled), REJECTED),
        (EndedCancelled, Input::Decline { busy: true }, ended(EndReason::Cancelled), REJECTED),
        (EndedCancelled, Input::Cancel, ended(EndReason::Cancelled), REJECTED),
        (EndedCancelled, Input::Hangup, ended(EndReason::Cancelled), REJECTED),
        (EndedCancelled, invite_carol(), ended(EndReason::Cancelled), REJECTED),
        (EndedCancelled, mute(), ended(EndReason::Cancelled), REJECTED),
    ];
    assert_eq!(cases.len(), Start::ALL.len() * 7, "every phase with every command");
    for (start, input, phase, expected) in cases {
        let before = start.build(t0);
        let call = check(start, input.clone(), t0 + secs(1), t0, phase, expected);
        if expected == REJECTED {
            // A refused command changes nothing at all.
            assert_eq!(call.deadline(), before.deadline(), "{start:?} + {input:?}");
            assert_eq!(call.info(), before.info(), "{start:?} + {input:?}");
        }
    }
}

#[test]
fn commands_send_what_they_say() {
    let t0 = Instant::now();
    let video = MediaState { audio_muted: false, camera_on: true };

    let mut incoming = Start::Incoming.build(t0);
    let effects = incoming.handle(Input::Accept(MediaState { audio_muted: true, camera_on: false }), t0);
    let muted = MediaState { audio_muted: true, camera_on: false };
    assert_eq!(effects, [Effect::Send(ClientMessage::Accept { call: this_call(), media: muted })]);
    assert_eq!(incoming.deadline(), Some(t0 + REQUEST_TIMEOUT), "answering waits for the server");

    let mut active = Start::Active.build(t0);
    let effects = active.handle(invite_carol(), t0);
    let invite = ClientMessage::Invite {
        call: this_call(),
        kind: CallKind::Audio,
        users: vec![user("carol")],
        group: true,
        ring_timeout_ms: None,
    };
    assert_eq!(effects, [Effect::Send(invite)]);

    let effects = active.handle(Input::SetMedia(video), t0);
    assert_eq!(effects, [Effect::Send(ClientMessage::SetMedia { call: this_call(), media: video })]);
    assert_eq!(active.info().kind, CallKind::Video, "camera on upgrades the call");
    assert_eq!(active.info().member(&user("alice")).and_then(|m| m.media), Some(video));
}

// ----- the server and the connection -----

#[test]
fn server_ended_ends_every_phase_and_confirms_an_ended_one() {
    use Start::*;
    let t0 = Instant::now();
    let now = t0 + secs(1);
    let cases = [
        (Placing, EndReason::Busy),
        (Ringing, EndReason::NoAnswer),
        (Incoming, EndReason::Cancelled),
        (Answering, EndReason::AnsweredOnAnotherDevice),
        (Active, EndReason::RemoteHangup),
    ];
    for (start, reason) in cases {
        let call =
            check(start, server_ended(reason), now, t0, Phase::Ended(reason), &[format!("ended {reason}").as_str()]);
        assert_eq!(call.deadline(), None, "{start:?}: the server's word needs no confirmation");
        assert!(call.is_finished(now), "{start:?}");
    }
    for start in [EndedHangup, EndedCancelled] {
        let call = check(start, server_ended(EndReason::Hangup), now, t0, start.phase(), NOTHING);
        assert_eq!(call.deadline(), None, "{start:?}: confirmed");
        assert!(call.is_finished(now), "{start:?}");
    }
}

#[test]
fn connection_lost_ends_every_live_phase_without_sending() {
    let t0 = Instant::now();
    let now = t0 + secs(1);
    for start in Start::ALL {
        let (phase, expected) = if start.phase().is_over() {
            (start.phase(), NOTHING)
        } else {
            (Phase::Ended(EndReason::ConnectionLost), &["ended connection_lost"][..])
        };
        check(start, Input::ConnectionLost, now, t0, phase, expected);
    }
}

#[test]
fn ticks_give_up_exactly_at_the_deadlines() {
    use Start::*;
    let t0 = Instant::now();
    let hour = secs(3600);
    let failed = &["error", "ended failed"][..];
    // (start, tick at t0 + offset, phase after, effects, finished after)
    let cases = [
        (Placing, REQUEST_TIMEOUT - ms(1), Phase::Placing, NOTHING, false),
        (Placing, REQUEST_TIMEOUT, Phase::Ended(EndReason::Failed), failed, false),
        (Answering, REQUEST_TIMEOUT - ms(1), Phase::Answering, NOTHING, false),
        (Answering, REQUEST_TIMEOUT, Phase::Ended(EndReason::Failed), failed, false),
        (Incoming, RING_LIMIT - ms(1), Phase::Incoming, NOTHING, false),
        (Incoming, RING_LIMIT, Phase::Ended(EndReason::NoAnswer), &["ended no_answer"][..], false),
        (Ringing, hour, Phase::Ringing, NOTHING, false),
        (Active, hour, Phase::Active, NOTHING, false),
        (EndedHangup, REQUEST_TIMEOUT - ms(1), Phase::Ended(EndReason::Hangup), NOTHING, false),
        (EndedHangup, REQUEST_TIMEOUT, Phase::Ended(EndReason::Hangup), NOTHING, true),
    ];
    for (start, offset, phase, expected, finished) in cases {
        let now = t0 + offset;
        let call = check(start, Input::Tick, now, t0, phase, expected);
        assert_eq!(call.is_finished(now), finished, "{start:?} at +{offset:?}");
        if phase.is_over() && !start.phase().is_over() {
            // Given up locally: wait a request timeout for the server's word, then forget the call.
            assert_eq!(call.deadline(), Some(now + REQUEST_TIMEOUT), "{start:?}");
        }
    }
    let waiting = [
        (Placing, Some(t0 + REQUEST_TIMEOUT)),
        (Answering, Some(t0 + REQUEST_TIMEOUT)),
        (Incoming, Some(t0 + RING_LIMIT)),
        (Ringing, None),
        (Active, None),
    ];
    for (start, deadline) in waiting {
        assert_eq!(start.build(t0).deadline(), deadline, "{start:?}");
    }
}

#[test]
fn refusals_fail_a_call_only_while_it_waits_for_the_server() {
    use Start::*;
    let t0 = Instant::now();
    let now = t0 + secs(1);
    let failed = |code: &str| vec![format!("error {code}"), "ended failed".to_string()];
    // (start, refusal, phase after, effects)
    let cases = [
        (Placing, ErrorCode::BadRequest, Phase::Ended(EndReason::Failed), failed("BadRequest")),
        (Placing, ErrorCode::NotAllowed, Phase::Ended(EndReason::Failed), failed("NotAllowed")),
        (Answering, ErrorCode::NotAllowed, Phase::Ended(EndReason::Failed), failed("NotAllowed")),
        (Ringing, ErrorCode::NotAllowed, Phase::Ringing, vec!["error NotAllowed".to_string()]),
        (Incoming, ErrorCode::UnknownCall, Phase::Incoming, vec!["error UnknownCall".to_string()]),
        (Active, ErrorCode::NotAllowed, Phase::Active, vec!["error NotAllowed".to_string()]),
        (EndedHangup, ErrorCode::NotAllowed, Phase::Ended(EndReason::Hangup), vec![]),
        (EndedCancelled, ErrorCode::UnknownCall, Phase::Ended(EndReason::Cancelled), vec![]),
    ];
    for (start, code, phase, expected) in cases {
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        let call = check(start, Input::Refused(code, "no".into()), now, t0, phase, &expected);
        if phase == Phase::Ended(EndReason::Failed) {
            assert!(call.is_finished(now), "{start:?}: the server has answered already");
        }
    }
}

#[test]
fn a_cancel_that_crossed_an_answer_hangs_up_exactly_once() {
    let t0 = Instant::now();
    let refused = || Input::Refused(ErrorCode::NotAllowed, "the call was answered: hang up instead".into());

    for start in [Start::Placing, Start::Ringing] {
        let mut call = start.build(t0);
        assert_eq!(summarize(&call.handle(Input::Cancel, t0 + secs(1))), ["send cancel", "ended cancelled"]);
        assert!(!call.is_finished(t0 + secs(1)), "{start:?}: waits for the server's answer");

        let effects = call.handle(refused(), t0 + secs(2));
        assert_eq!(effects, [Effect::Send(ClientMessage::Hangup { call: this_call() })], "{start:?}");
        assert_eq!(call.phase(), Phase::Ended(EndReason::Cancelled), "{start:?}");
        assert!(call.is_finished(t0 + secs(2)), "{start:?}");

        assert_eq!(
            call.handle(refused(), t0 + secs(3)),
            Vec::<Effect>::new(),
            "{start:?}: a second refusal sends nothing"
        );
        assert_eq!(call.phase(), Phase::Ended(EndReason::Cancelled), "{start:?}");
    }

    // An incoming call the server ended as cancelled has nothing to leave.
    let mut call = Start::Incoming.build(t0);
    call.handle(server_ended(EndReason::Cancelled), t0 + secs(1));
    assert_eq!(call.handle(refused(), t0 + secs(2)), Vec::<Effect>::new());
}

// ----- duration -----

type Scenario = fn(Instant) -> Vec<Effect>;

fn duration_of_ending(effects: &[Effect]) -> Option<u64> {
    match effects {
        [.., Effect::Emit(Event::CallEnded { duration_ms, .. })] => *duration_ms,
        other => panic!("expected the effects to end with call_ended: {other:?}"),
    }
}

#[test]
fn call_ended_reports_the_duration_since_activation() {
    // (scenario, duration_ms of the final CallEnded)
    let cases: [(&str, Scenario, Option<u64>); 7] = [
        (
            "outgoing, answered at +3 s, hung up at +10 s",
            |t0| {
                let mut call = Start::Placing.build(t0);
                call.handle(
                    call_state(&[("alice", MemberStatus::Joined), ("bob", MemberStatus::Ringing)]),
                    t0 + secs(1),
                );
                call.handle(bob_joined(), t0 + secs(3));
                call.handle(Input::Hangup, t0 + secs(10))
            },
            Some(7_000),
        ),
        (
            "incoming, confirmed at +2.5 s, ended by the other side at +62.5 s",
            |t0| {
                let mut call = Start::Incoming.build(t0);
                call.handle(Input::Accept(audio()), t0 + secs(2));
                let both = [("alice", MemberStatus::Joined), ("bob", MemberStatus::Joined)];
                assert_eq!(summarize(&call.handle(call_state(&both), t0 + ms(2_500))), ["active"]);
                call.handle(server_ended(EndReason::RemoteHangup), t0 + ms(62_500))
            },
            Some(60_000),
        ),
        (
            "active, connection lost after 1.234 s",
            |t0| {
                let mut call = Start::Active.build(t0);
                call.handle(Input::ConnectionLost, t0 + ms(1_234))
            },
            Some(1_234),
        ),
        (
            "merged into a call already joined at t0, hung up at +4 s",
            |t0| {
                let both = info(&[("alice", MemberStatus::Joined), ("bob", MemberStatus::Joined)]);
                let (mut call, effects) = Call::joined(both, user("bob"), t0, REQUEST_TIMEOUT);
                assert_eq!(summarize(&effects), ["active"]);
                call.handle(Input::Hangup, t0 + secs(4))
            },
            Some(4_000),
        ),
        ("outgoing, cancelled unanswered", |t0| Start::Ringing.build(t0).handle(Input::Cancel, t0 + secs(5)), None),
        (
            "incoming, declined",
            |t0| Start::Incoming.build(t0).handle(Input::Decline { busy: false }, t0 + secs(5)),
            None,
        ),
        ("answering, never confirmed", |t0| Start::Answering.build(t0).handle(Input::Tick, t0 + REQUEST_TIMEOUT), None),
    ];
    let t0 = Instant::now();
    for (case, scenario, expected) in cases {
        assert_eq!(duration_of_ending(&scenario(t0)), expected, "{case}");
    }
}

// ----- phases -----

#[test]
fn phase_predicates_for_every_phase() {
    // (phase, is_ringing, is_joined, is_over)
    let mut cases = vec![
        (Phase::Placing, true, false, false),
        (Phase::Ringing, true, true, false),
        (Phase::Incoming, true, false, false),
        (Phase::Answering, false, false, false),
        (Phase::Active, false, true, false),
    ];
    cases.extend(EndReason::ALL.map(|reason| (Phase::Ended(reason), false, false, true)));
    for (phase, ringing, joined, over) in cases {
        assert_eq!((phase.is_ringing(), phase.is_joined(), phase.is_over()), (ringing, joined, over), "{phase:?}");
    }
}

#[test]
fn a_call_placed_muted_or_without_camera_tells_the_server_once_it_has_the_call() {
    let video = MediaState::for_kind(CallKind::Video);
    let muted = MediaState { audio_muted: true, ..video };
    let dark = MediaState { camera_on: false, ..video };
    // (what alice starts with, the server's first word on the call, what is sent then)
    fn ringing() -> Input {
        call_state(&[("alice", MemberStatus::Joined), ("bob", MemberStatus::Ringing)])
    }
    fn joined() -> Input {
        let video = MediaState::for_kind(CallKind::Video);
        server(ServerMessage::Joined { call: this_call(), user: user("bob"), device: device("phone"), media: video })
    }
    type FirstWord = fn() -> Input;
    let cases: [(Option<MediaState>, FirstWord, &[&str]); 5] = [
        (None, ringing, &[]),
        (Some(video), ringing, &[]),
        (Some(muted), ringing, &["send set_media"]),
        (Some(dark), ringing, &["send set_media"]),
        (Some(muted), joined, &["send set_media", "active", "participant_joined"]),
    ];
    for (media, first_word, expected) in cases {
        let me = (user("alice"), device("laptop"), profile("alice"));
        let invitation =
            Invitation { users: vec![user("bob")], kind: CallKind::Video, group: false, ring_timeout: None, media };
        let (mut call, effects) = Call::place(this_call(), me, invitation, Instant::now(), REQUEST_TIMEOUT);
        let announced = effects.iter().find_map(|e| match e {
            Effect::Emit(Event::OutgoingCall { media, .. }) => Some(*media),
            _ => None,
        });
        assert_eq!(announced, Some(media.unwrap_or(video)), "{media:?}: the app hears what it sends");
        let mut input = first_word();
        // The server's call state says what it assumes alice sends: what the kind sends.
        if let Input::Server(ServerMessage::CallState { call: info }) = &mut input {
            info.kind = CallKind::Video;
            for member in &mut info.members {
                member.media = member.media.map(|_| video);
            }
        }
        let effects = call.handle(input, Instant::now());
        assert_eq!(summarize(&effects), expected, "{media:?}");
        assert_eq!(call.media, media.unwrap_or(video), "{media:?}: kept, not the server's assumption");
        // Said once: a later call state (the server now knows) sends nothing.
        if let Some(placed) = media {
            let mut later = info(&[("alice", MemberStatus::Joined), ("bob", MemberStatus::Ringing)]);
            later.kind = CallKind::Video;
            later.members[0].media = Some(placed);
            let effects = call.handle(server(ServerMessage::CallState { call: later }), Instant::now());
            assert!(!summarize(&effects).contains(&"send set_media".to_owned()), "{media:?}");
        }
    }
}
