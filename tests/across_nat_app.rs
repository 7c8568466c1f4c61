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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialtone_media::video::{RgbaFrame, Stamp, read_stamp};

const SIGNALING_PORT: u16 = 7600;
const TURN_PORT: u16 = 3478;
/// What the TURN server is told not to relay to, as real deployments do: the homes' private ranges.
const PRIVATE_HOMES: &str = "192.168.0.0-192.168.255.255";
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

    // First run: the app asks for a name; Alice types hers. Then her contacts, with bob online.
    let card = run.first_screen();
    if let Some(field) = card {
        run.click(field, "the name field of the first-run card");
        run.type_text("Alice");
        run.key("Return");
        run.wait_for_saved_name("Alice");
        run.screenshot("name-typed");
    }
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
    app_bin().with_file_name("dialtone-server")
}

fn bot_bin() -> PathBuf {
    app_bin().with_file_name("dialtone-bot")
}

/// Screenshots, a folder per run (named after its lab); those of runs whose process is gone are removed
/// as a run starts, so the last run's stay.
fn shots_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("across_nat_app")
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Fails (never skips) when this machine cannot run the test, saying what to do.
fn require_tools() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|line| line.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().next());
    assert!(
        uid == Some("0"),
        "this test builds network namespaces and needs root: run it as root, e.g. \
         `sudo -E cargo test --test across_nat_app` (it fails rather than skips, so that a run that cannot \
         test the app across NATs is noticed; uid {})",
        uid.unwrap_or("unknown")
    );
    match Command::new("ip").args(["netns", "list"]).output() {
        Err(error) => panic!("`ip` cannot run ({error}): install iproute2 (scripts/apt-packages.txt)"),
        Ok(output) if !output.status.success() => panic!(
            "`ip netns list` fails, so network namespaces cannot be made here: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Ok(_) => {}
    }
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

/// Removes the labs of test runs that were killed before they could (their process is gone).
fn sweep_abandoned_labs() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return };
        let mut abandoned: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next()?.strip_suffix("-inet"))
            .filter(|prefix| {
                let pid = prefix.strip_prefix(LAB_PREFIX).and_then(|rest| rest.split_once('-')).map(|(pid, _)| pid);
                pid.is_some_and(|pid| pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists())
            })
            .map(str::to_owned)
            .collect();
        abandoned.dedup();
        for prefix in abandoned {
            eprintln!("removing the lab {prefix} of a test run that is gone");
            let _ = Command::new(netlab()).args(["down", &prefix]).status();
        }
    });
}

struct Lab {
    prefix: String,
    /// The lab's subnet index (10.203.INDEX.0/24).
    index: u32,
    vars: HashMap<String, String>,
    dir: PathBuf,
    coturn: Option<Child>,
    server: Option<Child>,
    server_url: String,
    /// The certificate fingerprint the server prints as it starts.
    fingerprint: String,
}

