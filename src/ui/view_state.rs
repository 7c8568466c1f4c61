//! What the views show and remember between frames: the screen, the layout, drafts being typed, menus
//! open. Runtime state only: nothing here is saved, and nothing here is the user's (settings and
//! history live apart, written only by `App::perform`).

use std::collections::BTreeSet;

use dialtone_protocol::UserId;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ViewState {
    /// The screen shown outside calls.
    pub(crate) screen: Screen,
    /// The contacts search.
    pub(crate) search: String,
    /// The group call's layout.
    pub(crate) layout: GridLayout,
    /// Where the self view sits in a 1v1 call, as an offset from its home corner.
    pub(crate) pip_offset: egui::Vec2,
    /// The keyboard help is open.
    pub(crate) help_open: bool,
    /// The invite list's selection, while it is open.
    pub(crate) invite: Option<BTreeSet<UserId>>,
    /// The speaker menu of the call controls is open.
    pub(crate) output_menu: bool,
    /// The draft of the first-run profile.
    pub(crate) profile_draft: String,
    /// The picture file's path being typed in the settings.
    pub(crate) picture_draft: Option<String>,
    /// The invite link being pasted in the settings.
    pub(crate) invite_draft: String,
    /// The name of someone to invite onto this computer's server.
    pub(crate) guest_name: String,
    /// The last invitation made: whom for, and the link.
    pub(crate) last_invite: Option<(String, String)>,
    /// The settings panel plays the ringtone.
    pub(crate) ringtone_preview: bool,
}

impl ViewState {
    /// The views at start: the contacts, with the saved display name as the first-run draft.
    pub(crate) fn new(display_name: String) -> Self {
        Self { profile_draft: display_name, ..Self::default() }
    }
}

/// The screens outside calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Screen {
    /// Contacts list.
    #[default]
    Contacts,
    /// Call history.
    History,
    /// Settings.
    Settings,
}

/// How the group view arranges its tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GridLayout {
    /// Everyone the same size.
    #[default]
    Grid,
    /// The active speaker large, the others in a strip.
    Spotlight,
    /// Only the active speaker.
    Single,
}

impl GridLayout {
    /// The next layout (the layout button and shortcut cycle through them).
    pub fn next(self) -> GridLayout {
        match self {
            GridLayout::Grid => GridLayout::Spotlight,
            GridLayout::Spotlight => GridLayout::Single,
            GridLayout::Single => GridLayout::Grid,
        }
    }

    /// Its name on the layout button.
    pub(crate) fn label(self) -> &'static str {
        match self {
            GridLayout::Grid => "Grid",
            GridLayout::Spotlight => "Spotlight",
            GridLayout::Single => "Single",
        }
    }
}
