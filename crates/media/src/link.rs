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
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{
    CongestionControlBuilder, NackResponderBuilder, Registry, Slot, TwccReceiverBuilder, TwccSenderBuilder,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RTCRtpRtxParameters, RtpCodecKind, TYPE_RTCP_FB_TRANSPORT_CC,
};
use rtc::statistics::stats::ice_candidate_pair::RTCIceCandidatePairStats;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::rtp_transceiver::RtpSender;

use crate::audio;
use crate::audio::stream::AudioSlot;
use crate::config::{CONNECT_LIMIT, MediaConfig, every_interface};
use crate::congestion::CongestionControl;
use crate::error::LinkError;
use crate::keyframe::{self, KeyframeRequests};
use crate::loss::LossInterceptor;
use crate::nack::NackRequester;
use crate::pacer::{AudioFirstPacer, ProbeOrders};
use crate::repair::{RTX_PAYLOAD_TYPE, WithRepairStreams};
use crate::send::{LinkSender, Outgoing, SendSide};
use crate::video;
use crate::video::reserve::CodecReserve;
use crate::video::stream::VideoSlot;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, SettingEngineBuilder,
    StatsSelector,
};

/// Which side of the offer/answer exchange a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Creates the offer as soon as it starts.
    Offerer,
    /// Waits for the remote offer and answers it.
    Answerer,
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
        /// Why, when it failed without ever connecting (no path found).
        reason: Option<String>,
    },
    /// Something went wrong that ends the link (the state becomes failed).
    Error(String),
    /// The connection's figures, every [`STATS_PERIOD`] while it is open.
    Stats(LinkStats),
}

/// How often a link reports [`LinkStats`].
pub const STATS_PERIOD: Duration = Duration::from_secs(2);
/// How often the round trip is looked up until it is first known.
const FIRST_ROUND_TRIP_POLL: Duration = Duration::from_millis(50);

/// A connection's network figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkStats {
    /// Round-trip time of the selected candidate pair, once measured.
    pub rtt_ms: Option<f64>,
    /// Sending rate over the last period, all streams and overhead.
    pub send_kbps: f64,
    /// Receiving rate over the last period.
    pub receive_kbps: f64,
    /// Packets of the incoming streams that never arrived, since the start.
    pub packets_lost: i64,
    /// Packets of the incoming streams that arrived, since the start.
    pub packets_received: u64,
    /// What congestion control estimates the path to the remote device carries (audio and video).
    pub send_estimate_kbps: f64,
    /// The path media takes: the kinds of the local and remote candidates of the selected pair.
    pub path: Option<MediaPath>,
}

/// The kind of an ICE candidate: how an address was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// The address a NAT shows the world, learned from a STUN server.
    Srflx,
    /// An address learned from a connectivity check that came from it (behind a NAT).
    Prflx,
    /// An address on a TURN relay.
    Relay,
}

impl CandidateKind {
    fn from_stats(kind: webrtc::peer_connection::RTCIceCandidateType) -> Option<CandidateKind> {
        use webrtc::peer_connection::RTCIceCandidateType as Type;
        match kind {
            Type::Host => Some(CandidateKind::Host),
            Type::Srflx => Some(CandidateKind::Srflx),
            Type::Prflx => Some(CandidateKind::Prflx),
            Type::Relay => Some(CandidateKind::Relay),
            _ => None,
        }
    }

    /// The kind named by a candidate line's `typ` field (`candidate:… typ srflx …`).
    fn of_line(line: &str) -> Option<CandidateKind> {
        let mut words = line.split_whitespace();
        words.find(|word| *word == "typ")?;
        Self::from_stats(webrtc::peer_connection::RTCIceCandidateType::from(words.next()?))
    }
}

/// Which way media goes: the kinds of the two ends of the selected candidate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MediaPath {
    /// This device's end.
    pub local: CandidateKind,
    /// The other device's end.
    pub remote: CandidateKind,
}

/// How long a working pair through a NAT's address waits for a direct one before it is taken.
pub const NAT_PAIR_WAIT: Duration = Duration::from_millis(100);
/// How long a working pair through a relay waits for one that is not relayed.
pub const RELAY_PAIR_WAIT: Duration = Duration::from_millis(400);

/// Silence on a connected path after which it is disconnected (the call view says it reconnects).
pub const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(4);
/// Further silence, once disconnected, after which the path has failed and the link is made again (10 s
/// of silence in all).
pub const ICE_FAILED_AFTER: Duration = Duration::from_secs(6);

