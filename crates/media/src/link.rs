//! One WebRTC peer connection to one remote device, run as a task.
//!
//! The engine spawns a [`Link`] per pair of devices in a call and talks to it with [`Link::remote_signal`]
//! and [`Link::close`]; the link reports [`LinkEvent`]s (signaling to relay, state changes) through the
//! callback it was given. Audio and video transceivers are negotiated up front, so a connection made
//! while the call rings can carry media the moment someone answers, without renegotiating.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dialtone_protocol::SignalPayload;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState, SettingEngineBuilder,
};

/// How peer connections are made.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// Local addresses to gather host candidates on (one UDP socket each, any free port).
    pub bind_addrs: Vec<IpAddr>,
    /// STUN and TURN servers.
    pub ice_servers: Vec<IceServer>,
    /// Time between ICE connectivity checks. The library's 200 ms default alone costs ~200 ms per
    /// connection on a fast network; 20 ms connects loopback peers in a few tens of milliseconds.
    pub ice_check_interval: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind_addrs: vec![IpAddr::from([127, 0, 0, 1])],
            ice_servers: Vec::new(),
            ice_check_interval: Duration::from_millis(20),
        }
    }
}

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    pub username: String,
    /// TURN credential.
    pub credential: String,
}

/// Which side of the offer/answer exchange a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Creates the offer as soon as it starts.
    Offerer,
    /// Waits for the remote offer and answers it.
    Answerer,
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// ICE and DTLS are being set up.
    Connecting,
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// Connectivity was lost; ICE may still recover.
    Disconnected,
    /// The connection failed for good.
    Failed,
    /// Closed on purpose.
    Closed,
}

/// What a link reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// Relay this to the remote device.
    Signal(SignalPayload),
    /// The connection's state changed; `after` counts from the link's start.
    State {
        /// The new state.
        state: LinkState,
        /// Time since the link was spawned.
        after: Duration,
    },
    /// Something went wrong that ends the link (the state becomes failed).
    Error(String),
}

/// Receives a link's events; called from the link's tasks.
pub type LinkEvents = Arc<dyn Fn(LinkEvent) + Send + Sync>;

enum Command {
    Remote(SignalPayload),
    Close,
}

/// A handle to a running peer connection task. Dropping it closes the connection.
#[derive(Debug)]
pub struct Link {
    commands: mpsc::UnboundedSender<Command>,
}

impl Link {
    /// Starts a link on the current tokio runtime.
    pub fn spawn(config: Arc<MediaConfig>, role: Role, events: LinkEvents) -> Link {
        let (commands, command_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let started = Instant::now();
            if let Err(error) = run(&config, role, command_rx, events.clone(), started).await {
                events(LinkEvent::Error(error.to_string()));
                events(LinkEvent::State { state: LinkState::Failed, after: started.elapsed() });
            }
        });
        Link { commands }
    }

    /// Hands the link a session description or candidate from the remote device.
    pub fn remote_signal(&self, payload: SignalPayload) {
        let _ = self.commands.send(Command::Remote(payload));
    }

    /// Closes the connection; the link reports [`LinkState::Closed`] and ends.
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// Why a link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// The remote device sent something that does not fit the exchange.
    #[error("unexpected {0} from the remote device")]
    Unexpected(&'static str),
}

struct Handler {
    events: LinkEvents,
    started: Instant,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => (self.events)(LinkEvent::Signal(SignalPayload::Candidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
            })),
            Err(error) => tracing::warn!(%error, "unusable local candidate"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = match state {
            RTCPeerConnectionState::Connected => LinkState::Connected,
            RTCPeerConnectionState::Disconnected => LinkState::Disconnected,
            RTCPeerConnectionState::Failed => LinkState::Failed,
            RTCPeerConnectionState::Closed => LinkState::Closed,
            _ => LinkState::Connecting,
        };
        (self.events)(LinkEvent::State { state, after: self.started.elapsed() });
    }
}

async fn build(config: &MediaConfig, handler: Arc<Handler>) -> Result<impl PeerConnection, LinkError> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    let ice_servers = config
        .ice_servers
        .iter()
        .map(|server| RTCIceServer {
            urls: server.urls.clone(),
            username: server.username.clone(),
            credential: server.credential.clone(),
        })
        .collect();
    let loopback_only = config.bind_addrs.iter().all(IpAddr::is_loopback);
    let setting_engine = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(config.ice_check_interval), None)
        // Host candidates on loopback are skipped by default (RFC 8445); they are all a same-machine
        // call has.
        .with_include_loopback_candidate(loopback_only)
        .build();
    let addrs: Vec<SocketAddr> = config.bind_addrs.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine)
        .with_handler(handler)
        .with_udp_addrs(addrs)
        .build()
        .await?;
    Ok(pc)
}

