//! Files the user owns (settings, call history): TOML, written atomically, and never lost to a bad read.
//!
//! A write goes to a temporary file beside the target, is flushed to disk, then renamed over it, so a
//! crash leaves either the old file or the new one. A file that cannot be read as expected is moved
//! aside (`NAME.corrupt-UNIXTIME`), reported, and defaults are used, so the user's data is still there
//! to rescue and the app still starts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system refused.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The value has no TOML form (a bug, not a user error).
    #[error("cannot encode {path}: {source}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What the encoder said.
        source: toml::ser::Error,
    },
}

/// What loading a file gave: the value, and what went wrong if it is not the file's content.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The file's content, or defaults.
    pub value: T,
    /// Set when the file existed but could not be used: what happened and where it was moved.
    pub problem: Option<String>,
}

/// Reads `path` as TOML. A missing file gives defaults silently; an unreadable or corrupt one is
/// moved aside and gives defaults with a problem to report.
pub fn load<T: DeserializeOwned + Default>(path: &Path) -> Loaded<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Loaded { value: T::default(), problem: None };
        }
        Err(error) => return set_aside(path, &error.to_string()),
    };
    match toml::from_str(&text) {
        Ok(value) => Loaded { value, problem: None },
        Err(error) => set_aside(path, error.message()),
    }
}

fn set_aside<T: Default>(path: &Path, why: &str) -> Loaded<T> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = PathBuf::from(aside);
    let problem = match std::fs::rename(path, &aside) {
        Ok(()) => format!(
            "{} could not be read ({why}); it was kept as {} and defaults are used",
            path.display(),
            aside.display()
        ),
        Err(error) => {
            format!("{} could not be read ({why}) nor set aside ({error}); defaults are used", path.display())
        }
    };
    tracing::warn!("{problem}");
    Loaded { value: T::default(), problem: Some(problem) }
}

/// Writes `value` to `path` as TOML, atomically, creating the folder if needed.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: path.to_owned(), source };
    let text = toml::to_string_pretty(value).map_err(|source| StoreError::Encode { path: path.to_owned(), source })?;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(io)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        volume: f32,
    }

    #[test]
    fn a_saved_value_loads_back_and_leaves_no_temporary_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("deep/er/sample.toml");
        let value = Sample { name: "Ada".into(), volume: 0.5 };
        save(&path, &value).unwrap();
        let loaded = load::<Sample>(&path);
        assert_eq!((loaded.value, loaded.problem), (value, None));
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_file_gives_defaults_without_a_problem() {
        let folder = tempfile::tempdir().unwrap();
        let loaded = load::<Sample>(&folder.path().join("absent.toml"));
        assert_eq!((loaded.value, loaded.problem), (Sample::default(), None));
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_reported() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("sample.toml");
        std::fs::write(&path, "name = [unclosed").unwrap();
        let loaded = load::<Sample>(&path);
        assert_eq!(loaded.value, Sample::default());
        let problem = loaded.problem.expect("reported");
        assert!(problem.contains("kept as"), "{problem}");
        let kept: Vec<_> = std::fs::read_dir(folder.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(kept.len(), 1);
        let kept = kept[0].to_string_lossy().into_owned();
        assert!(kept.starts_with("sample.toml.corrupt-"), "{kept}");
        assert_eq!(std::fs::read_to_string(folder.path().join(kept)).unwrap(), "name = [unclosed");
    }
}
