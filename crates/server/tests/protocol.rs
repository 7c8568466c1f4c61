//! The server against raw WebSocket clients: sign-in, bad input, floods, refusals, shutdown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_protocol::{
    CallId, CallKind, ClientFrame, ClientMessage, DeviceAddress, DeviceId, ErrorCode, MediaState, PROTOCOL_VERSION,
    ServerMessage, SignalPayload, UserId, decode_server, encode,
};
use dialtone_server::{Secret, ServerConfig, ServerHandle, mint};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

fn secret() -> Secret {
    Secret::from_bytes([3; 32])
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(user: &str) -> String {
    mint(&secret(), &UserId::new(user).unwrap(), user, now_unix() + 600).unwrap()
}

async fn server() -> ServerHandle {
    server_with(|_| {}).await
}

async fn server_with(tweak: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), secret());
    tweak(&mut config);
    dialtone_server::spawn(config).await.unwrap()
}

async fn open(server: &ServerHandle) -> Socket {
    tokio_tungstenite::connect_async(server.url()).await.unwrap().0
}

async fn send(socket: &mut Socket, message: ClientMessage, seq: Option<u64>) {
    socket.send(Message::Text(encode(&ClientFrame { seq, message }).into())).await.unwrap();
}

fn hello(token: String, device: &str) -> ClientMessage {
    ClientMessage::Hello { version: PROTOCOL_VERSION, token, device: DeviceId::new(device).unwrap() }
}