async fn run(
    config: &MediaConfig,
    role: Role,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: LinkEvents,
    started: Instant,
) -> Result<(), LinkError> {
    let pc = build(config, Arc::new(Handler { events: events.clone(), started })).await?;
    events(LinkEvent::State { state: LinkState::Connecting, after: started.elapsed() });
    // Both kinds, both ways, negotiated now: answering the call needs no renegotiation.
    // Both kinds, both ways, negotiated now: answering the call needs no renegotiation. The answerer
    // adds its tracks after the offer, so they take the offered transceivers.
    let tracks = Tracks::new()?;
    if role == Role::Offerer {
        tracks.add_to(&pc).await?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer.clone()).await?;
        events(LinkEvent::Signal(SignalPayload::Offer { sdp: offer.sdp }));
    }

    let mut exchange = Exchange { role, tracks, have_remote: false, early_candidates: Vec::new() };
    let result = loop {
        match commands.recv().await {
            None | Some(Command::Close) => break Ok(()),
            Some(Command::Remote(payload)) => {
                if let Err(error) = exchange.apply(&pc, payload, &events).await {
                    break Err(error);
                }
            }
        }
    };
    let _ = pc.close().await;
    events(LinkEvent::State { state: LinkState::Closed, after: started.elapsed() });
    result
}

/// The offer/answer exchange as seen from one side.
struct Exchange {
    role: Role,
    tracks: Tracks,
    have_remote: bool,
    /// Candidates can overtake the description they belong to; they wait for it here.
    early_candidates: Vec<RTCIceCandidateInit>,
}

impl Exchange {
    async fn apply<P: PeerConnection>(&mut self, pc: &P, payload: SignalPayload, events: &LinkEvents) -> Result<(), LinkError> {
        match payload {
            SignalPayload::Offer { sdp } => {
                if self.role != Role::Answerer || self.have_remote {
                    return Err(LinkError::Unexpected("offer"));
                }
                pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                self.have_remote = true;
                self.tracks.add_to(pc).await?;
                let answer = pc.create_answer(None).await?;
                pc.set_local_description(answer.clone()).await?;
                events(LinkEvent::Signal(SignalPayload::Answer { sdp: answer.sdp }));
            }
            SignalPayload::Answer { sdp } => {
                if self.role != Role::Offerer || self.have_remote {
                    return Err(LinkError::Unexpected("answer"));
                }
                pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
                self.have_remote = true;
            }
            SignalPayload::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                let init = RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() };
                if self.have_remote {
                    pc.add_ice_candidate(init).await?;
                } else {
                    self.early_candidates.push(init);
                }
            }
            SignalPayload::EndOfCandidates => {}
        }
        if self.have_remote {
            for init in std::mem::take(&mut self.early_candidates) {
                pc.add_ice_candidate(init).await?;
            }
        }
        Ok(())
    }
}

/// This device's outgoing audio and video: the codecs are Opus and VP8, which every browser accepts.
struct Tracks {
    audio: Arc<TrackLocalStaticSample>,
    video: Arc<TrackLocalStaticSample>,
}

impl Tracks {
    fn new() -> Result<Self, LinkError> {
        let opus = RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        };
        let vp8 = RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        Ok(Self { audio: Self::track(RtpCodecKind::Audio, opus)?, video: Self::track(RtpCodecKind::Video, vp8)? })
    }

    fn track(kind: RtpCodecKind, codec: RTCRtpCodec) -> Result<Arc<TrackLocalStaticSample>, LinkError> {
        let stream = "dialtone".to_owned();
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(random_ssrc()), ..Default::default() },
            codec,
            ..Default::default()
        };
        let track = MediaStreamTrack::new(stream, format!("{kind}"), format!("{kind}"), kind, vec![encoding]);
        Ok(Arc::new(TrackLocalStaticSample::new(std::time::Instant::now(), track)?))
    }

    async fn add_to<P: PeerConnection>(&self, pc: &P) -> Result<(), LinkError> {
        pc.add_track(Arc::clone(&self.audio) as Arc<dyn TrackLocal>).await?;
        pc.add_track(Arc::clone(&self.video) as Arc<dyn TrackLocal>).await?;
        Ok(())
    }
}

/// An SSRC that differs between the tracks and devices of a call with overwhelming likelihood.
fn random_ssrc() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process and per instance: enough for SSRCs, which need
    // to be distinct, not secret.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
    hasher.finish() as u32
}
