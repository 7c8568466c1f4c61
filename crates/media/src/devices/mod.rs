//! Microphones, speakers and cameras: what exists, which one to use, and what happened to it.
//!
//! Every kind has a fake twin that always exists: a tone for the microphone, a null speaker that records
//! what it would have played, and the test-pattern camera; they are used when picked (tests, bots, demos).
//! A real device that cannot be opened (none exists, it is busy, it was unplugged) is never replaced by a
//! tone or a test pattern that others would receive: a missing microphone sends silence, a missing camera
//! sends no picture (the others see the avatar), a missing speaker plays silently; a [`DeviceNotice`] says
//! so, and the device is taken back when it returns.

pub mod camera;
mod info;
pub mod sound;
pub mod system_messages;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use info::{ABSENT_ID, DeviceError, DeviceInfo, DeviceKind, DevicePick};

/// The devices a call uses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceChoice {
    /// Sound in.
    pub microphone: DevicePick,
    /// Sound out.
    pub speaker: DevicePick,
    /// Pictures in.
    pub camera: DevicePick,
}

impl DeviceChoice {
    /// The fake twins for everything: what tests and bots use, the same on every machine.
    pub fn fake() -> Self {
        Self { microphone: DevicePick::Fake, speaker: DevicePick::Fake, camera: DevicePick::Fake }
    }

    /// The pick for `kind`.
    pub fn pick(&self, kind: DeviceKind) -> &DevicePick {
        match kind {
            DeviceKind::Microphone => &self.microphone,
            DeviceKind::Speaker => &self.speaker,
            DeviceKind::Camera => &self.camera,
        }
    }
}

/// Which device of a kind is now in use, and why it is not the one picked, if it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceNotice {
    /// The device now in use.
    pub device: DeviceInfo,
    /// Why the picked device is not in use (cannot be opened, was lost); `None` when it is.
    pub problem: Option<String>,
}

/// Receives [`DeviceNotice`]s, from capture and playback threads.
pub type DeviceNotify = Arc<dyn Fn(DeviceNotice) + Send + Sync>;

/// Every device that can be picked now, real ones first, each kind's fake twin last.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DeviceList {
    /// Sound in.
    pub microphones: Vec<DeviceInfo>,
    /// Sound out.
    pub speakers: Vec<DeviceInfo>,
    /// Pictures in.
    pub cameras: Vec<DeviceInfo>,
}

impl DeviceList {
    /// Asks the system (ALSA or the platform's sound server, V4L2 or the platform's cameras). Takes
    /// milliseconds to tens of milliseconds: call it off any latency-sensitive thread.
    pub fn query() -> Self {
        let (mut microphones, mut speakers) = sound::list();
        let mut cameras = camera::list();
        microphones.push(DeviceKind::Microphone.fake());
        speakers.push(DeviceKind::Speaker.fake());
        cameras.push(DeviceKind::Camera.fake());
        Self { microphones, speakers, cameras }
    }

    /// The devices of `kind`.
    pub fn of(&self, kind: DeviceKind) -> &[DeviceInfo] {
        match kind {
            DeviceKind::Microphone => &self.microphones,
            DeviceKind::Speaker => &self.speakers,
            DeviceKind::Camera => &self.cameras,
        }
    }
}

/// How often a device that stopped working is tried again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// An open device: what [`Fallback`] needs to know about it.
pub(crate) trait OpenDevice {
    /// The device.
    fn info(&self) -> &DeviceInfo;
    /// Why it stopped working, if it did.
    fn lost(&self) -> Option<String>;
}

impl OpenDevice for sound::SoundInput {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn lost(&self) -> Option<String> {
        self.lost.why()
    }
}

impl OpenDevice for sound::SoundOutput {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn lost(&self) -> Option<String> {
        self.lost.why()
    }
}

impl OpenDevice for camera::CameraInput {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn lost(&self) -> Option<String> {
        self.lost.why()
    }
}

/// The picked device, or the fake twin standing in for it: opens the device on first use, notices
/// when it stops working, tries it again every two seconds after that, and says what is in use each
/// time that changes. Lives on the thread that uses the device.
pub(crate) struct Fallback<Device> {
    kind: DeviceKind,
    wanted: DevicePick,
    device: Option<Device>,
    started: bool,
    retry_at: Option<std::time::Instant>,
    notify: DeviceNotify,
}

impl<Device: OpenDevice> Fallback<Device> {
    pub(crate) fn new(kind: DeviceKind, wanted: DevicePick, notify: DeviceNotify) -> Self {
        Self { kind, wanted, device: None, started: false, retry_at: None, notify }
    }

    /// The open device, or `None` while the twin stands in.
    pub(crate) fn device(
        &mut self,
        mut open: impl FnMut(&DevicePick) -> Result<Device, DeviceError>,
    ) -> Option<&Device> {
        let now = std::time::Instant::now();
        if !self.started {
            self.started = true;
            if self.wanted.is_fake(self.kind) {
                self.say(self.kind.fake(), None);
            } else {
                match open(&self.wanted) {
                    Ok(device) => self.use_device(device),
                    Err(error) => self.say(self.kind.absent(), Some(error.to_string())),
                }
            }
        }
        if let Some(reason) = self.device.as_ref().and_then(OpenDevice::lost) {
            let name = self.device.take().map(|d| d.info().name.clone()).unwrap_or_default();
            self.say(self.kind.absent(), Some(format!("{name} stopped working ({reason})")));
            self.retry_at = Some(now + RETRY_EVERY);
        }
        if self.device.is_none() && self.retry_at.is_some_and(|at| now >= at) {
            match open(&self.wanted) {
                Ok(device) => {
                    self.retry_at = None;
                    self.use_device(device);
                }
                Err(_) => self.retry_at = Some(now + RETRY_EVERY),
            }
        }
        self.device.as_ref()
    }

    /// Whether the fake twin was picked (and so stands in while no device is open): otherwise nothing does.
    pub(crate) fn twin_picked(&self) -> bool {
        self.wanted.is_fake(self.kind)
    }

    fn use_device(&mut self, device: Device) {
        self.say(device.info().clone(), None);
        self.device = Some(device);
    }

    fn say(&self, device: DeviceInfo, problem: Option<String>) {
        if let Some(problem) = &problem {
            tracing::warn!(device = %device.name, %problem, "using a stand-in {}", self.kind.noun());
        }
        (self.notify)(DeviceNotice { device, problem });
    }
}
