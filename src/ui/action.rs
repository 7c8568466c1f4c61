//! What views ask for: they push actions, and `App::perform` carries them out in one place.

use dialtone_engine::DeviceKind;
use dialtone_protocol::{CallId, CallKind, UserId};

use super::view_state::{GridLayout, Screen};
use crate::settings::Settings;

/// Something a view asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call people.
    Call {
        /// Whom.
        users: Vec<UserId>,
        /// Audio or video.
        kind: CallKind,
        /// A group call.
        group: bool,
    },
    /// Answer a ringing call, with the camera on or not.
    Accept {
        /// The call.
        call: CallId,
        /// Camera on.
        video: bool,
    },
    /// Decline a ringing call.
    Decline {
        /// The call.
        call: CallId,
    },
    /// Leave (or cancel) the call on screen.
    Hangup,
    /// Mute or unmute.
    ToggleMute,
    /// Camera off or on.
    ToggleCamera,
    /// Turn an audio call into a video call.
    UpgradeToVideo,
    /// Invite more people into the call on screen.
    Invite(Vec<UserId>),
    /// Try again to connect to the people of the call on screen who could not be reached.
    RetryMedia,
    /// Sign in with an invite link (then start again, signed in there).
    SignInWithInvite(String),
    /// Open this computer's server to the network, or close it again (then start again).
    HostOnNetwork(bool),
    /// Forget the server signed in to (its address, token and fingerprint) and start again with the one
    /// on this computer.
    SignOut,
    /// Make an invite link for a new person with this name, and copy it.
    MakeInvite(String),
    /// Open or close the invite list.
    ToggleInvite,
    /// Change the grid layout.
    SetLayout(GridLayout),
    /// Go to a screen.
    Show(Screen),
    /// The history list was on screen: its missed calls are seen.
    HistorySeen,
    /// Open or close the keyboard help.
    ToggleHelp,
    /// Use a device from now on (none: this run's default), also in the call going on.
    UseDevice {
        /// Microphone, speaker or camera.
        kind: DeviceKind,
        /// The device's id.
        id: Option<String>,
    },
    /// Use the next camera.
    SwitchCamera,
    /// Open or close the speaker menu in a call.
    ToggleOutputMenu,
    /// Put the self view of a 1v1 call here (an offset from its home corner).
    MoveSelfView(egui::Vec2),
    /// Change the settings (the settings panel, the first-run card); they are saved at once.
    ChangeSettings(Box<Settings>),
    /// Play the test sound on the speaker.
    TestSound,
    /// Tell the user something (a file that cannot be used, …).
    Notify(String),
    /// Show the main window again (from the ringing popup).
    ShowWindow,
}