/// The candidates a link saw, to explain a connection that never came up.
#[derive(Debug, Default, Clone, Copy)]
struct CandidateCounts {
    local_relay: u32,
    local: u32,
    remote: u32,
}

/// The id (`a=mid:`) of a session description's first media section.
fn first_mid(sdp: &str) -> Option<&str> {
    let media = sdp.split_once("\nm=")?.1;
    media.lines().find_map(|line| line.trim_end().strip_prefix("a=mid:")).filter(|mid| !mid.is_empty())
}

/// Says why no path was found, in a person's words.
fn unreachable_reason(counts: CandidateCounts, config: &MediaConfig) -> String {
    let has_turn = config.ice_servers.iter().flat_map(|s| &s.urls).any(|url| url.starts_with("turn"));
    if counts.local == 0 && !has_turn {
        "this device found no network address to use".into()
    } else if config.relay_only && counts.local_relay == 0 {
        "the relay server could not be used (unreachable, refused the credentials, or none is offered), and \
         calls are set to go through the relay only"
            .into()
    } else if has_turn && counts.local_relay == 0 {
        "the relay server could not be used (unreachable, or it refused the credentials), and no direct path \
         answered"
            .into()
    } else if counts.remote == 0 {
        "no network address arrived from the other device".into()
    } else if !has_turn {
        "no direct path answered, and the server offers no relay (TURN) to fall back on".into()
    } else {
        "no network path answered, neither direct nor through the relay".into()
    }
}

/// Turns two stats reports' byte counters into rates (the first against zero at the link's start).
#[derive(Debug)]
struct StatsCounter {
    last: Option<(Instant, u64, u64)>,
}

/// The candidate pair in use.
fn selected_pair(report: &webrtc::peer_connection::RTCStatsReport) -> Option<&RTCIceCandidatePairStats> {
    report.candidate_pairs().find(|pair| pair.nominated)
}

/// The round trip ICE measured on a candidate pair, in milliseconds, once measured.
fn round_trip_ms(pair: &RTCIceCandidatePairStats) -> Option<f64> {
    Some(pair.current_round_trip_time * 1000.0).filter(|rtt| *rtt > 0.0)
}

impl StatsCounter {
    fn sample(&mut self, report: &webrtc::peer_connection::RTCStatsReport, send_estimate_kbps: f64) -> LinkStats {
        let now = Instant::now();
        let (sent, received) = report.transport().map_or((0, 0), |t| (t.bytes_sent, t.bytes_received));
        let (send_kbps, receive_kbps) = match self.last {
            Some((at, last_sent, last_received)) => {
                let seconds = now.duration_since(at).as_secs_f64().max(1e-3);
                let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 * 8.0 / 1000.0 / seconds;
                (rate(sent, last_sent), rate(received, last_received))
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, sent, received));
        let selected = selected_pair(report);
        let rtt_ms = selected.and_then(round_trip_ms);
        // The report files candidates under a prefixed id; the pair names them without it.
        let kind_of = |id: &str| {
            let entry = report.get(id).or_else(|| {
                report
                    .get(&format!("RTCLocalIceCandidate_{id}"))
                    .or_else(|| report.get(&format!("RTCRemoteIceCandidate_{id}")))
            });
            match entry {
                Some(webrtc::peer_connection::RTCStatsReportEntry::LocalCandidate(candidate))
                | Some(webrtc::peer_connection::RTCStatsReportEntry::RemoteCandidate(candidate)) => {
                    CandidateKind::from_stats(candidate.candidate_type)
                }
                _ => None,
            }
        };
        let path = selected.and_then(|pair| {
            Some(MediaPath {
                local: kind_of(&pair.local_candidate_id)?,
                // A remote address learned from a check (not signaled) is not in the report: peer-reflexive.
                remote: kind_of(&pair.remote_candidate_id).unwrap_or(CandidateKind::Prflx),
            })
        });
        let (mut packets_lost, mut packets_received) = (0, 0);
        for inbound in report.inbound_rtp_streams() {
            packets_lost += inbound.received_rtp_stream_stats.packets_lost;
            packets_received += inbound.received_rtp_stream_stats.packets_received;
        }
        LinkStats { rtt_ms, send_kbps, receive_kbps, packets_lost, packets_received, send_estimate_kbps, path }
    }
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
    shared: Arc<Shared>,
}

