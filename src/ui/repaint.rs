//! Waking the window from the engine's threads, paced: every frame is a full-window repaint, which
//! without a GPU is the app's largest cost (BENCHMARKS.md).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wakes the UI from the engine's threads; holds the egui context once the first frame ran, and when
/// the last frame began.
///
/// Every frame is a full-window repaint, which without a GPU is the app's largest cost (BENCHMARKS.md),
/// so wakes are paced: at most [`FRAME_INTERVAL`] apart however many streams land pictures, one frame
/// per wake (egui answers a plain `request_repaint` with two), and the self view's pictures wait a
/// little for a remote picture to ride along with.
#[derive(Default)]
pub struct Repaint(Mutex<Option<(egui::Context, Instant)>>);

/// The shortest time between frames woken by the engine: the fastest camera rate (30 fps).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// How long a new self-view picture waits for a frame drawn anyway (a remote picture at 30 fps
/// comes within 33 ms); with no remote video it is shown at this delay.
pub const PREVIEW_WAIT: Duration = Duration::from_millis(40);

impl Repaint {
    /// Requests a repaint as soon as the pacing allows, if a window is there to repaint.
    pub fn wake(&self) {
        self.wake_within(Duration::ZERO);
    }

    /// Requests a repaint for a new self-view picture.
    pub fn wake_for_preview(&self) {
        self.wake_within(PREVIEW_WAIT);
    }

    fn wake_within(&self, wait: Duration) {
        if let Ok(slot) = self.0.lock()
            && let Some((ctx, last_frame)) = slot.as_ref()
        {
            ctx.request_repaint_after(repaint_delay(*last_frame, Instant::now(), wait));
        }
    }

    /// Notes a frame beginning (and the context, the first time).
    pub(crate) fn frame_begins(&self, ctx: &egui::Context) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((ctx.clone(), Instant::now()));
        }
    }
}

/// How long from `now` a wake waits: `wait`, and at least until [`FRAME_INTERVAL`] after the last
/// frame; never zero, which egui answers with two frames.
fn repaint_delay(last_frame: Instant, now: Instant, wait: Duration) -> Duration {
    let paced = (last_frame + FRAME_INTERVAL).saturating_duration_since(now);
    wait.max(paced).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_are_paced_to_one_frame_per_interval_and_never_ask_for_two() {
        let frame = Instant::now();
        // Right after a frame, a new remote picture waits for the interval's end.
        let soon = repaint_delay(frame, frame + Duration::from_millis(10), Duration::ZERO);
        assert_eq!(soon, FRAME_INTERVAL - Duration::from_millis(10));
        // Long after one, it is drawn at once, but with a non-zero delay (egui draws twice for zero).
        let later = repaint_delay(frame, frame + Duration::from_secs(1), Duration::ZERO);
        assert_eq!(later, Duration::from_millis(1));
        // A self-view picture waits for a remote one to ride along with, however long ago the frame was.
        let preview = repaint_delay(frame, frame + Duration::from_secs(1), PREVIEW_WAIT);
        assert_eq!(preview, PREVIEW_WAIT);
        assert!(PREVIEW_WAIT > FRAME_INTERVAL, "a remote picture at 30 fps comes first");
    }
}
