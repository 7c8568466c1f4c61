//! The engine's task: connects, signs in, reconnects with backoff, and feeds commands, server messages
//! and time to the calls' state machines, sending and emitting what they return.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dialtone_media::{AudioSlot, DeviceList, DeviceNotice, DeviceNotify, LinkEvent, VideoSlot};
use dialtone_protocol::{
    CallId, ClientFrame, ClientMessage, DeviceAddress, DeviceId, ErrorCode, PROTOCOL_VERSION, Profile, ServerMessage,
    UserId, decode_server, encode,
};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::api::{Command, EngineConfig, Event, Waker};
use crate::call::{Call, Direction, Effect, Input, Invitation};
use crate::links::{Links, LocalMedia, RemoteAudio, RemoteVideo, TaggedLinkEvent};
use crate::server::{self, ServerUrl};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long an incoming call may ring here if the server never ends it (the server's own timeout is
/// shorter; this only guards against a server that went quiet).
const INCOMING_RING_LIMIT: Duration = Duration::from_secs(150);

/// The longest wait between reconnect attempts while calls go on without the server.
const IN_CALL_RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// The engine was stopped and takes no more commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

/// Sends commands to a running engine; cloneable.
#[derive(Debug, Clone)]
pub struct EngineHandle(mpsc::UnboundedSender<Command>);

impl EngineHandle {
    /// Queues a command.
    pub fn send(&self, command: Command) -> Result<(), EngineStopped> {
        self.0.send(command).map_err(|_| EngineStopped)
    }
}

/// A running engine: send it [`Command`]s; its [`Event`]s come out of the receiver [`Engine::start`]
/// returned.
pub struct Engine {
    commands: EngineHandle,
    task: JoinHandle<()>,
    remote_video: RemoteVideo,
    remote_audio: RemoteAudio,
    local_video: Arc<VideoSlot>,
    local_audio: Arc<AudioSlot>,
    played_audio: Arc<AudioSlot>,
}

impl Engine {
    /// Starts the engine on the current tokio runtime.
    pub fn start(config: EngineConfig) -> (Engine, mpsc::UnboundedReceiver<Event>) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let (link_tx, link_events) = mpsc::unbounded_channel();
        let remote_video = RemoteVideo::default();
        let remote_audio = RemoteAudio::default();
        let wake = config.waker.clone().map(|waker| -> dialtone_media::Wake { waker });
        let preview_wake = config.preview_waker.clone().map(|waker| -> dialtone_media::Wake { waker }).or(wake.clone());
        let local_video = VideoSlot::new(preview_wake);
        let local_audio = AudioSlot::new();
        let played_audio = AudioSlot::new();
        let events_out = EventSink { events: event_tx, waker: config.waker.clone() };
        // Device threads report straight to the event stream: they run outside the engine's task.
        let notify: DeviceNotify = {
            let events = events_out.clone();
            Arc::new(move |notice: DeviceNotice| {
                let kind = notice.device.kind;
                events.emit(Event::DeviceInUse { kind, device: notice.device, problem: notice.problem });
            })
        };
        let local = LocalMedia {
            preview: local_video.clone(),
            local_audio: local_audio.clone(),
            played: played_audio.clone(),
            notify,
        };
        let mut media = config.media.clone();
        if let Some(media) = media.as_mut().filter(|media| media.bind_addrs.is_empty()) {
            // Loopback candidates only help a peer on this machine, which a server here suggests.
            let local = ServerUrl::parse(&config.server_url).is_ok_and(|url| url.is_loopback());
            media.bind_addrs = dialtone_media::every_interface(local);
        }
        let links = Links::new(media, link_tx, remote_video.clone(), remote_audio.clone(), wake, local);
        let runtime = Runtime {
            config,
            links,
            link_events,
            events: events_out,
            commands: command_rx,
            rng,
            calls: BTreeMap::new(),
            me: None,
            outbox: Vec::new(),
            seq: 0,
            video_frames_seen: BTreeMap::new(),
            speakers: BTreeMap::new(),
            resume_grace: Duration::ZERO,
            server_started_ms: None,
            resuming: std::collections::BTreeSet::new(),
        };
        let task = tokio::spawn(runtime.run());
        let commands = EngineHandle(commands);
        (Engine { commands, task, remote_video, remote_audio, local_video, local_audio, played_audio }, events)
    }

    /// The incoming video streams (latest decoded frame per remote device), for drawing.
    pub fn remote_video(&self) -> RemoteVideo {
        self.remote_video.clone()
    }

    /// The incoming audio streams (counters, level, the last half second per remote device).
    pub fn remote_audio(&self) -> RemoteAudio {
        self.remote_audio.clone()
    }

    /// What this device's camera captures (self view), while a call sends video or the preview is on
    /// ([`Command::Preview`]); empty otherwise.
    pub fn local_video(&self) -> Arc<VideoSlot> {
        self.local_video.clone()
    }

    /// What this device's microphone captures (for a level meter), while a call sends audio or the
    /// preview is on.
    pub fn local_audio(&self) -> Arc<AudioSlot> {
        self.local_audio.clone()
    }

    /// What the speaker plays (the mix of everyone in the call), while this device is in a call: for
    /// an output level meter, and what the silent fake speaker records.
    pub fn played_audio(&self) -> Arc<AudioSlot> {
        self.played_audio.clone()
    }

    /// Queues a command.
    pub fn send(&self, command: Command) -> Result<(), EngineStopped> {
        self.commands.send(command)
    }

    /// A cloneable handle that sends commands (for tasks that answer events).
    pub fn handle(&self) -> EngineHandle {
        self.commands.clone()
    }

    /// Stops the engine at once, as a crash would: no hangup is sent, the connection just drops. For
    /// testing how the others cope with a vanished peer.
    pub fn kill(self) {
        self.task.abort();
    }

    /// Asks the engine to hang up, sign out and stop, and waits until it has.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown);
        let _ = self.task.await;
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
    Fatal(String),
}

