//! Avatar pictures as textures: this user's from its file, others' fetched from the server once and
//! kept in the data folder. Views ask; what must be fetched is collected for the app to ask the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use egui::TextureHandle;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Pictures {
    /// Where fetched pictures are kept.
    folder: PathBuf,
    /// Loaded pictures by file path (`None`: the file could not be used), loaded once.
    loaded: BTreeMap<PathBuf, Option<TextureHandle>>,
    /// Pictures asked of the server and not yet arrived.
    fetching: BTreeSet<String>,
    /// Pictures to ask the server for, at the end of the frame.
    wanted: Vec<String>,
}

impl Pictures {
    /// Pictures kept under `data/pictures`.
    pub(crate) fn in_folder(data: &Path) -> Self {
        Self { folder: data.join("pictures"), ..Self::default() }
    }

    /// Where the picture named `avatar` (`sha256:…`) is kept.
    pub(crate) fn cached(&self, avatar: &str) -> PathBuf {
        self.folder.join(avatar.trim_start_matches("sha256:"))
    }

    /// The kept file of `avatar` if it is there; asks for it (once) if not.
    pub(crate) fn fetched(&mut self, avatar: &str) -> Option<PathBuf> {
        let path = self.cached(avatar);
        if path.exists() {
            return Some(path);
        }
        if self.fetching.insert(avatar.to_owned()) {
            self.wanted.push(avatar.to_owned());
        }
        None
    }

    /// The pictures to ask the server for now.
    pub(crate) fn take_wanted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.wanted)
    }

    /// Keeps a picture that arrived from the server, to be drawn from now on.
    pub(crate) fn keep(&mut self, avatar: &str, data: &[u8]) {
        let path = self.cached(avatar);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
            let partial = path.with_extension("part");
            std::fs::write(&partial, data)?;
            std::fs::rename(&partial, &path)
        });
        if let Err(error) = written {
            tracing::warn!(%error, "cannot keep a picture");
        }
        self.fetching.remove(avatar);
        self.forget(&path);
    }

    /// The texture of the picture file at `path`, loaded (cropped round) the first time.
    pub(crate) fn texture(&mut self, ctx: &egui::Context, path: &Path) -> Option<egui::TextureId> {
        self.loaded
            .entry(path.to_owned())
            .or_insert_with(|| match crate::avatar::load_round(path, 192) {
                Ok(image) => {
                    Some(ctx.load_texture(format!("avatar-{}", path.display()), image, egui::TextureOptions::LINEAR))
                }
                Err(error) => {
                    tracing::info!(%error, "avatar picture");
                    None
                }
            })
            .as_ref()
            .map(TextureHandle::id)
    }

    /// Whether the picture at `path` has been drawn.
    pub(crate) fn shown(&self, path: &Path) -> bool {
        self.loaded.get(path).is_some_and(Option::is_some)
    }

    /// Forgets a loaded picture (the file changed).
    pub(crate) fn forget(&mut self, path: &Path) {
        self.loaded.remove(path);
    }
}