/// What the link's task, its event handler and the video sender share.
struct Shared {
    /// What the camera and microphone feeds send through.
    send: Arc<SendSide>,
    remote_video: Arc<VideoSlot>,
    remote_audio: Arc<AudioSlot>,
    /// Where the video decoder comes from and goes back to.
    codecs: CodecReserve,
    /// Asks the remote sender for a keyframe (set once its video track arrives).
    keyframe_request: std::sync::Mutex<Option<mpsc::UnboundedSender<()>>>,
    /// Becomes true when the connection is closed, ending the receiving tasks with it.
    closed: tokio::sync::watch::Sender<bool>,
    /// The state last reported, so that each change is reported once.
    reported: std::sync::Mutex<Option<LinkState>>,
    /// The round-trip time last measured, in milliseconds; 0 until measured. NACKs follow it too.
    rtt_ms: Arc<AtomicU32>,
    /// The candidates seen so far.
    candidates: std::sync::Mutex<CandidateCounts>,
    /// The media section (`a=mid`) that carries the bundle: the first of the local description.
    bundle_mid: OnceLock<String>,
}

impl Shared {
    /// Reports `state` unless it is the one reported last.
    /// Keeps the first media section's id of a local description, which candidates name.
    fn learn_bundle_mid(&self, sdp: &str) {
        if let Some(mid) = first_mid(sdp) {
            let _ = self.bundle_mid.set(mid.to_owned());
        }
    }

    fn report(&self, events: &LinkEvents, state: LinkState, after: Duration) {
        self.report_why(events, state, after, None);
    }

    fn report_why(&self, events: &LinkEvents, state: LinkState, after: Duration, reason: Option<String>) {
        let mut reported = crate::lock(&self.reported);
        if *reported != Some(state) {
            *reported = Some(state);
            drop(reported);
            events(LinkEvent::State { state, after, reason });
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("send", &self.send).finish_non_exhaustive()
    }
}

impl Link {
    /// Starts a link on the current tokio runtime; what the remote device sends lands in
    /// `remote_video` and `remote_audio`, the video decoded by a decoder from `codecs`.
    pub fn spawn(
        config: Arc<MediaConfig>,
        role: Role,
        events: LinkEvents,
        remote_video: Arc<VideoSlot>,
        remote_audio: Arc<AudioSlot>,
        codecs: &CodecReserve,
    ) -> Link {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            send: Arc::new(SendSide::new(audio_kbps(&config))),
            remote_video,
            remote_audio,
            codecs: codecs.clone(),
            keyframe_request: std::sync::Mutex::new(None),
            closed: tokio::sync::watch::Sender::new(false),
            reported: std::sync::Mutex::new(None),
            rtt_ms: Arc::new(AtomicU32::new(0)),
            candidates: std::sync::Mutex::new(CandidateCounts::default()),
            bundle_mid: OnceLock::new(),
        });
        let task_shared = shared.clone();
        let task_shared_for_error = shared.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            if let Err(error) = run(&config, role, command_rx, events.clone(), started, task_shared).await {
                events(LinkEvent::Error(error.to_string()));
                task_shared_for_error.report(&events, LinkState::Failed, started.elapsed());
            }
        });
        Link { commands, shared }
    }

    /// Whether media can flow now.
    pub fn connected(&self) -> bool {
        self.shared.send.connected.load(Ordering::Relaxed)
    }

    /// The handle the call's video sender sends through.
    pub fn sender(&self) -> LinkSender {
        LinkSender::new(self.shared.send.clone())
    }

    /// The remote device's video.
    pub fn remote_video(&self) -> Arc<VideoSlot> {
        self.shared.remote_video.clone()
    }

    /// The remote device's audio.
    pub fn remote_audio(&self) -> Arc<AudioSlot> {
        self.shared.remote_audio.clone()
    }

    /// Asks the remote device for a keyframe (a picture loss indication), as the receiver does by itself
    /// after a loss. Nothing happens before the remote video track has arrived.
    pub fn request_keyframe(&self) {
        if let Ok(request) = self.shared.keyframe_request.lock()
            && let Some(request) = request.as_ref()
        {
            let _ = request.send(());
        }
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

struct Handler {
    events: LinkEvents,
    started: Instant,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let mut counts = crate::lock(&self.shared.candidates);
                counts.local += 1;
                if CandidateKind::of_line(&init.candidate) == Some(CandidateKind::Relay) {
                    counts.local_relay += 1;
                }
                drop(counts);
                // The library leaves the media section empty; every candidate belongs to the bundle's
                // transport, which the first media section names.
                let sdp_mid =
                    init.sdp_mid.filter(|mid| !mid.is_empty()).or_else(|| self.shared.bundle_mid.get().cloned());
                (self.events)(LinkEvent::Signal(SignalPayload::Candidate {
                    candidate: init.candidate,
                    sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                }));
            }
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
        self.shared.send.connected.store(state == LinkState::Connected, Ordering::Relaxed);
        self.shared.report(&self.events, state, self.started.elapsed());
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let closed = self.shared.closed.subscribe();
        if track.kind().await == RtpCodecKind::Video {
            let (request, requests) = mpsc::unbounded_channel();
            if let Ok(mut slot) = self.shared.keyframe_request.lock() {
                *slot = Some(request);
            }
            let incoming = video::stream::Incoming {
                slot: self.shared.remote_video.clone(),
                codecs: self.shared.codecs.clone(),
                rtt_ms: self.shared.rtt_ms.clone(),
            };
            tokio::spawn(video::stream::receive_track(track, incoming, closed, requests));
        } else {
            tokio::spawn(audio::stream::receive_track(track, self.shared.remote_audio.clone(), closed));
        }
    }
}

