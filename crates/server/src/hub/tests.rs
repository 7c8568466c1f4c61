//! The hub driven directly: made-up instants, no sockets, every output checked per connection.

use super::*;

const EPOCH_UNIX_MS: u64 = 1_700_000_000_000;

const ALICE_LAPTOP: ConnId = 1;
const BOB_PHONE: ConnId = 2;
const BOB_LAPTOP: ConnId = 3;
const CAROL_PHONE: ConnId = 4;
const DAVE_PHONE: ConnId = 5;
const ERIN_PHONE: ConnId = 6;
const ALICE_TABLET: ConnId = 7;

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

fn call_id(name: &str) -> CallId {
    CallId::new(name).unwrap()
}

/// `"bob/phone"` as an address.
fn addr(user_and_device: &str) -> DeviceAddress {
    let (u, d) = user_and_device.split_once('/').expect("user/device");
    DeviceAddress { user: user(u), device: device(d) }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn invite(call: &str, users: &[&str]) -> ClientMessage {
    ClientMessage::Invite {
        call: call_id(call),
        kind: CallKind::Audio,
        users: users.iter().map(|u| user(u)).collect(),
        group: false,
        ring_timeout_ms: None,
    }
}

fn group_invite(call: &str, users: &[&str]) -> ClientMessage {
    ClientMessage::Invite {
        call: call_id(call),
        kind: CallKind::Audio,
        users: users.iter().map(|u| user(u)).collect(),
        group: true,
        ring_timeout_ms: None,
    }
}

fn accept(call: &str) -> ClientMessage {
    ClientMessage::Accept { call: call_id(call), media: MediaState::for_kind(CallKind::Audio) }
}

fn decline(call: &str, busy: bool) -> ClientMessage {
    ClientMessage::Decline { call: call_id(call), busy }
}

fn cancel(call: &str) -> ClientMessage {
    ClientMessage::Cancel { call: call_id(call) }
}

fn hangup(call: &str) -> ClientMessage {
    ClientMessage::Hangup { call: call_id(call) }
}

fn offer() -> dialtone_protocol::SignalPayload {
    dialtone_protocol::SignalPayload::Offer { sdp: "v=0".into() }
}

fn signal(call: &str, to: &str) -> ClientMessage {
    ClientMessage::Signal { call: call_id(call), to: addr(to), payload: offer() }
}

fn ended(call: &str, reason: EndReason) -> ServerMessage {
    ServerMessage::Ended { call: call_id(call), reason }
}

fn kind_of(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Welcome { .. } => "welcome",
        ServerMessage::Error { .. } => "error",
        ServerMessage::Presence { .. } => "presence",
        ServerMessage::PresenceChanged { .. } => "presence_changed",
        ServerMessage::CallState { .. } => "call_state",
        ServerMessage::Incoming { .. } => "incoming",
        ServerMessage::Ringing { .. } => "ringing",
        ServerMessage::Joined { .. } => "joined",
        ServerMessage::Left { .. } => "left",
        ServerMessage::Ended { .. } => "ended",
        ServerMessage::MediaChanged { .. } => "media_changed",
        ServerMessage::KindChanged { .. } => "kind_changed",
        ServerMessage::Signal { .. } => "signal",
        ServerMessage::Merged { .. } => "merged",
        ServerMessage::MissedCalls { .. } => "missed_calls",
        ServerMessage::Pong { .. } => "pong",
        ServerMessage::Picture { .. } => "picture",
    }
}

fn kinds(messages: &[ServerMessage]) -> Vec<&'static str> {
    messages.iter().map(kind_of).collect()
}

/// The code, seq and call of the only message, which must be an error.
fn only_error(messages: &[ServerMessage]) -> (ErrorCode, Option<u64>, Option<CallId>) {
    match messages {
        [ServerMessage::Error { code, seq, call, .. }] => (*code, *seq, call.clone()),
        other => panic!("expected exactly one error, got {other:?}"),
    }
}

/// A hub plus everything it has sent, sorted by connection.
struct TestHub {
    hub: Hub,
    t0: Instant,
    inbox: BTreeMap<ConnId, Vec<ServerMessage>>,
    closed: Vec<ConnId>,
    next_seq: u64,
}

impl TestHub {
    /// A hub where a dropped device is gone at once: most tables are about what follows when it is gone;
    /// the grace before that has its own.
    fn new() -> Self {
        Self::with_config(HubConfig { resume_grace: Duration::ZERO, ..HubConfig::default() })
    }

