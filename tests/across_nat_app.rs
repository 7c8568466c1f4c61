//! The app as a person uses it, across two home NATs: Alice's app in home A signs in from an invite link
//! alone (no server, user or token flags), she types her name on the first-run card, clicks bob's video
//! call button, sees bob's test pattern moving on screen, and hangs up with H; bob is a bot in home B
//! that answers. The server (TLS, self-signed) and coturn run in the lab's "internet" (`scripts/netlab`,
//! as in `crates/bot/tests/across_nat.rs`), the app under Xvfb inside home A's namespace, driven with
//! xdotool and photographed with ImageMagick's `import`.
//!
//! Needs root, iproute2, nftables, coturn, Xvfb, xdotool and ImageMagick, and the server and bot binaries
//! next to the app's (`cargo build --workspace`). Without them the test fails, saying what is missing: it
//! never passes silently. Screenshots of the last run are kept in `target/tmp/across_nat_app/LAB/`.

#[path = "lab/mod.rs"]
mod lab;

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialtone_media::video::{RgbaFrame, Stamp, read_stamp};
use serde_json::Value;

use lab::{LabSpec, SIGNALING_PORT, in_path, sleep_until, tail};

/// Both cameras' format: the pattern is drawn at exactly this size (it is at least 256 wide and 80 tall).
const CAMERA: &str = "320x180@15";
const PATTERN: (u32, u32) = (320, 180);
/// The app's window, in points, as it opens (`src/main.rs`).
const WINDOW: (f32, f32) = (1040.0, 700.0);
/// The tone the app's fake microphone plays, and how far from it the bot may hear it.
const APP_TONE: f64 = 440.0;
const TONE_TOLERANCE: f64 = 10.0;
const BOB_TONE: &str = "520";
/// Frames bob must decode from the app over the call (15 fps sent).
const MIN_VIDEO_FRAMES: u64 = 30;
/// The call lasts at least this long after bob's side becomes active (about 60 frames at 15 fps).
const MIN_CALL: Duration = Duration::from_secs(4);
/// The two screenshots whose stamps must show the picture moving are this far apart at least.
const BETWEEN_SHOTS: Duration = Duration::from_millis(800);
/// A frame on screen is live when it was captured at most this long before the screenshot.
const LIVE_AGE: Duration = Duration::from_secs(3);

// The theme's colours the test finds things by (src/ui/theme.rs).
const BACKGROUND: [u8; 3] = [0x12, 0x14, 0x18];
const SURFACE: [u8; 3] = [0x1c, 0x1f, 0x26];
/// A text field's fill (egui's `extreme_bg_color` in the theme).
const FIELD: [u8; 3] = [0x0d, 0x0f, 0x12];
const GREEN: [u8; 3] = [0x2f, 0xbf, 0x71];