/// Turns keyframe requests arriving for our video track into a keyframe from the sender.
async fn watch_keyframe_requests(track: Arc<TrackLocalStaticSample>, shared: Arc<Shared>) {
    let mut closed = shared.closed.subscribe();
    loop {
        let event = tokio::select! {
            event = track.poll() => event,
            _ = closed.wait_for(|closed| *closed) => None,
        };
        match event {
            Some(TrackLocalEvent::OnRtcpPacket(_)) => {
                tracing::debug!("the remote device asks for a keyframe");
                shared.send.wants_keyframe.store(true, Ordering::Relaxed);
            }
            Some(_) => {}
            None => break,
        }
    }
}

/// How long each candidate pair is checked before it counts as failed: the whole connect limit. The
/// library's 1.4 s is too short across long, lossy paths: the other side's candidates come by signaling,
/// whose TCP can be held up for seconds by loss, and a pair through two NATs only opens once both sides
/// check it at the same time; across 300 ms round trips and 10 % loss, 5 tries in 14 never connected with
/// 1.4 s, none in 16 with 10 s (BENCHMARKS.md, "A long, lossy path"). A pair that answers is taken at once,
/// so paths that work connect as fast as before.
const CHECKS_FOR: Duration = CONNECT_LIMIT;

/// Checks per candidate pair: [`CHECKS_FOR`] at the check interval, however short it is.
fn check_attempts(interval: Duration) -> u16 {
    (CHECKS_FOR.as_millis() / interval.as_millis().max(1)).clamp(7, 2_000) as u16
}

/// What a link's audio costs on the wire besides the Opus payload: IP, UDP, RTP and SRTP headers on 50
/// packets a second.
const AUDIO_OVERHEAD_KBPS: u32 = 20;

/// The lowest estimate congestion control may reach: enough for audio and a thumbnail's video.
const MIN_SEND_KBPS: u32 = 80;

/// What the audio of a link costs on the wire.
fn audio_kbps(config: &MediaConfig) -> u32 {
    (config.microphone.bitrate_bps / 1000).max(0) as u32 + AUDIO_OVERHEAD_KBPS
}

/// What congestion control may reach: what the call's audio and video want, capped by the configured
/// limit.
fn max_send_kbps(config: &MediaConfig) -> u32 {
    let wanted = config.camera.bitrate_kbps + audio_kbps(config);
    config.max_send_kbps.map_or(wanted, |cap| cap.min(wanted)).max(MIN_SEND_KBPS)
}

/// Whether browsers' `.local` (mDNS) candidates can be resolved: that takes a multicast socket, which
/// cannot join its group on a machine with no multicast route (an offline network, a bare network
/// namespace), and then webrtc 0.21 fails the whole connection. Same-machine calls need none.
fn mdns_mode(loopback_only: bool) -> MulticastDnsMode {
    static MULTICAST_WORKS: OnceLock<bool> = OnceLock::new();
    if loopback_only {
        return MulticastDnsMode::Disabled;
    }
    let works = *MULTICAST_WORKS.get_or_init(|| {
        let joined = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).and_then(|socket| {
            socket.join_multicast_v4(&std::net::Ipv4Addr::new(224, 0, 0, 251), &std::net::Ipv4Addr::UNSPECIFIED)
        });
        if let Err(error) = &joined {
            tracing::info!(%error, "no multicast here: browsers' .local candidates will not resolve");
        }
        joined.is_ok()
    });
    if works { MulticastDnsMode::QueryOnly } else { MulticastDnsMode::Disabled }
}

