//! `dialtone-bench call`: media between engines in this one process, over loopback, through an embedded
//! server. It measures what a person notices: how soon the picture appears after answering, and what a
//! call costs in CPU and memory.
//!
//! 1. Accept → first frame: the caller calls, the callee's device pre-connects while it rings (at least
//!    `--ring-ms`, as a person takes that long to answer), the callee answers with its camera on; the time from the answer to the first frame decoded at the caller.
//!    Offer → connected is the callee's link from its start (offer) to ICE+DTLS connected.
//! 2. Steady one-way call: the caller sends its camera, the callee answers with its camera off; CPU
//!    (cores: CPU time over wall time, the whole process) and resident memory, and capture → render
//!    latency from the test pattern's stamps.
//! 3. Steady mesh call of N members, everyone sending: CPU and memory.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use dialtone_engine::{CameraConfig, Command, Engine, EngineConfig, Event, MediaConfig, MediaLinkState};
use dialtone_protocol::{CallId, CallKind, DeviceAddress, DeviceId, MediaState, UserId};
use dialtone_server::{Secret, ServerConfig, ServerHandle, mint};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// Media figures of calls between engines in one process.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// Calls measured for accept → first frame.
    #[arg(long, default_value_t = 30)]
    calls: usize,
    /// Camera format of the 1v1 calls, WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "1280x720@30", value_parser = str::parse::<CameraConfig>)]
    camera: CameraConfig,
    /// Seconds each steady call is measured.
    #[arg(long, default_value_t = 10)]
    steady_secs: u64,
    /// Members of the mesh call (0 skips it).
    #[arg(long, default_value_t = 4)]
    mesh: usize,
    /// Camera format of the mesh call.
    #[arg(long, default_value = "640x360@30", value_parser = str::parse::<CameraConfig>)]
    mesh_camera: CameraConfig,
    /// How long the callee's device rings before it answers, at least: a person takes a second or more,
    /// and the device makes its connection and its codecs meanwhile.
    #[arg(long, default_value_t = 500)]
    ring_ms: u64,
    /// Leave glibc's allocator as it is, rather than set up as the app and the bot set it
    /// (`tune_allocator`): to measure what that setting does.
    #[arg(long)]
    allocator_defaults: bool,
    /// Both microphones muted in the steady 1v1 call: the video path alone, as the one-way 720p30 goal
    /// is stated.
    #[arg(long)]
    video_only: bool,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The fields of /proc/self/stat after the parenthesised command name (the state is the first).
fn stat_fields() -> Result<Vec<u64>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_name = stat.rsplit_once(')').context("odd /proc/self/stat")?.1;
    // The state is a letter; it reads as 0.
    Ok(after_name.split_whitespace().map(|field| field.parse().unwrap_or(0)).collect())
}

/// Minor page faults of this process so far: memory given back and taken again shows here.
fn page_faults() -> Result<u64> {
    stat_fields()?.get(7).copied().context("no minflt in /proc/self/stat")
}

/// CPU time (user + system) of this process.
fn cpu_time() -> Result<Duration> {
    let fields = stat_fields()?;
    // utime and stime.
    let ticks: u64 =
        fields.get(11).zip(fields.get(12)).map(|(user, system)| user + system).context("odd /proc/self/stat")?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / per_second))
}

/// (current, peak) resident memory of this process in MiB.
fn memory_mib() -> Result<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<f64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
        let kib: f64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Threads of this process: a leaked camera or task thread shows here.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count())
}

struct Member {
    name: String,
    engine: Engine,
    events: UnboundedReceiver<Event>,
    /// Notified by the engine's wake callback (an event, a decoded frame), as a UI's repaint would be.
    woken: Arc<Notify>,
}

impl Member {
    async fn start(server: &ServerHandle, secret: &Secret, name: &str, camera: CameraConfig) -> Result<Member> {
        let user = UserId::new(name)?;
        let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3_600;
        let token = mint(secret, &user, name, expires)?;
        let mut config = EngineConfig::new(server.url(), token, DeviceId::new("pc")?);
        config.media = Some(MediaConfig { camera, ..MediaConfig::default() });
        let woken = Arc::new(Notify::new());
        let notify = woken.clone();
        config.waker = Some(Arc::new(move || notify.notify_one()));
        let (engine, events) = Engine::start(config);
        let mut member = Member { name: name.to_owned(), engine, events, woken };
        member.wait("signed in", |e| matches!(e, Event::SignedIn { .. })).await?;
        Ok(member)
    }

