//! The user's settings, kept in `settings.toml` (see [`crate::store`]): applied at once, saved on change.

use std::path::PathBuf;

use dialtone_engine::{DeviceChoice, DeviceKind, DevicePick};
use serde::{Deserialize, Serialize};

/// Everything the settings panel changes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Who this user is to others.
    pub profile: ProfileSettings,
    /// Which server to use; none embeds one on this machine.
    pub server: ServerSettings,
    /// How incoming calls sound.
    pub ringtone: RingtoneSettings,
    /// How calls start and look.
    pub calls: CallSettings,
    /// Chosen devices; none means this run's default (the system's device, or its fake twin when
    /// there is none).
    pub devices: DeviceSettings,
    /// Window behaviour.
    pub window: WindowSettings,
}

/// Display name and picture.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileSettings {
    /// The name others see; empty until the first-run profile is filled in.
    pub display_name: String,
    /// A picture file (PNG or JPEG), shown cropped round; initials on a colour when there is none.
    pub avatar: Option<PathBuf>,
}

/// Where to sign in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// A `ws://` URL; empty embeds a server on this machine.
    pub url: String,
    /// The user id to sign in as on that server.
    pub user: String,
    /// A sign-in token from the server's administrator.
    pub token: String,
    /// The SHA-256 fingerprint of a self-signed server's certificate (64 hex digits); empty trusts the
    /// system's certificate authorities.
    pub fingerprint: String,
    /// Send the token unencrypted (`ws://`) to a server on another computer: the user asked for it.
    pub allow_clear_text: bool,
    /// With no server URL: the server this app runs lets people on the network sign in (with an invite
    /// link, over TLS with a self-signed certificate).
    pub host_on_network: bool,
}

/// The ringtone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RingtoneSettings {
    /// A sound file (WAV, Ogg Vorbis or MP3); none plays the built-in tone.
    pub file: Option<PathBuf>,
    /// 0.0 to 1.0.
    pub volume: f32,
}

impl Default for RingtoneSettings {
    fn default() -> Self {
        Self { file: None, volume: 0.8 }
    }
}

/// How calls start and how people without a camera are shown.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CallSettings {
    /// Join every call muted.
    pub start_muted: bool,
    /// Join video calls with the camera off.
    pub start_camera_off: bool,
    /// How a participant whose camera is off is drawn.
    pub avatar_shape: AvatarShape,
    /// Connect calls only through the server's relay, so the people called never learn this computer's
    /// network addresses (a little more delay; needs a relay on the server).
    pub always_relay: bool,
}

/// How a participant whose camera is off is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvatarShape {
    /// A round picture in the middle of the tile.
    #[default]
    Circle,
    /// A square picture with rounded corners.
    Square,
    /// The picture filling the tile.
    Fullscreen,
}

impl AvatarShape {
    /// Every shape, in the order the settings list them.
    pub const ALL: [AvatarShape; 3] = [AvatarShape::Circle, AvatarShape::Square, AvatarShape::Fullscreen];

    /// What the settings call it.
    pub fn label(self) -> &'static str {
        match self {
            AvatarShape::Circle => "Circle",
            AvatarShape::Square => "Square",
            AvatarShape::Fullscreen => "Fill the tile",
        }
    }
}

/// Chosen devices, by the engine's device id (`alsa:...`, `camera:0`, `fake:tone`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceSettings {
    /// Microphone id.
    pub microphone: Option<String>,
    /// Speaker id.
    pub speaker: Option<String>,
    /// Camera id.
    pub camera: Option<String>,
}

impl DeviceSettings {
    /// The id chosen for `kind`.
    pub fn get(&self, kind: DeviceKind) -> Option<&String> {
        match kind {
            DeviceKind::Microphone => self.microphone.as_ref(),
            DeviceKind::Speaker => self.speaker.as_ref(),
            DeviceKind::Camera => self.camera.as_ref(),
        }
    }

    /// Chooses `id` for `kind` (none: this run's default).
    pub fn set(&mut self, kind: DeviceKind, id: Option<String>) {
        match kind {
            DeviceKind::Microphone => self.microphone = id,
            DeviceKind::Speaker => self.speaker = id,
            DeviceKind::Camera => self.camera = id,
        }
    }

    /// `defaults` with every chosen device put in.
    pub fn over(&self, defaults: &DeviceChoice) -> DeviceChoice {
        let pick = |kind| match self.get(kind) {
            Some(id) => DevicePick::Id(id.clone()),
            None => defaults.pick(kind).clone(),
        };
        DeviceChoice {
            microphone: pick(DeviceKind::Microphone),
            speaker: pick(DeviceKind::Speaker),
            camera: pick(DeviceKind::Camera),
        }
    }
}

/// Window behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowSettings {
    /// Closing the main window keeps the app running in the tray.
    pub close_to_tray: bool,
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self { close_to_tray: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_the_rest_at_defaults() {
        let settings: Settings =
            toml::from_str("[ringtone]\nvolume = 0.25\n[profile]\ndisplay_name = \"Ada\"\n").unwrap();
        assert_eq!(settings.ringtone.volume, 0.25);
        assert_eq!(settings.profile.display_name, "Ada");
        assert!(settings.window.close_to_tray);
        assert_eq!(settings.calls.avatar_shape, AvatarShape::Circle);
    }
}
