//! Fits the video sent to what the network carries: the encoder's bitrate follows congestion control's
//! estimate, and when that is not enough for the camera's size, the size and then the frame rate step
//! down (and back up once the estimate has stayed comfortably above the next step for a while).
//!
//! Pure logic with the clock passed in, so the steps are tested exactly.

use std::time::{Duration, Instant};

/// One step of the ladder: how much smaller and how much less often than the camera's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// Width and height are divided by this.
    pub scale: u32,
    /// Only every n-th captured picture is sent.
    pub fps_divider: u32,
}

/// From the camera's own format down. Size goes first (a smaller sharp picture reads better than a
/// large blocky one), then frame rate, then size again.
const LADDER: [(Rung, f64); 4] = [
    (Rung { scale: 1, fps_divider: 1 }, 0.40),
    (Rung { scale: 2, fps_divider: 1 }, 0.10),
    (Rung { scale: 2, fps_divider: 2 }, 0.06),
    (Rung { scale: 4, fps_divider: 2 }, 0.0),
];

/// No rung makes the picture narrower than this (the test pattern's stamp needs 256 pixels).
const MIN_WIDTH: u32 = 320;

/// The estimate must exceed the next rung up's need by this factor ...
const STEP_UP_MARGIN: f64 = 1.3;
/// ... for this long before the picture grows again: a step costs a keyframe, and flapping looks worse
/// than either size.
const STEP_UP_AFTER: Duration = Duration::from_secs(4);
/// After any step, the encoder's output is measured afresh for this long before the next step down.
const SETTLE: Duration = Duration::from_secs(1);
/// The encoder counts as held back by its bitrate when it produces at least this share of it. An
/// easy picture (a still room, the test pattern) stays well under any sensible bitrate, and then a low
/// estimate is no reason to make it smaller.
const CONSTRAINED_SHARE: f64 = 0.85;
/// The lowest bitrate the encoder is given.
const MIN_VIDEO_KBPS: u32 = 30;

/// What the encoder should do for the next picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    /// The step of the ladder.
    pub rung: Rung,
    /// The encoder's target bitrate.
    pub bitrate_kbps: u32,
}

/// Chooses the [`Encoding`] from the estimate and from what the encoder has been producing.
#[derive(Debug)]
pub struct RateAdapter {
    /// The bitrate the camera's full format is meant to get.
    nominal_kbps: u32,
    /// How many rungs the camera's size allows.
    rungs: usize,
    rung: usize,
    bitrate_kbps: u32,
    /// Since when the output is being measured (reset at each step), and how much was produced since.
    window_start: Instant,
    window_bytes: u64,
    /// Since when the estimate has allowed the next rung up.
    roomy_since: Option<Instant>,
}

impl RateAdapter {
    /// An adapter for a camera of `width` pixels whose full format wants `nominal_kbps`.
    pub fn new(width: u32, nominal_kbps: u32, now: Instant) -> Self {
        let rungs = LADDER.iter().take_while(|(rung, _)| width / rung.scale >= MIN_WIDTH).count().max(1);
        Self {
            nominal_kbps,
            rungs,
            rung: 0,
            bitrate_kbps: nominal_kbps,
            window_start: now,
            window_bytes: 0,
            roomy_since: None,
        }
    }

    /// Counts an encoded frame's size.
    pub fn encoded(&mut self, bytes: usize) {
        self.window_bytes += bytes as u64;
    }