    async fn wait(&mut self, what: &str, wanted: impl Fn(&Event) -> bool) -> Result<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .with_context(|| format!("{}: no {what} within 10 s", self.name))?
                .with_context(|| format!("{}: engine stopped", self.name))?;
            if let Event::Stopped { reason } = &event {
                bail!("{}: engine stopped: {reason}", self.name);
            }
            if wanted(&event) {
                return Ok(event);
            }
        }
    }

    fn address(&self) -> DeviceAddress {
        DeviceAddress { user: UserId::new(&self.name).expect("valid"), device: DeviceId::new("pc").expect("valid") }
    }

    /// Waits for the first decoded frame from `peer`; returns when it was decoded (Unix microseconds).
    async fn first_frame(&self, call: &CallId, peer: &DeviceAddress) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(frame) = self.engine.remote_video().get(call, peer).and_then(|slot| slot.latest()) {
                return Ok(frame.decoded_us);
            }
            if Instant::now() > deadline {
                bail!("{}: no frame from {peer} within 10 s", self.name);
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
}

fn summary(samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    format!("p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms ({} samples)", at(0.5), at(0.9), at(1.0), samples.len())
}

async fn place(caller: &mut Member, callee: &mut Member, kind: CallKind) -> Result<CallId> {
    caller.engine.send(Command::Call {
        call: None,
        users: vec![UserId::new(&callee.name)?],
        kind,
        group: false,
        ring_timeout: None,
        media: None,
    })?;
    match callee.wait("incoming call", |e| matches!(e, Event::IncomingCall { .. })).await? {
        Event::IncomingCall { call, .. } => Ok(call.call),
        _ => unreachable!("matched above"),
    }
}