impl Lab {
    fn up() -> Lab {
        require_tools();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        sweep_abandoned_labs();
        let prefix = format!("{LAB_PREFIX}{pid}-{n}");
        let index = (pid % 125 * 2 + n % 2) % 250 + 1;
        let dir = std::env::temp_dir().join(format!("dialtone-across-nat-app-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");

        let output = Command::new(netlab())
            .args(["up", &prefix, "--index", &index.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", netlab().display()));
        let mut lab = Lab {
            prefix,
            index,
            vars: HashMap::new(),
            dir,
            coturn: None,
            server: None,
            server_url: String::new(),
            fingerprint: String::new(),
        };
        assert!(
            output.status.success(),
            "netlab up failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        lab.vars = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        lab.start_coturn();
        lab.start_server();
        lab
    }

    fn var(&self, key: &str) -> &str {
        self.vars.get(key).unwrap_or_else(|| panic!("netlab up printed no {key}: {:?}", self.vars))
    }

    /// `program` run inside the namespace named by the netlab variable `ns` (`ip netns exec` execs it,
    /// so the child is the program itself).
    fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.var(ns)]).arg(program);
        command
    }

    fn secret_file(&self) -> PathBuf {
        self.dir.join("secret")
    }

    fn start_coturn(&mut self) {
        let ip = self.var("SERVER_IP").to_owned();
        let secret =
            format!("turn-{}-{}", self.prefix, SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos());
        std::fs::write(self.dir.join("turn-secret"), &secret).unwrap();
        let log = self.dir.join("turn.log");
        let child = self
            .exec("INET_NS", Path::new("turnserver"))
            .args(["-n", "--realm=dialtone", &format!("--listening-port={TURN_PORT}")])
            .args([format!("--listening-ip={ip}"), format!("--relay-ip={ip}")])
            .args(["--use-auth-secret".to_owned(), format!("--static-auth-secret={secret}")])
            .arg(format!("--denied-peer-ip={PRIVATE_HOMES}"))
            .args(["--no-cli", "--no-tls", "--no-dtls", "--no-stdout-log", "--simple-log"])
            .arg(format!("--log-file={}", log.display()))
            .arg(format!("--pidfile={}", self.dir.join("turn.pid").display()))
            .arg(format!("--userdb={}", self.dir.join("turndb").display()))
            .args(["--min-port=49152", "--max-port=65535"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting turnserver");
        self.coturn = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listening = self
                .exec("INET_NS", Path::new("ss"))
                .args(["-Hlun", &format!("sport = :{TURN_PORT}")])
                .output()
                .is_ok_and(|output| !output.stdout.is_empty());
            if listening {
                break;
            }
            let exited = self.coturn.as_mut().unwrap().try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                panic!("coturn did not start listening on {ip}:{TURN_PORT} ({exited:?}); its log:\n{}", tail(&log, 30));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_server(&mut self) {
        let ip = self.var("SERVER_IP").to_owned();
        let stderr = std::fs::File::create(self.dir.join("server.err")).unwrap();
        let mut child = self
            .exec("INET_NS", &server_bin())
            .args(["--listen", &format!("{ip}:{SIGNALING_PORT}")])
            .arg("--secret-file")
            .arg(self.secret_file())
            .args(["--stun", &format!("stun:{ip}:{TURN_PORT}")])
            .args(["--turn", &format!("turn:{ip}:{TURN_PORT}?transport=udp")])
            .arg("--turn-secret-file")
            .arg(self.dir.join("turn-secret"))
            // A certificate made the first time and kept beside the secret (so invite links carry it).
            .arg("--tls-self-signed")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting dialtone-server");
        let stdout = child.stdout.take().unwrap();
        self.server = Some(child);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut url = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(listening) = line.strip_prefix("listening on ") {
                    url = Some(listening.to_owned());
                } else if let (Some(url), Some(fingerprint)) = (&url, line.strip_prefix("certificate fingerprint ")) {
                    let _ = sender.send((url.clone(), fingerprint.to_owned()));
                }
            }
        });
        (self.server_url, self.fingerprint) = receiver.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
            panic!(
                "dialtone-server did not start listening with TLS; its log:\n{}",
                tail(&self.dir.join("server.err"), 30)
            )
        });
        assert_eq!(self.server_url, format!("wss://{ip}:{SIGNALING_PORT}"), "the server's address");
    }

    /// `dialtone-server SUBCOMMAND … --secret-file SECRET`: its stdout, trimmed.
    fn server_tool(&self, args: &[&str]) -> String {
        let output = Command::new(server_bin())
            .args(args)
            .arg("--secret-file")
            .arg(self.secret_file())
            .output()
            .expect("running dialtone-server");
        assert!(
            output.status.success(),
            "dialtone-server {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn token(&self, user: &str) -> String {
        self.server_tool(&["token", "--user", user, "--ttl", "1h"])
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

impl Drop for Lab {
    fn drop(&mut self) {
        for child in [self.server.as_mut(), self.coturn.as_mut()].into_iter().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(netlab()).args(["down", &self.prefix]).status();
        if std::thread::panicking() {
            eprintln!("{}: kept the lab's logs in {}", self.prefix, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The bot.

struct Bot {
    child: Child,
    /// Its stdout lines.
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    stderr_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Bot {
    fn events(&self) -> Vec<Json> {
        self.lines.lock().unwrap().iter().filter_map(|line| Json::parse(line)).collect()
    }

    fn events_named(&self, name: &str) -> Vec<Json> {
        self.events().into_iter().filter(|e| e.get("event").str() == Some(name)).collect()
    }

    fn wait_for_event(&self, event: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.events_named(event).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits for it to exit; kills it after `timeout` (and returns None).
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a bot") {
                self.status = Some(status);
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn summary(&self) -> Option<Json> {
        self.events_named("summary").pop()
    }

    fn report(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let interesting: Vec<&String> = lines.iter().filter(|line| !line.contains("\"media_stats\"")).collect();
        let stdout_tail =
            interesting[interesting.len().saturating_sub(12)..].iter().map(|l| l.as_str()).collect::<Vec<_>>();
        format!(
            "--- bob, the bot (exit {:?}): last stdout lines (media_stats left out):\n{}\n--- bob's stderr, last \
             lines (repeats folded):\n{}",
            self.status,
            stdout_tail.join("\n"),
            tail(&self.stderr_path, 20)
        )
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

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
            let _ = writeln!(report, "{}", bob.report());
        }
        let _ = writeln!(report, "--- Xvfb's stderr, last lines:\n{}", tail(&self.lab.dir.join("xvfb.err"), 5));
        let _ = writeln!(report, "--- the server's log, last lines:\n{}", tail(&self.lab.dir.join("server.err"), 10));
        let _ = writeln!(report, "--- coturn's log, last lines:\n{}", tail(&self.lab.dir.join("turn.log"), 10));
        panic!("{report}");
    }

    fn start_bob(&mut self) {
        let lab = self.lab;
        let stderr_path = lab.dir.join("bob.err");
        let mut child = lab
            .exec("HOME_B_NS", &bot_bin())
            .args(["--server", &lab.server_url, "--fingerprint", &lab.fingerprint, "--token", &lab.token("bob")])
            .args(["--device", "phone", "--answer", "accept", "--media", "--camera", CAMERA, "--tone", BOB_TONE])
            // Only a guard against a test that fails to stop him.
            .args(["--exit-after", "60s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("starting dialtone-bot");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        self.bob = Some(Bot { child, lines, reader: Some(reader), stderr_path, status: None });
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

    fn type_text(&self, text: &str) {
        let window = self.window.clone();
        self.xdotool(&["windowfocus", "--sync", &window]);
        self.xdotool(&["type", "--delay", "40", text]);
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

    /// The app keeps the name typed on the first-run card in its settings.
    fn wait_for_saved_name(&mut self, name: &str) {
        let settings = self.data_dir.join("settings.toml");
        let wanted = format!("display_name = \"{name}\"");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&settings).is_ok_and(|text| text.contains(&wanted)) {
            if Instant::now() > deadline {
                self.screenshot("name-typed");
                self.fail(&format!(
                    "after typing {name} and Enter on the first-run card, {} does not say {wanted}: {}",
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
        let pid = self.bob().child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        if self.bob.as_mut().unwrap().wait(Duration::from_secs(5)).is_none() {
            self.fail("bob did not stop within 5 s of Ctrl-C (killed)");
        }
    }

    /// Bob's call ended with the app's hangup; he decoded the app's video and heard its tone.
    fn check_bob(&self) {
        let bob = self.bob();
        let mut problems = Vec::new();
        let ended = bob.events_named("call_ended");
        let reasons: Vec<String> = ended.iter().map(|e| e.get("reason").str().unwrap_or("?").to_owned()).collect();
        if reasons != ["remote_hangup"] {
            problems.push(format!("bob's call ended with {reasons:?}, not once with remote_hangup"));
        }
        let Some(summary) = bob.summary() else { self.fail("bob printed no summary") };
        if bob.status.is_none_or(|status| !status.success()) {
            problems.push(format!("bob exited with {:?}", bob.status));
        }
        if summary.get("errors").num() != Some(0.0) || !matches!(summary.get("stopped"), Json::Null) {
            problems.push(format!("bob had errors or stopped: {summary}"));
        }
        let peer = "alice/desktop";
        let from_app =
            |kind: &str| summary.get(kind).items().iter().find(|e| e.get("peer").str() == Some(peer)).cloned();
        let frames = from_app("video").and_then(|v| v.get("frames_decoded").num()).unwrap_or(0.0);
        let audio = from_app("audio");
        let heard = audio.as_ref().and_then(|a| a.get("tone_hz").num());
        eprintln!(
            "{}: bob decoded {frames} video frames from the app, heard {heard:?} Hz; media path {}",
            self.lab.prefix,
            summary.get("paths").get(peer)
        );
        if frames <= MIN_VIDEO_FRAMES as f64 {
            problems.push(format!(
                "bob decoded {frames} video frames from {peer} (more than {MIN_VIDEO_FRAMES} expected): {}",
                summary.get("video")
            ));
        }
        if heard.is_none_or(|hz| (hz - APP_TONE).abs() > TONE_TOLERANCE) {
            problems.push(format!(
                "bob heard {heard:?} Hz from {peer}, not the app's {APP_TONE} Hz tone: {}",
                summary.get("audio")
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

fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

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

/// The last `count` lines of a log, escape codes stripped and runs of the same message (timestamps aside)
/// folded into one, so a log repeating one error still shows what came before it.
fn tail(path: &Path, count: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("({} unreadable)", path.display());
    };
    let text = strip_escapes(&String::from_utf8_lossy(&bytes));
    let message = |line: &str| -> String {
        match line.split_once(' ') {
            Some((first, rest)) if first.starts_with(|c: char| c.is_ascii_digit()) && first.contains('T') => {
                rest.trim_start().to_owned()
            }
            _ => line.to_owned(),
        }
    };
    let mut folded: Vec<(String, usize)> = Vec::new();
    for line in text.lines() {
        let line: String = line.chars().take(400).collect();
        match folded.last_mut() {
            Some((last, repeats)) if message(last) == message(&line) => *repeats += 1,
            _ => folded.push((line, 1)),
        }
    }
    folded[folded.len().saturating_sub(count)..]
        .iter()
        .map(|(line, repeats)| if *repeats > 1 { format!("{line}  [x{repeats}]") } else { line.clone() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Just enough JSON for the bot's lines (this package does not depend on serde_json).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

static NULL: Json = Json::Null;

impl Json {
    fn parse(text: &str) -> Option<Json> {
        let mut parser = JsonParser { bytes: text.as_bytes(), at: 0 };
        let value = parser.value()?;
        parser.space();
        (parser.at == parser.bytes.len()).then_some(value)
    }

    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(map) => map.get(key).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    fn items(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            _ => &[],
        }
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Null => write!(f, "null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(n) => write!(f, "{n}"),
            Json::Str(s) => write!(f, "{s:?}"),
            Json::Arr(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    write!(f, "{}{item}", if i > 0 { "," } else { "" })?;
                }
                write!(f, "]")
            }
            Json::Obj(map) => {
                write!(f, "{{")?;
                for (i, (key, value)) in map.iter().enumerate() {
                    write!(f, "{}{key:?}:{value}", if i > 0 { "," } else { "" })?;
                }
                write!(f, "}}")
            }
        }
    }
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Json> {
        self.space();
        match *self.bytes.get(self.at)? {
            b'{' => {
                self.at += 1;
                let mut map = BTreeMap::new();
                if self.eat(b'}') {
                    return Some(Json::Obj(map));
                }
                loop {
                    self.space();
                    let Json::Str(key) = self.string()? else { return None };
                    if !self.eat(b':') {
                        return None;
                    }
                    map.insert(key, self.value()?);
                    if self.eat(b'}') {
                        return Some(Json::Obj(map));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    if self.eat(b']') {
                        return Some(Json::Arr(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.string(),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            _ => {
                let start = self.at;
                while self.bytes.get(self.at).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
                    self.at += 1;
                }
                std::str::from_utf8(&self.bytes[start..self.at]).ok()?.parse().ok().map(Json::Num)
            }
        }
    }

    fn word(&mut self, word: &str, value: Json) -> Option<Json> {
        self.bytes[self.at..].starts_with(word.as_bytes()).then(|| {
            self.at += word.len();
            value
        })
    }

    fn string(&mut self) -> Option<Json> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => return String::from_utf8(out).ok().map(Json::Str),
                b'\\' => {
                    let escaped = *self.bytes.get(self.at)?;
                    self.at += 1;
                    let c = match escaped {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = std::str::from_utf8(self.bytes.get(self.at..self.at + 4)?).ok()?;
                            self.at += 4;
                            char::from_u32(u32::from_str_radix(hex, 16).ok()?).unwrap_or('\u{fffd}')
                        }
                        other => other as char,
                    };
                    let mut buffer = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                other => out.push(other),
            }
        }
    }
}

#[test]
fn the_json_reader_reads_a_bot_summary() {
    let line = r#"{"event":"summary","ended":{"remote_hangup":1},"errors":0,"stopped":null,"video":[{"peer":"alice/desktop","frames_decoded":170,"latency_ms_median":1.122}],"name":"a \"b\" \u00e9"}"#;
    let summary = Json::parse(line).expect("valid JSON");
    assert_eq!(summary.get("event").str(), Some("summary"));
    assert_eq!(summary.get("ended").get("remote_hangup").num(), Some(1.0));
    assert_eq!(summary.get("stopped"), &Json::Null);
    assert_eq!(summary.get("video").items()[0].get("frames_decoded").num(), Some(170.0));
    assert_eq!(summary.get("name").str(), Some("a \"b\" é"));
    assert!(Json::parse("{\"a\":1").is_none());
}
