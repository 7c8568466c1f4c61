//! The network layer: a WebSocket listener, one task per connection, and one task that owns the [`Hub`].
//!
//! Connection tasks authenticate the hello, bound and rate-limit frames, decode them, and forward
//! messages to the hub task over a channel; the hub task feeds the hub, fires its timers, and routes its
//! outputs back to the connections' outboxes.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use dialtone_protocol::{
    ClientMessage, DeviceId, ErrorCode, Fingerprint, PROTOCOL_VERSION, ServerMessage, UserId, decode_client, encode,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::hub::{ConnId, Hub, HubConfig, Output};
use crate::rate::RateLimiter;
use crate::tls::TlsIdentity;
use crate::token::{Secret, TokenError, verify};

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The key tokens are signed with.
    pub secret: Secret,
    /// Call timeouts and bounds.
    pub hub: HubConfig,
    /// Sustained messages per second per connection.
    pub rate_per_second: f64,
    /// Messages a connection may send in one burst.
    pub rate_burst: f64,
    /// Dropped messages in a row after which a flooding connection is closed.
    pub flood_close_after: u32,
    /// Time a new connection has to send its hello.
    pub hello_timeout: Duration,
    /// Most connections at once; more are turned away at the WebSocket handshake.
    pub max_connections: usize,
    /// Messages queued for one connection before it counts as too slow and is dropped.
    pub outbox_capacity: usize,
    /// Serve `wss://` with this certificate; `None` serves plain `ws://` (for loopback, or behind a
    /// TLS proxy).
    pub tls: Option<TlsIdentity>,
}

impl ServerConfig {
    /// Defaults for `listen` and `secret`.
    pub fn new(listen: SocketAddr, secret: Secret) -> Self {
        Self {
            listen,
            secret,
            hub: HubConfig::default(),
            rate_per_second: 50.0,
            rate_burst: 200.0,
            flood_close_after: 1_000,
            hello_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            outbox_capacity: 1_024,
            tls: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    fingerprint: Option<Fingerprint>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to: `wss://` with TLS, `ws://` without.
    pub fn url(&self) -> String {
        let scheme = if self.fingerprint.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The fingerprint of the certificate served, with TLS.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// Stops accepting, tells every client the server is going away, closes their connections and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (it stops only through [`ServerHandle::shutdown`] or a fatal error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

enum ToHub {
    Connected { conn: ConnId, user: UserId, device: DeviceId, name: String, outbox: mpsc::Sender<Outbound> },
    Message { conn: ConnId, seq: Option<u64>, message: ClientMessage },
    Disconnected { conn: ConnId },
}

impl ToHub {
    /// The connection the input is about.
    fn conn(&self) -> ConnId {
        match self {
            ToHub::Connected { conn, .. } | ToHub::Message { conn, .. } | ToHub::Disconnected { conn } => *conn,
        }
    }
}

enum Outbound {
    Text(Utf8Bytes),
    Close(CloseCode, &'static str),
}

/// Binds the listener and starts serving in the background.
pub async fn spawn(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let fingerprint = config.tls.as_ref().map(|tls| tls.fingerprint);
    let task = tokio::spawn(serve(listener, Arc::new(config), shutdown_rx));
    match fingerprint {
        Some(fingerprint) => tracing::info!(%local_addr, %fingerprint, "dialtone-server listening (TLS)"),
        None => tracing::info!(%local_addr, "dialtone-server listening"),
    }
    Ok(ServerHandle { local_addr, fingerprint, shutdown, task })
}

async fn serve(listener: TcpListener, config: Arc<ServerConfig>, mut shutdown: watch::Receiver<bool>) {
    let (hub_tx, hub_rx) = mpsc::channel(4_096);
    let hub_task = tokio::spawn(run_hub(config.clone(), hub_rx, shutdown.clone()));
    let next_conn = Arc::new(AtomicU64::new(1));
    let live = Arc::new(AtomicU64::new(0));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let conn = next_conn.fetch_add(1, Ordering::Relaxed);
                    let over_limit = live.load(Ordering::Relaxed) as usize >= config.max_connections;
                    let _ = stream.set_nodelay(true);
                    connections.spawn(accept(stream, peer, conn, config.clone(), hub_tx.clone(), live.clone(), over_limit));
                }
                // Out of file descriptors and the like: back off briefly rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    drop(hub_tx);
    // The hub task tells every connection to close; the connections then finish.
    let _ = hub_task.await;
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        connections.abort_all();
    }
    tracing::info!("dialtone-server stopped");
}

fn unix_now() -> (u64, u64) {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.as_millis() as u64)
}

async fn run_hub(config: Arc<ServerConfig>, mut inbox: mpsc::Receiver<ToHub>, mut shutdown: watch::Receiver<bool>) {
    let (_, epoch_unix_ms) = unix_now();
    let mut hub = Hub::new(config.hub.clone(), Instant::now().into_std(), epoch_unix_ms);
    let mut outboxes: HashMap<ConnId, mpsc::Sender<Outbound>> = HashMap::new();
    loop {
        let next_timer = hub.poll_timeout().map(Instant::from_std);
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            input = inbox.recv() => {
                let Some(input) = input else { break };
                feed(&mut hub, &mut outboxes, Instant::now().into_std(), input);
            }
            _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                let now = Instant::now().into_std();
                if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| hub.handle_timeout(now))) {
                    // The hub takes a timer off before firing it, so this one will not fire again.
                    tracing::error!(panic = panic_text(&*payload), "the hub panicked firing a timer; skipped it");
                }
            }
        }
        deliver(&mut hub, &mut outboxes);
    }
    for outbox in outboxes.values() {
        let goodbye = ServerMessage::Error {
            seq: None,
            code: ErrorCode::ShuttingDown,
            message: "the server is shutting down".into(),
            call: None,
        };
        let _ = outbox.try_send(Outbound::Text(encode(&goodbye).into()));
        let _ = outbox.try_send(Outbound::Close(CloseCode::Away, "server shutting down"));
    }
}

