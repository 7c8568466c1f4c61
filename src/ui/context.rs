//! What a view sees of the app: the model, the settings and history to read, the session's streams,
//! its own state between frames, and the caches it draws with. A view changes nothing else: what it
//! wants done it pushes as an `Action`.

use dialtone_engine::{DeviceChoice, DeviceKind};
use dialtone_protocol::UserId;

use super::pictures::Pictures;
use super::video::VideoTextures;
use super::view_state::ViewState;
use super::widgets::AvatarLook;
use crate::history::History;
use crate::model::Model;
use crate::session::Session;
use crate::settings::Settings;
use crate::sound::Sounds;

/// See the module documentation.
pub(crate) struct View<'a> {
    /// What the app knows.
    pub(crate) model: &'a Model,
    /// The user's settings (changed only by `Action::ChangeSettings`).
    pub(crate) settings: &'a Settings,
    /// The call history.
    pub(crate) history: &'a History,
    /// The session: video and audio slots, the server's address.
    pub(crate) session: &'a Session,
    /// The views' own state between frames.
    pub(crate) view: &'a mut ViewState,
    /// A texture per video stream.
    pub(crate) textures: &'a mut VideoTextures,
    /// Avatar pictures.
    pub(crate) pictures: &'a mut Pictures,
    /// The sounds (whether one plays, why there are none).
    pub(crate) sounds: &'a Sounds,
    /// The devices of this run where the settings choose none.
    pub(crate) default_devices: &'a DeviceChoice,
    /// The wall-clock time of this frame (for "2 minutes ago").
    pub(crate) now_unix_ms: u64,
}

impl View<'_> {
    /// The avatar look of a user: their picture (this user's from its file, others' fetched from the
    /// server once and kept), else their initials.
    pub(crate) fn avatar_look(&mut self, ctx: &egui::Context, user: &UserId) -> AvatarLook {
        let (name, picture_path) = if self.model.me.as_ref() == Some(user) {
            (my_name(self.model, self.settings), self.settings.profile.avatar.clone())
        } else {
            let avatar = self.model.profile_of(user).avatar.filter(|avatar| dialtone_protocol::is_picture_ref(avatar));
            (self.model.name_of(user), avatar.and_then(|avatar| self.pictures.fetched(&avatar)))
        };
        let picture = picture_path.and_then(|path| self.pictures.texture(ctx, &path));
        AvatarLook { user: user.to_string(), name, picture }
    }

    /// This user's display name.
    pub(crate) fn my_name(&self) -> String {
        my_name(self.model, self.settings)
    }

    /// The camera after the one in use, if there is another.
    pub(crate) fn next_camera(&self) -> Option<String> {
        next_camera(self.model)
    }
}

/// This user's display name: the settings', the server's, or the user id.
pub(crate) fn my_name(model: &Model, settings: &Settings) -> String {
    let name = &settings.profile.display_name;
    if !name.is_empty() {
        return name.clone();
    }
    if !model.my_profile.display_name.is_empty() {
        return model.my_profile.display_name.clone();
    }
    model.me.as_ref().map_or_else(|| "You".to_owned(), UserId::to_string)
}

/// The camera after the one in use, if there is another.
pub(crate) fn next_camera(model: &Model) -> Option<String> {
    let cameras = &model.devices.cameras;
    if cameras.len() < 2 {
        return None;
    }
    let current = model.in_use.get(&DeviceKind::Camera).map(|(device, _)| device.id.as_str());
    let at = cameras.iter().position(|c| Some(c.id.as_str()) == current).map_or(0, |i| i + 1);
    Some(cameras[at % cameras.len()].id.clone())
}