/// The codecs this app sends and receives, which every browser accepts: Opus with in-band FEC, and VP8
/// with keyframe requests (PLI, FIR) and NACK, retransmitted over RTX (see [`crate::repair`]; our own
/// NACK requester counts a packet repaired over RTX as arrived, which the library's generator did not).
/// The library's defaults add codecs we cannot decode (a browser might pick one).
fn media_engine() -> Result<MediaEngine, LinkError> {
    let mut engine = MediaEngine::default();
    let feedback = |typ: &str, parameter: &str| RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() };
    let (opus, vp8) = codecs();
    engine.register_codec(RTCRtpCodecParameters { rtp_codec: opus, payload_type: 111 }, RtpCodecKind::Audio)?;
    let vp8 = RTCRtpCodec {
        rtcp_feedback: vec![feedback("ccm", "fir"), feedback("nack", ""), feedback("nack", "pli")],
        ..vp8
    };
    engine.register_codec(RTCRtpCodecParameters { rtp_codec: vp8, payload_type: 96 }, RtpCodecKind::Video)?;
    let rtx = RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "apt=96".to_owned(),
        rtcp_feedback: vec![],
    };
    engine.register_codec(
        RTCRtpCodecParameters { rtp_codec: rtx, payload_type: RTX_PAYLOAD_TYPE },
        RtpCodecKind::Video,
    )?;
    Ok(engine)
}

/// NACK both ways: the receiver asks for lost video packets as soon as it misses them ([`NackRequester`],
/// which reads the link's round trip), the sender keeps the last 1024 it sent (seconds of video) to
/// send again.
fn retransmission(registry: Registry, rtt_ms: Arc<AtomicU32>) -> Registry {
    registry
        .with(Slot::NackResponder, NackResponderBuilder::new().with_size(1024).build())
        .with(Slot::NackGenerator, NackRequester::new(rtt_ms))
}

/// Send-side congestion control over transport-wide feedback (TWCC), set up as the library's
/// `configure_congestion_control` does but with [`AudioFirstPacer`] in the pacer's slot (replacing the
/// library's pacer afterwards would log a warning on every link).
fn congestion_control(
    registry: Registry,
    estimator: CongestionControl,
    orders: ProbeOrders,
    media_engine: &mut MediaEngine,
) -> Result<Registry, LinkError> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let feedback = RTCPFeedback { typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(), parameter: String::new() };
        media_engine.register_feedback(feedback, kind);
        let extension = RTCRtpHeaderExtensionCapability { uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned() };
        media_engine.register_header_extension(extension, kind, None)?;
    }
    Ok(registry
        .with(Slot::CongestionControl, WithRepairStreams(CongestionControlBuilder::new(estimator).build()))
        .with(Slot::Pacer, AudioFirstPacer::new(orders))
        .with(Slot::TwccSender, WithRepairStreams(TwccSenderBuilder::new().build()))
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build()))
}