async fn hang_up(caller: &mut Member, callee: &mut Member, call: &CallId) -> Result<()> {
    caller.engine.send(Command::Hangup { call: call.clone() })?;
    callee.wait("call ended", |e| matches!(e, Event::CallEnded { call: c, .. } if c == call)).await?;
    caller.wait("call ended", |e| matches!(e, Event::CallEnded { call: c, .. } if c == call)).await?;
    Ok(())
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: CallArgs) -> Result<()> {
    if !args.allocator_defaults {
        dialtone_engine::tune_allocator();
    }
    let secret = Secret::random();
    let server = dialtone_server::spawn(ServerConfig::new("127.0.0.1:0".parse()?, secret.clone())).await?;
    let camera = args.camera;
    println!(
        "dialtone-bench call: {}x{}@{} ({} kbps), {} calls; steady {} s",
        camera.width, camera.height, camera.fps, camera.bitrate_kbps, args.calls, args.steady_secs
    );

    // 1. Accept → first frame, offer → connected.
    let mut alice = Member::start(&server, &secret, "alice", camera).await?;
    let mut bob = Member::start(&server, &secret, "bob", camera).await?;
    let (mut first_frame_ms, mut connected_ms) = (Vec::new(), Vec::new());
    for _ in 0..args.calls {
        let call = place(&mut alice, &mut bob, CallKind::Video).await?;
        let ring_ends = Instant::now() + Duration::from_millis(args.ring_ms);
        let connected = bob
            .wait("pre-connection", |e| matches!(e, Event::MediaLink { state: MediaLinkState::Connected, .. }))
            .await?;
        if let Event::MediaLink { after_ms, .. } = connected {
            connected_ms.push(after_ms as f64);
        }
        tokio::time::sleep_until(ring_ends).await;
        let accepted_us = now_us();
        bob.engine.send(Command::Accept { call: call.clone(), media: MediaState::for_kind(CallKind::Video) })?;
        let first = alice.first_frame(&call, &bob.address()).await?;
        first_frame_ms.push(first.saturating_sub(accepted_us) as f64 / 1e3);
        hang_up(&mut alice, &mut bob, &call).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  accept -> first decoded frame at the caller: {}", summary(&mut first_frame_ms));
    println!("  offer -> connected (callee's link, while ringing): {}", summary(&mut connected_ms));

    // 2. A steady one-way call: alice's camera to bob.
    let call = place(&mut alice, &mut bob, CallKind::Video).await?;
    let audio_muted = args.video_only;
    bob.engine.send(Command::Accept { call: call.clone(), media: MediaState { audio_muted, camera_on: false } })?;
    if audio_muted {
        alice
            .engine
            .send(Command::SetMedia { call: call.clone(), media: MediaState { audio_muted, camera_on: true } })?;
    }
    alice.first_frame(&call, &DeviceAddress { user: UserId::new("bob")?, device: DeviceId::new("pc")? }).await.ok();
    let slot = {
        bob.first_frame(&call, &alice.address()).await?;
        bob.engine.remote_video().get(&call, &alice.address()).context("bob's stream from alice")?
    };
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    let (cpu_before, wall_before, frames_before, faults_before) =
        (cpu_time()?, Instant::now(), slot.frames_decoded(), page_faults()?);
    let mut latencies = Vec::new();
    let mut last_index = 0;
    let steady = Duration::from_secs(args.steady_secs);
    while wall_before.elapsed() < steady {
        if let Some(frame) = slot.latest()
            && frame.index != last_index
        {
            last_index = frame.index;
            if let Some(stamp) = frame.stamp {
                latencies.push(frame.decoded_us.saturating_sub(stamp.captured_us) as f64 / 1e3);
            }
        }
        // Woken by the engine like a UI, rather than polling, which would cost the measured process.
        let _ = tokio::time::timeout(Duration::from_millis(100), bob.woken.notified()).await;
    }
    let cores = (cpu_time()? - cpu_before).as_secs_f64() / wall_before.elapsed().as_secs_f64();
    let fps = (slot.frames_decoded() - frames_before) as f64 / wall_before.elapsed().as_secs_f64();
    let faults = (page_faults()? - faults_before) as f64 / wall_before.elapsed().as_secs_f64();
    let (rss, peak) = memory_mib()?;
    println!(
        "  steady one-way {}x{}@{} {}: {cores:.3} cores (whole process: server, both engines, the reader), \
         {fps:.1} fps received, {faults:.0} page faults a second, RSS {rss:.1} MiB (peak {peak:.1} MiB), {} threads",
        camera.width,
        camera.height,
        camera.fps,
        if audio_muted { "video, both muted" } else { "video, audio both ways" },
        thread_count()
    );
    println!("  capture -> decoded at the receiver: {}", summary(&mut latencies));
    hang_up(&mut alice, &mut bob, &call).await?;
    alice.engine.shutdown().await;
    bob.engine.shutdown().await;

    // 3. A steady mesh call.
    if args.mesh >= 2 {
        let camera = args.mesh_camera;
        let mut members = Vec::new();
        for index in 0..args.mesh {
            members.push(Member::start(&server, &secret, &format!("m{index}"), camera).await?);
        }
        let invitees: Vec<UserId> = members[1..].iter().map(|m| UserId::new(&m.name)).collect::<Result<_, _>>()?;
        members[0].engine.send(Command::Call {
            call: None,
            users: invitees,
            kind: CallKind::Video,
            group: true,
            ring_timeout: None,
            media: None,
        })?;
        let mut call = None;
        for member in &mut members[1..] {
            if let Event::IncomingCall { call: info, .. } =
                member.wait("incoming", |e| matches!(e, Event::IncomingCall { .. })).await?
            {
                member
                    .engine
                    .send(Command::Accept { call: info.call.clone(), media: MediaState::for_kind(CallKind::Video) })?;
                call = Some(info.call);
            }
        }
        let call = call.context("no call")?;
        for member in &members {
            for other in &members {
                if other.name != member.name {
                    member.first_frame(&call, &other.address()).await?;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (cpu_before, wall_before) = (cpu_time()?, Instant::now());
        tokio::time::sleep(steady).await;
        let cores = (cpu_time()? - cpu_before).as_secs_f64() / wall_before.elapsed().as_secs_f64();
        let decoded: u64 = members
            .iter()
            .flat_map(|m| m.engine.remote_video().streams(&call))
            .map(|(_, slot)| slot.frames_decoded())
            .sum();
        let (rss, peak) = memory_mib()?;
        println!(
            "  steady {}-party mesh {}x{}@{} (everyone sends, {} streams decoded): {cores:.3} cores, \
             RSS {rss:.1} MiB (peak {peak:.1} MiB), {decoded} frames decoded in all",
            args.mesh,
            camera.width,
            camera.height,
            camera.fps,
            args.mesh * (args.mesh - 1)
        );
        for member in members {
            member.engine.shutdown().await;
        }
    }
    server.shutdown().await;
    Ok(())
}
