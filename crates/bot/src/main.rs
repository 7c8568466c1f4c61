//! `dialtone-bot`: a headless Dialtone client for automation, tests and benchmarks.
//!
//! Every engine event is printed on stdout as one JSON object per line, with `t_ms` (milliseconds since
//! the bot started) added; the last line is `{"event":"summary",...}`. Logs go to stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use dialtone_engine::{Command, Engine, EngineConfig, Event};
use dialtone_protocol::{CallId, CallKind, DeviceId, EndReason, Fingerprint, MediaState, UserId};
use serde::Serialize;
use std::sync::Arc;

use dialtone_engine::{CameraConfig, DeviceChoice, MediaConfig, MicrophoneConfig, SimulatedLoss};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A headless Dialtone client: calls people or answers calls, prints every event as a JSON line.
///
/// Examples:
///   dialtone-bot --token "$(dialtone-server token --user bob)" --answer accept --hangup-after 10s
///   dialtone-bot --token "$(dialtone-server token --user alice)" --call bob --video --hangup-after 5s
#[derive(Parser, Debug)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// The server's WebSocket URL: wss:// (ws:// for a server on this machine, or with --insecure).
    #[arg(long, default_value = "ws://127.0.0.1:7600", env = "DIALTONE_SERVER")]
    server: String,
    /// Trust only the server certificate with this SHA-256 fingerprint (a self-signed server prints
    /// it); without it the system's roots are trusted.
    #[arg(long, env = "DIALTONE_FINGERPRINT")]
    fingerprint: Option<Fingerprint>,
    /// Allow sending the sign-in token unencrypted (ws://) to a server on another machine.
    #[arg(long)]
    insecure: bool,
    /// A sign-in token from `dialtone-server token --user NAME`.
    #[arg(long, env = "DIALTONE_TOKEN", hide_env_values = true)]
    token: String,
    /// This device's name, unique among the user's devices.
    #[arg(long, default_value = "bot")]
    device: DeviceId,
    /// Call these users (comma separated); without it the bot only answers.
    #[arg(long, value_delimiter = ',')]
    call: Vec<UserId>,
    /// Make the calls video calls (audio otherwise).
    #[arg(long)]
    video: bool,
    /// Make it a group call even with one callee.
    #[arg(long)]
    group: bool,
    /// Place this many calls one after another.
    #[arg(long, default_value_t = 1)]
    calls: u32,
    /// Ring for this long instead of the server's default (e.g. 10s).
    #[arg(long, value_parser = parse_duration)]
    ring_timeout: Option<Duration>,
    /// What to do with incoming calls.
    #[arg(long, value_enum, default_value_t = Answer::Accept)]
    answer: Answer,
    /// Wait this long before answering or declining.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    answer_delay: Duration,
    /// Hang up this long after a call becomes active; without it the bot stays until the others leave.
    #[arg(long, value_parser = parse_duration)]
    hangup_after: Option<Duration>,
    /// Watch everyone's presence and print the changes.
    #[arg(long)]
    watch_presence: bool,
    /// Stop after this long whatever happens (answering bots run until stopped otherwise).
    #[arg(long, value_parser = parse_duration)]
    exit_after: Option<Duration>,
    /// Make peer connections and send the test-pattern camera in video calls; the summary then reports
    /// the video received from each peer.
    #[arg(long)]
    media: bool,
    /// The test-pattern camera's format, WIDTHxHEIGHT@FPS; WIDTHxHEIGHT@FPS+detail adds fine detail that
    /// changes every frame, so that the encoder spends its whole bitrate, as on a camera's picture.
    #[arg(long, default_value = "640x360@30", value_parser = str::parse::<CameraConfig>)]
    camera: CameraConfig,
    /// The tone the fake microphone plays, in Hz (with --media).
    #[arg(long, default_value_t = 440.0)]
    tone: f32,
    /// Use the system's microphone, speaker and camera instead of the fake twins (each falls back to
    /// its twin, with a `device_in_use` event saying why, when it cannot be used).
    #[arg(long)]
    real_devices: bool,
    /// Local addresses for media (host candidates); by default every interface, and loopback too when
    /// the server is on this machine.
    #[arg(long, value_delimiter = ',')]
    media_bind: Vec<std::net::IpAddr>,
    /// Send back the pictures and sound received instead of the test pattern and tone (implies --media).
    #[arg(long)]
    echo: bool,
    /// Drop this percentage of the media packets sent (0 to 100), to see a call on a lossy network
    /// without root or netem.
    #[arg(long, value_parser = parse_loss_percent)]
    simulate_loss: Option<f64>,
}