#[test]
fn the_app_signs_in_from_an_invite_link_and_calls_a_bot_in_another_home() {
    let started = Instant::now();
    let lab = Lab::up();
    let mut run = Run::new(&lab, started);

    // Bob, a bot in home B, is online and answers.
    run.start_bob();
    if !run.bob().wait_for_event("signed_in", Duration::from_secs(10)) {
        run.fail("bob (the bot in home B) did not sign in");
    }

    // Alice's app in home A, given only the invite link.
    let link = lab.invite("alice", "Alice");
    run.start_display();
    run.start_app(&link);
    run.find_window();

    // The link carries her name: no first-run card asking for it, her contacts at once, with bob online.
    if run.first_screen().is_some() {
        run.fail("the app asked for a name on its first-run card although the invite link carries it");
    }
    run.wait_for_saved_name("Alice");
    run.check_settings_from_the_link(&lab);
    let button = run.wait_for_contact_online();
    eprintln!("{}: contacts shown after {:.1} s", lab.prefix, started.elapsed().as_secs_f64());

    // She clicks bob's video call button; bob answers.
    run.click(button, "bob's video call button");
    if !run.bob().wait_for_event("incoming_call", Duration::from_secs(5)) {
        run.screenshot("after-click");
        run.fail("bob was not called within 5 s of the click on his video call button");
    }
    if !run.bob().wait_for_event("call_active", Duration::from_secs(10)) {
        run.fail("bob's call did not become active");
    }
    let active_at = Instant::now();
    eprintln!("{}: bob's call active after {:.1} s", lab.prefix, started.elapsed().as_secs_f64());

    // Bob's pattern is on Alice's screen, moving.
    let (first, first_shot) = run.wait_for_live_picture(Duration::from_secs(10));
    std::thread::sleep(BETWEEN_SHOTS);
    let (second, second_shot) = run.read_picture("picture-2");
    run.check_moving(&first, &second);
    let own = |seen: &Seen| seen.own.map_or("unreadable".to_owned(), |own| format!("frame {}", own.frame));
    eprintln!(
        "{}: bob's pattern on screen: frame {} ({} ms old; self view {}) in {}, then frame {} ({} ms old; self \
         view {}) in {}",
        lab.prefix,
        first.stamp.frame,
        first.age_ms,
        own(&first),
        first_shot.display(),
        second.stamp.frame,
        second.age_ms,
        own(&second),
        second_shot.display()
    );

    // Hang up with H once the call is long enough for bob to have decoded plenty.
    sleep_until(active_at + MIN_CALL);
    run.key("h");
    if !run.bob().wait_for_event("call_ended", Duration::from_secs(5)) {
        run.screenshot("after-hangup");
        run.fail("bob's call did not end within 5 s of pressing H in the app");
    }
    run.wait_for_contacts_again();
    run.stop_bob();
    run.check_bob();
    eprintln!(
        "{}: passed in {:.1} s; screenshots in {}",
        lab.prefix,
        started.elapsed().as_secs_f64(),
        run.shots_dir.display()
    );
}

// ---------------------------------------------------------------------------------------------------
// Tools and binaries.

fn netlab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/netlab")
}

fn app_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dialtone"))
}

/// Cargo builds only this package's binaries for its tests; the server's and the bot's are siblings.
fn server_bin() -> PathBuf {
    app_bin().with_file_name(lab::SERVER_BINARY)
}

fn bot_bin() -> PathBuf {
    app_bin().with_file_name(lab::BOT_BINARY)
}

/// Screenshots, a folder per run (named after its lab); those of runs whose process is gone are removed
/// as a run starts, so the last run's stay.
fn shots_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("across_nat_app")
}