async fn build(config: &MediaConfig, handler: Arc<Handler>) -> Result<impl PeerConnection, LinkError> {
    let mut media_engine = media_engine()?;
    let max_bps = f64::from(max_send_kbps(config)) * 1000.0;
    let orders = ProbeOrders::default();
    let estimator = CongestionControl::new(
        crate::congestion::START_BPS,
        f64::from(MIN_SEND_KBPS) * 1000.0,
        max_bps,
        handler.shared.send.send_estimate.clone(),
        orders.clone(),
    );
    let registry = congestion_control(Registry::new(), estimator, orders, &mut media_engine)?;
    // The defaults but for the transport-wide feedback recorder, which congestion control added, and
    // NACK, configured here (see `retransmission`).
    configure_simulcast_extension_headers(&mut media_engine)?;
    let mut registry = retransmission(configure_rtcp_reports(registry), handler.shared.rtt_ms.clone())
        .with(Slot::from(keyframe::SLOT), KeyframeRequests::default());
    if let Some(loss) = config.simulated_loss {
        registry = registry.with(Slot::from(crate::loss::SLOT), LossInterceptor::new(loss));
    }
    let ice_servers = config
        .ice_servers
        .iter()
        .map(|server| RTCIceServer {
            urls: server.urls.clone(),
            username: server.username.clone(),
            credential: server.credential.clone(),
        })
        .collect();
    let policy = if config.relay_only { RTCIceTransportPolicy::Relay } else { RTCIceTransportPolicy::All };
    let bind_addrs = if config.bind_addrs.is_empty() { every_interface(true) } else { config.bind_addrs.clone() };
    let loopback_only = bind_addrs.iter().all(IpAddr::is_loopback);
    let setting_engine = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(config.ice_check_interval), Some(check_attempts(config.ice_check_interval)))
        // A path that stops carrying anything (a laptop that changed networks, an interface gone) is
        // disconnected after 4 s and failed 6 s later (the library: 5 + 25 s), and a failed link is made
        // again over the paths there are now; keepalives every second keep a silent call's path known.
        .with_ice_timeouts(Some(ICE_DISCONNECTED_AFTER), Some(ICE_FAILED_AFTER), Some(Duration::from_secs(1)))
        // How long a working pair through a NAT's address or a relay waits for a better one before it is
        // taken. Checks run every 5 ms, so a direct pair on the same network answers within tens of
        // milliseconds; the library's 0.5 s (NAT) and 2 s (relay) only delayed every call across
        // networks (BENCHMARKS.md, "Across two NATs").
        .with_srflx_acceptance_min_wait(Some(NAT_PAIR_WAIT))
        .with_prflx_acceptance_min_wait(Some(NAT_PAIR_WAIT))
        .with_relay_acceptance_min_wait(Some(RELAY_PAIR_WAIT))
        // Host candidates on loopback are skipped by default (RFC 8445); they are the surest path of a
        // same-machine call, so they are gathered whenever loopback is asked for.
        .with_include_loopback_candidate(bind_addrs.iter().any(IpAddr::is_loopback))
        .with_multicast_dns_mode(mdns_mode(loopback_only))
        .build();
    let addrs: Vec<SocketAddr> = bind_addrs.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new().with_ice_servers(ice_servers).with_ice_transport_policy(policy).build(),
        )
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
    shared: Arc<Shared>,
) -> Result<(), LinkError> {
    let pc = build(config, Arc::new(Handler { events: events.clone(), started, shared: shared.clone() })).await?;
    shared.report(&events, LinkState::Connecting, started.elapsed());
    // Both kinds, both ways, negotiated now: answering the call needs no renegotiation.
    // Both kinds, both ways, negotiated now: answering the call needs no renegotiation. The answerer
    // adds its tracks after the offer, so they take the offered transceivers.
    let mut tracks = Tracks::new()?;
    if role == Role::Offerer {
        tracks.add_to(&pc).await?;
        let offer = pc.create_offer(None).await?;
        shared.learn_bundle_mid(&offer.sdp);
        pc.set_local_description(offer.clone()).await?;
        events(LinkEvent::Signal(SignalPayload::Offer { sdp: offer.sdp }));
    }

    let mut exchange =
        Exchange { role, tracks, shared, have_remote: false, early_candidates: Vec::new(), held_answer: None };
    let mut stats_tick = tokio::time::interval_at(Instant::now() + STATS_PERIOD, STATS_PERIOD);
    // Until the first round trip is known, it is looked up more often than the statistics are taken:
    // retransmissions are waited for and asked again by it, and a guess of 100 ms on a 340 ms path gave
    // up on every packet lost in the first two seconds (a freeze until the next keyframe, 1.5 s).
    let mut first_round_trip_tick = tokio::time::interval(FIRST_ROUND_TRIP_POLL);
    let mut counter = StatsCounter { last: Some((started, 0, 0)) };
    // Until it first connects; ICE on its own would keep checking a path that never answers.
    let mut connect_deadline = Some(started + config.connect_limit);
    let result = loop {
        let answer_deadline = exchange.answer_deadline();
        if exchange.shared.send.connected.load(Ordering::Relaxed) {
            connect_deadline = None;
        }
        let command = tokio::select! {
            command = commands.recv() => command,
            _ = tokio::time::sleep_until(connect_deadline.unwrap_or_else(Instant::now)), if connect_deadline.is_some() => {
                connect_deadline = None;
                if !exchange.shared.send.connected.load(Ordering::Relaxed) {
                    let counts = *crate::lock(&exchange.shared.candidates);
                    let reason = unreachable_reason(counts, config);
                    tracing::info!(%reason, ?counts, "no path to the other device");
                    exchange.shared.report_why(&events, LinkState::Failed, started.elapsed(), Some(reason));
                }
                continue;
            }
            _ = tokio::time::sleep_until(answer_deadline.unwrap_or_else(Instant::now)), if answer_deadline.is_some() => {
                if let Err(error) = exchange.release_answer(&pc).await {
                    break Err(error);
                }
                continue;
            }
            _ = first_round_trip_tick.tick(),
                if exchange.shared.rtt_ms.load(Ordering::Relaxed) == 0
                    && exchange.shared.send.connected.load(Ordering::Relaxed) =>
            {
                let report = pc.get_stats(std::time::Instant::now(), StatsSelector::None).await;
                if let Some(rtt) = selected_pair(&report).and_then(round_trip_ms) {
                    exchange.shared.rtt_ms.store(rtt.ceil() as u32, Ordering::Relaxed);
                }
                continue;
            }
            _ = stats_tick.tick() => {
                if exchange.shared.send.connected.load(Ordering::Relaxed) {
                    let report = pc.get_stats(std::time::Instant::now(), StatsSelector::None).await;
                    let stats = counter.sample(&report, exchange.shared.send.send_estimate_kbps());
                    if let Some(rtt) = stats.rtt_ms {
                        exchange.shared.rtt_ms.store(rtt.ceil() as u32, Ordering::Relaxed);
                    }
                    events(LinkEvent::Stats(stats));
                }
                continue;
            }
        };
        match command {
            None | Some(Command::Close) => break Ok(()),
            Some(Command::Remote(payload)) => {
                if let Err(error) = exchange.apply(&pc, payload, &events).await {
                    break Err(error);
                }
            }
        }
    };
    // Receivers stop first: they hold decoders and the remote's frames.
    exchange.shared.closed.send_replace(true);
    if tokio::time::timeout(Duration::from_secs(2), pc.close()).await.is_err() {
        tracing::warn!("closing the peer connection took over 2 s; leaving it");
    }
    // Whatever still holds the link's state (the WebRTC stack may keep its handler a while) must not
    // keep a full-size picture alive with it.
    exchange.shared.remote_video.clear();
    exchange.shared.report(&events, LinkState::Closed, started.elapsed());
    result
}

