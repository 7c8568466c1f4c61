//! `dialtone`: the desktop app for audio and video calls.
//!
//! With no server given it runs one on this machine with demo contacts (Echo, and a group of three),
//! so one command shows every view. `--server URL --user NAME` signs in elsewhere.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use dialtone::session::{Server, SessionConfig};
use dialtone::ui::{App, Paths};
use dialtone_engine::{CameraConfig, DeviceChoice, QUIET_TURN, ServerUrl};
use dialtone_protocol::{DeviceId, Fingerprint, UserId};

/// Dialtone: audio and video calls.
#[derive(Parser, Debug)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("DIALTONE_COMMIT"), ")"), about)]
struct Cli {
    /// A Dialtone server's ws:// URL; without it, a server runs inside the app on this machine.
    #[arg(long, env = "DIALTONE_SERVER")]
    server: Option<String>,
    /// Your user id (letters, digits, . _ - @ +).
    #[arg(long, env = "DIALTONE_USER")]
    user: Option<String>,
    /// A sign-in token for --server; on this machine's own server one is made from its key.
    #[arg(long, env = "DIALTONE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Trust only the server certificate with this SHA-256 fingerprint (a self-signed server prints it).
    #[arg(long, env = "DIALTONE_FINGERPRINT")]
    fingerprint: Option<Fingerprint>,
    /// Allow sending your sign-in token unencrypted (ws://) to a server on another computer.
    #[arg(long)]
    insecure: bool,
    /// An invite link (dialtone://invite?…): sign in with it; kept in the settings for next time.
    #[arg(value_name = "INVITE_LINK")]
    invite: Option<String>,
    /// This device's name, unique among your devices.
    #[arg(long, default_value = "desktop")]
    device: String,
    /// Keep settings, history and the server key here instead of the platform's folders.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The embedded server's port (another free port is used when it is taken).
    #[arg(long, default_value_t = 47_800)]
    port: u16,
    /// Do not start the demo contacts with the embedded server.
    #[arg(long)]
    no_demo: bool,
    /// Use the test tone, the silent speaker and the test pattern unless the settings pick a device.
    #[arg(long)]
    fake_devices: bool,
    /// The camera's format, WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "640x360@30", value_parser = str::parse::<CameraConfig>)]
    camera: CameraConfig,
    /// Walk through every view by itself, writing NN-VIEW.ready into DIR at each (for
    /// scripts/screenshots), then quit.
    #[arg(long, value_name = "DIR")]
    tour: Option<PathBuf>,
}