    /// The encoding for the next picture, given the video's share of the estimate (`None` while no
    /// connection has one).
    pub fn update(&mut self, now: Instant, budget_kbps: Option<u32>) -> Encoding {
        let Some(budget) = budget_kbps else {
            return self.current();
        };
        self.bitrate_kbps = budget.clamp(MIN_VIDEO_KBPS, self.nominal_kbps);
        let need = |rung: usize| LADDER[rung].1 * f64::from(self.nominal_kbps);
        let measured = now.saturating_duration_since(self.window_start);
        if measured >= SETTLE {
            let produced_kbps = self.window_bytes as f64 * 8.0 / 1000.0 / measured.as_secs_f64();
            let constrained = produced_kbps >= CONSTRAINED_SHARE * f64::from(self.bitrate_kbps);
            if constrained && f64::from(budget) < need(self.rung) && self.rung + 1 < self.rungs {
                self.step(now, self.rung + 1);
                return self.current();
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        if self.rung > 0 && f64::from(budget) >= need(self.rung - 1) * STEP_UP_MARGIN {
            let since = *self.roomy_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= STEP_UP_AFTER {
                self.step(now, self.rung - 1);
            }
        } else {
            self.roomy_since = None;
        }
        self.current()
    }

    fn step(&mut self, now: Instant, rung: usize) {
        tracing::debug!(from = self.rung, to = rung, bitrate_kbps = self.bitrate_kbps, "video quality step");
        self.rung = rung;
        self.window_start = now;
        self.window_bytes = 0;
        self.roomy_since = None;
    }

    /// The encoding chosen last.
    pub fn current(&self) -> Encoding {
        Encoding { rung: LADDER[self.rung].0, bitrate_kbps: self.bitrate_kbps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(33);

    /// Runs `seconds` of 30 fps through `adapter` with `budget`, the encoder producing what it is
    /// given times `fill` (1.0: a hard picture; 0.2: an easy one).
    fn run(adapter: &mut RateAdapter, at: &mut Instant, seconds: u64, budget: u32, fill: f64) -> Encoding {
        let mut encoding = adapter.update(*at, Some(budget));
        for _ in 0..seconds * 30 {
            *at += FRAME;
            encoding = adapter.update(*at, Some(budget));
            let frames_per_second = 30.0 / f64::from(encoding.rung.fps_divider);
            adapter.encoded((f64::from(encoding.bitrate_kbps) * fill * 1000.0 / 8.0 / frames_per_second) as usize);
        }
        encoding
    }

    #[test]
    fn the_bitrate_follows_the_estimate_within_the_cameras_need() {
        let mut at = Instant::now();
        let mut adapter = RateAdapter::new(1280, 2500, at);
        assert_eq!(run(&mut adapter, &mut at, 1, 2000, 1.0).bitrate_kbps, 2000);
        assert_eq!(run(&mut adapter, &mut at, 1, 9000, 1.0).bitrate_kbps, 2500, "never above the camera's need");
        assert_eq!(adapter.update(at, None).bitrate_kbps, 2500, "no estimate: unchanged");
    }

    #[test]
    fn a_hard_picture_steps_down_size_then_rate_and_recovers_slowly() {
        let mut at = Instant::now();
        let mut adapter = RateAdapter::new(1280, 2500, at);
        let full = Rung { scale: 1, fps_divider: 1 };
        assert_eq!(run(&mut adapter, &mut at, 3, 1500, 1.0).rung, full, "1.5 Mbps carries 720p");

        let low = run(&mut adapter, &mut at, 3, 200, 1.0);
        assert_eq!(low.rung, Rung { scale: 2, fps_divider: 2 }, "200 kbps: half size, half rate");
        assert_eq!(low.bitrate_kbps, 200);

        // Back up one rung at a time, each after the estimate has been roomy for 4 s.
        let encoding = run(&mut adapter, &mut at, 3, 2500, 1.0);
        assert_eq!(encoding.rung, Rung { scale: 2, fps_divider: 2 }, "not before 4 s");
        assert_eq!(run(&mut adapter, &mut at, 2, 2500, 1.0).rung, Rung { scale: 2, fps_divider: 1 });
        assert_eq!(run(&mut adapter, &mut at, 5, 2500, 1.0).rung, full);
    }

    #[test]
    fn an_easy_picture_keeps_its_size_on_a_low_estimate() {
        let mut at = Instant::now();
        let mut adapter = RateAdapter::new(1280, 2500, at);
        let encoding = run(&mut adapter, &mut at, 5, 600, 0.5);
        assert_eq!(encoding.rung, Rung { scale: 1, fps_divider: 1 });
        assert_eq!(encoding.bitrate_kbps, 600);
    }

    #[test]
    fn small_cameras_never_go_below_the_minimum_width() {
        let mut at = Instant::now();
        let mut adapter = RateAdapter::new(640, 800, at);
        let encoding = run(&mut adapter, &mut at, 10, 40, 1.0);
        assert_eq!(encoding.rung, Rung { scale: 2, fps_divider: 2 }, "640 wide: 320 is the floor");
        let mut tiny = RateAdapter::new(320, 300, at);
        assert_eq!(run(&mut tiny, &mut at, 10, 40, 1.0).rung, Rung { scale: 1, fps_divider: 1 });
    }
}