/// The offer/answer exchange as seen from one side.
struct Exchange {
    role: Role,
    tracks: Tracks,
    shared: Arc<Shared>,
    have_remote: bool,
    /// Candidates can overtake the description they belong to; they wait for it here.
    early_candidates: Vec<RTCIceCandidateInit>,
    /// The answer, waiting for the remote's first candidate, and until when it may wait.
    held_answer: Option<(String, Instant)>,
}

/// How long an answer waits for the first remote candidate. Applied alone, the answer starts ICE checks
/// with no candidate pair, and webrtc 0.21's driver then sleeps about a second before checking again
/// even though candidates arrive a millisecond later (seen as 1 s connects when a call was answered at
/// once); applied together with a candidate, checks start at once. The answerer trickles its candidates
/// right behind its answer, so the wait is normally under a millisecond.
const ANSWER_HOLD: Duration = Duration::from_millis(50);

impl Exchange {
    /// When a held answer must be applied even without candidates.
    fn answer_deadline(&self) -> Option<Instant> {
        self.held_answer.as_ref().map(|(_, deadline)| *deadline)
    }

    /// Applies a held answer, with the candidates that came with it.
    async fn release_answer<P: PeerConnection>(&mut self, pc: &P) -> Result<(), LinkError> {
        let Some((sdp, _)) = self.held_answer.take() else {
            return Ok(());
        };
        pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
        self.have_remote = true;
        self.negotiated().await?;
        for init in std::mem::take(&mut self.early_candidates) {
            pc.add_ice_candidate(init).await?;
        }
        Ok(())
    }

    /// Both descriptions are in: the video payload type is known, so video can be sent.
    async fn negotiated(&self) -> Result<(), LinkError> {
        let (Some(video), Some(audio)) = (&self.tracks.video_sender, &self.tracks.audio_sender) else {
            return Ok(());
        };
        let payload_type = |parameters: rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters, what| {
            parameters.rtp_parameters.codecs.first().map(|codec| codec.payload_type).ok_or(LinkError::Unexpected(what))
        };
        let video_pt = payload_type(video.get_parameters().await?, "answer without a video codec")?;
        let audio_pt = payload_type(audio.get_parameters().await?, "answer without an audio codec")?;
        if self.shared.send.video_out.get().is_none() {
            tokio::spawn(watch_keyframe_requests(self.tracks.video.clone(), self.shared.clone()));
        }
        let _ = self.shared.send.video_out.set(Outgoing {
            track: self.tracks.video.clone(),
            ssrc: self.tracks.video_ssrc,
            payload_type: video_pt,
        });
        let _ = self.shared.send.audio_out.set(Outgoing {
            track: self.tracks.audio.clone(),
            ssrc: self.tracks.audio_ssrc,
            payload_type: audio_pt,
        });
        Ok(())
    }

