//! The wire between two network namespaces, as the call tests use it: round trips take twice the delay
//! (plus at most the jitter), a share of datagrams is lost, and a large TCP transfer (segments the
//! sender left to the "network card" to cut) arrives whole. Needs root, as the NAT tests do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Three namespaces, left — wire — right, and the wire running between them; removed when dropped.
struct Cable {
    prefix: String,
    wire: Child,
}

const LEFT_IP: &str = "10.77.0.1";
const RIGHT_IP: &str = "10.77.0.2";

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip (Debian package iproute2)");
    assert!(status.success(), "ip {args:?} failed");
}

impl Cable {
    fn lay(name: &str, wire_args: &[&str]) -> Cable {
        assert_eq!(unsafe { libc::geteuid() }, 0, "the wire test needs root (network namespaces, raw sockets)");
        let prefix = format!("wt{}{name}", std::process::id() % 10_000);
        let (left, wire, right) = (format!("{prefix}-l"), format!("{prefix}-w"), format!("{prefix}-r"));
        for ns in [&left, &wire, &right] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            ip(&["netns", "add", ns]);
            // No IPv6 chatter (router solicitations) on the cable.
            ip(&["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", &left, "link", "add", "l0", "type", "veth", "peer", "name", "wl", "netns", &wire]);
        ip(&["-n", &right, "link", "add", "r0", "type", "veth", "peer", "name", "wr", "netns", &wire]);
        ip(&["-n", &left, "addr", "add", &format!("{LEFT_IP}/24"), "dev", "l0"]);
        ip(&["-n", &right, "addr", "add", &format!("{RIGHT_IP}/24"), "dev", "r0"]);
        for (ns, dev) in [(&left, "l0"), (&wire, "wl"), (&wire, "wr"), (&right, "r0")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        let mut wire_process = Command::new("ip")
            .args(["netns", "exec", &wire, env!("CARGO_BIN_EXE_dialtone-wire"), "--a", "wl", "--b", "wr"])
            .args(wire_args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dialtone-wire");
        let mut ready = String::new();
        BufReader::new(wire_process.stderr.take().expect("its stderr")).read_line(&mut ready).expect("its first line");
        assert!(ready.contains("ready"), "dialtone-wire did not start: {ready}");
        Cable { prefix, wire: wire_process }
    }

    /// Runs `work` on a thread inside the namespace on `side` ("l" or "r").
    fn inside<T: Send + 'static>(
        &self,
        side: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}-{side}", self.prefix);
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path).expect("the namespace");
            // SAFETY: setns on this thread only, with a namespace descriptor that lives across the call.
            let entered = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "entering {path}: {}", std::io::Error::last_os_error());
            work()
        })
    }

    /// Sends `count` datagrams from left to an echo on the right, one every 10 ms; returns the round
    /// trips of those that came back.
    fn round_trips(&self, count: u16) -> Vec<Duration> {
        let echo = self.inside("r", || {
            let socket = UdpSocket::bind((RIGHT_IP, 7_000)).expect("the echo's socket");
            socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buffer = [0u8; 64];
            while let Ok((length, from)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(&buffer[..length], from);
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let trips = self
            .inside("l", move || {
                let socket = UdpSocket::bind((LEFT_IP, 0)).expect("a socket");
                socket.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                let start = Instant::now();
                let mut sent = Vec::new();
                let mut trips = Vec::new();
                let mut buffer = [0u8; 64];
                for n in 0..count {
                    sent.push(Instant::now());
                    socket.send_to(&n.to_be_bytes(), (RIGHT_IP, 7_000)).unwrap();
                    let until = start + Duration::from_millis(10 * (u64::from(n) + 1));
                    while Instant::now() < until {
                        if let Ok(2) = socket.recv(&mut buffer) {
                            let n = usize::from(u16::from_be_bytes([buffer[0], buffer[1]]));
                            trips.push(sent[n].elapsed());
                        }
                    }
                }
                // The last answers are still on the wire.
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until {
                    if let Ok(2) = socket.recv(&mut buffer) {
                        let n = usize::from(u16::from_be_bytes([buffer[0], buffer[1]]));
                        trips.push(sent[n].elapsed());
                    }
                }
                trips
            })
            .join()
            .unwrap();
        echo.join().unwrap();
        trips
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        let _ = self.wire.kill();
        let _ = self.wire.wait();
        for side in ["l", "w", "r"] {
            let _ = Command::new("ip").args(["netns", "del", &format!("{}-{side}", self.prefix)]).status();
        }
    }
}

#[test]
fn round_trips_take_twice_the_delay_plus_at_most_the_jitter() {
    let cable = Cable::lay("d", &["--delay-ms", "40", "--jitter-ms", "10"]);
    let mut trips = cable.round_trips(100);
    assert_eq!(trips.len(), 100, "nothing is lost without loss");
    trips.sort();
    let (least, median) = (trips[0], trips[50]);
    assert!(least >= Duration::from_millis(80), "no round trip beats 2 × 40 ms: {least:?}");
    assert!(median <= Duration::from_millis(110), "the median stays near 80–100 ms: {median:?}");
}

#[test]
fn a_share_of_datagrams_is_lost_each_way() {
    // 30 % each way: a round trip survives with 0.7 × 0.7 = 49 %.
    let cable = Cable::lay("x", &["--loss", "30", "--seed", "3"]);
    let trips = cable.round_trips(300);
    let share = trips.len() as f64 / 300.0;
    assert!((0.37..0.61).contains(&share), "{:.0} % of round trips came back", share * 100.0);
}

#[test]
fn a_large_tcp_transfer_arrives_whole() {
    let cable = Cable::lay("t", &["--delay-ms", "5"]);
    let listener = cable.inside("r", || TcpListener::bind((RIGHT_IP, 7_001)).expect("a listener")).join().unwrap();
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("a connection");
        // A transfer that stalls (segments too large to pass) fails instead of hanging.
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).expect("the transfer");
        received
    });
    let sent: Vec<u8> = (0..4_000_000u32).map(|n| (n * 7 % 251) as u8).collect();
    let copy = sent.clone();
    cable
        .inside("l", move || {
            let mut stream = TcpStream::connect((RIGHT_IP, 7_001)).expect("connecting across the wire");
            stream.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
            stream.write_all(&copy).expect("sending");
        })
        .join()
        .unwrap();
    let received = receiver.join().unwrap();
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "the bytes arrived changed");
}
