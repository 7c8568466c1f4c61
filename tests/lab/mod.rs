//! The network-namespace lab shared by the tests that run Dialtone across two home NATs
//! (`crates/bot/tests/across_nat.rs` and `tests/across_nat_app.rs`, each including this file with
//! `#[path = "…"] mod lab;`): a small "internet" made by `scripts/netlab`, coturn and
//! `dialtone-server --tls-self-signed` in it, tokens, bots started in the homes and read line by line,
//! and the checks that this machine can run it all.
//!
//! Each includer uses a different part of it, hence `allow(dead_code)`. Nothing here names a binary of one
//! package: where `scripts/netlab` and the workspace's binaries are is given in a [`LabSpec`].

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The signaling server's port, on the "internet"'s server address.
pub const SIGNALING_PORT: u16 = 7600;
/// coturn's port (STUN and TURN over UDP), on the same address.
pub const TURN_PORT: u16 = 3478;
/// What the TURN server is told not to relay to, as real deployments do: the homes' private ranges.
pub const PRIVATE_HOMES: &str = "192.168.0.0-192.168.255.255";
/// The signaling server's binary, in [`LabSpec::bin_dir`].
pub const SERVER_BINARY: &str = "dialtone-server";
/// The bot's binary, in [`LabSpec::bin_dir`].
pub const BOT_BINARY: &str = "dialtone-bot";

/// What differs between the test binaries that build labs.
pub struct LabSpec {
    /// Labs are named `{name_prefix}{pid}-{n}` (their namespaces after the lab), so that labs left by
    /// a killed run of this test binary can be told apart and removed.
    pub name_prefix: &'static str,
    /// A lab's files (secrets, logs) go in the temporary directory `{files_prefix}{lab name}`.
    pub files_prefix: &'static str,
    /// The `scripts/netlab` script.
    pub netlab: PathBuf,
    /// The directory holding the workspace's binaries ([`SERVER_BINARY`], [`BOT_BINARY`]).
    pub bin_dir: PathBuf,
}

/// Whether `program` is a file in one of `PATH`'s directories.
pub fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Fails unless this process runs as root; the message is `needs_root` followed by `; uid N)` (so
/// `needs_root` leaves a parenthesis open).
pub fn require_root(needs_root: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|line| line.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().next());
    assert!(uid == Some("0"), "{needs_root}; uid {})", uid.unwrap_or("unknown"));
}

/// Fails unless `ip` runs here and can list network namespaces.
pub fn require_network_namespaces() {
    match Command::new("ip").args(["netns", "list"]).output() {
        Err(error) => panic!("`ip` cannot run ({error}): install iproute2 (scripts/apt-packages.txt)"),
        Ok(output) if !output.status.success() => panic!(
            "`ip netns list` fails, so network namespaces cannot be made here: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// Removes the labs named `{name_prefix}{pid}-…` of test runs that were killed before they could (their
/// process is gone): their namespaces would keep coturn and the server running. Once per process.
fn sweep_abandoned_labs(netlab: &Path, name_prefix: &str) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return };
        let mut abandoned: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next()?.strip_suffix("-inet"))
            .filter(|prefix| {
                let pid = prefix.strip_prefix(name_prefix).and_then(|rest| rest.split_once('-')).map(|(pid, _)| pid);
                pid.is_some_and(|pid| pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists())
            })
            .map(str::to_owned)
            .collect();
        abandoned.dedup();
        for prefix in abandoned {
            eprintln!("removing the lab {prefix} of a test run that is gone");
            let _ = Command::new(netlab).args(["down", &prefix]).status();
        }
    });
}

