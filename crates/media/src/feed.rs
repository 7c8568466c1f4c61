//! What the camera and the microphone senders share: a paced capture thread, and the set of links their
//! encoded output goes to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::send::LinkSender;

/// The links one source feeds, and the switch that stops its capture thread (when dropped).
#[derive(Debug, Default)]
pub(crate) struct Feed {
    targets: Arc<Mutex<Vec<LinkSender>>>,
    stop: Arc<AtomicBool>,
}

impl Feed {
    /// Replaces the links the output goes to.
    pub(crate) fn set_targets(&self, targets: Vec<LinkSender>) {
        if let Ok(mut current) = self.targets.lock() {
            *current = targets;
        }
    }

    /// A handle the sending task reads the current links through.
    pub(crate) fn targets(&self) -> impl Fn() -> Vec<LinkSender> + Send + 'static {
        let targets = self.targets.clone();
        move || targets.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Runs `step` every `period` on a thread named `name` until the feed is dropped or `step` returns
    /// false. A late step is not followed by a burst to catch up.
    pub(crate) fn spawn_paced(
        &self,
        name: &str,
        period: Duration,
        mut step: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = self.stop.clone();
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            let mut pacer = Pacer::new();
            while !stop.load(Ordering::Relaxed) && step() {
                pacer.wait(period);
            }
        })?;
        Ok(())
    }
}

/// Keeps a loop to a period: each wait ends one period after the last, so the work's own time does not
/// add up; a late tick is not followed by a burst to catch up.
pub(crate) struct Pacer {
    next: Instant,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Self { next: Instant::now() }
    }

    /// Sleeps until one `period` after the previous tick.
    pub(crate) fn wait(&mut self, period: Duration) {
        self.next += period;
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else {
            self.next = now;
        }
    }

    /// Counts the next period from now.
    pub(crate) fn restart(&mut self) {
        self.next = Instant::now();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
