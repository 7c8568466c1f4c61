//! Shared set-up for the end-to-end tests: a real server on 127.0.0.1 and real engines.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_engine::{Backoff, Command, Engine, EngineConfig, Event};
use dialtone_protocol::{CallId, CallKind, DeviceId, EndReason, MediaState, UserId};
use dialtone_server::{Secret, ServerConfig, ServerHandle, mint};
use tokio::sync::mpsc;

/// How long any one expected event may take to arrive.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn secret() -> Secret {
    Secret::from_bytes([7; 32])
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn token(name: &str) -> String {
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    mint(&secret(), &user(name), &name.to_uppercase(), expires).unwrap()
}

/// A server config on a free loopback port with the test secret.
pub fn config() -> ServerConfig {
    ServerConfig::new("127.0.0.1:0".parse().unwrap(), secret())
}

pub async fn server() -> ServerHandle {
    dialtone_server::spawn(config()).await.unwrap()
}

pub async fn server_with(tweak: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = config();
    tweak(&mut config);
    dialtone_server::spawn(config).await.unwrap()
}

pub async fn server_at(addr: SocketAddr) -> ServerHandle {
    let mut config = config();
    config.listen = addr;
    dialtone_server::spawn(config).await.unwrap()
}

/// One signed-in engine and everything it has reported so far.
pub struct Client {
    pub name: String,
    pub engine: Engine,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub seen: Vec<Event>,
}

pub fn engine_config(url: &str, name: &str, device: &str) -> EngineConfig {
    let mut config = EngineConfig::new(url, token(name), DeviceId::new(device).unwrap());
    // A distinct, reproducible seed per device, so call ids differ between clients.
    config.seed = Some(
        format!("{name}/{device}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)),
    );
    config.backoff =
        Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200), ..Backoff::default() };
    config
}

impl Client {
    pub async fn start(config: EngineConfig, name: &str) -> Client {
        let (engine, events) = Engine::start(config);
        let mut client = Client { name: name.to_owned(), engine, events, seen: Vec::new() };
        client.expect("signed in", |e| matches!(e, Event::SignedIn { .. })).await;
        client
    }

    pub async fn sign_in(server: &ServerHandle, name: &str, device: &str) -> Client {
        Client::start(engine_config(&server.url(), name, device), &format!("{name}/{device}")).await
    }

    pub fn send(&self, command: Command) {
        self.engine.send(command).unwrap();
    }

    /// Waits for the first event (after those already consumed) that `matches`.
    pub async fn expect(&mut self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if matches(&event) {
                        return event;
                    }
                }
                Ok(None) => panic!("{}: engine stopped while waiting for {what}; saw {:#?}", self.name, self.seen),
                Err(_) => panic!("{}: no {what} within {WAIT:?}; saw {:#?}", self.name, self.seen),
            }
        }
    }

    /// The first event that `matches`, among those already consumed (waiting for another one may have
    /// passed it by: device threads report at their own pace) or, failing that, the next ones.
    pub async fn expect_ever(&mut self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        match self.seen.iter().find(|event| matches(event)) {
            Some(event) => event.clone(),
            None => self.expect(what, matches).await,
        }
    }

    /// Asserts that nothing matching arrives for `quiet`.
    pub async fn expect_none(&mut self, what: &str, quiet: Duration, matches: impl Fn(&Event) -> bool) {
        let deadline = tokio::time::Instant::now() + quiet;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            assert!(!matches(&event), "{}: unexpected {what}: {event:?}", self.name);
            self.seen.push(event);
        }
    }

    /// Places a call and returns its id.
    pub async fn call(&mut self, users: &[&str], kind: CallKind, group: bool) -> CallId {
        self.send(Command::Call {
            call: None,
            users: users.iter().map(|u| user(u)).collect(),
            kind,
            group,
            ring_timeout: None,
            media: None,
        });
        match self.expect("outgoing call", |e| matches!(e, Event::OutgoingCall { .. })).await {
            Event::OutgoingCall { call, .. } => call,
            _ => unreachable!(),
        }
    }

    pub async fn incoming(&mut self, call: &CallId) -> Event {
        self.expect("incoming call", |e| matches!(e, Event::IncomingCall { call: c, .. } if &c.call == call)).await
    }

    pub async fn accept(&mut self, call: &CallId, kind: CallKind) {
        self.send(Command::Accept { call: call.clone(), media: MediaState::for_kind(kind) });
        self.expect("call active", |e| matches!(e, Event::CallActive { call: c } if &c.call == call)).await;
    }

    pub async fn ended(&mut self, call: &CallId, reason: EndReason) {
        let what = format!("call ended {reason}");
        self.expect(&what, |e| matches!(e, Event::CallEnded { call: c, reason: r, .. } if c == call && *r == reason))
            .await;
    }

    pub async fn left(&mut self, call: &CallId, who: &str, reason: EndReason) {
        let who = user(who);
        let what = format!("{who} left {reason}");
        self.expect(&what, |e| {
            matches!(e, Event::ParticipantLeft { call: c, user, reason: r } if c == call && *user == who && *r == reason)
        })
        .await;
    }

    pub async fn joined(&mut self, call: &CallId, who: &str) -> DeviceId {
        let who = user(who);
        let what = format!("{who} joined");
        match self
            .expect(&what, |e| matches!(e, Event::ParticipantJoined { call: c, user, .. } if c == call && *user == who))
            .await
        {
            Event::ParticipantJoined { device, .. } => device,
            _ => unreachable!(),
        }
    }
}

/// A TCP relay in front of the server whose path can be cut, as a network blip would: every
/// connection through it drops at once, and new ones are refused until it is restored.
pub struct Blip {
    pub addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    epoch: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Blip {
    pub async fn to(server: SocketAddr) -> Blip {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (epoch, _) = tokio::sync::watch::channel(0u64);
        let (is_cut, epochs) = (cut.clone(), epoch.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection refused or reset
                }
                let mut cut_now = epochs.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(server).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut_now.changed() => {}
                    }
                });
            }
        });
        Blip { addr, cut, epoch, task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drops every connection through it and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.epoch.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Blip {
    fn drop(&mut self) {
        self.task.abort();
    }
}
