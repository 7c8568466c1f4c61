//! The engine's task: connects, signs in, reconnects with backoff, and feeds commands, server messages
//! and time to the calls' state machines, sending and emitting what they return.

use std::sync::Arc;
use std::time::Duration;

use dialtone_media::{AudioSlot, DeviceList, DeviceNotice, DeviceNotify, LinkEvent, VideoSlot};
use dialtone_protocol::{
    CallId, ClientFrame, ClientMessage, DeviceAddress, ErrorCode, PROTOCOL_VERSION, ServerMessage, decode_server,
    encode,
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
use crate::core::{Core, CoreConfig, Disconnect, LinkChange, Output, SignedIn};
use crate::links::{Links, LocalMedia, RemoteAudio, RemoteVideo, TaggedLinkEvent};
use crate::server::{self, ServerUrl};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
        let mut rng = rng;
        let core_config = CoreConfig {
            request_timeout: config.request_timeout,
            watch_presence: config.watch_presence.clone(),
            media: links.enabled(),
        };
        let core = Core::new(core_config, StdRng::seed_from_u64(rng.random()));
        let runtime = Runtime {
            config,
            core,
            links,
            link_events,
            events: events_out,
            commands: command_rx,
            rng,
            pings: Vec::new(),
            seq: 0,
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

/// The engine's task: the core's logic (`core.rs`) with sockets, timers and the media links around it.
struct Runtime {
    config: EngineConfig,
    core: Core,
    links: Links,
    link_events: mpsc::UnboundedReceiver<TaggedLinkEvent>,
    events: EventSink,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Reconnect delays' jitter.
    rng: StdRng,
    /// Heartbeats waiting to be sent (the core's messages go first).
    pings: Vec<ClientMessage>,
    seq: u64,
}

/// The clock the core is given: tokio's, so that tests with a paused clock move it.
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

    /// Performs what the core gave out: events to the app, changes to the links.
    fn drain(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Event(event) => self.events.emit(event),
                Output::Link(change) => self.change_links(change),
            }
        }
    }

    fn change_links(&mut self, change: LinkChange) {
        match change {
            LinkChange::Follow { event, me, joined_here } => self.links.follow(&event, &me, joined_here),
            LinkChange::Signal { call, from, payload, me } => self.links.signal(&call, from, payload, &me),
            LinkChange::Media { call, camera, microphone } => {
                self.links.set_camera(&call, camera);
                self.links.set_microphone(&call, microphone);
            }
            LinkChange::RetryUnreached { call, me } => self.links.retry_unreached(&call, &me),
            LinkChange::UseIce(servers) => self.links.use_signaling_ice(servers),
            LinkChange::CloseAll => self.links.close_all(),
        }
    }

    fn link_event(&mut self, call: CallId, peer: DeviceAddress, generation: u64, event: LinkEvent) {
        match event {
            LinkEvent::Signal(payload) => self.core.link_signal(call, peer, payload),
            LinkEvent::State { state, after, reason } => {
                let fate = self.links.settle(&call, &peer, generation, state, self.core.is_live(&call));
                self.core.link_state(call, peer, state, after, reason, fate);
            }
            LinkEvent::Stats(stats) => {
                let received = self.links.received(&call, &peer);
                self.core.link_stats(call, peer, stats, received);
            }
            LinkEvent::Error(message) => self.core.link_error(call, peer, message),
        }
        self.drain();
    }

    /// Tells the core who is loudest in each call in progress.
    fn update_speakers(&mut self) {
        let loudest = self
            .core
            .active_calls()
            .into_iter()
            .map(|call| {
                let user = self.links.loudest(&call).map(|peer| peer.user);
                (call, user)
            })
            .collect();
        self.core.speakers(loudest);
        self.drain();
    }

    fn command(&mut self, command: Command) {
        if command.is_local() {
            return self.local_command(command);
        }
        self.core.command(command, now());
        self.drain();
    }

    /// The core's timers are due.
    fn timeout(&mut self) {
        self.core.timeout(now());
        self.drain();
    }

    /// The engine stops: every call is over.
    fn stop(&mut self, reason: String) {
        self.core.stopped(now());
        self.drain();
        self.emit(Event::Stopped { reason });
    }

    async fn run(mut self) {
        let mut attempt = 0u32;
        loop {
            self.emit(Event::Connecting { url: self.config.server_url.clone(), attempt });
            let connected = match tokio::time::timeout(self.config.connect_timeout, self.connect()).await {
                Ok(result) => result,
                Err(_) => Err(ConnectError::Transient("timed out connecting".into())),
            };
            let reason = match connected {
                Ok((socket, heartbeat)) => {
                    attempt = 0;
                    match self.session(socket, heartbeat).await {
                        SessionEnd::Shutdown => {
                            self.emit(Event::Stopped { reason: "shut down".into() });
                            return;
                        }
                        SessionEnd::Fatal(reason) => return self.stop(reason),
                        SessionEnd::Lost(reason) => reason,
                    }
                }
                Err(ConnectError::Fatal(reason)) => return self.stop(reason),
                Err(ConnectError::Transient(reason)) => reason,
            };
            // The calls go on (media does not need the server) while the server keeps their places.
            self.core.connection_lost(now());
            self.drain();
            attempt += 1;
            let mut delay = self.config.backoff.delay(attempt, &mut self.rng);
            if self.core.has_calls() {
                // Calls wait for this device: the path coming back should find it back within a second.
                delay = delay.min(IN_CALL_RECONNECT_EVERY);
            }
            self.emit(Event::Reconnecting { reason, attempt, retry_in_ms: delay.as_millis() as u64 });
            let wake_at = Instant::now() + delay;
            loop {
                let deadline = self.core.poll_timeout().map(Instant::from_std);
                tokio::select! {
                    _ = tokio::time::sleep_until(wake_at) => break,
                    _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                        self.timeout();
                    }
                    Some((call, peer, generation, event)) = self.link_events.recv() => {
                        self.link_event(call, peer, generation, event);
                    }
                    command = self.commands.recv() => match command {
                        None | Some(Command::Shutdown) => {
                            self.emit(Event::Stopped { reason: "shut down".into() });
                            return;
                        }
                        Some(command) => self.command(command),
                    }
                }
            }
        }
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
                    let resume_grace = Duration::from_millis(resume_grace_ms);
                    let welcome =
                        SignedIn { user, device, profile, ice_servers, calls, resume_grace, server_started_ms };
                    self.core.signed_in(welcome, now());
                    self.drain();
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
            let next_deadline = self.core.poll_timeout().map(Instant::from_std);
            tokio::select! {
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => {
                        self.core.hang_up_all(now());
                        self.drain();
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
                            Ok(message) => {
                                let disconnect = self.core.server_message(message, now());
                                self.drain();
                                match disconnect {
                                    Some(Disconnect::Stop(reason)) => return SessionEnd::Fatal(reason),
                                    Some(Disconnect::Reconnect(reason)) => return SessionEnd::Lost(reason),
                                    None => {}
                                }
                            }
                            Err(error) => {
                                let message = format!("unreadable server message: {error}");
                                self.emit(Event::Error { code: None, message, call: None });
                            }
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
                    self.pings.push(ClientMessage::Ping { nonce });
                }
                _ = tokio::time::sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                    self.timeout();
                }
            }
        }
    }

    async fn flush(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    ) -> Result<(), tungstenite::Error> {
        let mut messages = self.core.take_sends();
        messages.append(&mut self.pings);
        for message in messages {
            self.seq += 1;
            let frame = ClientFrame { seq: Some(self.seq), message };
            sink.feed(Message::Text(encode(&frame).into())).await?;
        }
        sink.flush().await
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
}
