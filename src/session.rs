//! The app's link to calling: an engine signed in as this user, and, when no server is configured, an
//! embedded server with the demo contacts (Echo and a group of three) on this machine.
//!
//! The UI talks to this only through [`Session::send`] (engine commands), [`Session::next_event`]
//! (engine events) and the engine's video slots; it never touches sockets or devices.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_engine::{
    AudioSlot, CameraConfig, Command, DeviceChoice, Engine, EngineConfig, Event, MediaConfig, MicrophoneConfig,
    RemoteAudio, RemoteVideo, VideoSlot, Waker,
};
use dialtone_protocol::{DeviceId, Fingerprint, IdError, MediaState, UserId};
use dialtone_server::{Secret, ServerConfig, ServerHandle, TlsIdentity};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::model::Group;

/// The file the embedded server's signing key lives in, under the data folder: a second app on this
/// machine reads it to sign in to the first one's server.
pub const SECRET_FILE: &str = "server-secret";

/// Where to sign in.
#[derive(Debug, Clone, PartialEq)]
pub enum Server {
    /// Run a server on this machine, on `port` if it is free (else any), with the demo contacts when
    /// `demo`: on 127.0.0.1, or for the whole network (with a self-signed certificate) when `on_network`.
    Embedded {
        /// The preferred port; 0 for any.
        port: u16,
        /// Start Echo and the demo group.
        demo: bool,
        /// Listen on every interface, over TLS, so that people on this network can sign in with an
        /// invite link.
        on_network: bool,
    },
    /// Use this server.
    Remote {
        /// Its `wss://` URL (`ws://` on this machine, or with `allow_clear_text`).
        url: String,
        /// A sign-in token; `None` mints one with the key in the data folder (a server on this machine).
        token: Option<String>,
        /// Trust only its certificate with this fingerprint (a self-signed server).
        fingerprint: Option<Fingerprint>,
        /// Send the token over `ws://` to another machine, as the user asked.
        allow_clear_text: bool,
    },
}

/// Who to be and where.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where to sign in.
    pub server: Server,
    /// This user's id.
    pub user: UserId,
    /// This user's display name.
    pub display_name: String,
    /// This device's name.
    pub device: DeviceId,
    /// Where the embedded server's key is kept.
    pub data_dir: PathBuf,
    /// The camera's format.
    pub camera: CameraConfig,
    /// The devices to start with: the system's, or the fake twins (tests, `--fake-devices`).
    pub devices: DeviceChoice,
    /// Connect calls only through a relay, hiding this computer's addresses.
    pub relay_only: bool,
}