enum ConnectError {
    /// Worth trying again later.
    Transient(String),
    /// Will fail the same way every time.
    Fatal(String),
}

struct Runtime {
    config: EngineConfig,
    links: Links,
    link_events: mpsc::UnboundedReceiver<TaggedLinkEvent>,
    events: EventSink,
    commands: mpsc::UnboundedReceiver<Command>,
    rng: StdRng,
    calls: BTreeMap<CallId, Call>,
    me: Option<(UserId, DeviceId, Profile)>,
    outbox: Vec<ClientMessage>,
    seq: u64,
    /// Video frames counted at the last stats, per connection, for frame rates.
    video_frames_seen: BTreeMap<(CallId, DeviceAddress), u64>,
    /// The loudest member last reported, per call.
    speakers: BTreeMap<CallId, Option<dialtone_protocol::UserId>>,
    /// How long the server keeps this device's place in its calls after the connection drops (told at
    /// sign-in): calls and their media go on while the engine reconnects within it.
    resume_grace: Duration,
    /// When the server last signed in to started: a change means it restarted and lost its calls.
    server_started_ms: Option<u64>,
    /// Calls offered to a restarted server to take up again, not yet confirmed.
    resuming: std::collections::BTreeSet<CallId>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Where events go: the channel, then the UI's waker. Cloneable, for threads outside the engine's task.
#[derive(Clone)]
struct EventSink {
    events: mpsc::UnboundedSender<Event>,
    waker: Option<Waker>,
}

impl EventSink {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
        if let Some(waker) = &self.waker {
            waker();
        }
    }
}