/// Hands one input to the hub. A panic there is a bug in the hub, and the hub task is everyone's
/// signaling: the panic is caught and logged, the input dropped, and only the connection it came from is
/// closed, since what that client was told may no longer match the hub; it signs in again afresh.
fn feed(hub: &mut Hub, outboxes: &mut HashMap<ConnId, mpsc::Sender<Outbound>>, now: StdInstant, input: ToHub) {
    let conn = input.conn();
    let handled = panic::catch_unwind(AssertUnwindSafe(|| match input {
        ToHub::Connected { conn, user, device, name, outbox } => {
            outboxes.insert(conn, outbox);
            hub.connect(now, conn, user, device, name);
        }
        ToHub::Message { conn, seq, message } => {
            // The tests' stand-in for a bug in the hub.
            #[cfg(test)]
            tests::panic_if_asked(&message);
            hub.message(now, conn, seq, message);
        }
        ToHub::Disconnected { conn } => {
            outboxes.remove(&conn);
            hub.disconnect(now, conn);
        }
    }));
    let Err(payload) = handled else { return };
    tracing::error!(
        conn,
        panic = panic_text(&*payload),
        "the hub panicked on an input; dropped it, closing its connection"
    );
    if let Some(outbox) = outboxes.remove(&conn) {
        let _ = outbox.try_send(Outbound::Close(CloseCode::Error, "internal server error"));
    }
}

/// What a panic said, when it said it with a string (as `panic!`, `expect` and indexing do).
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    match payload.downcast_ref::<&str>() {
        Some(text) => text,
        None => payload.downcast_ref::<String>().map_or("a panic without a message", String::as_str),
    }
}

fn deliver(hub: &mut Hub, outboxes: &mut HashMap<ConnId, mpsc::Sender<Outbound>>) {
    while let Some(output) = hub.poll_output() {
        match output {
            Output::Send(conn, message) => {
                let Some(outbox) = outboxes.get(&conn) else { continue };
                match outbox.try_send(Outbound::Text(encode(&message).into())) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // The client does not read. Dropping the sender ends its connection task.
                        tracing::warn!(conn, "closing a connection that does not keep up");
                        outboxes.remove(&conn);
                    }
                    // The connection is ending; its disconnect is on its way to the hub.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            Output::Close(conn) => {
                if let Some(outbox) = outboxes.remove(&conn) {
                    let _ = outbox.try_send(Outbound::Close(CloseCode::Policy, "replaced by a newer connection"));
                }
            }
        }
    }
}