    fn with_config(config: HubConfig) -> Self {
        let t0 = Instant::now();
        Self { hub: Hub::new(config, t0, EPOCH_UNIX_MS), t0, inbox: BTreeMap::new(), closed: Vec::new(), next_seq: 1 }
    }

    fn config(&self) -> &HubConfig {
        &self.hub.config
    }

    /// `t0 + offset`.
    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    /// Signs `"user/device"` in on `conn`; the token's name is the user id.
    fn sign_in(&mut self, now: Instant, conn: ConnId, who: &str) {
        let DeviceAddress { user, device } = addr(who);
        let name = user.to_string();
        self.hub.connect(now, conn, user, device, name);
    }

    /// Sends a numbered message; returns its seq.
    fn send(&mut self, now: Instant, conn: ConnId, message: ClientMessage) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.hub.message(now, conn, Some(seq), message);
        seq
    }

    fn pump(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send(conn, message) => self.inbox.entry(conn).or_default().push(message),
                Output::Close(conn) => self.closed.push(conn),
            }
        }
    }

    /// Everything sent to `conn` since the last take.
    fn take(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        self.pump();
        self.inbox.remove(&conn).unwrap_or_default()
    }

    fn discard_all(&mut self) {
        self.pump();
        self.inbox.clear();
        self.closed.clear();
    }

    fn assert_silent(&mut self, context: &str) {
        self.pump();
        assert!(self.inbox.values().all(Vec::is_empty), "{context}: unexpected messages {:?}", self.inbox);
        assert!(self.closed.is_empty(), "{context}: unexpected closes {:?}", self.closed);
    }
}

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

// ----- multiple devices -----

/// alice/laptop calls bob, who is signed in on his phone and his laptop.
fn call_to_bob_on_two_devices() -> TestHub {
    let mut h = TestHub::new();
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, BOB_PHONE, "bob/phone");
    h.sign_in(h.t0, BOB_LAPTOP, "bob/laptop");
    h.discard_all();
    h.send(h.t0, ALICE_LAPTOP, invite("c1", &["bob"]));
    assert_eq!(kinds(&h.take(BOB_PHONE)), ["incoming"]);
    assert_eq!(kinds(&h.take(BOB_LAPTOP)), ["incoming"]);
    h.discard_all();
    h
}

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

// ----- relay -----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Ringing,
    AnsweredOnBobsLaptop,
}