/// What the bot does when a call rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Answer {
    /// Answer (with video for video calls).
    Accept,
    /// Decline.
    Decline,
    /// Decline as busy.
    Busy,
    /// Let it ring.
    Ignore,
}

/// A loss percentage, 0 to 100.
fn parse_loss_percent(text: &str) -> Result<f64, String> {
    let percent: f64 =
        text.trim().trim_end_matches('%').parse().map_err(|_| format!("{text:?} is not a percentage like 5"))?;
    if (0.0..=100.0).contains(&percent) { Ok(percent) } else { Err(format!("{text:?} is not between 0 and 100")) }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 5s or 2m"))?;
    if !(value >= 0.0 && value.is_finite()) {
        return Err(format!("{text:?} must be zero or more"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// What the bot prints last.
#[derive(Debug, Default, Serialize)]
struct Summary {
    user: Option<UserId>,
    device: String,
    calls_placed: u32,
    calls_received: u32,
    answered: u32,
    declined: u32,
    ended: BTreeMap<&'static str, u32>,
    /// From placing a call to its first answer, per answered outgoing call.
    answer_latency_ms: Vec<u64>,
    /// From an invitation ringing here to the call being active, per answered incoming call.
    accept_latency_ms: Vec<u64>,
    reconnects: u32,
    errors: u32,
    stopped: Option<String>,
    /// Per incoming video stream (with --media).
    video: Vec<VideoSummary>,
    /// Per incoming audio stream (with --media).
    audio: Vec<AudioSummary>,
    /// Per peer device, the way media took when last measured (local and remote candidate kinds).
    paths: BTreeMap<String, dialtone_engine::MediaPath>,
}

/// What arrived from one peer's microphone, as last seen during the call.
#[derive(Debug, Serialize)]
struct AudioSummary {
    call: CallId,
    peer: String,
    frames_decoded: u64,
    /// Lost frames rebuilt from forward error correction.
    frames_recovered: u64,
    /// Lost frames concealed.
    frames_concealed: u64,
    /// The strongest frequency heard (the peer's tone, for a fake microphone).
    tone_hz: Option<f32>,
}

/// What arrived from one peer's camera.
#[derive(Debug, Serialize)]
struct VideoSummary {
    call: CallId,
    peer: String,
    frames_decoded: u64,
    /// From the call becoming active here to the first decoded frame.
    first_frame_ms: Option<u64>,
    /// Gaps of more than 200 ms between frames once video was flowing.
    freezes: u32,
    /// The longest gap between frames once video was flowing.
    longest_gap_ms: u64,
    /// Capture to decode, from the test pattern's stamp, median of the frames seen.
    latency_ms_median: Option<f64>,
    #[serde(skip)]
    last_index: u64,
    #[serde(skip)]
    last_at: Option<Instant>,
    #[serde(skip)]
    latencies_us: Vec<u64>,
}

enum Timer {
    Answer(CallId),
    Hangup(CallId),
}

fn print_event(started: Instant, event: &Event) {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("t_ms".into(), (started.elapsed().as_millis() as u64).into());
    }
    println!("{value}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    dialtone_engine::tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            format!("error,dialtone_engine=warn,dialtone_media=warn,{}", dialtone_engine::QUIET_TURN).into()
        }))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let callees = cli.call.clone();
    let mut config = EngineConfig::new(&cli.server, &cli.token, cli.device.clone());
    config.server_fingerprint = cli.fingerprint;
    config.allow_clear_text = cli.insecure;
    let frames_landed = Arc::new(Notify::new());
    if cli.media || cli.echo {
        config.media = Some(MediaConfig {
            bind_addrs: cli.media_bind.clone(),
            camera: cli.camera,
            microphone: MicrophoneConfig { tone_hz: cli.tone, ..MicrophoneConfig::default() },
            mirror: cli.echo,
            devices: if cli.real_devices { DeviceChoice::default() } else { DeviceChoice::fake() },
            simulated_loss: cli
                .simulate_loss
                .map(|percent| SimulatedLoss { rate: percent / 100.0, seed: std::process::id().into() }),
            ..MediaConfig::default()
        });
        let notify = frames_landed.clone();
        config.waker = Some(Arc::new(move || notify.notify_one()));
    }
    let mut active_since: BTreeMap<CallId, Instant> = BTreeMap::new();
    // Audio is sampled now and then: its slots disappear with the call. The tone analysis costs about a
    // millisecond per peer, so it runs on every fourth check only (a bot in a group of 9 has 8 peers).
    let mut audio_check = tokio::time::interval(Duration::from_millis(250));
    let mut audio_checks: u64 = 0;
    if cli.watch_presence {
        config.watch_presence = Some(None);
    }
    let kind = if cli.video { CallKind::Video } else { CallKind::Audio };

    let started = Instant::now();
    let (engine, mut events) = Engine::start(config);
    let mut summary = Summary { device: cli.device.to_string(), ..Summary::default() };
    let mut timers: Vec<(Instant, Timer)> = Vec::new();
    // The call this bot placed and is not over yet, and when it was placed.
    let mut outgoing: Option<(CallId, Instant)> = None;
    let mut placing = false;
    let mut connected = false;
    let mut ringing: BTreeMap<CallId, (Instant, CallKind)> = BTreeMap::new();
    let mut calls_left = if callees.is_empty() { 0 } else { cli.calls };
    let deadline = cli.exit_after.map(|d| started + d);
    let mut exit_code = 0;

    let call_command = || Command::Call {
        call: None,
        users: callees.clone(),
        kind,
        group: cli.group,
        ring_timeout: cli.ring_timeout,
        media: None,
    };

    loop {
        // Place the next call once signed in and the previous one is over.
        if connected && !placing && outgoing.is_none() && calls_left > 0 {
            calls_left -= 1;
            placing = true;
            engine.send(call_command())?;
        }
        let next_timer = timers.iter().map(|(at, _)| *at).min();
        let wake = [next_timer, deadline].into_iter().flatten().min();
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                print_event(started, &event);
                match &event {
                    Event::SignedIn { user, .. } => {
                        summary.user = Some(user.clone());
                        connected = true;
                    }
                    Event::Reconnecting { .. } => {
                        summary.reconnects += 1;
                        connected = false;
                    }
                    Event::OutgoingCall { call, .. } => {
                        summary.calls_placed += 1;
                        placing = false;
                        outgoing = Some((call.clone(), Instant::now()));
                    }
                    Event::Merged { call, into } => {
                        if let Some((placed, at)) = outgoing.take() {
                            outgoing = Some((if &placed == call { into.clone() } else { placed }, at));
                        }
                    }
                    Event::IncomingCall { call, .. } => {
                        summary.calls_received += 1;
                        ringing.insert(call.call.clone(), (Instant::now(), call.kind));
                        if cli.answer != Answer::Ignore {
                            timers.push((Instant::now() + cli.answer_delay, Timer::Answer(call.call.clone())));
                        }
                    }
                    Event::CallActive { call } => {
                        active_since.insert(call.call.clone(), Instant::now());
                        summary.answered += 1;
                        match &outgoing {
                            Some((placed, at)) if placed == &call.call => {
                                summary.answer_latency_ms.push(at.elapsed().as_millis() as u64)
                            }
                            _ => {}
                        }
                        if let Some((at, _)) = ringing.remove(&call.call) {
                            summary.accept_latency_ms.push(at.elapsed().as_millis() as u64);
                        }
                        if let Some(after) = cli.hangup_after {
                            timers.push((Instant::now() + after, Timer::Hangup(call.call.clone())));
                        }
                    }
                    Event::CallEnded { call, reason, .. } => {
                        *summary.ended.entry(reason.as_str()).or_default() += 1;
                        if ringing.remove(call).is_some() && matches!(reason, EndReason::Declined | EndReason::Busy) {
                            summary.declined += 1;
                        }
                        timers.retain(|(_, t)| !matches!(t, Timer::Answer(c) | Timer::Hangup(c) if c == call));
                        if outgoing.as_ref().is_some_and(|(placed, _)| placed == call) {
                            outgoing = None;
                            if calls_left == 0 {
                                break;
                            }
                        }
                    }
                    Event::Error { call: None, code: None, .. } if placing => {
                        // The call command crossed a lost connection: place it again once signed in.
                        summary.errors += 1;
                        placing = false;
                        calls_left += 1;
                    }
                    Event::Error { .. } => summary.errors += 1,
                    Event::MediaStats { peer, path: Some(path), .. } => {
                        summary.paths.insert(peer.to_string(), *path);
                    }
                    Event::Stopped { reason } => {
                        summary.stopped = Some(reason.clone());
                        if reason != "shut down" {
                            exit_code = 1;
                        }
                        break;
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                if deadline.is_some_and(|d| d <= Instant::now()) {
                    break;
                }
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(at, _)| *at <= now);
                timers = later;
                for (_, timer) in due {
                    let command = match timer {
                        Timer::Answer(call) => {
                            let offered = ringing.get(&call).map(|(_, kind)| *kind).unwrap_or(CallKind::Audio);
                            match cli.answer {
                                Answer::Accept => Command::Accept { call, media: MediaState::for_kind(offered) },
                                Answer::Decline => Command::Decline { call, busy: false },
                                Answer::Busy => Command::Decline { call, busy: true },
                                Answer::Ignore => continue,
                            }
                        }
                        Timer::Hangup(call) => Command::Hangup { call },
                    };
                    engine.send(command)?;
                }
            }
            _ = frames_landed.notified() => {
                let now = Instant::now();
                for (call, since) in &active_since {
                    for (peer, slot) in engine.remote_video().streams(call) {
                        let Some(frame) = slot.latest() else { continue };
                        let peer = peer.to_string();
                        let entry = match summary.video.iter().position(|v| &v.call == call && v.peer == peer) {
                            Some(at) => &mut summary.video[at],
                            None => {
                                summary.video.push(VideoSummary {
                                    call: call.clone(),
                                    peer,
                                    frames_decoded: 0,
                                    first_frame_ms: None,
                                    freezes: 0,
                                    longest_gap_ms: 0,
                                    latency_ms_median: None,
                                    last_index: 0,
                                    last_at: None,
                                    latencies_us: Vec::new(),
                                });
                                summary.video.last_mut().expect("just pushed")
                            }
                        };
                        if frame.index == entry.last_index {
                            continue;
                        }
                        entry.first_frame_ms.get_or_insert(now.saturating_duration_since(*since).as_millis() as u64);
                        if let Some(at) = entry.last_at {
                            let gap = now - at;
                            entry.longest_gap_ms = entry.longest_gap_ms.max(gap.as_millis() as u64);
                            if gap > Duration::from_millis(200) {
                                entry.freezes += 1;
                            }
                        }
                        entry.last_at = Some(now);
                        entry.last_index = frame.index;
                        entry.frames_decoded = slot.frames_decoded();
                        if let Some(stamp) = frame.stamp {
                            entry.latencies_us.push(frame.decoded_us.saturating_sub(stamp.captured_us));
                        }
                    }
                }
            }
            _ = audio_check.tick(), if cli.media || cli.echo => {
                audio_checks += 1;
                let analyse_tone = audio_checks % 4 == 1;
                for call in active_since.keys() {
                    for (peer, slot) in engine.remote_audio().streams(call) {
                        let entry = AudioSummary {
                            call: call.clone(),
                            peer: peer.to_string(),
                            frames_decoded: slot.frames_decoded(),
                            frames_recovered: slot.frames_recovered(),
                            frames_concealed: slot.frames_concealed(),
                            tone_hz: if analyse_tone { slot.dominant_frequency() } else { None },
                        };
                        match summary.audio.iter_mut().find(|a| a.call == entry.call && a.peer == entry.peer) {
                            Some(existing) if entry.frames_decoded >= existing.frames_decoded => {
                                let tone_hz = if analyse_tone { entry.tone_hz } else { existing.tone_hz };
                                *existing = AudioSummary { tone_hz, ..entry };
                            }
                            Some(_) => {}
                            None => summary.audio.push(entry),
                        }
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    engine.shutdown().await;
    while let Ok(event) = events.try_recv() {
        print_event(started, &event);
        if let Event::CallEnded { reason, .. } = &event {
            *summary.ended.entry(reason.as_str()).or_default() += 1;
        }
    }
    for video in &mut summary.video {
        video.latencies_us.sort_unstable();
        video.latency_ms_median = video.latencies_us.get(video.latencies_us.len() / 2).map(|us| *us as f64 / 1e3);
    }
    let mut line = serde_json::to_value(&summary)?;
    if let Some(object) = line.as_object_mut() {
        object.insert("event".into(), "summary".into());
        object.insert("t_ms".into(), (started.elapsed().as_millis() as u64).into());
    }
    println!("{line}");
    std::process::exit(exit_code);
}