    async fn apply<P: PeerConnection>(
        &mut self,
        pc: &P,
        payload: SignalPayload,
        events: &LinkEvents,
    ) -> Result<(), LinkError> {
        match payload {
            SignalPayload::Offer { sdp } => {
                if self.role != Role::Answerer || self.have_remote {
                    return Err(LinkError::Unexpected("offer"));
                }
                pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                self.have_remote = true;
                self.tracks.add_to(pc).await?;
                let answer = pc.create_answer(None).await?;
                self.shared.learn_bundle_mid(&answer.sdp);
                pc.set_local_description(answer.clone()).await?;
                events(LinkEvent::Signal(SignalPayload::Answer { sdp: answer.sdp }));
                self.negotiated().await?;
            }
            SignalPayload::Answer { sdp } => {
                if self.role != Role::Offerer || self.have_remote || self.held_answer.is_some() {
                    return Err(LinkError::Unexpected("answer"));
                }
                // Held until the remote's first candidate (see `ANSWER_HOLD`).
                self.held_answer = Some((sdp, Instant::now() + ANSWER_HOLD));
            }
            SignalPayload::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                crate::lock(&self.shared.candidates).remote += 1;
                let init = RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() };
                if self.have_remote {
                    pc.add_ice_candidate(init).await?;
                } else {
                    self.early_candidates.push(init);
                }
                self.release_answer(pc).await?;
            }
            SignalPayload::EndOfCandidates => self.release_answer(pc).await?,
        }
        if self.have_remote {
            for init in std::mem::take(&mut self.early_candidates) {
                pc.add_ice_candidate(init).await?;
            }
        }
        Ok(())
    }
}

/// Opus and VP8 as sent (the negotiated form adds their feedback).
fn codecs() -> (RTCRtpCodec, RTCRtpCodec) {
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
    (opus, vp8)
}

/// This device's outgoing audio and video: the codecs are Opus and VP8, which every browser accepts.
struct Tracks {
    audio: Arc<TrackLocalStaticSample>,
    video: Arc<TrackLocalStaticSample>,
    video_ssrc: u32,
    audio_ssrc: u32,
    video_sender: Option<Arc<dyn RtpSender>>,
    audio_sender: Option<Arc<dyn RtpSender>>,
}

impl Tracks {
    fn new() -> Result<Self, LinkError> {
        let (opus, vp8) = codecs();
        let (video_ssrc, audio_ssrc) = (random_ssrc(), random_ssrc());
        Ok(Self {
            audio: Self::track(RtpCodecKind::Audio, opus, audio_ssrc, None)?,
            video: Self::track(RtpCodecKind::Video, vp8, video_ssrc, Some(random_ssrc()))?,
            video_ssrc,
            audio_ssrc,
            video_sender: None,
            audio_sender: None,
        })
    }

    /// A track sending on `ssrc`, with retransmissions on `repair_ssrc` (RTX) if given.
    fn track(
        kind: RtpCodecKind,
        codec: RTCRtpCodec,
        ssrc: u32,
        repair_ssrc: Option<u32>,
    ) -> Result<Arc<TrackLocalStaticSample>, LinkError> {
        let stream = "dialtone".to_owned();
        let rtx = repair_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc });
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), rtx, ..Default::default() },
            codec,
            ..Default::default()
        };
        // The id must differ from the remote side's tracks: the library hands RTCP about a track to a
        // remote track of the same id first, so with both sides' video called "video", keyframe requests
        // for ours went to theirs and were never answered.
        let id = format!("{kind}-{ssrc:08x}");
        let track = MediaStreamTrack::new(stream, id, format!("{kind}"), kind, vec![encoding]);
        Ok(Arc::new(TrackLocalStaticSample::new(std::time::Instant::now(), track)?))
    }

    async fn add_to<P: PeerConnection>(&mut self, pc: &P) -> Result<(), LinkError> {
        self.audio_sender = Some(pc.add_track(Arc::clone(&self.audio) as Arc<dyn TrackLocal>).await?);
        self.video_sender = Some(pc.add_track(Arc::clone(&self.video) as Arc<dyn TrackLocal>).await?);
        Ok(())
    }
}

/// An SSRC that differs between the tracks and devices of a call with overwhelming likelihood.
fn random_ssrc() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process and per instance: enough for SSRCs, which need
    // to be distinct, not secret.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_media_sections_id_is_found() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        assert_eq!(first_mid(sdp), Some("0"));
        assert_eq!(first_mid("v=0\r\nm=audio 9 UDP 0\r\na=mid:\r\n"), None);
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}
