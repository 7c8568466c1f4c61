//! What a device is: its kind, its description, how one is picked, why one cannot be used, and the
//! mark its own thread sets when it stops working. Shared by the device modules and the rest.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::lock;

/// Why an open device stopped working, set from its own thread (a sound callback, a camera reader) and
/// read by the thread that uses it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lost(Arc<Mutex<Option<String>>>);

impl Lost {
    /// Marks the device lost.
    pub(crate) fn set(&self, why: String) {
        *lock(&self.0) = Some(why);
    }

    /// Why the device stopped, if it did.
    pub(crate) fn why(&self) -> Option<String> {
        lock(&self.0).clone()
    }
}

/// The kinds of device a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Sound in.
    Microphone,
    /// Sound out.
    Speaker,
    /// Pictures in.
    Camera,
}

impl DeviceKind {
    /// The id of this kind's fake twin.
    pub fn fake_id(self) -> &'static str {
        match self {
            Self::Microphone => "fake:tone",
            Self::Speaker => "fake:null",
            Self::Camera => "fake:pattern",
        }
    }

    /// The fake twin, as listed.
    pub fn fake(self) -> DeviceInfo {
        let name = match self {
            Self::Microphone => "Test tone",
            Self::Speaker => "Silent speaker",
            Self::Camera => "Test pattern",
        };
        DeviceInfo { kind: self, id: self.fake_id().to_owned(), name: name.to_owned(), fake: true }
    }

    /// What stands in for a picked device of this kind that cannot be used: silence, no picture, or the
    /// silent speaker (which only records, for a level meter).
    pub fn absent(self) -> DeviceInfo {
        let name = match self {
            Self::Microphone => "No microphone",
            Self::Speaker => return self.fake(),
            Self::Camera => "No camera",
        };
        DeviceInfo { kind: self, id: ABSENT_ID.to_owned(), name: name.to_owned(), fake: false }
    }

    /// A lower-case word for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Microphone => "microphone",
            Self::Speaker => "speaker",
            Self::Camera => "camera",
        }
    }
}

/// The id of [`DeviceKind::absent`]: nothing captured.
pub const ABSENT_ID: &str = "none";

/// One device that can be picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Its kind.
    pub kind: DeviceKind,
    /// A stable id to pick it by (`alsa:hw:CARD=..`, `v4l:/dev/video0`, `fake:tone`, ...).
    pub id: String,
    /// What a person calls it.
    pub name: String,
    /// The fake twin.
    pub fake: bool,
}

/// Which device to use for one kind.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevicePick {
    /// The system's default device.
    #[default]
    System,
    /// The fake twin (tests, bots, and machines without the device).
    Fake,
    /// The device with this [`DeviceInfo::id`].
    Id(String),
}

impl DevicePick {
    /// Whether this pick means the fake twin of `kind`.
    pub fn is_fake(&self, kind: DeviceKind) -> bool {
        match self {
            Self::Fake => true,
            Self::Id(id) => id == kind.fake_id(),
            Self::System => false,
        }
    }
}

/// Why a device could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The system has no device of that kind, or none by that id.
    #[error("no {kind} {which}")]
    NotFound {
        /// Microphone, speaker or camera.
        kind: &'static str,
        /// "found", or the id looked for.
        which: String,
    },
    /// It exists but would not open or start.
    #[error("{name} cannot be used: {reason}")]
    Unusable {
        /// The device's name.
        name: String,
        /// What the system said.
        reason: String,
    },
}

impl DeviceError {
    pub(crate) fn not_found(kind: DeviceKind, pick: &DevicePick) -> Self {
        let which = match pick {
            DevicePick::Id(id) => format!("called {id:?}"),
            _ => "found".to_owned(),
        };
        Self::NotFound { kind: kind.noun(), which }
    }
}
