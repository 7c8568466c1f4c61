//! `dialtone`: the desktop app. Until its window lands, it runs the whole call flow on this machine:
//! an embedded signaling server and two engines, one calling the other, narrated on the terminal.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use dialtone_engine::{Command, Engine, EngineConfig, Event, MediaConfig, MicrophoneConfig};
use dialtone_protocol::{CallKind, DeviceId, MediaState, UserId};
use dialtone_server::{Secret, ServerConfig};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// Dialtone: audio and video calls.
#[derive(Parser, Debug)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("DIALTONE_COMMIT"), ")"), about)]
struct Cli {
    /// How long the demonstration call lasts.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::SignedIn { user, device, .. } => format!("signed in as {user} on {device}"),
        Event::OutgoingCall { users, kind, .. } => format!("calling {} ({kind:?})", join(users)),
        Event::Ringing { user, devices, .. } => format!("{user} is ringing on {devices} device(s)"),
        Event::IncomingCall { from, call, .. } => format!("incoming {:?} call from {from}", call.kind),
        Event::CallActive { call } => format!("in call {} with {} member(s)", call.call, call.members.len()),
        Event::ParticipantJoined { user, device, .. } => format!("{user} answered on {device}"),
        Event::CallEnded { reason, duration_ms, .. } => {
            format!("call ended: {reason} after {:.1} s", duration_ms.unwrap_or(0) as f64 / 1e3)
        }
        Event::Error { message, .. } => format!("error: {message}"),
        Event::MediaLink { peer, state, after_ms, .. } => format!("media connection to {peer}: {state:?} after {after_ms} ms"),
        Event::ActiveSpeaker { user: Some(user), .. } => format!("{user} is speaking"),
        _ => return None,
    })
}

/// Says what arrived from Echo before hanging up: proof that media crossed the whole pipeline.
fn report_media(you: &Engine, call: &dialtone_protocol::CallId, since: Option<Instant>) {
    let seconds = since.map_or(0.0, |at| at.elapsed().as_secs_f64());
    for (peer, slot) in you.remote_video().streams(call) {
        let size = slot.latest().map_or((0, 0), |f| (f.picture.width, f.picture.height));
        println!(
            "           you : {} video frames from {peer} in {seconds:.1} s ({}x{})",
            slot.frames_decoded(),
            size.0,
            size.1
        );
    }
    for (peer, slot) in you.remote_audio().streams(call) {
        let tone = slot.dominant_frequency().map_or("nothing".to_owned(), |hz| format!("a {hz:.0} Hz tone"));
        println!("           you : {} audio frames from {peer}, hearing {tone}", slot.frames_decoded());
    }
}

fn join(users: &[UserId]) -> String {
    users.iter().map(UserId::as_str).collect::<Vec<_>>().join(", ")
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let secret = Secret::random();
    let server = dialtone_server::spawn(ServerConfig::new("127.0.0.1:0".parse()?, secret.clone())).await?;
    println!("Dialtone {} - embedded server on {}", env!("CARGO_PKG_VERSION"), server.url());

    let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3_600;
    let start = |user: &str, name: &str| -> Result<(Engine, UnboundedReceiver<Event>)> {
        let id = UserId::new(user)?;
        let token = dialtone_server::mint(&secret, &id, name, expires)?;
        let mut config = EngineConfig::new(server.url(), token, DeviceId::new("desktop")?);
        // Test-pattern cameras and tone microphones until the real devices land.
        config.media = Some(MediaConfig {
            microphone: MicrophoneConfig { tone_hz: if user == "you" { 440.0 } else { 660.0 }, ..Default::default() },
            ..MediaConfig::default()
        });
        Ok(Engine::start(config))
    };
    let (you, mut your_events) = start("you", "You")?;
    let (echo, mut echo_events) = start("echo", "Echo")?;

    let started = Instant::now();
    let limit = started + Duration::from_secs(cli.seconds + 10);
    let mut signed_in = 0;
    let mut hang_up_at: Option<Instant> = None;
    let mut active_call = None;
    let mut active_since = None;
    loop {
        let wake = hang_up_at.unwrap_or(limit).min(limit);
        let (who, event) = tokio::select! {
            Some(event) = your_events.recv() => ("you ", event),
            Some(event) = echo_events.recv() => ("echo", event),
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= limit {
                    bail!("the demonstration call did not finish in time");
                }
                hang_up_at = None;
                let call = active_call.clone().context("hang-up time without a call")?;
                report_media(&you, &call, active_since);
                you.send(Command::Hangup { call })?;
                continue;
            }
        };
        if let Some(text) = describe(&event) {
            println!("[{:>5} ms] {who}: {text}", started.elapsed().as_millis());
        }
        match event {
            Event::SignedIn { .. } => {
                signed_in += 1;
                if signed_in == 2 {
                    you.send(Command::Call {
                        call: None,
                        users: vec![UserId::new("echo")?],
                        kind: CallKind::Video,
                        group: false,
                        ring_timeout: None,
                    })?;
                }
            }
            Event::IncomingCall { call, .. } if who == "echo" => {
                echo.send(Command::Accept { call: call.call, media: MediaState::for_kind(call.kind) })?;
            }
            Event::CallActive { call } if who == "you " => {
                active_call = Some(call.call);
                active_since = Some(Instant::now());
                hang_up_at = Some(Instant::now() + Duration::from_secs(cli.seconds));
            }
            Event::CallEnded { .. } if who == "echo" => break,
            Event::Stopped { reason } => bail!("{who} stopped: {reason}"),
            _ => {}
        }
    }
    you.shutdown().await;
    echo.shutdown().await;
    server.shutdown().await;
    println!("The desktop window arrives with the app issue; this run showed a call end to end, media included.");
    Ok(())
}
