//! `dialtone-bench ringing`: measures the signaling server from the outside.
//!
//! It starts `dialtone-server` as a child process (so the server's memory is its own), signs in many
//! WebSocket clients, each user on two devices, and then places calls one after another: the time from
//! sending an invitation to the moment the last of the callee's devices has received its ring is the
//! invite-to-ringing latency. Memory per idle connection is the server's resident memory growth divided
//! by the number of connections.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use dialtone_protocol::{
    CallId, CallKind, ClientFrame, ClientMessage, DeviceId, PROTOCOL_VERSION, ServerMessage, UserId, decode_server,
    encode,
};
use dialtone_server::{Secret, mint};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Invite-to-ringing latency and memory per idle connection of dialtone-server.
#[derive(Args, Debug)]
pub struct RingingArgs {
    /// Signed-in connections (users × 2 devices).
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Calls to place, one after another.
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
    /// Connection attempts in flight while signing in.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// The server binary; by default the one next to this program.
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

struct Received {
    client: usize,
    message: ServerMessage,
    at: Instant,
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the server's memory")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc status")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs the benchmark and prints its figures.
pub async fn run(cli: RingingArgs) -> Result<()> {
    if cli.clients < 4 || !cli.clients.is_multiple_of(2) {
        bail!("--clients must be an even number of at least 4");
    }
    let server_bin = match cli.server_bin {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("dialtone-server"),
    };
    let work = std::env::temp_dir().join(format!("dialtone-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let secret_file = work.join("secret");
    let secret = Secret::load_or_create(&secret_file)?;

    let mut server = tokio::process::Command::new(&server_bin)
        .args(["--listen", "127.0.0.1:0", "--max-connections", "1000000"])
        .arg("--secret-file")
        .arg(&secret_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} (build it with cargo build --release)", server_bin.display()))?;
    let pid = server.id().context("server pid")?;
    let mut lines = BufReader::new(server.stdout.take().context("server stdout")?).lines();
    let url = loop {
        let line = lines.next_line().await?.context("the server exited before listening")?;
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib(pid)?;

    // Sign everyone in: user i has devices "a" and "b".
    let users = cli.clients / 2;
    let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3_600;
    let (received_tx, mut received) = mpsc::unbounded_channel::<Received>();
    let mut senders = Vec::with_capacity(cli.clients);
    let connect_started = Instant::now();
    let mut connecting = futures_util::stream::iter((0..cli.clients).map(|client| {
        let user = UserId::new(format!("u{}", client / 2)).expect("valid id");
        let device = DeviceId::new(if client % 2 == 0 { "a" } else { "b" }).expect("valid id");
        let token = mint(&secret, &user, user.as_str(), expires).expect("valid name");
        let url = url.clone();
        async move { (client, connect(&url, token, device).await) }
    }))
    .buffered(cli.connect_concurrency);
    while let Some((client, socket)) = connecting.next().await {
        let socket = socket.with_context(|| format!("client {client}"))?;
        senders.push(spawn_client(client, socket, received_tx.clone()));
    }
    let connect_time = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kib(pid)?;
    let per_connection = (rss_idle.saturating_sub(rss_before)) as f64 * 1024.0 / cli.clients as f64;

    // Calls: user i calls user i + users/2, ringing both of the callee's devices, then cancels.
    let half = users / 2;
    let mut latencies = Vec::with_capacity(cli.calls);
    for index in 0..cli.calls {
        let caller = (index % half) * 2;
        let callee_user = index % half + half;
        let callee_devices: HashSet<usize> = [callee_user * 2, callee_user * 2 + 1].into();
        let call = CallId::new(format!("bench{index}")).expect("valid id");
        let invite = ClientMessage::Invite {
            call: call.clone(),
            kind: CallKind::Video,
            users: vec![UserId::new(format!("u{callee_user}")).expect("valid id")],
            group: false,
            ring_timeout_ms: None,
        };
        let sent = Instant::now();
        senders[caller].send(frame(invite))?;
        let mut rung = HashSet::new();
        let mut last = sent;
        while rung != callee_devices {
            let got = tokio::time::timeout(Duration::from_secs(5), received.recv())
                .await
                .with_context(|| format!("call {index}: no ring within 5 s"))?
                .context("clients gone")?;
            match &got.message {
                ServerMessage::Incoming { call: info, .. } if info.call == call => {
                    rung.insert(got.client);
                    last = last.max(got.at);
                }
                ServerMessage::Error { message, .. } => bail!("call {index}: server error: {message}"),
                _ => {}
            }
        }
        latencies.push(last - sent);
        senders[caller].send(frame(ClientMessage::Cancel { call: call.clone() }))?;
        // Wait until the callee's devices and the caller are told, so the next call starts clean.
        let mut ended = HashSet::new();
        while ended.len() < 3 {
            let got = tokio::time::timeout(Duration::from_secs(5), received.recv())
                .await
                .with_context(|| format!("call {index}: no end within 5 s"))?
                .context("clients gone")?;
            if matches!(&got.message, ServerMessage::Ended { call: c, .. } if *c == call) {
                ended.insert(got.client);
            }
        }
    }
    latencies.sort();
    let rss_end = rss_kib(pid)?;
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;

    println!("dialtone-bench: {} clients ({users} users x 2 devices), {} calls", cli.clients, cli.calls);
    println!("  sign-in of all clients      {:>8.0} ms", connect_time.as_secs_f64() * 1e3);
    println!(
        "  invite -> ringing on every device: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("calls > 0")),
        ms(mean),
    );
    println!(
        "  server RSS: {:.1} MiB at start, {:.1} MiB with all signed in, {:.1} MiB after the calls",
        rss_before as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    println!("  memory per idle connection: {:.1} KB", per_connection / 1000.0);

    drop(senders);
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn frame(message: ClientMessage) -> String {
    encode(&ClientFrame { seq: None, message })
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, token: String, device: DeviceId) -> Result<Socket> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let hello = frame(ClientMessage::Hello { version: PROTOCOL_VERSION, token, device });
    socket.send(Message::Text(hello.into())).await?;
    match socket.next().await {
        Some(Ok(Message::Text(text))) => match decode_server(&text)? {
            ServerMessage::Welcome { .. } => Ok(socket),
            other => bail!("sign-in refused: {other:?}"),
        },
        other => bail!("no welcome: {other:?}"),
    }
}

/// Runs one client: forwards what it receives (with the arrival time) and sends what it is given,
/// pinging now and then so that the server keeps it.
fn spawn_client(
    client: usize,
    socket: Socket,
    received: mpsc::UnboundedSender<Received>,
) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let (mut sink, mut stream) = socket.split();
        let mut ping = tokio::time::interval(Duration::from_secs(10));
        let mut nonce = 0;
        loop {
            tokio::select! {
                outgoing = rx.recv() => match outgoing {
                    Some(text) => if sink.send(Message::Text(text.into())).await.is_err() { break },
                    None => break,
                },
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let at = Instant::now();
                        if let Ok(message) = decode_server(&text) {
                            let _ = received.send(Received { client, message, at });
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                _ = ping.tick() => {
                    nonce += 1;
                    if sink.send(Message::Text(frame(ClientMessage::Ping { nonce }).into())).await.is_err() { break }
                }
            }
        }
    });
    tx
}
