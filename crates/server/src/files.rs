//! Files the server keeps (its secret, its self-signed certificate and key), written safely.

use std::path::Path;

/// Writes a file that must not exist yet, whole or not at all: under a private name first, then linked
/// into place (which fails with `AlreadyExists` if another process got there first); `private` makes
/// it readable by its owner alone.
pub(crate) fn write_new(path: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("new-{}-{:x}", std::process::id(), rand::random::<u32>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    let written = options.open(&temporary).and_then(|mut file| {
        std::io::Write::write_all(&mut file, contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    linked
}
