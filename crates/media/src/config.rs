//! How media is set up: peer connections, the camera's format, the microphone's bitrate. Plain data,
//! read by the links and the streams alike.

use std::net::IpAddr;
use std::time::Duration;

pub use dialtone_protocol::IceServer;

use crate::devices::DeviceChoice;
use crate::loss::SimulatedLoss;

/// How long a link may stay unconnected before it counts as failed, by default; each candidate pair is
/// checked for as long. 10 s leaves room for slow links, long round trips and loss (a relay's allocation
/// takes a round trip or two more), and a person waiting on a silent call is told soon enough.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// How peer connections are made.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// Local addresses to gather host candidates on (one UDP socket each, any free port); `0.0.0.0`
    /// stands for every usable interface but loopback. Empty: [`every_interface`] with loopback kept,
    /// which the engine narrows to every interface alone when its server is not on this machine.
    pub bind_addrs: Vec<IpAddr>,
    /// STUN and TURN servers (the engine adds those the signaling server hands out).
    pub ice_servers: Vec<IceServer>,
    /// Connect only through a TURN relay, never directly: the other side never learns this device's
    /// addresses (a privacy setting, as in Signal's "always relay calls").
    pub relay_only: bool,
    /// Time between ICE connectivity checks. Connecting waits for about two of them (the check that
    /// succeeds, then the nomination), so the library's 200 ms default costs ~400 ms even on loopback;
    /// 20 ms gave 45 ms offer to connected, 5 ms gives 15 ms (BENCHMARKS.md). Each pair is checked for
    /// the connect limit's 10 s however short the interval.
    pub ice_check_interval: Duration,
    /// How long a connection may take to come up before it counts as failed ([`CONNECT_LIMIT`]).
    pub connect_limit: Duration,
    /// The size, rate and bitrate of the video sent.
    pub camera: CameraConfig,
    /// The microphone's bitrate, and the tone its fake twin plays.
    pub microphone: MicrophoneConfig,
    /// Which microphone, speaker and camera to use at first. The default is the fake twins for all
    /// three, the same on every machine (tests, bots); an app picks the system's devices.
    pub devices: DeviceChoice,
    /// Echo cancellation, noise suppression and gain control on a real microphone.
    pub voice_processing: bool,
    /// Send back what arrives instead of capturing: the echo contact, which lets a person see and hear
    /// themselves through the whole pipeline.
    pub mirror: bool,
    /// At most this much is sent to each device, whatever the network would carry (a data-saving
    /// limit); `None` lets congestion control alone decide.
    pub max_send_kbps: Option<u32>,
    /// Drop this share of what is sent, on purpose: tests and demonstrations of a lossy network.
    pub simulated_loss: Option<SimulatedLoss>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind_addrs: Vec::new(),
            ice_servers: Vec::new(),
            relay_only: false,
            ice_check_interval: Duration::from_millis(5),
            connect_limit: CONNECT_LIMIT,
            camera: CameraConfig::default(),
            microphone: MicrophoneConfig::default(),
            devices: DeviceChoice::fake(),
            voice_processing: true,
            mirror: false,
            max_send_kbps: None,
            simulated_loss: None,
        }
    }
}

/// The addresses media binds to when none are configured: every usable interface (the library expands
/// `0.0.0.0` to each interface that is up, neither loopback nor link-local), so STUN and TURN can reach
/// their servers and the other side gets this device's addresses; and loopback when `keep_loopback`, for
/// calls on this machine (it is not told to devices elsewhere, which could do nothing with it).
pub fn every_interface(keep_loopback: bool) -> Vec<IpAddr> {
    let mut addrs = vec![IpAddr::from([0, 0, 0, 0])];
    if keep_loopback {
        addrs.push(IpAddr::from([127, 0, 0, 1]));
    }
    addrs
}

/// The fake camera's settings (and, later, the real camera's capture format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraConfig {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Encoder target bitrate.
    pub bitrate_kbps: u32,
    /// Whether the test pattern carries fine detail that changes every frame, as a camera's sensor noise
    /// does: a plain pattern is cheap to encode and sends far less than its bitrate, so it cannot show
    /// whether a call fills the link it has.
    pub detailed: bool,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self { width: 640, height: 360, fps: 30, bitrate_kbps: 800, detailed: false }
    }
}

impl std::str::FromStr for CameraConfig {
    type Err = String;

    /// Reads `WIDTHxHEIGHT@FPS` (at most 3840x2160@60), with `+detail` for a [`Self::detailed`] pattern;
    /// the bitrate follows from the pixel rate, roughly what browsers spend: 2.5 Mbps at 720p30, 0.6 Mbps
    /// at 360p30.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a camera format like 640x360@30 or 640x360@30+detail");
        let (format, detailed) = match text.strip_suffix("+detail") {
            Some(format) => (format, true),
            None => (text, false),
        };
        let (size, fps) = format.split_once('@').ok_or_else(bad)?;
        let (width, height) = size.split_once('x').ok_or_else(bad)?;
        let parse = |part: &str| part.parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(bad);
        let (width, height, fps) = (parse(width)?, parse(height)?, parse(fps)?);
        if width > 3840 || height > 2160 || fps > 60 {
            return Err(format!("{text:?} is larger than 3840x2160@60"));
        }
        let bitrate_kbps = (u64::from(width) * u64::from(height) * u64::from(fps) / 11_000).clamp(150, 4_000) as u32;
        Ok(Self { width, height, fps, bitrate_kbps, detailed })
    }
}

/// The fake microphone's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MicrophoneConfig {
    /// The tone it plays, in Hz.
    pub tone_hz: f32,
    /// The Opus bitrate.
    pub bitrate_bps: i32,
}

impl Default for MicrophoneConfig {
    fn default() -> Self {
        Self { tone_hz: 440.0, bitrate_bps: 32_000 }
    }
}