fn main() -> Result<()> {
    let process_start = std::time::Instant::now();
    dialtone_engine::tune_allocator();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            format!("warn,dialtone=info,dialtone_engine=warn,dialtone_media=warn,{QUIET_TURN}").into()
        }))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Before anything touches the sound system (the ringtone player included): its messages about a
    // missing sound card go to the log, not to the terminal.
    dialtone_engine::route_sound_system_messages_to_log();

    // Settings and history are per user: a second instance signed in as someone else keeps its own.
    let base = match &cli.data_dir {
        Some(folder) => Paths::in_folder(folder),
        None => Paths::platform().context("no home folder to keep settings in; pass --data-dir")?,
    };
    let mut saved = dialtone::store::load::<dialtone::settings::Settings>(&base.settings).value;
    // An invite link (clicked, or given on the command line) signs in where it says, from now on.
    let mut invite_problem = None;
    let mut clear_text_warning = None;
    if let Some(link) = &cli.invite {
        let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        match dialtone::invite::read(link, unix_now) {
            Ok(invitation) => {
                invitation.apply_to(&mut saved);
                dialtone::store::save(&base.settings, &saved).context("keeping the invitation in the settings")?;
            }
            Err(problem) => invite_problem = Some(problem.to_string()),
        }
    }
    let user = cli
        .user
        .clone()
        .or_else(|| Some(saved.server.user.clone()).filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "me".to_owned());
    let user = UserId::new(&user).with_context(|| format!("--user {user:?}"))?;
    let paths = match &cli.user {
        Some(_) if cli.server.is_some() => {
            let folder = base.data.join("users").join(user.as_str());
            Paths { data: base.data.clone(), ..Paths::in_folder(folder) }
        }
        _ => base,
    };
    let server_url = cli.server.clone().or_else(|| Some(saved.server.url.clone()).filter(|u| !u.is_empty()));
    let server = match server_url {
        Some(url) => {
            let parsed = ServerUrl::parse(&url).map_err(|problem| anyhow::anyhow!("--server {url}: {problem}"))?;
            let token = cli.token.clone().or_else(|| Some(saved.server.token.clone()).filter(|t| !t.is_empty()));
            let fingerprint = match cli.fingerprint {
                Some(fingerprint) => Some(fingerprint),
                None if !saved.server.fingerprint.is_empty() => {
                    Some(saved.server.fingerprint.parse().context("the server fingerprint in the settings file")?)
                }
                None => None,
            };
            let allow_clear_text = cli.insecure || saved.server.allow_clear_text;
            if let Err(refused) = parsed.check_clear_text(allow_clear_text) {
                bail!("--server {url}: {refused}");
            }
            if allow_clear_text && !parsed.secure {
                let warning = format!(
                    "Your sign-in and your calls' signaling go unencrypted to {url}: anyone on the way can read them"
                );
                eprintln!("warning: {warning}");
                clear_text_warning = Some(warning);
            }
            Server::Remote { url, token, fingerprint, allow_clear_text }
        }
        None => Server::Embedded { port: cli.port, demo: !cli.no_demo, on_network: saved.server.host_on_network },
    };
    let config = SessionConfig {
        server,
        user,
        display_name: String::new(),
        device: DeviceId::new(&cli.device).with_context(|| format!("--device {:?}", cli.device))?,
        data_dir: paths.data.clone(),
        camera: cli.camera,
        devices: if cli.fake_devices { DeviceChoice::fake() } else { DeviceChoice::default() },
        relay_only: saved.calls.always_relay,
    };
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!(
            "no display: Dialtone needs a graphical session (DISPLAY or WAYLAND_DISPLAY); for calls without a window use dialtone-bot"
        );
    }
    let mut app = App::start(config, paths).context("starting Dialtone")?;
    if let Some(problem) = invite_problem {
        eprintln!("The invite link cannot be used: {problem}");
        app.notify(format!("The invite link cannot be used: {problem}"));
    }
    if let Some(warning) = clear_text_warning {
        app.notify(warning);
    }
    let restart = app.restart_flag();
    app.count_start_from(process_start);
    app.start_tray();
    if let Some(folder) = cli.tour {
        std::fs::create_dir_all(&folder).with_context(|| format!("--tour {}", folder.display()))?;
        app.start_tour(folder);
    }
    let icon =
        eframe::icon_data::from_png_bytes(include_bytes!("../assets/dialtone.png")).context("the built-in icon")?;
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title("Dialtone")
            .with_app_id("org.dialtone.Dialtone")
            .with_inner_size([1040.0, 700.0])
            .with_min_inner_size([480.0, 420.0])
            .with_icon(icon),
        // Dithering adds per-pixel arithmetic to every fragment; a software renderer (Mesa llvmpipe on a
        // machine without a GPU) pays for it on the CPU, and the flat theme shows no banding without it.
        dithering: false,
        ..Default::default()
    };
    eframe::run_native("Dialtone", options, Box::new(move |_| Ok(Box::new(app))))
        .map_err(|error| anyhow::anyhow!("cannot open the window: {error}"))?;
    if restart.load(std::sync::atomic::Ordering::SeqCst) {
        // Signed in somewhere else: start again with the saved settings (no invite, no server flags).
        let program = std::env::current_exe().context("finding this program to start it again")?;
        let keep: Vec<std::ffi::OsString> = keep_across_restart(std::env::args_os().skip(1));
        let error = std::os::unix::process::CommandExt::exec(std::process::Command::new(program).args(keep));
        bail!("cannot start Dialtone again: {error}");
    }
    Ok(())
}

/// The command-line arguments that still apply after signing in elsewhere: all but the invite link and
/// the server, user and token flags (the settings now say where to sign in).
fn keep_across_restart(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const FLAGS: [&str; 4] = ["--server", "--user", "--token", "--fingerprint"];
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in args {
        let text = arg.to_string_lossy();
        let flag = text.split_once('=').map_or(text.as_ref(), |(flag, _)| flag);
        let dropped = skip_value || FLAGS.contains(&flag) || text.starts_with("dialtone://");
        // `--server URL` drops the next argument too; `--server=URL` is one argument.
        skip_value = !skip_value && FLAGS.contains(&text.as_ref());
        if !dropped {
            kept.push(arg);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_keeps_the_flags_but_where_to_sign_in() {
        let args = [
            "--camera",
            "640x360@30",
            "--server",
            "ws://127.0.0.1:1",
            "--user=bob",
            "dialtone://invite?x=1",
            "--fake-devices",
            "--token",
            "t",
            "--fingerprint=ab",
            "--data-dir",
            "/tmp/d",
        ];
        let kept = keep_across_restart(args.iter().map(std::ffi::OsString::from));
        let kept: Vec<&str> = kept.iter().filter_map(|arg| arg.to_str()).collect();
        assert_eq!(kept, ["--camera", "640x360@30", "--fake-devices", "--data-dir", "/tmp/d"]);
    }
}