impl Runtime {
    fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(message) => self.outbox.push(message),
                Effect::Emit(event) => {
                    self.follow_media(&event);
                    self.emit(event);
                }
            }
        }
    }

    /// Opens and closes peer connections as the call events say (see the `links` module).
    fn follow_media(&mut self, event: &Event) {
        let Some((user, device, _)) = &self.me else {
            return;
        };
        let me = DeviceAddress { user: user.clone(), device: device.clone() };
        let joined_here = match event {
            Event::CallActive { call } => {
                self.calls.get(&call.call).is_some_and(|c| c.direction() == Direction::Incoming)
            }
            _ => false,
        };
        self.links.follow(event, &me, joined_here);
    }

    /// Reports who is loudest in each active call, when that changes.
    fn update_speakers(&mut self) {
        self.speakers.retain(|call, _| self.calls.contains_key(call));
        let active: Vec<CallId> =
            self.calls.values().filter(|c| c.phase() == crate::call::Phase::Active).map(|c| c.id().clone()).collect();
        for call in active {
            let user = self.links.loudest(&call).map(|peer| peer.user);
            // A call starts with nobody speaking; that needs no event.
            if self.speakers.get(&call).cloned().flatten() != user {
                self.speakers.insert(call.clone(), user.clone());
                self.emit(Event::ActiveSpeaker { call, user });
            }
        }
    }

    fn link_event(&mut self, call: CallId, peer: DeviceAddress, generation: u64, event: LinkEvent) {
        match event {
            LinkEvent::Signal(payload) => {
                if self.calls.contains_key(&call) {
                    self.outbox.push(ClientMessage::Signal { call, to: peer, payload });
                }
            }
            LinkEvent::State { state, after, reason } => {
                let live = self.calls.get(&call).is_some_and(|c| !c.phase().is_over());
                if state == dialtone_media::LinkState::Disconnected {
                    // The network may have changed under this device: a ping now finds out at once whether
                    // the server connection went with it (instead of at the next heartbeat), so that it is
                    // made again in time for the media connection to be made again over it.
                    self.outbox.push(ClientMessage::Ping { nonce: 0 });
                }
                if state == dialtone_media::LinkState::Connected {
                    self.links.connected(&call, &peer);
                }
                if state == dialtone_media::LinkState::Failed && live && self.links.retry(&call, &peer, generation) {
                    self.video_frames_seen.remove(&(call.clone(), peer.clone()));
                } else if matches!(state, dialtone_media::LinkState::Closed | dialtone_media::LinkState::Failed) {
                    if !self.links.forget(&call, &peer, generation) {
                        return; // a replaced connection's last word: the newer one speaks for this device
                    }
                    self.video_frames_seen.remove(&(call.clone(), peer.clone()));
                }
                let after_ms = after.as_millis() as u64;
                self.emit(Event::MediaLink { call, peer, state, after_ms, reason });
            }
            LinkEvent::Stats(stats) => {
                let received = self.links.received(&call, &peer);
                let before =
                    self.video_frames_seen.insert((call.clone(), peer.clone()), received.video_frames).unwrap_or(0);
                let video_fps =
                    received.video_frames.saturating_sub(before) as f64 / dialtone_media::STATS_PERIOD.as_secs_f64();
                self.emit(Event::MediaStats {
                    call,
                    peer,
                    rtt_ms: stats.rtt_ms,
                    send_kbps: stats.send_kbps,
                    send_estimate_kbps: stats.send_estimate_kbps,
                    receive_kbps: stats.receive_kbps,
                    packets_lost: stats.packets_lost,
                    packets_received: stats.packets_received,
                    video_frames: received.video_frames,
                    video_frames_dropped: received.video_dropped,
                    video_freezes: received.video_freezes,
                    video_frozen_ms: received.video_frozen.as_millis() as u64,
                    video_fps,
                    video_width: received.video_size.0,
                    video_height: received.video_size.1,
                    audio_concealed: received.audio_concealed,
                    path: stats.path,
                });
            }
            LinkEvent::Error(message) => {
                self.emit(Event::Error {
                    code: None,
                    message: format!("media connection to {peer}: {message}"),
                    call: Some(call),
                });
            }
        }
    }

    fn error(&self, message: impl Into<String>, call: Option<CallId>) {
        self.emit(Event::Error { code: None, message: message.into(), call });
    }

    async fn run(mut self) {
        let mut attempt = 0u32;
        // While reconnecting: until when the server keeps this device's place in its calls.
        let mut calls_kept_until: Option<Instant> = None;
        loop {
            self.emit(Event::Connecting { url: self.config.server_url.clone(), attempt });
            let connected = match tokio::time::timeout(self.config.connect_timeout, self.connect()).await {
                Ok(result) => result,
                Err(_) => Err(ConnectError::Transient("timed out connecting".into())),
            };
            let reason = match connected {
                Ok((socket, heartbeat)) => {
                    attempt = 0;
                    calls_kept_until = None;
                    match self.session(socket, heartbeat).await {
                        SessionEnd::Shutdown => {
                            self.emit(Event::Stopped { reason: "shut down".into() });
                            return;
                        }
                        SessionEnd::Fatal(reason) => {
                            self.lose_calls();
                            self.emit(Event::Stopped { reason });
                            return;
                        }
                        SessionEnd::Lost(reason) => reason,
                    }
                }
                Err(ConnectError::Fatal(reason)) => {
                    self.lose_calls();
                    self.emit(Event::Stopped { reason });
                    return;
                }
                Err(ConnectError::Transient(reason)) => reason,
            };
            // The calls go on (media does not need the server) while the server keeps their places.
            let kept_until = *calls_kept_until.get_or_insert_with(|| Instant::now() + self.resume_grace);
            if self.calls.is_empty() || Instant::now() >= kept_until {
                self.lose_calls();
            }
            attempt += 1;
            let mut delay = self.config.backoff.delay(attempt, &mut self.rng);
            if !self.calls.is_empty() {
                // Calls wait for this device: the path coming back should find it back within a second.
                delay = delay.min(IN_CALL_RECONNECT_EVERY);
            }
            self.emit(Event::Reconnecting { reason, attempt, retry_in_ms: delay.as_millis() as u64 });
            let wake_at = Instant::now() + delay;
            loop {
                let keeping = !self.calls.is_empty();
                tokio::select! {
                    _ = tokio::time::sleep_until(wake_at) => break,
                    _ = tokio::time::sleep_until(kept_until), if keeping => self.lose_calls(),
                    Some((call, peer, generation, event)) = self.link_events.recv() => {
                        self.link_event(call, peer, generation, event);
                    }
                    command = self.commands.recv() => match command {
                        None | Some(Command::Shutdown) => {
                            self.emit(Event::Stopped { reason: "shut down".into() });
                            return;
                        }
                        Some(command) if command.is_local() => self.local_command(command),
                        // Leaving works offline: the call ends here, and the server is told on return.
                        Some(command @ (Command::Hangup { .. } | Command::SetMedia { .. })) if keeping => {
                            self.command(command)
                        }
                        Some(_) => self.error("not connected to the server; reconnecting", None),
                    }
                }
            }
        }
    }

    /// Signed in again: the calls the server kept go on, updated to what happened meanwhile; the others
    /// are over for this device.
    fn resume(&mut self, kept: Vec<dialtone_protocol::CallInfo>, server_started_ms: u64) {
        let at = now();
        let Some((me, _, _)) = self.me.clone() else { return };
        let restarted =
            self.server_started_ms.replace(server_started_ms).is_some_and(|before| before != server_started_ms);
        if restarted && kept.is_empty() {
            // The server restarted and knows no calls: the calls in progress are offered to it again (their
            // media never stopped); calls that were still ringing are over.
            let (active, other): (Vec<CallId>, Vec<CallId>) =
                self.calls.keys().cloned().partition(|id| self.calls[id].phase() == crate::call::Phase::Active);
            for id in other {
                self.feed(&id, Input::ConnectionLost);
            }
            if !active.is_empty() {
                let calls = active.iter().filter_map(|id| self.calls.get(id)).map(|c| c.info().clone()).collect();
                tracing::info!(calls = active.len(), "the server restarted; taking the calls up again");
                self.resuming = active.into_iter().collect();
                self.outbox.push(ClientMessage::Resume { calls });
            }
            return;
        }
        let gone: Vec<CallId> =
            self.calls.keys().filter(|id| !kept.iter().any(|info| &info.call == *id)).cloned().collect();
        for id in gone {
            self.feed(&id, Input::ConnectionLost);
        }
        for info in kept {
            let id = info.call.clone();
            let Some(call) = self.calls.get(&id).filter(|call| !call.phase().is_over()) else {
                // Left while the connection was down: the leave waits in the outbox.
                if self.outbox.iter().any(|message| message.call() == Some(&id)) {
                    continue;
                }
                // This device was in it before the engine started (the app restarted): join it again.
                let (call, effects) = Call::joined(info, me.clone(), at, self.config.request_timeout);
                self.calls.insert(id, call);
                self.apply(effects);
                continue;
            };
            // Who left while this device was away.
            let left: Vec<dialtone_protocol::UserId> = call
                .info()
                .members
                .iter()
                .filter(|m| m.user != me && m.status == dialtone_protocol::MemberStatus::Joined)
                .filter(|m| !info.members.iter().any(|now| now.user == m.user && now.status == m.status))
                .map(|m| m.user.clone())
                .collect();
            for user in left {
                let reason = dialtone_protocol::EndReason::ConnectionLost;
                self.feed(&id, Input::Server(ServerMessage::Left { call: id.clone(), user, reason }));
            }
            self.feed(&id, Input::Server(ServerMessage::CallState { call: info }));
            self.emit(Event::CallResumed { call: id });
        }
    }

    /// Every call still going on is over: the server ends them too when the connection drops.
    fn lose_calls(&mut self) {
        let at = now();
        let calls = std::mem::take(&mut self.calls);
        self.links.close_all();
        for (_, mut call) in calls {
            let effects = call.handle(Input::ConnectionLost, at);
            // Nothing can be sent any more; only the events matter.
            for effect in effects {
                if let Effect::Emit(event) = effect {
                    self.emit(event);
                }
            }
        }
        self.outbox.clear();
    }

    async fn connect(&mut self) -> Result<(Socket, Duration), ConnectError> {
        let url = ServerUrl::parse(&self.config.server_url).map_err(|error| ConnectError::Fatal(error.to_string()))?;
        url.check_clear_text(self.config.allow_clear_text).map_err(|error| ConnectError::Fatal(error.to_string()))?;
        let connector = match url.secure {
            true => Connector::Rustls(server::tls_config(self.config.server_fingerprint)),
            false => Connector::Plain,
        };
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            self.config.server_url.as_str(),
            None,
            true,
            Some(connector),
        );
        let (mut socket, _) = connecting.await.map_err(|error| match error {
            tungstenite::Error::Url(problem) => {
                ConnectError::Fatal(format!("bad server URL {:?}: {problem}", self.config.server_url))
            }
            other => match server::explain(&url, &other) {
                (reason, true) => ConnectError::Transient(reason),
                (reason, false) => ConnectError::Fatal(reason),
            },
        })?;
        let hello = ClientFrame {
            seq: None,
            message: ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                token: self.config.token.clone(),
                device: self.config.device.clone(),
            },
        };
        socket
            .send(Message::Text(encode(&hello).into()))
            .await
            .map_err(|error| ConnectError::Transient(format!("sending hello: {error}")))?;
        loop {
            let frame = socket.next().await;
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None => {
                    return Err(ConnectError::Transient("the server closed the connection during sign-in".into()));
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    return Err(ConnectError::Transient(format!("during sign-in: {error}")));
                }
            };
            match decode_server(&text) {
                Ok(ServerMessage::Welcome {
                    user,
                    device,
                    profile,
                    heartbeat_ms,
                    ice_servers,
                    calls,
                    resume_grace_ms,
                    server_started_ms,
                    ..
                }) => {
                    self.me = Some((user.clone(), device.clone(), profile.clone()));
                    self.links.use_signaling_ice(ice_servers);
                    self.resume_grace = Duration::from_millis(resume_grace_ms);
                    self.emit(Event::SignedIn { user, device, profile });
                    self.resume(calls, server_started_ms);
                    return Ok((socket, Duration::from_millis(heartbeat_ms.max(1_000))));
                }
                Ok(ServerMessage::Error { code, message, .. }) => {
                    self.emit(Event::Error { code: Some(code), message: message.clone(), call: None });
                    return Err(match code {
                        ErrorCode::InvalidToken | ErrorCode::TokenExpired | ErrorCode::VersionMismatch => {
                            ConnectError::Fatal(format!("sign-in refused: {message}"))
                        }
                        _ => ConnectError::Transient(format!("sign-in failed: {message}")),
                    });
                }
                Ok(_) => continue,
                Err(error) => {
                    return Err(ConnectError::Transient(format!("unreadable server message: {error}")));
                }
            }
        }
    }

    async fn session(&mut self, socket: Socket, heartbeat: Duration) -> SessionEnd {
        let (mut sink, mut stream) = socket.split();
        if let Some(watch) = self.config.watch_presence.clone() {
            self.outbox.push(ClientMessage::WatchPresence { users: watch });
        }
        // Half the server's heartbeat, so one late ping never gets us dropped.
        let silence_limit = heartbeat;
        let mut heartbeat = tokio::time::interval(heartbeat / 2);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut nonce = 0u64;
        // Speaking levels change fast; a quarter second is quick enough for a highlight that follows them.
        let mut speaking = tokio::time::interval(Duration::from_millis(250));
        speaking.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The server answers every ping: a heartbeat's silence (two pings unanswered) means the path is
        // gone even though the socket has not said so (a network change, a cable pulled).
        let mut last_heard = Instant::now();
        loop {
            if let Err(error) = self.flush(&mut sink).await {
                return SessionEnd::Lost(format!("sending: {error}"));
            }
            let next_deadline = self.calls.values().filter_map(Call::deadline).min().map(Instant::from_std);
            tokio::select! {
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => {
                        self.hang_up_all();
                        let _ = self.flush(&mut sink).await;
                        let _ = sink.close().await;
                        return SessionEnd::Shutdown;
                    }
                    Some(command) => self.command(command),
                },
                _ = tokio::time::sleep_until(last_heard + silence_limit) => {
                    return SessionEnd::Lost("the server stopped answering".into());
                }
                frame = stream.next() => {
                    if matches!(frame, Some(Ok(_))) {
                        last_heard = Instant::now();
                    }
                    match frame {
                        Some(Ok(Message::Text(text))) => match decode_server(&text) {
                            Ok(message) => if let Some(end) = self.server_message(message) {
                                return end;
                            },
                            Err(error) => self.error(format!("unreadable server message: {error}"), None),
                        },
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                            return SessionEnd::Lost(format!("the server closed the connection {why}").trim_end().to_owned());
                        }
                        Some(Ok(_)) => {}
                        Some(Err(error)) => return SessionEnd::Lost(format!("connection error: {error}")),
                        None => return SessionEnd::Lost("the connection closed".into()),
                    }
                }
                Some((call, peer, generation, event)) = self.link_events.recv() => self.link_event(call, peer, generation, event),
                _ = speaking.tick(), if self.links.enabled() => self.update_speakers(),
                _ = heartbeat.tick() => {
                    nonce += 1;
                    self.outbox.push(ClientMessage::Ping { nonce });
                }
                _ = tokio::time::sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                    let at = now();
                    let due: Vec<CallId> = self.calls.values()
                        .filter(|c| c.deadline().is_some_and(|d| d <= at))
                        .map(|c| c.id().clone())
                        .collect();
                    for id in due {
                        self.feed(&id, Input::Tick);
                    }
                }
            }
        }
    }

    async fn flush(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    ) -> Result<(), tungstenite::Error> {
        for message in std::mem::take(&mut self.outbox) {
            self.seq += 1;
            let frame = ClientFrame { seq: Some(self.seq), message };
            sink.feed(Message::Text(encode(&frame).into())).await?;
        }
        sink.flush().await
    }

    fn hang_up_all(&mut self) {
        let ids: Vec<CallId> = self.calls.keys().cloned().collect();
        for id in ids {
            let input = match self.calls[&id].phase() {
                crate::call::Phase::Incoming => Input::Decline { busy: false },
                crate::call::Phase::Ended(_) => continue,
                _ => Input::Hangup,
            };
            self.feed(&id, input);
        }
    }

    /// Feeds one input to one call and forgets the call once it is finished.
    fn feed(&mut self, id: &CallId, input: Input) {
        let at = now();
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let effects = call.handle(input, at);
        let finished = call.is_finished(at);
        self.apply(effects);
        if finished {
            self.calls.remove(id);
        }
    }

    fn new_call_id(&mut self) -> CallId {
        let value: u64 = self.rng.random();
        CallId::new(format!("c{value:016x}")).expect("a hex id is valid")
    }

    /// Commands that concern only this device.
    fn local_command(&mut self, command: Command) {
        match command {
            Command::Preview { on } => self.links.set_preview(on),
            Command::UseDevices(devices) => self.links.use_devices(devices),
            Command::RelayOnly(on) => self.links.set_relay_only(on),
            Command::ListDevices => {
                let events = self.events.clone();
                // Asking the system takes a while; never on the engine's task.
                tokio::task::spawn_blocking(move || events.emit(Event::Devices { devices: DeviceList::query() }));
            }
            other => tracing::error!(?other, "not a local command"),
        }
    }

    fn command(&mut self, command: Command) {
        if command.is_local() {
            return self.local_command(command);
        }
        let Some(me) = self.me.clone() else {
            return self.error("not signed in yet", None);
        };
        match command {
            Command::Call { call, users, kind, group, ring_timeout } => {
                if users.is_empty() {
                    return self.error("a call needs someone to call", None);
                }
                let live = |id: &&CallId| self.calls.get(*id).is_some_and(|c| !c.phase().is_over());
                if let Some(existing) = call.as_ref().filter(live) {
                    let existing = existing.clone();
                    return self.feed(&existing, Input::Invite(users));
                }
                let id = call.unwrap_or_else(|| self.new_call_id());
                let invitation = Invitation { users, kind, group, ring_timeout };
                let (call, effects) = Call::place(id.clone(), me, invitation, now(), self.config.request_timeout);
                self.calls.insert(id, call);
                self.apply(effects);
            }
            Command::Accept { call, media } => self.command_for(call, Input::Accept(media)),
            Command::Decline { call, busy } => self.command_for(call, Input::Decline { busy }),
            Command::Cancel { call } => self.command_for(call, Input::Cancel),
            Command::Hangup { call } => self.command_for(call, Input::Hangup),
            Command::Invite { call, users } => self.command_for(call, Input::Invite(users)),
            Command::SetMedia { call, media } => {
                if self.calls.get(&call).is_some_and(|c| c.phase().is_joined()) {
                    self.links.set_camera(&call, media.camera_on);
                    self.links.set_microphone(&call, !media.audio_muted);
                }
                self.command_for(call, Input::SetMedia(media))
            }
            Command::RetryMedia { call } => {
                let me = DeviceAddress { user: me.0.clone(), device: me.1.clone() };
                match self.calls.get(&call).filter(|c| c.phase().is_joined()) {
                    Some(joined) => self.links.retry_unreached(&joined.info().clone(), &me),
                    None => self.error(format!("no call {call} in progress"), Some(call)),
                }
            }
            Command::Signal { call, to, payload } => {
                if self.calls.contains_key(&call) {
                    self.outbox.push(ClientMessage::Signal { call, to, payload });
                } else {
                    self.error(format!("no call {call}"), Some(call));
                }
            }
            Command::WatchPresence(users) => self.outbox.push(ClientMessage::WatchPresence { users }),
            Command::SetProfile { display_name, avatar } => {
                self.outbox.push(ClientMessage::SetProfile { display_name, avatar })
            }
            Command::SetPicture(Some(bytes)) => {
                use base64::Engine as _;
                // The server checks the type; an unknown one is sent as such, to be refused with a reason.
                let mime = dialtone_protocol::PictureKind::of(&bytes).map_or("application/octet-stream", |k| k.mime());
                let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
                self.outbox.push(ClientMessage::SetPicture { mime: mime.to_owned(), data });
            }
            Command::SetPicture(None) => {
                self.outbox.push(ClientMessage::SetProfile { display_name: None, avatar: Some(String::new()) })
            }
            Command::GetPicture { avatar } => self.outbox.push(ClientMessage::GetPicture { avatar }),
            Command::Preview { .. } | Command::ListDevices | Command::UseDevices(_) | Command::RelayOnly(_) => {
                unreachable!("local commands are handled above")
            }
            Command::Shutdown => unreachable!("handled by the session loop"),
        }
    }

    fn command_for(&mut self, call: CallId, input: Input) {
        if self.calls.contains_key(&call) {
            self.feed(&call, input);
        } else {
            self.error(format!("no call {call}"), Some(call));
        }
    }

    /// Handles one server message; `Some` ends the session.
    fn server_message(&mut self, message: ServerMessage) -> Option<SessionEnd> {
        let (me, _, _) = self.me.clone()?;
        if let ServerMessage::CallState { call } = &message
            && self.resuming.remove(&call.call)
        {
            self.emit(Event::CallResumed { call: call.call.clone() });
        }
        let at = now();
        match message {
            ServerMessage::Welcome { .. } | ServerMessage::Pong { .. } => {}
            ServerMessage::Error { code: ErrorCode::Replaced, message, .. } => {
                return Some(SessionEnd::Fatal(format!("signed in elsewhere with this device name: {message}")));
            }
            ServerMessage::Error { code: ErrorCode::ShuttingDown, message, .. } => {
                return Some(SessionEnd::Lost(message));
            }
            ServerMessage::Error { code, message, call: Some(call), .. } if self.resuming.remove(&call) => {
                // The restarted server would not take the call up again: it is over here too.
                self.emit(Event::Error { code: Some(code), message, call: Some(call.clone()) });
                self.feed(&call, Input::ConnectionLost);
            }
            ServerMessage::Error { code, message, call: Some(call), .. } if self.calls.contains_key(&call) => {
                self.feed(&call, Input::Refused(code, message));
            }
            ServerMessage::Error { code, message, call, .. } => {
                self.emit(Event::Error { code: Some(code), message, call })
            }
            ServerMessage::Presence { users } => self.emit(Event::Presence { users }),
            ServerMessage::PresenceChanged { entry } => self.emit(Event::PresenceChanged { entry }),
            ServerMessage::Picture { avatar, mime, data } => {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(&data) {
                    Ok(data) if dialtone_protocol::picture_ref(&data) == avatar => {
                        self.emit(Event::Picture { avatar, mime, data })
                    }
                    _ => self.error(format!("the server sent a damaged picture for {avatar}"), None),
                }
            }
            ServerMessage::MissedCalls { calls } => self.emit(Event::MissedCalls { calls }),
            ServerMessage::Incoming { call, from } => {
                // A call this device already left may ring again (invited back into a group call).
                if self.calls.get(&call.call).is_none_or(|c| c.phase().is_over()) {
                    let id = call.call.clone();
                    let (call, effects) =
                        Call::incoming(call, from, me, at, INCOMING_RING_LIMIT, self.config.request_timeout);
                    self.calls.insert(id, call);
                    self.apply(effects);
                }
            }
            ServerMessage::Merged { call, into } => {
                // Our call did not fail: it continues as `into`, so it ends without a `call_ended`.
                self.calls.remove(&call);
                self.emit(Event::Merged { call, into: into.call.clone() });
                // The other side's call may be ringing here already; it is joined now.
                let id = into.call.clone();
                let (call, effects) = Call::joined(into, me, at, self.config.request_timeout);
                self.calls.insert(id, call);
                self.apply(effects);
            }
            ServerMessage::CallState { call } if !self.calls.contains_key(&call.call) => {
                let id = call.call.clone();
                let (call, effects) = Call::joined(call, me, at, self.config.request_timeout);
                self.calls.insert(id, call);
                self.apply(effects);
            }
            ServerMessage::Signal { call, from, payload } if self.calls.contains_key(&call) => {
                if self.links.enabled() {
                    let here = DeviceAddress { user: me.clone(), device: self.config.device.clone() };
                    self.links.signal(&call, from, payload, &here);
                } else {
                    self.emit(Event::Signal { call, from, payload });
                }
            }
            // A late signal for a call this device has already left.
            ServerMessage::Signal { .. } => {}
            message @ (ServerMessage::CallState { .. }
            | ServerMessage::Ringing { .. }
            | ServerMessage::Joined { .. }
            | ServerMessage::Left { .. }
            | ServerMessage::Ended { .. }
            | ServerMessage::MediaChanged { .. }
            | ServerMessage::KindChanged { .. }) => {
                let id = match &message {
                    ServerMessage::CallState { call } => call.call.clone(),
                    ServerMessage::Ringing { call, .. }
                    | ServerMessage::Joined { call, .. }
                    | ServerMessage::Left { call, .. }
                    | ServerMessage::Ended { call, .. }
                    | ServerMessage::MediaChanged { call, .. }
                    | ServerMessage::KindChanged { call, .. } => call.clone(),
                    _ => unreachable!("matched above"),
                };
                self.feed(&id, Input::Server(message));
            }
        }
        None
    }
}