fn error_frame(seq: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Message {
    let error = ServerMessage::Error { seq, code, message: message.into(), call: None };
    Message::Text(encode(&error).into())
}

/// The WebSocket limits: frames past `max_message_size` close the connection; between the protocol's
/// limit and this one, the connection gets a typed error and survives. Small buffers keep idle
/// connections cheap.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1024 * 1024))
        .max_frame_size(Some(1024 * 1024))
}

struct LiveGuard(Arc<AtomicU64>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a plain HTTP request to a TLS port gets: a plain answer a client can show (the WebSocket client
/// reports the status and this body).
fn tls_only_answer() -> String {
    let body = "This Dialtone server only speaks TLS: connect with wss://\n";
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Sets up TLS when the server has it, then serves the connection.
async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    config: Arc<ServerConfig>,
    hub: mpsc::Sender<ToHub>,
    live: Arc<AtomicU64>,
    over_limit: bool,
) {
    live.fetch_add(1, Ordering::Relaxed);
    let _guard = LiveGuard(live);
    let Some(tls) = config.tls.clone() else {
        return connection(stream, peer, conn, config, hub, over_limit).await;
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(config.hello_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => {
            tracing::debug!(%peer, "a plain request to the TLS port");
            let mut stream = stream;
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, tls_only_answer().as_bytes()).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            return;
        }
        _ => return,
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    match tokio::time::timeout(config.hello_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => connection(stream, peer, conn, config, hub, over_limit).await,
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    conn: ConnId,
    config: Arc<ServerConfig>,
    hub: mpsc::Sender<ToHub>,
    over_limit: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(websocket_config()));
    let mut socket = match tokio::time::timeout(config.hello_timeout, handshake).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "handshake failed");
            return;
        }
        Err(_) => return,
    };
    if over_limit {
        let close = CloseFrame { code: CloseCode::Again, reason: "server full, try again later".into() };
        let _ = socket.close(Some(close)).await;
        return;
    }

    // Sign-in: the first text frame must be a valid hello.
    let hello = tokio::time::timeout(config.hello_timeout, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    let Ok(Some(text)) = hello else { return };
    let signed_in = sign_in(&config, &text);
    let (user, device, name) = match signed_in {
        Ok(identity) => identity,
        Err(reply) => {
            let _ = socket.send(reply).await;
            let _ = socket.close(Some(CloseFrame { code: CloseCode::Policy, reason: "sign-in refused".into() })).await;
            return;
        }
    };
    tracing::debug!(%peer, conn, %user, %device, "signed in");

    let (outbox, mut outbox_rx) = mpsc::channel(config.outbox_capacity);
    if hub.send(ToHub::Connected { conn, user, device, name, outbox }).await.is_err() {
        return;
    }
    let mut limiter = RateLimiter::new(config.rate_per_second, config.rate_burst, Instant::now().into_std());
    let mut dropped_in_a_row = 0u32;
    // Anything at all from the client proves it alive; silence for three heartbeats means it is gone.
    let silence_limit = config.hub.heartbeat * 3;
    let mut last_heard = Instant::now();

    loop {
        tokio::select! {
            outbound = outbox_rx.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = socket.close(Some(CloseFrame { code, reason: reason.into() })).await;
                    break;
                }
                None => {
                    let _ = socket.close(Some(CloseFrame { code: CloseCode::Policy, reason: "too slow".into() })).await;
                    break;
                }
            },
            incoming = socket.next() => {
                let frame = match incoming {
                    Some(Ok(frame)) => frame,
                    Some(Err(error)) => {
                        tracing::debug!(conn, %error, "connection error");
                        // Most likely a frame over the hard limit: say so before closing.
                        let close = CloseFrame { code: CloseCode::Size, reason: "frame too large or broken".into() };
                        let _ = socket.close(Some(close)).await;
                        break;
                    }
                    None => break,
                };
                last_heard = Instant::now();
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Binary(_) => {
                        let reply = error_frame(None, ErrorCode::Malformed, "binary frames are not part of the protocol");
                        if socket.send(reply).await.is_err() { break; }
                        continue;
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                if !limiter.allow(Instant::now().into_std()) {
                    dropped_in_a_row += 1;
                    if dropped_in_a_row >= config.flood_close_after {
                        let close = CloseFrame { code: CloseCode::Policy, reason: "flooding".into() };
                        let _ = socket.close(Some(close)).await;
                        break;
                    }
                    // One error per streak is enough to tell the client; more would feed the flood.
                    if dropped_in_a_row == 1 {
                        let reply = error_frame(None, ErrorCode::RateLimited, "too many messages; slow down");
                        if socket.send(reply).await.is_err() { break; }
                    }
                    continue;
                }
                dropped_in_a_row = 0;
                match decode_client(&text) {
                    Ok(frame) => {
                        if matches!(frame.message, ClientMessage::Hello { .. }) {
                            let reply = error_frame(frame.seq, ErrorCode::AlreadySignedIn, "this connection is already signed in");
                            if socket.send(reply).await.is_err() { break; }
                            continue;
                        }
                        if hub.send(ToHub::Message { conn, seq: frame.seq, message: frame.message }).await.is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        let reply = error_frame(None, error.code(), error.to_string());
                        if socket.send(reply).await.is_err() { break; }
                    }
                }
            }
            _ = tokio::time::sleep_until(last_heard + silence_limit) => {
                tracing::debug!(conn, "silent for too long");
                let close = CloseFrame { code: CloseCode::Away, reason: "no heartbeat".into() };
                let _ = socket.close(Some(close)).await;
                break;
            }
        }
    }
    let _ = hub.send(ToHub::Disconnected { conn }).await;
}