/// Why the session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No async runtime.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The embedded server could not start.
    #[error("cannot start the embedded server: {0}")]
    Server(#[from] dialtone_server::ServerError),
    /// The embedded server's key could not be read or created.
    #[error("{0}")]
    Secret(#[from] dialtone_server::token::SecretError),
    /// A token could not be made.
    #[error("cannot make a sign-in token: {0}")]
    Token(#[from] dialtone_server::TokenError),
    /// A user or device name that is not a valid id.
    #[error("{0}")]
    Id(#[from] IdError),
    /// The certificate for hosting on the network could not be made or read.
    #[error("cannot serve the network securely: {0}")]
    Tls(#[from] dialtone_server::TlsError),
    /// An invitation was asked for while this machine does not host for the network.
    #[error(
        "this computer does not let people on the network call in: turn on \"Let people on my network call me\" first"
    )]
    NotHosting,
    /// No network address to give out.
    #[error("this computer has no network address to invite people to")]
    NoAddress,
    /// A remote server without a token, and no key on this machine to make one.
    #[error("no sign-in token for {url}: pass --token (or set it in settings)")]
    NoToken {
        /// The server.
        url: String,
    },
}

/// A demo contact: who, and the tone its fake microphone plays.
struct DemoContact {
    user: &'static str,
    name: &'static str,
    tone_hz: f32,
    mirror: bool,
}

const ECHO: DemoContact = DemoContact { user: "echo", name: "Echo", tone_hz: 0.0, mirror: true };
const DEMO_GROUP: [DemoContact; 3] = [
    DemoContact { user: "ada", name: "Ada", tone_hz: 330.0, mirror: false },
    DemoContact { user: "grace", name: "Grace", tone_hz: 523.0, mirror: false },
    DemoContact { user: "alan", name: "Alan", tone_hz: 659.0, mirror: false },
];
/// What the demo group is called in the contacts.
pub const DEMO_GROUP_NAME: &str = "Demo group";
/// How long demo contacts let a call ring before answering, so the ringing view shows.
const DEMO_ANSWER_AFTER: Duration = Duration::from_millis(1_200);

/// A running session.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    engine: Option<Engine>,
    events: UnboundedReceiver<Event>,
    server: Option<ServerHandle>,
    demo: Vec<Engine>,
    server_url: String,
    /// When hosting for the network: what invitations are made with.
    host: Option<Host>,
    groups: Vec<Group>,
    /// The demo contacts' ids, in the order of `demo`.
    demo_users: Vec<UserId>,
    /// This user.
    me: Option<UserId>,
    remote_video: RemoteVideo,
    remote_audio: RemoteAudio,
    local_video: Arc<VideoSlot>,
    local_audio: Arc<AudioSlot>,
    played_audio: Arc<AudioSlot>,
}

/// What an embedded server open to the network invites people with.
struct Host {
    secret: Secret,
    port: u16,
    fingerprint: Fingerprint,
}

/// How long an invitation made in the app works.
const INVITE_VALID_FOR: Duration = Duration::from_secs(7 * 86_400);

/// The folder the embedded server's self-signed certificate is kept in, under the data folder.
pub const TLS_FOLDER: &str = "server-tls";

/// How the engine wakes the UI.
pub struct Wakers {
    /// An event or a remote picture arrived.
    pub now: Waker,
    /// The self view has a new picture.
    pub preview: Waker,
}

impl Session {
    /// Starts the server (when embedded), the demo contacts, and this user's engine, which calls
    /// `wakers` whenever an event or a picture arrives.
    pub fn start(config: SessionConfig, wakers: Wakers) -> Result<Session, SessionError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dialtone-engine")
            .enable_all()
            .build()?;
        // The demo contacts always use fake devices; this user's engine gets the chosen ones below.
        let media = MediaConfig { camera: config.camera, ..MediaConfig::default() };
        let mut host: Option<Host> = None;
        let (server, server_url, token, demo, groups) = match &config.server {
            Server::Embedded { port, demo, on_network } => {
                let secret = Secret::load_or_create(&config.data_dir.join(SECRET_FILE))?;
                let ip: std::net::IpAddr = if *on_network { [0, 0, 0, 0].into() } else { [127, 0, 0, 1].into() };
                let tls = match on_network {
                    true => Some(TlsIdentity::self_signed_in(&config.data_dir.join(TLS_FOLDER), &certificate_names())?),
                    false => None,
                };
                let server_config = |port: u16| {
                    let mut server_config = ServerConfig::new((ip, port).into(), secret.clone());
                    server_config.tls = tls.clone();
                    server_config
                };
                let server = runtime.block_on(async {
                    let preferred = dialtone_server::spawn(server_config(*port)).await;
                    match preferred {
                        Ok(server) => Ok(server),
                        Err(error) if *port != 0 => {
                            tracing::info!(%error, "preferred port taken; using any free port");
                            dialtone_server::spawn(server_config(0)).await
                        }
                        Err(error) => Err(error),
                    }
                })?;
                // This app reaches its own server on loopback, pinned like anyone else.
                let bound = server.local_addr().port();
                let url = match &tls {
                    Some(_) => format!("wss://127.0.0.1:{bound}"),
                    None => server.url(),
                };
                let fingerprint = tls.as_ref().map(|tls| tls.fingerprint);
                host = tls.map(|tls| Host { secret: secret.clone(), port: bound, fingerprint: tls.fingerprint });
                let token = mint(&secret, &config.user, &config.display_name)?;
                let (engines, groups) = if *demo {
                    let _guard = runtime.enter();
                    let mut engines = vec![start_demo(&secret, &url, fingerprint, &ECHO, &media)?];
                    for contact in &DEMO_GROUP {
                        engines.push(start_demo(&secret, &url, fingerprint, contact, &media)?);
                    }
                    let members = DEMO_GROUP.iter().filter_map(|c| UserId::new(c.user).ok()).collect();
                    (engines, vec![Group { name: DEMO_GROUP_NAME.to_owned(), members }])
                } else {
                    (Vec::new(), Vec::new())
                };
                (Some(server), url, token, engines, groups)
            }
            Server::Remote { url, token, .. } => {
                let token = match token {
                    Some(token) => token.clone(),
                    None => {
                        let path = config.data_dir.join(SECRET_FILE);
                        if !path.exists() {
                            return Err(SessionError::NoToken { url: url.clone() });
                        }
                        mint(&Secret::load_or_create(&path)?, &config.user, &config.display_name)?
                    }
                };
                (None, url.clone(), token, Vec::new(), Vec::new())
            }
        };
        let mut engine_config = EngineConfig::new(&server_url, token, config.device.clone());
        match &config.server {
            Server::Remote { fingerprint, allow_clear_text, .. } => {
                engine_config.server_fingerprint = *fingerprint;
                engine_config.allow_clear_text = *allow_clear_text;
            }
            Server::Embedded { .. } => engine_config.server_fingerprint = host.as_ref().map(|host| host.fingerprint),
        }
        engine_config.watch_presence = Some(None);
        engine_config.waker = Some(wakers.now);
        engine_config.preview_waker = Some(wakers.preview);
        engine_config.media =
            Some(MediaConfig { devices: config.devices.clone(), relay_only: config.relay_only, ..media });
        let (engine, events) = {
            let _guard = runtime.enter();
            Engine::start(engine_config)
        };
        Ok(Session {
            remote_video: engine.remote_video(),
            remote_audio: engine.remote_audio(),
            local_video: engine.local_video(),
            local_audio: engine.local_audio(),
            played_audio: engine.played_audio(),
            runtime,
            engine: Some(engine),
            events,
            server,
            demo_users: if demo.is_empty() {
                Vec::new()
            } else {
                std::iter::once(&ECHO).chain(&DEMO_GROUP).filter_map(|c| UserId::new(c.user).ok()).collect()
            },
            demo,
            me: Some(config.user.clone()),
            server_url,
            host,
            groups,
        })
    }

    /// The server's URL (for others on this machine to call in).
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Whether the embedded server lets people on the network sign in.
    pub fn is_hosting(&self) -> bool {
        self.host.is_some()
    }

    /// An invite link for a new person on this network (`user`, shown as `name`), valid for a week: this
    /// computer's network address, a token made with the embedded server's key, and its certificate's
    /// fingerprint.
    pub fn invite_link(&self, user: &UserId, name: &str) -> Result<String, SessionError> {
        let host = self.host.as_ref().ok_or(SessionError::NotHosting)?;
        let address = network_address().ok_or(SessionError::NoAddress)?;
        let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + INVITE_VALID_FOR;
        let token = dialtone_server::mint(&host.secret, user, name, expires.as_secs())?;
        let server = format!("wss://{}", std::net::SocketAddr::new(address, host.port));
        Ok(dialtone_protocol::Invite { server, token, fingerprint: Some(host.fingerprint) }.to_string())
    }

    /// Whether the server runs inside this app.
    pub fn is_embedded(&self) -> bool {
        self.server.is_some()
    }

    /// Groups to offer among the contacts.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Has a demo contact call this user (the screenshot tour shows the incoming view this way).
    pub fn ring_me_from(&self, demo_user: &str, kind: dialtone_protocol::CallKind) {
        let Some(me) = &self.me else { return };
        if let Some((_, engine)) = self.demo_users.iter().zip(&self.demo).find(|(user, _)| user.as_str() == demo_user) {
            let _ = engine.send(Command::Call {
                call: None,
                users: vec![me.clone()],
                kind,
                group: false,
                ring_timeout: None,
                media: None,
            });
        }
    }

    /// Asks the engine to do something; false once it stopped.
    pub fn send(&self, command: Command) -> bool {
        self.engine.as_ref().is_some_and(|engine| engine.send(command).is_ok())
    }

    /// The session's runtime, for the app's own background work (desktop notifications).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// Runs a future to completion on the session's runtime (from the UI thread, for short work).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Whether events are waiting.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if one is waiting.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Incoming video, by call and device.
    pub fn remote_video(&self) -> &RemoteVideo {
        &self.remote_video
    }

    /// Incoming audio, by call and device.
    pub fn remote_audio(&self) -> &RemoteAudio {
        &self.remote_audio
    }

    /// This device's camera picture.
    pub fn local_video(&self) -> &Arc<VideoSlot> {
        &self.local_video
    }

    /// This device's microphone sound (for the level meter).
    pub fn local_audio(&self) -> &Arc<AudioSlot> {
        &self.local_audio
    }

    /// What the speaker plays in calls (for the output level meter).
    pub fn played_audio(&self) -> &Arc<AudioSlot> {
        &self.played_audio
    }

    /// Hangs up, signs out, stops the demo contacts and the server; waits at most two seconds.
    pub fn shutdown(&mut self) {
        let engines: Vec<Engine> = self.engine.take().into_iter().chain(self.demo.drain(..)).collect();
        let server = self.server.take();
        self.runtime.block_on(async move {
            let stopping = async {
                futures_join_all(engines.into_iter().map(Engine::shutdown)).await;
                if let Some(server) = server {
                    server.shutdown().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), stopping).await;
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Waits for every future (a tiny join_all, to avoid a dependency for one call).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futures: impl Iterator<Item = F>) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for handle in handles {
        let _ = handle.await;
    }
}

/// This computer's address on its network, to invite people to: a private (home or office) IPv4
/// address if it has one, else any address that is neither loopback nor link-local.
fn network_address() -> Option<std::net::IpAddr> {
    let addresses: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|interface| interface.ip())
        .filter(|ip| {
            !ip.is_loopback() && !matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
        })
        .collect();
    let private = |ip: &&std::net::IpAddr| matches!(ip, std::net::IpAddr::V4(v4) if v4.is_private());
    addresses.iter().find(private).or_else(|| addresses.iter().find(|ip| ip.is_ipv4())).or(addresses.first()).copied()
}

/// The names a self-signed certificate for hosting carries (clients pin its fingerprint; names help
/// those that check them).
fn certificate_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    names.extend(network_address().map(|ip| ip.to_string()));
    names
}