/// The next server message; panics on close or timeout.
async fn next(socket: &mut Socket) -> ServerMessage {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => return decode_server(&text).unwrap(),
            Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// Waits for the server to close the connection, returning the close code.
async fn closed(socket: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

async fn signed_in(server: &ServerHandle, user: &str, device: &str) -> Socket {
    let mut socket = open(server).await;
    send(&mut socket, hello(token(user), device), None).await;
    assert!(matches!(next(&mut socket).await, ServerMessage::Welcome { .. }));
    socket
}

/// Proves the connection still works: a ping gets its pong (earlier pongs are passed over).
async fn still_served(socket: &mut Socket, nonce: u64) {
    send(socket, ClientMessage::Ping { nonce }, None).await;
    loop {
        if let ServerMessage::Pong { nonce: got } = next(socket).await
            && got == nonce
        {
            return;
        }
    }
}

/// Pings until one is answered, from `first_nonce` on: a connection over its rate is served again once its
/// bucket has refilled, and until then its pings are dropped without a reply, so there is no message to
/// wait for but the first pong.
async fn served_again(socket: &mut Socket, first_nonce: u64) {
    // Short against the refill (a token per 50 ms at 20 a second), long against a pong's round trip.
    const RETRY: Duration = Duration::from_millis(20);
    let give_up = tokio::time::Instant::now() + WAIT;
    for nonce in first_nonce.. {
        send(socket, ClientMessage::Ping { nonce }, None).await;
        let pong = async {
            loop {
                // Pongs to the flood before are passed over.
                if let ServerMessage::Pong { nonce: got } = next(socket).await
                    && got >= first_nonce
                {
                    return;
                }
            }
        };
        if tokio::time::timeout(RETRY, pong).await.is_ok() {
            return;
        }
        assert!(tokio::time::Instant::now() < give_up, "not served again within {WAIT:?}");
    }
}

async fn expect_error(socket: &mut Socket, code: ErrorCode) -> (Option<u64>, String) {
    loop {
        if let ServerMessage::Error { code: got, seq, message, .. } = next(socket).await {
            assert_eq!(got, code, "{message}");
            return (seq, message);
        }
    }
}

#[tokio::test]
async fn forged_expired_and_garbage_tokens_are_refused_with_the_reason() {
    let server = server().await;
    let forged = mint(&Secret::from_bytes([9; 32]), &UserId::new("alice").unwrap(), "A", now_unix() + 600).unwrap();
    let expired = mint(&secret(), &UserId::new("alice").unwrap(), "A", now_unix() - 1).unwrap();
    let cases = [
        (forged, ErrorCode::InvalidToken, "signature"),
        (expired, ErrorCode::TokenExpired, "expired"),
        ("nonsense".to_owned(), ErrorCode::InvalidToken, "malformed"),
    ];
    for (token, code, says) in cases {
        let mut socket = open(&server).await;
        send(&mut socket, hello(token, "laptop"), Some(1)).await;
        let (seq, message) = expect_error(&mut socket, code).await;
        assert_eq!(seq, Some(1));
        assert!(message.contains(says), "{message}");
        assert_eq!(closed(&mut socket).await, Some(CloseCode::Policy));
    }
}

#[tokio::test]
async fn a_version_mismatch_and_a_missing_hello_are_refused() {
    let server = server().await;
    let mut socket = open(&server).await;
    let old = ClientMessage::Hello { version: 99, token: token("alice"), device: DeviceId::new("x").unwrap() };
    send(&mut socket, old, None).await;
    let (_, message) = expect_error(&mut socket, ErrorCode::VersionMismatch).await;
    assert!(message.contains("version 1") && message.contains("99"), "{message}");

    let mut socket = open(&server).await;
    send(&mut socket, ClientMessage::Ping { nonce: 1 }, None).await;
    expect_error(&mut socket, ErrorCode::NotSignedIn).await;
    closed(&mut socket).await;
}

#[tokio::test]
async fn malformed_unknown_binary_and_oversized_messages_get_errors_and_the_connection_survives() {
    let server = server().await;
    let mut alice = signed_in(&server, "alice", "laptop").await;
    let mut bob = signed_in(&server, "bob", "phone").await;

    alice.send(Message::Text("{not json".into())).await.unwrap();
    expect_error(&mut alice, ErrorCode::Malformed).await;
    alice.send(Message::Text(r#"{"type":"launch_rockets"}"#.into())).await.unwrap();
    expect_error(&mut alice, ErrorCode::Malformed).await;
    alice
        .send(Message::Text(r#"{"type":"invite","call":"has space","kind":"audio","users":["bob"]}"#.into()))
        .await
        .unwrap();
    let (_, message) = expect_error(&mut alice, ErrorCode::Malformed).await;
    assert!(message.contains("letters, digits"), "{message}");
    alice.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    expect_error(&mut alice, ErrorCode::Malformed).await;
    // Over the protocol's limit but under the hard one: an error, and the connection goes on.
    let big = format!(r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#, "x".repeat(100 * 1024));
    alice.send(Message::Text(big.into())).await.unwrap();
    expect_error(&mut alice, ErrorCode::MessageTooLarge).await;
    still_served(&mut alice, 7).await;

    // Over the hard limit: that connection is closed as too big, and everyone else is still served.
    let mut mallory = signed_in(&server, "mallory", "pc").await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let _ = mallory.send(Message::Text(huge.into())).await;
    assert!(matches!(closed(&mut mallory).await, Some(CloseCode::Size) | None));
    still_served(&mut alice, 8).await;
    still_served(&mut bob, 9).await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_cut_off_while_others_are_served() {
    let server = server_with(|c| {
        c.rate_per_second = 20.0;
        c.rate_burst = 20.0;
        c.flood_close_after = 500;
    })
    .await;
    let mut flooder = signed_in(&server, "mallory", "pc").await;
    let mut alice = signed_in(&server, "alice", "laptop").await;

    for nonce in 0..40 {
        send(&mut flooder, ClientMessage::Ping { nonce }, None).await;
    }
    expect_error(&mut flooder, ErrorCode::RateLimited).await;
    still_served(&mut alice, 1).await;

    // Once it slows down, it is served again.
    served_again(&mut flooder, 1_000).await;

    // Keeping it up gets it closed.
    for nonce in 0..1_000 {
        if flooder
            .send(Message::Text(encode(&ClientFrame { seq: None, message: ClientMessage::Ping { nonce } }).into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert!(matches!(closed(&mut flooder).await, Some(CloseCode::Policy) | None));
    still_served(&mut alice, 2).await;
}

#[tokio::test]
async fn out_of_state_requests_are_refused_with_their_seq() {
    let server = server().await;
    let mut alice = signed_in(&server, "alice", "laptop").await;
    let mut bob = signed_in(&server, "bob", "phone").await;
    let mut eve = signed_in(&server, "eve", "pc").await;
    let call = CallId::new("c1").unwrap();

    // Accepting a call that does not exist.
    send(&mut eve, ClientMessage::Accept { call: call.clone(), media: MediaState::default() }, Some(5)).await;
    assert_eq!(expect_error(&mut eve, ErrorCode::UnknownCall).await.0, Some(5));

    let invite = ClientMessage::Invite {
        call: call.clone(),
        kind: CallKind::Audio,
        users: vec![UserId::new("bob").unwrap()],
        group: false,
        ring_timeout_ms: None,
    };
    send(&mut alice, invite, Some(1)).await;
    assert!(matches!(next(&mut bob).await, ServerMessage::Incoming { .. }));

    // Accepting a call you were not invited to; cancelling someone else's; hanging up a call you are not in.
    let refusals = [
        (ClientMessage::Accept { call: call.clone(), media: MediaState::default() }, 6),
        (ClientMessage::Cancel { call: call.clone() }, 7),
        (ClientMessage::Hangup { call: call.clone() }, 8),
        (ClientMessage::SetMedia { call: call.clone(), media: MediaState::default() }, 9),
    ];
    for (message, seq) in refusals {
        send(&mut eve, message, Some(seq)).await;
        assert_eq!(expect_error(&mut eve, ErrorCode::NotAllowed).await.0, Some(seq));
    }
    // Joining someone else's call by its id.
    let gatecrash = ClientMessage::Invite {
        call: call.clone(),
        kind: CallKind::Audio,
        users: vec![UserId::new("alice").unwrap()],
        group: false,
        ring_timeout_ms: None,
    };
    send(&mut eve, gatecrash, Some(10)).await;
    expect_error(&mut eve, ErrorCode::NotAllowed).await;
    // The callee cannot cancel, and a second hello is refused.
    send(&mut bob, ClientMessage::Cancel { call: call.clone() }, Some(11)).await;
    expect_error(&mut bob, ErrorCode::NotAllowed).await;
    send(&mut bob, hello(token("bob"), "phone"), Some(12)).await;
    expect_error(&mut bob, ErrorCode::AlreadySignedIn).await;
    // Calling nobody but yourself.
    let lonely = ClientMessage::Invite {
        call: CallId::new("c2").unwrap(),
        kind: CallKind::Audio,
        users: vec![UserId::new("eve").unwrap()],
        group: false,
        ring_timeout_ms: None,
    };
    send(&mut eve, lonely, Some(13)).await;
    expect_error(&mut eve, ErrorCode::BadRequest).await;

    // A stranger's relay into the call is refused; the members' works.
    let to_alice = DeviceAddress { user: UserId::new("alice").unwrap(), device: DeviceId::new("laptop").unwrap() };
    let signal =
        |to: DeviceAddress| ClientMessage::Signal { call: call.clone(), to, payload: SignalPayload::EndOfCandidates };
    send(&mut eve, signal(to_alice.clone()), Some(14)).await;
    expect_error(&mut eve, ErrorCode::NotAllowed).await;
    send(&mut bob, signal(to_alice), Some(15)).await;
    loop {
        if let ServerMessage::Signal { from, .. } = next(&mut alice).await {
            assert_eq!(from.user.as_str(), "bob");
            break;
        }
    }
    still_served(&mut alice, 1).await;
}

#[tokio::test]
async fn signing_in_again_with_the_same_device_replaces_the_old_connection() {
    let server = server().await;
    let mut first = signed_in(&server, "alice", "laptop").await;
    let mut second = signed_in(&server, "alice", "laptop").await;
    expect_error(&mut first, ErrorCode::Replaced).await;
    closed(&mut first).await;
    still_served(&mut second, 1).await;
}

#[tokio::test]
async fn shutdown_tells_every_client_and_closes() {
    let server = server().await;
    let mut alice = signed_in(&server, "alice", "laptop").await;
    let mut bob = signed_in(&server, "bob", "phone").await;
    server.shutdown().await;
    for socket in [&mut alice, &mut bob] {
        expect_error(socket, ErrorCode::ShuttingDown).await;
        assert_eq!(closed(socket).await, Some(CloseCode::Away));
    }
}
