//! `dialtone`: the desktop app. Until its window lands, it runs the whole call flow on this machine:
//! an embedded signaling server and two engines, one calling the other, narrated on the terminal.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use dialtone_engine::{Command, Engine, EngineConfig, Event};
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
        _ => return None,
    })
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
        Ok(Engine::start(EngineConfig::new(server.url(), token, DeviceId::new("desktop")?)))
    };
    let (you, mut your_events) = start("you", "You")?;
    let (echo, mut echo_events) = start("echo", "Echo")?;

    let started = Instant::now();
    let limit = started + Duration::from_secs(cli.seconds + 10);
    let mut signed_in = 0;
    let mut hang_up_at: Option<Instant> = None;
    let mut active_call = None;
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
    println!("The desktop window arrives with the app issue; this run showed the call flow end to end.");
    Ok(())
}
