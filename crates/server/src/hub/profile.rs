//! Profiles: display names, and the profile pictures the hub keeps for the users who show them.

use std::collections::BTreeSet;

use dialtone_protocol::{
    ErrorCode, MAX_AVATAR_REF_BYTES, MAX_DISPLAY_NAME_CHARS, MAX_PICTURE_BYTES, PictureKind, ServerMessage, UserId,
    picture_ref,
};

use super::state::{Picture, Refusal, refuse};
use super::{ConnId, Hub};

fn too_large(bytes: usize) -> String {
    format!("the picture is {} KiB; at most {} KiB", bytes.div_ceil(1024), MAX_PICTURE_BYTES / 1024)
}

/// The user of a signed-in connection has an entry; this refusal only guards against a bug.
fn unknown_user<T>(user: &UserId) -> Result<T, Refusal> {
    refuse(ErrorCode::NotSignedIn, format!("{user} is not signed in"))
}

impl Hub {
    /// Checks and keeps a user's new picture (the one it replaces goes, unless someone else has it too).
    pub(super) fn set_picture(&mut self, user: &UserId, mime: &str, data: &str) -> Result<(), Refusal> {
        use base64::Engine as _;
        // Base64 is 4/3 of the bytes: anything longer cannot be small enough.
        if data.len() > MAX_PICTURE_BYTES.div_ceil(3) * 4 + 4 {
            return refuse(ErrorCode::BadRequest, too_large(data.len() / 4 * 3));
        }
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
            return refuse(ErrorCode::BadRequest, "the picture is not base64");
        };
        if bytes.len() > MAX_PICTURE_BYTES {
            return refuse(ErrorCode::BadRequest, too_large(bytes.len()));
        }
        let Some(kind) = PictureKind::of(&bytes) else {
            return refuse(ErrorCode::BadRequest, "that is not a PNG, JPEG or WebP picture");
        };
        if kind.mime() != mime {
            return refuse(ErrorCode::BadRequest, format!("the picture is {}, not {mime}", kind.mime()));
        }
        let name = picture_ref(&bytes);
        let Some(state) = self.users.get_mut(user) else { return unknown_user(user) };
        let old = state.profile.avatar.replace(name.clone());
        self.pictures
            .entry(name)
            .or_insert_with(|| Picture { mime: kind.mime(), data: data.to_owned(), users: BTreeSet::new() })
            .users
            .insert(user.clone());
        if let Some(old) = old {
            self.release_picture(&old, user);
        }
        self.publish_presence(user);
        Ok(())
    }

    /// Sends the picture named `avatar` to `conn`.
    pub(super) fn get_picture(&mut self, conn: ConnId, avatar: String) -> Result<(), Refusal> {
        let Some(picture) = self.pictures.get(&avatar) else {
            return refuse(ErrorCode::BadRequest, format!("no picture {avatar}"));
        };
        let (mime, data) = (picture.mime.to_owned(), picture.data.clone());
        self.send(conn, ServerMessage::Picture { avatar, mime, data });
        Ok(())
    }

    /// `user` no longer shows the picture `name`; it goes when nobody does.
    fn release_picture(&mut self, name: &str, user: &UserId) {
        let in_use = self.users.get(user).and_then(|u| u.profile.avatar.as_deref()) == Some(name);
        if let Some(picture) = self.pictures.get_mut(name).filter(|_| !in_use) {
            picture.users.remove(user);
            if picture.users.is_empty() {
                self.pictures.remove(name);
            }
        }
    }

    /// Changes the display name and the avatar reference (empty: none), each when given.
    pub(super) fn set_profile(
        &mut self,
        user: &UserId,
        name: Option<String>,
        avatar: Option<String>,
    ) -> Result<(), Refusal> {
        if let Some(name) = &name {
            let chars = name.trim().chars().count();
            if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS {
                return refuse(
                    ErrorCode::BadRequest,
                    format!("display name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"),
                );
            }
        }
        if avatar.as_ref().is_some_and(|a| a.len() > MAX_AVATAR_REF_BYTES) {
            return refuse(
                ErrorCode::BadRequest,
                format!("avatar reference must be at most {MAX_AVATAR_REF_BYTES} bytes"),
            );
        }
        let Some(state) = self.users.get_mut(user) else { return unknown_user(user) };
        if let Some(name) = name {
            state.profile.display_name = name.trim().to_owned();
        }
        let mut released = None;
        if let Some(avatar) = avatar {
            released = std::mem::replace(&mut state.profile.avatar, (!avatar.is_empty()).then_some(avatar));
        }
        if let Some(old) = released {
            self.release_picture(&old, user);
        }
        self.publish_presence(user);
        Ok(())
    }
}