/// Checks a hello frame; the error is the frame to send back before closing.
fn sign_in(config: &ServerConfig, text: &str) -> Result<(UserId, DeviceId, String), Message> {
    let frame = decode_client(text).map_err(|error| error_frame(None, error.code(), error.to_string()))?;
    let ClientMessage::Hello { version, token, device } = frame.message else {
        return Err(error_frame(frame.seq, ErrorCode::NotSignedIn, "the first message must be a hello"));
    };
    if version != PROTOCOL_VERSION {
        return Err(error_frame(
            frame.seq,
            ErrorCode::VersionMismatch,
            format!("this server speaks protocol version {PROTOCOL_VERSION}, the client {version}"),
        ));
    }
    let (now, _) = unix_now();
    match verify(&config.secret, &token, now) {
        Ok(claims) => Ok((claims.sub, device, claims.name)),
        Err(error) => {
            let code = match error {
                TokenError::Expired { .. } => ErrorCode::TokenExpired,
                _ => ErrorCode::InvalidToken,
            };
            Err(error_frame(frame.seq, code, error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    //! The hub task surviving a bug, over real sockets; the silence limit, over an in-memory stream with
    //! tokio's paused clock.

    use dialtone_protocol::{CallId, CallKind, ClientFrame, decode_server};
    use tokio_tungstenite::WebSocketStream;

    use super::*;
    use crate::token::mint;

    /// A ping with this nonce panics where the hub handles the message: the tests' stand-in for a bug in
    /// the hub, which itself has no input that panics.
    const PANICKING_NONCE: u64 = 0xDEAD;

    pub(super) fn panic_if_asked(message: &ClientMessage) {
        if matches!(message, ClientMessage::Ping { nonce: PANICKING_NONCE }) {
            panic!("a bug in the hub, as the test asked");
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    fn secret() -> Secret {
        Secret::from_bytes([5; 32])
    }

    fn config() -> ServerConfig {
        ServerConfig::new("127.0.0.1:0".parse().expect("an address"), secret())
    }

    async fn send<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>, message: ClientMessage) {
        socket.send(Message::Text(encode(&ClientFrame { seq: None, message }).into())).await.unwrap();
    }

    /// The next server message; panics on close or timeout.
    async fn next<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>) -> ServerMessage {
        loop {
            match tokio::time::timeout(WAIT, socket.next()).await.expect("a message in time") {
                Some(Ok(Message::Text(text))) => return decode_server(&text).unwrap(),
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// The close code the server ends the connection with; panics on anything else first.
    async fn close_code<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>) -> Option<CloseCode> {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => frame.map(|f| f.code),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    async fn sign_in<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>, user: &str, device: &str) {
        let (now, _) = unix_now();
        let token = mint(&secret(), &UserId::new(user).unwrap(), user, now + 600).unwrap();
        let device = DeviceId::new(device).unwrap();
        send(socket, ClientMessage::Hello { version: PROTOCOL_VERSION, token, device }).await;
        assert!(matches!(next(socket).await, ServerMessage::Welcome { .. }));
    }

    async fn signed_in(
        server: &ServerHandle,
        user: &str,
        device: &str,
    ) -> WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
        let mut socket = tokio_tungstenite::connect_async(server.url()).await.unwrap().0;
        sign_in(&mut socket, user, device).await;
        socket
    }

    /// A connection task and a hub task joined to a client by an in-memory stream: nothing waits on the
    /// kernel, so a paused clock moves only when every task waits for time.
    async fn signed_in_in_memory(config: ServerConfig) -> WebSocketStream<tokio::io::DuplexStream> {
        let config = Arc::new(config);
        let (hub_tx, hub_rx) = mpsc::channel(16);
        let hub_config = config.clone();
        tokio::spawn(async move {
            // The hub stops when its shutdown sender goes: this one stays until the hub is done.
            let (_shutdown, shutdown_rx) = watch::channel(false);
            run_hub(hub_config, hub_rx, shutdown_rx).await;
        });
        let (client_end, server_end) = tokio::io::duplex(64 * 1024);
        let peer = "127.0.0.1:1".parse().expect("an address");
        tokio::spawn(connection(server_end, peer, 1, config, hub_tx, false));
        let (mut socket, _) = tokio_tungstenite::client_async("ws://dialtone.test/", client_end).await.unwrap();
        sign_in(&mut socket, "alice", "laptop").await;
        socket
    }

    async fn pong<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>, nonce: u64) {
        send(socket, ClientMessage::Ping { nonce }).await;
        assert_eq!(next(socket).await, ServerMessage::Pong { nonce });
    }

    #[tokio::test]
    async fn a_panic_in_the_hub_closes_only_the_connection_whose_input_caused_it() {
        let server = spawn(config()).await.unwrap();
        let mut alice = signed_in(&server, "alice", "laptop").await;
        let mut bob = signed_in(&server, "bob", "phone").await;
        let mut mallory = signed_in(&server, "mallory", "pc").await;

        send(&mut mallory, ClientMessage::Ping { nonce: PANICKING_NONCE }).await;
        assert_eq!(close_code(&mut mallory).await, Some(CloseCode::Error));

        // Signaling goes on for everyone else, and the closed client may sign in again.
        pong(&mut alice, 1).await;
        let invite = ClientMessage::Invite {
            call: CallId::new("c1").unwrap(),
            kind: CallKind::Audio,
            users: vec![UserId::new("bob").unwrap()],
            group: false,
            ring_timeout_ms: None,
        };
        send(&mut alice, invite).await;
        assert!(matches!(next(&mut bob).await, ServerMessage::Incoming { .. }));
        let mut mallory = signed_in(&server, "mallory", "pc").await;
        pong(&mut mallory, 2).await;
        server.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_is_dropped_after_exactly_three_heartbeats_of_silence() {
        // (case, when the client sends something after signing in)
        let cases = [("silent throughout", None), ("pings once", Some(Duration::from_secs(40)))];
        for (case, ping_after) in cases {
            let config = config();
            let silence_limit = config.hub.heartbeat * 3;
            let mut client = signed_in_in_memory(config).await;
            let mut last_heard = Instant::now();
            if let Some(after) = ping_after {
                tokio::time::sleep(after).await;
                pong(&mut client, 1).await;
                last_heard = Instant::now();
            }
            let early = tokio::time::timeout(silence_limit - Duration::from_millis(1), client.next()).await;
            assert!(early.is_err(), "{case}: {early:?} before the limit");
            assert_eq!(close_code(&mut client).await, Some(CloseCode::Away), "{case}");
            assert_eq!(last_heard.elapsed(), silence_limit, "{case}");
        }
    }
}