/// Fails (never skips) when this machine cannot run the test, saying what to do.
fn require_tools() {
    lab::require_root(
        "this test builds network namespaces and needs root: run it as root, e.g. \
         `sudo -E cargo test --test across_nat_app` (it fails rather than skips, so that a run that cannot \
         test the app across NATs is noticed",
    );
    lab::require_network_namespaces();
    let tools = [
        ("nft", "nftables"),
        ("turnserver", "coturn"),
        ("Xvfb", "xvfb"),
        ("xdotool", "xdotool"),
        ("import", "imagemagick"),
    ];
    let missing: Vec<String> = tools
        .iter()
        .filter(|(program, _)| !in_path(program))
        .map(|(program, package)| format!("`{program}` (Debian package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "missing: {}; install the packages (scripts/apt-packages.txt lists them)",
        missing.join(", ")
    );
    for binary in [server_bin(), bot_bin()] {
        assert!(
            binary.is_file(),
            "{} is missing: build it first with `cargo build --workspace` (cargo builds only the app for this \
             package's tests)",
            binary.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// The lab: namespaces, coturn and the signaling server in the "internet".

/// Labs are named `{LAB_PREFIX}{pid}-{n}`.
const LAB_PREFIX: &str = "dtapp";

/// The lab (`tests/lab/mod.rs`): namespaces, coturn and the signaling server in the "internet".
type Lab = lab::Lab;

impl Lab {
    fn up() -> Lab {
        require_tools();
        let spec = LabSpec {
            name_prefix: LAB_PREFIX,
            files_prefix: "dialtone-across-nat-app-",
            netlab: netlab(),
            bin_dir: app_bin().parent().expect("the app's directory").to_owned(),
        };
        let lab = Lab::start(&spec, &[], &[]);
        let ip = lab.var("SERVER_IP");
        assert_eq!(lab.server_url, format!("wss://{ip}:{SIGNALING_PORT}"), "the server's address");
        lab
    }

    /// An invite link to this server, carrying the certificate's fingerprint (the server keeps its
    /// self-signed certificate beside the secret).
    fn invite(&self, user: &str, name: &str) -> String {
        let link = self.server_tool(&["invite", "--user", user, "--name", name, "--url", &self.server_url]);
        assert!(
            link.starts_with("dialtone://invite?") && link.contains(&format!("fingerprint={}", self.fingerprint)),
            "the invite link should name the server and pin its certificate ({}): {link}",
            self.fingerprint
        );
        link
    }
}

// ---------------------------------------------------------------------------------------------------
// The bot.

/// A bot, its JSON lines read with serde_json.
type Bot = lab::Bot<Value>;

// ---------------------------------------------------------------------------------------------------
// One run: the bot, Xvfb, the app, and what the test saw.

/// A stamp read off the screen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    stamp: Stamp,
    /// How long before the screenshot the frame was captured.
    age_ms: i64,
    /// The self view's stamp, when it shows a live one.
    own: Option<Stamp>,
}

struct Run<'a> {
    lab: &'a Lab,
    started: Instant,
    bob: Option<Bot>,
    xvfb: Option<Child>,
    display: String,
    runtime_dir: PathBuf,
    data_dir: PathBuf,
    app: Option<Child>,
    app_err: PathBuf,
    window: String,
    /// Screen pixels per point (1 unless the X server says otherwise).
    scale: f32,
    shots_dir: PathBuf,
    shots: usize,
    last_shot: Option<PathBuf>,
}

impl<'a> Run<'a> {
    fn new(lab: &'a Lab, started: Instant) -> Run<'a> {
        for entry in std::fs::read_dir(shots_root()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid =
                name.strip_prefix(LAB_PREFIX).and_then(|rest| rest.split_once('-')).map(|(pid, _)| pid.to_owned());
            if pid.is_none_or(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
        let shots = shots_root().join(&lab.prefix);
        std::fs::create_dir_all(&shots).expect("a folder for screenshots");
        Run {
            shots_dir: shots,
            lab,
            started,
            bob: None,
            xvfb: None,
            display: String::new(),
            runtime_dir: lab.dir.join("runtime"),
            data_dir: lab.dir.join("alice"),
            app: None,
            app_err: lab.dir.join("app.err"),
            window: String::new(),
            scale: 1.0,
            shots: 0,
            last_shot: None,
        }
    }

    fn bob(&self) -> &Bot {
        self.bob.as_ref().expect("bob started")
    }

    /// Panics with `what` and everything that explains it: the app's stderr, the bot's output, the
    /// server's and coturn's logs, and the last screenshot.
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        let mut report =
            format!("{what}\n(lab {}, after {:.1} s)\n", self.lab.prefix, self.started.elapsed().as_secs_f64());
        match &self.last_shot {
            Some(shot) => {
                let _ = writeln!(report, "the last screenshot: {}", shot.display());
            }
            None => report.push_str("no screenshot was taken\n"),
        }
        if let Some(app) = &self.app {
            let _ = writeln!(
                report,
                "--- the app (pid {}), its stderr's last lines (repeats folded):\n{}",
                app.id(),
                tail(&self.app_err, 30)
            );
        }
        if let Some(bob) = &self.bob {
            let _ = writeln!(report, "{}", bob.report("bob, the bot", 12, Some("media_stats"), 20));
        }
        let _ = writeln!(report, "--- Xvfb's stderr, last lines:\n{}", tail(&self.lab.dir.join("xvfb.err"), 5));
        let _ = writeln!(report, "--- the server's log, last lines:\n{}", tail(&self.lab.server_log(), 10));
        let _ = writeln!(report, "--- coturn's log, last lines:\n{}", tail(&self.lab.turn_log(), 10));
        panic!("{report}");
    }

    fn start_bob(&mut self) {
        let lab = self.lab;
        let args = ["--device", "phone", "--answer", "accept", "--media", "--camera", CAMERA, "--tone", BOB_TONE];
        // Only a guard against a test that fails to stop him.
        let args = [&args[..], &["--exit-after", "60s"]].concat();
        self.bob = Some(lab.start_bot("bob", "HOME_B_NS", &lab.token("bob"), &args));
    }

    /// Xvfb in home A's namespace. The app and the X clients the test runs (xdotool, import) run in that
    /// namespace too, so they reach this Xvfb through its abstract socket, which belongs to the namespace:
    /// parallel runs never talk to each other's display. The number is chosen among those no X server on
    /// this machine uses, so that the socket file Xvfb also makes in /tmp/.X11-unix clobbers nobody's.
    fn start_display(&mut self) {
        let taken = |n: u32| {
            Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        };
        let first = 400 + (std::process::id() * 7 + self.lab.index) % 500;
        let Some(number) = (0..500).map(|i| 400 + (first - 400 + i) % 500).find(|&n| !taken(n)) else {
            self.fail("no free X display number in 400-899 (every /tmp/.X11-unix/XN exists)");
        };
        self.display = format!(":{number}");
        let mut child = self
            .lab
            .exec("HOME_A_NS", Path::new("Xvfb"))
            .arg(&self.display)
            // -displayfd: it writes the number there once it accepts connections.
            .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.lab.dir.join("xvfb.err")).unwrap())
            .spawn()
            .expect("starting Xvfb");
        let mut stdout = child.stdout.take().unwrap();
        self.xvfb = Some(child);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut number = String::new();
            let mut byte = [0u8; 1];
            while stdout.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
                number.push(byte[0] as char);
            }
            let _ = sender.send(number);
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        match receiver.recv_timeout(Duration::from_secs(10)) {
            Ok(ready) if ready.trim() == number.to_string() => {}
            other => self.fail(&format!("Xvfb {} did not become ready within 10 s ({other:?})", self.display)),
        }
    }

    fn start_app(&mut self, link: &str) {
        // A fresh runtime folder, private as the XDG spec wants it.
        std::fs::create_dir_all(&self.runtime_dir).unwrap();
        std::fs::set_permissions(&self.runtime_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let child = self
            .lab
            .exec("HOME_A_NS", &app_bin())
            .arg(link)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--fake-devices", "--camera", CAMERA])
            .env("DISPLAY", &self.display)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            // This display only: not a Wayland session or a desktop bus the test runs in.
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.lab.dir.join("app.out")).unwrap())
            .stderr(std::fs::File::create(&self.app_err).unwrap())
            .spawn()
            .expect("starting dialtone");
        self.app = Some(child);
    }

    fn app_exited(&mut self) -> Option<ExitStatus> {
        self.app.as_mut().and_then(|app| app.try_wait().ok().flatten())
    }

    /// Runs an X client (xdotool, import) on the app's display, in home A's namespace; its stdout, or why
    /// it failed. A client that hangs (e.g. waiting for a focus change that never comes) is killed after
    /// 5 s.
    fn x(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut child = self
            .lab
            .exec("HOME_A_NS", Path::new(program))
            .args(args)
            .env("DISPLAY", &self.display)
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot run {program}: {error}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} {} did not finish within 5 s (killed)", args.join(" ")));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        if status.success() {
            Ok(stdout.trim().to_owned())
        } else {
            Err(format!("{program} {} failed ({status}): {}", args.join(" "), stderr.trim()))
        }
    }

    fn xdotool(&self, args: &[&str]) -> String {
        self.x("xdotool", args).unwrap_or_else(|why| self.fail(&why))
    }

    /// Waits for the window named Dialtone to be mapped, checks its size and gives it the keyboard (there
    /// is no window manager to do it).
    fn find_window(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let last = match self.try_window() {
                Ok(()) => return,
                Err(why) => why,
            };
            if let Some(status) = self.app_exited() {
                self.fail(&format!("the app exited ({status}) before its window appeared"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("no usable window named Dialtone within 15 s: {last}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_window(&mut self) -> Result<(), String> {
        let found = self.x("xdotool", &["search", "--onlyvisible", "--name", "^Dialtone$"]).unwrap_or_default();
        let window = found.lines().next().ok_or("no visible window named Dialtone yet")?.to_owned();
        let geometry = self.x("xdotool", &["getwindowgeometry", &window])?;
        let (width, height) = geometry
            .lines()
            .find_map(|line| line.trim().strip_prefix("Geometry: "))
            .and_then(|size| size.split_once('x'))
            .and_then(|(w, h)| Some((w.parse::<f32>().ok()?, h.parse::<f32>().ok()?)))
            .ok_or_else(|| format!("unreadable window geometry: {geometry}"))?;
        let scale = width / WINDOW.0;
        if (height / WINDOW.1 - scale).abs() > 0.01 {
            self.fail(&format!(
                "the window is {width}x{height} pixels, not {}x{} points at one scale",
                WINDOW.0, WINDOW.1
            ));
        }
        self.x("xdotool", &["windowfocus", "--sync", &window])?;
        self.window = window;
        self.scale = scale;
        Ok(())
    }

    /// A screenshot of the window, kept as `NN-NAME.png`.
    fn screenshot(&mut self, name: &str) -> (image::RgbaImage, PathBuf) {
        self.shots += 1;
        let path = self.shots_dir.join(format!("{:02}-{name}.png", self.shots));
        let path_text = path.to_string_lossy().into_owned();
        if let Err(why) = self.x("import", &["-window", &self.window.clone(), &path_text]) {
            self.fail(&format!("taking a screenshot: {why}"));
        }
        self.last_shot = Some(path.clone());
        match image::open(&path) {
            Ok(picture) => (picture.to_rgba8(), path),
            Err(error) => self.fail(&format!("cannot read the screenshot {}: {error}", path.display())),
        }
    }

    /// A point in window points, in pixels.
    fn px(&self, points: f32) -> u32 {
        (points * self.scale).round() as u32
    }

    /// Clicks at a pixel of the window, pressing and releasing in separate frames, as a hand does.
    fn click(&self, (x, y): (u32, u32), what: &str) {
        eprintln!("{}: clicking {what} at {x},{y}", self.lab.prefix);
        let window = self.window.clone();
        self.xdotool(&["mousemove", "--window", &window, &x.to_string(), &y.to_string()]);
        std::thread::sleep(Duration::from_millis(100));
        self.xdotool(&["mousedown", "1"]);
        std::thread::sleep(Duration::from_millis(80));
        self.xdotool(&["mouseup", "1"]);
        std::thread::sleep(Duration::from_millis(150));
    }

    fn key(&self, key: &str) {
        let window = self.window.clone();
        self.xdotool(&["windowfocus", "--sync", &window]);
        self.xdotool(&["key", key]);
    }

    /// The first screen once drawn: the first-run card (Some: where its name field is) or the contacts
    /// (None).
    fn first_screen(&mut self) -> Option<(u32, u32)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (shot, _) = self.screenshot("first-screen");
            if let Some(field) = self.first_run_field(&shot) {
                return Some(field);
            }
            if is_colour(shot.get_pixel(self.px(4.0), self.px(4.0)), SURFACE) {
                // The header: the contacts (or history) screen, no first-run card.
                return None;
            }
            if let Some(status) = self.app_exited() {
                self.fail(&format!("the app exited ({status})"));
            }
            if Instant::now() > deadline {
                self.fail("the app showed neither its first-run card nor its contacts within 10 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The first-run card's name field: a run of the field's fill down the middle of a headerless window.
    fn first_run_field(&self, shot: &image::RgbaImage) -> Option<(u32, u32)> {
        if !is_colour(shot.get_pixel(self.px(4.0), self.px(4.0)), BACKGROUND) {
            return None;
        }
        let x = shot.width() / 2;
        let rows: Vec<u32> =
            (shot.height() / 5..shot.height() * 3 / 5).filter(|&y| is_colour(shot.get_pixel(x, y), FIELD)).collect();
        let (first, last) = (*rows.first()?, *rows.last()?);
        // One field, about 28 points tall.
        (rows.len() as u32 == last - first + 1 && rows.len() as u32 >= self.px(16.0)).then_some((x, (first + last) / 2))
    }

    /// The app keeps the invitation's name in its settings.
    fn wait_for_saved_name(&mut self, name: &str) {
        let settings = self.data_dir.join("settings.toml");
        let wanted = format!("display_name = \"{name}\"");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&settings).is_ok_and(|text| text.contains(&wanted)) {
            if Instant::now() > deadline {
                self.screenshot("name-typed");
                self.fail(&format!(
                    "the invitation's name is not kept: {} does not say {wanted}: {}",
                    settings.display(),
                    std::fs::read_to_string(&settings).unwrap_or_else(|e| e.to_string())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The app kept what the link says in its settings: the server, the user and the pin.
    fn check_settings_from_the_link(&self, lab: &Lab) {
        let settings = self.data_dir.join("settings.toml");
        let text = std::fs::read_to_string(&settings).unwrap_or_default();
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(error) => self.fail(&format!("{} is not TOML ({error}):\n{text}", settings.display())),
        };
        let server = table.get("server").and_then(|s| s.as_table());
        let field = |key: &str| server.and_then(|s| s.get(key)).and_then(|v| v.as_str()).unwrap_or_default();
        if field("url") != lab.server_url || field("user") != "alice" || field("fingerprint") != lab.fingerprint {
            self.fail(&format!(
                "the app did not keep the invite link's server ({}), user (alice) and fingerprint ({}) in {}:\n{text}",
                lab.server_url,
                lab.fingerprint,
                settings.display()
            ));
        }
    }

    /// Waits for the contacts screen to show bob's row with his online dot; returns where his video call
    /// button is. The row is the first card below the tabs; its buttons sit at its right end, the video
    /// call button rightmost.
    fn wait_for_contact_online(&mut self) -> (u32, u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (shot, _) = self.screenshot("contacts");
            let last = match self.video_button(&shot) {
                Ok(button) => return button,
                Err(why) => why,
            };
            if let Some(status) = self.app_exited() {
                self.fail(&format!("the app exited ({status})"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("the contacts did not show bob online within 10 s: {last}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn video_button(&self, shot: &image::RgbaImage) -> Result<(u32, u32), String> {
        if !is_colour(shot.get_pixel(self.px(4.0), self.px(4.0)), SURFACE) {
            return Err("no header (not the contacts screen)".into());
        }
        // The contacts column: at most 720 points wide, centred; a card's right edge is its right edge.
        let column = (WINDOW.0 - 32.0).min(720.0);
        let centre = WINDOW.0 / 2.0;
        let inside_right = self.px(centre + column / 2.0 - 5.0);
        // Down that line: the header (surface), then the tabs and search field, then the first card.
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for y in 0..shot.height() {
            if is_colour(shot.get_pixel(inside_right, y), SURFACE) {
                match runs.last_mut() {
                    Some((_, end)) if *end + 1 == y => *end = y,
                    _ => runs.push((y, y)),
                }
            }
        }
        let Some(&(top, bottom)) = runs.get(1) else {
            return Err(format!("no contact card below the header (surface runs at x={inside_right}: {runs:?})"));
        };
        if bottom - top < self.px(40.0) {
            return Err(format!("the first card is {} pixels tall", bottom - top));
        }
        let row = (top + bottom) / 2;
        // The online dot on the avatar, at the card's left.
        let left = self.px(centre - column / 2.0);
        let online =
            (left..left + self.px(70.0)).any(|x| (top..=bottom).any(|y| is_colour(shot.get_pixel(x, y), GREEN)));
        if !online {
            return Err("bob's card shows no online dot".into());
        }
        // Leftwards from the card's right edge along its middle: the video call button's right edge.
        let button_right = (left..inside_right)
            .rev()
            .find(|&x| !is_colour(shot.get_pixel(x, row), SURFACE))
            .ok_or("no button on the card")?;
        Ok((button_right - self.px(20.0), row))
    }

    /// The rectangles of the remote picture and of the self view in a screenshot of the 1v1 call, as
    /// x, y, width, height in pixels. The call's area is above the controls bar (found up the window's left
    /// edge: the bar's surface, then its separator line); the remote picture is fitted in it with its
    /// aspect kept (`video::fit`), the self view sits 16 points from its bottom-right corner, 22 % of its
    /// width (140-320 points), 16:9 (`picture_in_picture` in src/ui/call.rs).
    fn call_rects(&self, shot: &image::RgbaImage) -> Result<[(f32, f32, f32, f32); 2], String> {
        let x = 2;
        let mut y = shot.height() - 1;
        if !is_colour(shot.get_pixel(x, y), SURFACE) {
            return Err("no controls bar at the window's bottom".into());
        }
        while y > 0 && is_colour(shot.get_pixel(x, y), SURFACE) {
            y -= 1;
        }
        // The separator line belongs to the bar; the black area (or the picture) starts above it.
        let bottom = if is_colour(shot.get_pixel(x, y), [0, 0, 0]) { y + 1 } else { y };
        let (width, height) = (shot.width() as f32, bottom as f32);
        if height < shot.height() as f32 / 2.0 {
            return Err(format!("the controls bar starts at {bottom}, too high for a call view"));
        }
        let scale = (width / PATTERN.0 as f32).min(height / PATTERN.1 as f32);
        let (w, h) = (PATTERN.0 as f32 * scale, PATTERN.1 as f32 * scale);
        let remote = ((width - w) / 2.0, (height - h) / 2.0, w, h);
        let self_width = (width / self.scale * 0.22).clamp(140.0, 320.0) * self.scale;
        let self_height = self_width * 9.0 / 16.0;
        let margin = 16.0 * self.scale;
        let own = (width - self_width - margin, height - self_height - margin, self_width, self_height);
        Ok([remote, own])
    }

    /// Reads the stamps of the remote picture and of the self view on screen (each scaled back to the
    /// pattern's size): the remote one must be live, and not the app's own camera.
    fn read_picture(&mut self, name: &str) -> (Seen, PathBuf) {
        match self.try_read_picture(name) {
            (Ok(seen), path) => (seen, path),
            (Err(why), _) => self.fail(&why),
        }
    }

    fn try_read_picture(&mut self, name: &str) -> (Result<Seen, String>, PathBuf) {
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
        let (shot, path) = self.screenshot(name);
        let [remote, own] = match self.call_rects(&shot) {
            Ok(rects) => rects,
            Err(why) => return (Err(why), path),
        };
        let live = |stamp: Stamp| {
            let age_ms = (now_us - stamp.captured_us as i64) / 1_000;
            ((-1_000..LIVE_AGE.as_millis() as i64).contains(&age_ms) && stamp.frame < 1_000_000).then_some(age_ms)
        };
        let (stamp, own_stamp) = (stamp_in(&shot, remote), stamp_in(&shot, own));
        let (x, y, w, h) = remote;
        let Some(age_ms) = live(stamp) else {
            return (
                Err(format!(
                    "the picture at {x:.0},{y:.0} {w:.0}x{h:.0} carries no live stamp: frame {}, captured {} ms \
                     before the screenshot (a live one is at most {} ms old)",
                    stamp.frame,
                    (now_us - stamp.captured_us as i64) / 1_000,
                    LIVE_AGE.as_millis()
                )),
                path,
            );
        };
        let own = live(own_stamp).map(|_| own_stamp);
        if own == Some(stamp) {
            return (
                Err(format!(
                    "the large picture shows the app's own camera (frame {}, as in the self view), not bob's",
                    stamp.frame
                )),
                path,
            );
        }
        (Ok(Seen { stamp, age_ms, own }), path)
    }

    fn wait_for_live_picture(&mut self, timeout: Duration) -> (Seen, PathBuf) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_read_picture("picture-1") {
                (Ok(seen), path) => return (seen, path),
                (Err(why), _) if Instant::now() > deadline => {
                    self.fail(&format!("bob's picture did not appear within {} s: {why}", timeout.as_secs()))
                }
                _ => {}
            }
            if let Some(status) = self.app_exited() {
                self.fail(&format!("the app exited ({status}) during the call"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn check_moving(&self, first: &Seen, second: &Seen) {
        if second.stamp.frame <= first.stamp.frame || second.stamp.captured_us <= first.stamp.captured_us {
            self.fail(&format!(
                "bob's picture is frozen: frame {} then frame {} {} ms later",
                first.stamp.frame,
                second.stamp.frame,
                BETWEEN_SHOTS.as_millis()
            ));
        }
    }

    /// After hanging up the app shows its contacts again.
    fn wait_for_contacts_again(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (shot, _) = self.screenshot("after-hangup");
            if is_colour(shot.get_pixel(self.px(4.0), self.px(4.0)), SURFACE) && self.call_rects(&shot).is_err() {
                return;
            }
            if Instant::now() > deadline {
                self.fail("the app did not go back to its contacts within 5 s of hanging up");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Ctrl-C makes the answering bot print its summary and exit.
    fn stop_bob(&mut self) {
        self.bob().interrupt();
        if self.bob.as_mut().unwrap().wait(Duration::from_secs(5)).is_none() {
            self.fail("bob did not stop within 5 s of Ctrl-C (killed)");
        }
    }

    /// Bob's call ended with the app's hangup; he decoded the app's video and heard its tone.
    fn check_bob(&self) {
        let bob = self.bob();
        let mut problems = Vec::new();
        let ended = bob.events_named("call_ended");
        let reasons: Vec<String> = ended.iter().map(|e| e["reason"].as_str().unwrap_or("?").to_owned()).collect();
        if reasons != ["remote_hangup"] {
            problems.push(format!("bob's call ended with {reasons:?}, not once with remote_hangup"));
        }
        let Some(summary) = bob.summary() else { self.fail("bob printed no summary") };
        if bob.status.is_none_or(|status| !status.success()) {
            problems.push(format!("bob exited with {:?}", bob.status));
        }
        if summary["errors"].as_u64() != Some(0) || !summary["stopped"].is_null() {
            problems.push(format!("bob had errors or stopped: {summary}"));
        }
        let peer = "alice/desktop";
        let from_app =
            |kind: &str| summary[kind].as_array().and_then(|list| list.iter().find(|e| e["peer"] == peer)).cloned();
        let frames = from_app("video").and_then(|v| v["frames_decoded"].as_f64()).unwrap_or(0.0);
        let audio = from_app("audio");
        let heard = audio.as_ref().and_then(|a| a["tone_hz"].as_f64());
        eprintln!(
            "{}: bob decoded {frames} video frames from the app, heard {heard:?} Hz; media path {}",
            self.lab.prefix, summary["paths"][peer]
        );
        if frames <= MIN_VIDEO_FRAMES as f64 {
            problems.push(format!(
                "bob decoded {frames} video frames from {peer} (more than {MIN_VIDEO_FRAMES} expected): {}",
                summary["video"]
            ));
        }
        if heard.is_none_or(|hz| (hz - APP_TONE).abs() > TONE_TOLERANCE) {
            problems.push(format!(
                "bob heard {heard:?} Hz from {peer}, not the app's {APP_TONE} Hz tone: {}",
                summary["audio"]
            ));
        }
        if !problems.is_empty() {
            self.fail(&problems.join("\n"));
        }
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        // The app first, then the display (asked to stop, so that it removes its socket file), then the bot.
        for child in [self.app.as_mut(), self.xvfb.as_mut()].into_iter().flatten() {
            stop(child);
        }
        self.bob.take();
    }
}

/// SIGTERM, and SIGKILL if it is still there a second later.
fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------------
// Helpers.

/// The stamp of the test pattern drawn in `rect` (x, y, width, height) of a screenshot.
fn stamp_in(shot: &image::RgbaImage, (x, y, w, h): (f32, f32, f32, f32)) -> Stamp {
    let crop = image::imageops::crop_imm(shot, x.round() as u32, y.round() as u32, w.round() as u32, h.round() as u32)
        .to_image();
    // Averaged down (the picture is drawn larger, smoothed), so that each block's centre reads its level.
    let small = image::imageops::resize(&crop, PATTERN.0, PATTERN.1, image::imageops::FilterType::Triangle);
    let frame = RgbaFrame { width: PATTERN.0, height: PATTERN.1, pixels: small.into_raw() };
    read_stamp(&even_blocks(frame)).expect("a 320x180 frame holds a stamp")
}

/// The pattern's stamp blocks (16 pixels square) each filled with the median brightness of its middle:
/// what the call view draws over the picture's top-left corner (the name, the clock, the quality bars:
/// thin bright strokes) then does not change the level [`read_stamp`] reads at a block's centre.
fn even_blocks(mut frame: RgbaFrame) -> RgbaFrame {
    const BLOCK: u32 = 16;
    for top in (0..frame.height / BLOCK).map(|row| row * BLOCK) {
        for left in (0..frame.width / BLOCK).map(|column| column * BLOCK) {
            let mut levels: Vec<u8> = (top + 3..top + BLOCK - 3)
                .flat_map(|y| (left + 3..left + BLOCK - 3).map(move |x| (x, y)))
                .map(|(x, y)| frame.brightness(x, y))
                .collect();
            levels.sort_unstable();
            let median = levels[levels.len() / 2];
            for y in top..top + BLOCK {
                for x in left..left + BLOCK {
                    let at = ((y * frame.width + x) * 4) as usize;
                    frame.pixels[at..at + 3].fill(median);
                }
            }
        }
    }
    frame
}

/// Whether a pixel is this colour (give or take 3 per channel).
fn is_colour(pixel: &image::Rgba<u8>, colour: [u8; 3]) -> bool {
    pixel.0[..3].iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 3)
}