#[test]
fn relay_is_only_between_devices_taking_part_in_the_call() {
    use Stage::*;
    // (stage, sender, receiver, Some(receiving connection) if delivered)
    let cases = [
        (Ringing, BOB_PHONE, "alice/laptop", Some(ALICE_LAPTOP)),
        (Ringing, BOB_LAPTOP, "alice/laptop", Some(ALICE_LAPTOP)),
        (Ringing, ALICE_LAPTOP, "bob/phone", Some(BOB_PHONE)),
        (Ringing, CAROL_PHONE, "alice/laptop", None),
        (Ringing, ALICE_LAPTOP, "carol/phone", None),
        (Ringing, ALICE_LAPTOP, "alice/laptop", None),
        (AnsweredOnBobsLaptop, BOB_LAPTOP, "alice/laptop", Some(ALICE_LAPTOP)),
        (AnsweredOnBobsLaptop, ALICE_LAPTOP, "bob/laptop", Some(BOB_LAPTOP)),
        (AnsweredOnBobsLaptop, BOB_PHONE, "alice/laptop", None),
        (AnsweredOnBobsLaptop, ALICE_LAPTOP, "bob/phone", None),
        (AnsweredOnBobsLaptop, CAROL_PHONE, "bob/laptop", None),
    ];
    let sender_names = BTreeMap::from([
        (ALICE_LAPTOP, "alice/laptop"),
        (BOB_PHONE, "bob/phone"),
        (BOB_LAPTOP, "bob/laptop"),
        (CAROL_PHONE, "carol/phone"),
    ]);
    for (stage, from, to, delivered_to) in cases {
        let case = format!("{stage:?}: {} -> {to}", sender_names[&from]);
        let mut h = call_to_bob_on_two_devices();
        h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
        if stage == AnsweredOnBobsLaptop {
            h.send(h.at(secs(1)), BOB_LAPTOP, accept("c1"));
        }
        h.discard_all();

        let seq = h.send(h.at(secs(2)), from, signal("c1", to));
        match delivered_to {
            Some(conn) => {
                let relayed =
                    ServerMessage::Signal { call: call_id("c1"), from: addr(sender_names[&from]), payload: offer() };
                assert_eq!(h.take(conn), vec![relayed], "{case}");
            }
            None => {
                assert_eq!(
                    only_error(&h.take(from)),
                    (ErrorCode::NotAllowed, Some(seq), Some(call_id("c1"))),
                    "{case}"
                );
            }
        }
        h.assert_silent(&case);
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

// ----- presence -----

type PresenceStep = fn(&mut TestHub, Instant);

/// (user, display name, online, devices, in call)
type Seen = (&'static str, &'static str, bool, u32, bool);

fn presence_pushes(messages: Vec<ServerMessage>) -> Vec<(String, String, bool, u32, bool)> {
    messages
        .into_iter()
        .map(|m| match m {
            ServerMessage::PresenceChanged { entry } => {
                (entry.user.to_string(), entry.profile.display_name, entry.online, entry.devices, entry.in_call)
            }
            other => panic!("expected only presence changes, got {other:?}"),
        })
        .collect()
}

fn owned(seen: &[Seen]) -> Vec<(String, String, bool, u32, bool)> {
    seen.iter().map(|(u, n, o, d, c)| (u.to_string(), n.to_string(), *o, *d, *c)).collect()
}

#[test]
fn presence_changes_are_pushed_only_to_watchers_and_only_when_something_changed() {
    let mut h = TestHub::new();
    h.sign_in(h.t0, DAVE_PHONE, "dave/phone");
    h.sign_in(h.t0, ERIN_PHONE, "erin/phone");
    h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
    h.send(h.t0, DAVE_PHONE, ClientMessage::WatchPresence { users: Some(vec![user("bob")]) });
    h.send(h.t0, ERIN_PHONE, ClientMessage::WatchPresence { users: None });
    h.discard_all();

    // (step, what dave (watching bob) is pushed, what erin (watching everyone) is pushed besides)
    let steps: [(&str, PresenceStep, &[Seen], &[Seen]); 11] = [
        (
            "bob signs in on his phone",
            |h, t| h.sign_in(t, BOB_PHONE, "bob/phone"),
            &[("bob", "bob", true, 1, false)],
            &[],
        ),
        (
            "alice signs in",
            |h, t| h.sign_in(t, ALICE_LAPTOP, "alice/laptop"),
            &[],
            &[("alice", "alice", true, 1, false)],
        ),
        (
            "bob signs in on his laptop",
            |h, t| h.sign_in(t, BOB_LAPTOP, "bob/laptop"),
            &[("bob", "bob", true, 2, false)],
            &[],
        ),
        (
            "bob sets the name he has",
            |h, t| {
                h.send(t, BOB_PHONE, ClientMessage::SetProfile { display_name: Some("bob".into()), avatar: None });
            },
            &[],
            &[],
        ),
        (
            "bob's phone joins a call, his laptop is free",
            |h, t| {
                h.send(t, BOB_PHONE, invite("b1", &["zoe"]));
            },
            &[],
            &[],
        ),
        (
            "bob's laptop joins a call too",
            |h, t| {
                h.send(t, BOB_LAPTOP, invite("b2", &["zoe"]));
            },
            &[("bob", "bob", true, 2, true)],
            &[],
        ),
        (
            "bob renames himself",
            |h, t| {
                h.send(t, BOB_PHONE, ClientMessage::SetProfile { display_name: Some("Bobby".into()), avatar: None });
            },
            &[("bob", "Bobby", true, 2, true)],
            &[],
        ),
        (
            "bob pings",
            |h, t| {
                h.send(t, BOB_PHONE, ClientMessage::Ping { nonce: 1 });
            },
            &[],
            &[],
        ),
        ("bob's phone goes away", |h, t| h.hub.disconnect(t, BOB_PHONE), &[("bob", "Bobby", true, 1, true)], &[]),
        (
            "carol, watched only by erin, goes away",
            |h, t| h.hub.disconnect(t, CAROL_PHONE),
            &[],
            &[("carol", "carol", false, 0, false)],
        ),
        ("bob's laptop goes away", |h, t| h.hub.disconnect(t, BOB_LAPTOP), &[("bob", "Bobby", false, 0, false)], &[]),
    ];
    for (i, (step, act, dave_sees, erin_also_sees)) in steps.into_iter().enumerate() {
        let now = h.at(secs(i as u64 + 1));
        act(&mut h, now);
        h.pump();
        // What was sent to the devices acting in the step is not presence; drop it.
        for conn in [ALICE_LAPTOP, BOB_PHONE, BOB_LAPTOP] {
            h.inbox.remove(&conn);
        }
        assert_eq!(presence_pushes(h.take(DAVE_PHONE)), owned(dave_sees), "dave: {step}");
        let mut erin_sees = owned(dave_sees);
        erin_sees.extend(owned(erin_also_sees));
        erin_sees.sort();
        let mut erin_got = presence_pushes(h.take(ERIN_PHONE));
        erin_got.sort();
        assert_eq!(erin_got, erin_sees, "erin: {step}");
        assert_eq!(h.take(CAROL_PHONE), vec![], "carol watches nobody: {step}");
        h.assert_silent(step);
    }
}

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

// ----- profile pictures -----

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(size, 7);
    bytes
}

#[test]
fn a_picture_is_checked_kept_named_in_the_profile_and_handed_out() {
    let mut h = TestHub::new();
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, ERIN_PHONE, "erin/phone");
    h.send(h.t0, ERIN_PHONE, ClientMessage::WatchPresence { users: None });
    h.discard_all();
    let picture = png(MAX_PICTURE_BYTES);
    let name = picture_ref(&picture);

    // What is refused changes nothing.
    let refused: [(&str, ClientMessage, &str); 5] = [
        (
            "too large",
            ClientMessage::SetPicture { mime: "image/png".into(), data: base64(&png(MAX_PICTURE_BYTES + 1)) },
            "at most 64 KiB",
        ),
        (
            "not a picture",
            ClientMessage::SetPicture { mime: "image/png".into(), data: base64(b"<svg onload=alert(1)>") },
            "not a PNG, JPEG or WebP",
        ),
        (
            "another type than said",
            ClientMessage::SetPicture { mime: "image/jpeg".into(), data: base64(&picture) },
            "is image/png, not image/jpeg",
        ),
        ("not base64", ClientMessage::SetPicture { mime: "image/png".into(), data: "!!!".into() }, "not base64"),
        ("a picture nobody has", ClientMessage::GetPicture { avatar: name.clone() }, "no picture"),
    ];
    for (case, message, says) in refused {
        let seq = h.send(h.at(secs(1)), ALICE_LAPTOP, message);
        let reply = h.take(ALICE_LAPTOP);
        assert_eq!(only_error(&reply), (ErrorCode::BadRequest, Some(seq), None), "{case}");
        let ServerMessage::Error { message, .. } = &reply[0] else { unreachable!() };
        assert!(message.contains(says), "{case}: {message}");
        h.assert_silent(case);
    }

    h.send(h.at(secs(2)), ALICE_LAPTOP, ClientMessage::SetPicture { mime: "image/png".into(), data: base64(&picture) });
    let pushed = h.take(ERIN_PHONE);
    assert!(
        matches!(pushed.as_slice(), [ServerMessage::PresenceChanged { entry }] if entry.profile.avatar.as_deref() == Some(name.as_str())),
        "{pushed:?}"
    );
    h.send(h.at(secs(3)), ERIN_PHONE, ClientMessage::GetPicture { avatar: name.clone() });
    assert_eq!(
        h.take(ERIN_PHONE),
        vec![ServerMessage::Picture { avatar: name.clone(), mime: "image/png".into(), data: base64(&picture) }]
    );

    // A new picture replaces the old, which is gone; clearing the avatar lets the new one go too.
    let second = png(100);
    h.send(h.at(secs(4)), ALICE_LAPTOP, ClientMessage::SetPicture { mime: "image/png".into(), data: base64(&second) });
    h.discard_all();
    h.send(h.at(secs(5)), ERIN_PHONE, ClientMessage::GetPicture { avatar: name });
    assert_eq!(only_error(&h.take(ERIN_PHONE)).0, ErrorCode::BadRequest);
    h.send(h.at(secs(6)), ALICE_LAPTOP, ClientMessage::SetProfile { display_name: None, avatar: Some(String::new()) });
    h.discard_all();
    h.send(h.at(secs(7)), ERIN_PHONE, ClientMessage::GetPicture { avatar: picture_ref(&second) });
    assert_eq!(only_error(&h.take(ERIN_PHONE)).0, ErrorCode::BadRequest);
}

// ----- a restarted server takes calls up again -----

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