/// One lab: namespaces, coturn and the signaling server in the "internet", the tokens minted as it
/// started. Dropping it stops what it started and removes the namespaces (and its files, unless a test
/// is failing).
pub struct Lab {
    /// The lab's name, which its namespaces start with.
    pub prefix: String,
    /// The lab's subnet index (10.203.INDEX.0/24); it only makes two labs' logs read differently (the
    /// labs share no network).
    pub index: u32,
    /// What `netlab up` printed: `KEY=value` (namespaces, addresses).
    pub vars: HashMap<String, String>,
    /// The lab's files: secrets, certificate, logs.
    pub dir: PathBuf,
    pub netlab: PathBuf,
    pub bin_dir: PathBuf,
    pub coturn: Option<Child>,
    pub server: Option<Child>,
    /// `wss://…`, as the server prints it.
    pub server_url: String,
    /// The server's certificate fingerprint, printed as it starts; bots pin it, invite links carry it.
    pub fingerprint: String,
    /// Tokens minted as the lab started, by user.
    pub tokens: HashMap<String, String>,
}

impl Lab {
    /// Builds a lab (`netlab up NAME --index N`, then `netlab_args`), starts coturn, mints a token for
    /// each of `token_users` (which makes the secret file the server reads) and starts the server.
    pub fn start(spec: &LabSpec, netlab_args: &[&str], token_users: &[&str]) -> Lab {
        // Unique per process and per test.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        sweep_abandoned_labs(&spec.netlab, spec.name_prefix);
        let prefix = format!("{}{pid}-{n}", spec.name_prefix);
        let index = (pid % 125 * 2 + n % 2) % 250 + 1;
        let dir = std::env::temp_dir().join(format!("{}{prefix}", spec.files_prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");

        let output = Command::new(&spec.netlab)
            .args(["up", &prefix, "--index", &index.to_string()])
            .args(netlab_args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", spec.netlab.display()));
        let mut lab = Lab {
            prefix,
            index,
            vars: HashMap::new(),
            dir,
            netlab: spec.netlab.clone(),
            bin_dir: spec.bin_dir.clone(),
            coturn: None,
            server: None,
            server_url: String::new(),
            fingerprint: String::new(),
            tokens: HashMap::new(),
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
        for user in token_users {
            let token = lab.token(user);
            lab.tokens.insert((*user).to_owned(), token);
        }
        lab.start_server();
        lab
    }

    /// A variable `netlab up` printed.
    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).unwrap_or_else(|| panic!("netlab up printed no {key}: {:?}", self.vars))
    }

    /// `program` run inside the namespace named by the netlab variable `ns` (`ip netns exec` execs it,
    /// so the child is the program itself).
    pub fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.var(ns)]).arg(program);
        command
    }

    /// One of the workspace's binaries ([`SERVER_BINARY`], [`BOT_BINARY`]).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The server's token secret (the server keeps its self-signed certificate beside it).
    pub fn secret_file(&self) -> PathBuf {
        self.dir.join("secret")
    }

    /// The server's log (its stderr).
    pub fn server_log(&self) -> PathBuf {
        self.dir.join("server.err")
    }

    /// coturn's log.
    pub fn turn_log(&self) -> PathBuf {
        self.dir.join("turn.log")
    }

    /// coturn in the "internet", with a fresh shared secret for TURN credentials; returns once its UDP
    /// listener is up.
    fn start_coturn(&mut self) {
        let ip = self.var("SERVER_IP").to_owned();
        let secret =
            format!("turn-{}-{}", self.prefix, SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos());
        std::fs::write(self.dir.join("turn-secret"), &secret).unwrap();
        let log = self.turn_log();
        let child = self
            .exec("INET_NS", Path::new("turnserver"))
            .args(["-n", "--realm=dialtone", &format!("--listening-port={TURN_PORT}")])
            .args([format!("--listening-ip={ip}"), format!("--relay-ip={ip}")])
            .args(["--use-auth-secret".to_owned(), format!("--static-auth-secret={secret}")])
            .arg(format!("--denied-peer-ip={PRIVATE_HOMES}"))
            .args(["--no-cli", "--no-tls", "--no-dtls", "--no-stdout-log", "--simple-log"])
            .arg(format!("--log-file={}", log.display()))
            // Its own pid file and user database, not the system's shared ones.
            .arg(format!("--pidfile={}", self.dir.join("turn.pid").display()))
            .arg(format!("--userdb={}", self.dir.join("turndb").display()))
            .args(["--min-port=49152", "--max-port=65535"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting turnserver");
        self.coturn = Some(child);
        // Ready once its UDP listener is up.
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

    /// `dialtone-server --tls-self-signed` in the "internet", pointing clients at coturn; returns once it
    /// has printed its URL ([`Lab::server_url`]) and certificate fingerprint ([`Lab::fingerprint`]).
    fn start_server(&mut self) {
        let ip = self.var("SERVER_IP").to_owned();
        let stderr = std::fs::File::create(self.server_log()).unwrap();
        let mut child = self
            .exec("INET_NS", &self.binary(SERVER_BINARY))
            .args(["--listen", &format!("{ip}:{SIGNALING_PORT}")])
            .arg("--secret-file")
            .arg(self.secret_file())
            .args(["--stun", &format!("stun:{ip}:{TURN_PORT}")])
            .args(["--turn", &format!("turn:{ip}:{TURN_PORT}?transport=udp")])
            .arg("--turn-secret-file")
            .arg(self.dir.join("turn-secret"))
            // A certificate made the first time and kept beside the secret: the bots pin the fingerprint it
            // prints, invite links carry it.
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
            panic!("dialtone-server did not start listening with TLS; its log:\n{}", tail(&self.server_log(), 30))
        });
    }

    /// `dialtone-server SUBCOMMAND … --secret-file SECRET`: its stdout, trimmed.
    pub fn server_tool(&self, args: &[&str]) -> String {
        let output = Command::new(self.binary(SERVER_BINARY))
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

    /// A token for `user`, valid for an hour (the first one minted creates the secret file).
    pub fn token(&self, user: &str) -> String {
        self.server_tool(&["token", "--user", user, "--ttl", "1h"])
    }

    /// Starts a bot as `user` in a home (`HOME_A_NS` or `HOME_B_NS`), signed in with `token` to the lab's
    /// server (its certificate pinned), with `args` besides; its stdout is read line by line as it comes,
    /// its stderr goes to `USER.err` in the lab's files.
    pub fn start_bot<E: EventLine>(&self, user: &'static str, home: &str, token: &str, args: &[&str]) -> Bot<E> {
        let stderr_path = self.dir.join(format!("{user}.err"));
        let mut child = self
            .exec(home, &self.binary(BOT_BINARY))
            .args(["--server", &self.server_url, "--token", token])
            .args(["--fingerprint", &self.fingerprint])
            .args(args)
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
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Bot { user, child, lines, reader: Some(reader), stderr_path, status: None, events: PhantomData }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in [self.server.as_mut(), self.coturn.as_mut()].into_iter().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(&self.netlab).args(["down", &self.prefix]).status();
        if std::thread::panicking() {
            eprintln!("{}: kept the lab's logs in {}", self.prefix, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One JSON line a bot prints (an event, or its summary), as the including test reads JSON.
pub trait EventLine: Sized {
    /// The line parsed, if it is JSON.
    fn parse(line: &str) -> Option<Self>;
    /// Its `event` field: what happened (`signed_in`, `call_active`, `summary`, …).
    fn event(&self) -> Option<&str>;
    /// Its `t_ms` field: when, in milliseconds since the bot started.
    fn t_ms(&self) -> Option<u64>;
}

/// A running bot and what it printed, its lines read as `E`. Dropping it kills it if it is still running.
pub struct Bot<E> {
    pub user: &'static str,
    pub child: Child,
    /// Its stdout lines, each with when it was read.
    pub lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<JoinHandle<()>>,
    pub stderr_path: PathBuf,
    /// How it exited, once [`Bot::wait`] saw it exit.
    pub status: Option<ExitStatus>,
    events: PhantomData<fn() -> E>,
}

impl<E: EventLine> Bot<E> {
    /// Everything it printed that is JSON, in order.
    pub fn events(&self) -> Vec<E> {
        self.lines.lock().unwrap().iter().filter_map(|(_, line)| E::parse(line)).collect()
    }

    /// Its events named `name`, in order.
    pub fn events_named(&self, name: &str) -> Vec<E> {
        self.events().into_iter().filter(|e| e.event() == Some(name)).collect()
    }

    /// The bot's `t_ms` 0 on this process's clock: a line is read shortly after its `t_ms`, never before,
    /// so the earliest of (read at - t_ms) is the closest.
    pub fn clock(&self) -> Option<Instant> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|(at, line)| {
                let t_ms = E::parse(line)?.t_ms()?;
                at.checked_sub(Duration::from_millis(t_ms))
            })
            .min()
    }

    /// Its events named `name`, each with when it happened on this process's clock.
    pub fn events_at(&self, name: &str) -> Vec<(Instant, E)> {
        let Some(zero) = self.clock() else { return Vec::new() };
        self.events_named(name).into_iter().filter_map(|e| Some((zero + Duration::from_millis(e.t_ms()?), e))).collect()
    }

    /// Whether it printed an event named `event` within `timeout`.
    pub fn wait_for_event(&self, event: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.events().iter().any(|e| e.event() == Some(event)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Its summary, printed as it exits.
    pub fn summary(&self) -> Option<E> {
        self.events_named("summary").pop()
    }
}

impl<E> Bot<E> {
    /// Waits for it to exit; kills it after `timeout` (and returns None).
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a bot") {
                self.status = Some(status);
                // Its last lines are in once its stdout closes.
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

    /// Ctrl-C (`ip netns exec` execs the bot, so the child is the bot itself): an answering bot prints
    /// its summary and exits.
    pub fn interrupt(&self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
    }

    /// For a failing test's report, under a heading naming it `title`: how it exited, its last
    /// `stdout_lines` lines (without those of `left_out` events, if given) and its stderr's last
    /// `stderr_lines` lines.
    pub fn report(&self, title: &str, stdout_lines: usize, left_out: Option<&str>, stderr_lines: usize) -> String {
        let lines = self.lines.lock().unwrap();
        let left_out_line = left_out.map(|event| format!("\"{event}\""));
        let shown: Vec<&str> = lines
            .iter()
            .map(|(_, line)| line.as_str())
            .filter(|line| left_out_line.as_ref().is_none_or(|event| !line.contains(event.as_str())))
            .collect();
        let note = left_out.map_or(String::new(), |event| format!(" ({event} left out)"));
        format!(
            "--- {title} (exit {:?}): last stdout lines{note}:\n{}\n--- {}'s stderr, last lines (repeats folded):\n{}",
            self.status,
            shown[shown.len().saturating_sub(stdout_lines)..].join("\n"),
            self.user,
            tail(&self.stderr_path, stderr_lines)
        )
    }
}

impl<E> Drop for Bot<E> {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sleeps until `at` (not at all if it has passed).
pub fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// The last `count` lines of a log, escape codes stripped and runs of the same message (timestamps aside)
/// folded into one, so a log repeating one error still shows what came before it.
pub fn tail(path: &Path, count: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("({} unreadable)", path.display());
    };
    let text = strip_escapes(&String::from_utf8_lossy(&bytes));
    let message = |line: &str| -> String {
        // `2026-12-04T16:49:58.259655Z  ERROR target: message`: compare what follows the timestamp.
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

/// `text` without its terminal escape sequences (colours).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter.
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

/// The bot's lines, read with serde_json.
impl EventLine for serde_json::Value {
    fn parse(line: &str) -> Option<serde_json::Value> {
        serde_json::from_str(line).ok()
    }

    fn event(&self) -> Option<&str> {
        self["event"].as_str()
    }

    fn t_ms(&self) -> Option<u64> {
        self["t_ms"].as_u64()
    }
}