fn mint(secret: &Secret, user: &UserId, name: &str) -> Result<String, dialtone_server::TokenError> {
    // Long-lived: the key never leaves this machine, and the app mints a fresh token at every start.
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 30 * 24 * 3_600;
    let name = if name.trim().is_empty() { user.as_str() } else { name };
    dialtone_server::mint(secret, user, name, expires)
}

/// Starts a demo contact: an engine with fake devices that answers every call after a moment.
fn start_demo(
    secret: &Secret,
    url: &str,
    fingerprint: Option<Fingerprint>,
    contact: &DemoContact,
    media: &MediaConfig,
) -> Result<Engine, SessionError> {
    let user = UserId::new(contact.user)?;
    let token = mint(secret, &user, contact.name)?;
    let device = DeviceId::new("demo")?;
    let mut config = EngineConfig::new(url, token, device);
    config.server_fingerprint = fingerprint;
    config.media = Some(MediaConfig {
        microphone: MicrophoneConfig { tone_hz: contact.tone_hz, ..MicrophoneConfig::default() },
        mirror: contact.mirror,
        // The demo group sends smaller pictures: three of them share this machine's cores with the app.
        camera: if contact.mirror {
            media.camera
        } else {
            CameraConfig { width: 320, height: 180, fps: 15, bitrate_kbps: 300, detailed: false }
        },
        ..media.clone()
    });
    let (engine, mut events) = Engine::start(config);
    let commands = engine.handle();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::IncomingCall { call, .. } = event {
                let commands = commands.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(DEMO_ANSWER_AFTER).await;
                    let media = MediaState::for_kind(call.kind);
                    let _ = commands.send(Command::Accept { call: call.call, media });
                });
            }
        }
    });
    Ok(engine)
}
