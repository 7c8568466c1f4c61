//! Profile pictures as they travel: PNG, JPEG or WebP, at most [`MAX_PICTURE_BYTES`], named by the
//! SHA-256 of their bytes (`sha256:HEX`), which profiles carry as their `avatar`.

use sha2::{Digest, Sha256};

/// The largest picture a profile may have, in bytes (before base64).
pub const MAX_PICTURE_BYTES: usize = 64 * 1024;

/// The kinds of picture accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureKind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
}

impl PictureKind {
    /// What the bytes are, by their signature; `None` for anything but PNG, JPEG and WebP.
    pub fn of(bytes: &[u8]) -> Option<PictureKind> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(PictureKind::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(PictureKind::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(PictureKind::Webp)
        } else {
            None
        }
    }

    /// Its media type.
    pub fn mime(self) -> &'static str {
        match self {
            PictureKind::Png => "image/png",
            PictureKind::Jpeg => "image/jpeg",
            PictureKind::Webp => "image/webp",
        }
    }
}

/// The name a picture travels under: `sha256:` and the hex digest of its bytes.
pub fn picture_ref(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut name = String::with_capacity(7 + 64);
    name.push_str("sha256:");
    for byte in digest {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// Whether an `avatar` names a picture the server keeps (rather than an older free-form reference).
pub fn is_picture_ref(avatar: &str) -> bool {
    avatar.strip_prefix("sha256:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_by_their_signatures() {
        assert_eq!(PictureKind::of(b"\x89PNG\r\n\x1a\nrest"), Some(PictureKind::Png));
        assert_eq!(PictureKind::of(&[0xff, 0xd8, 0xff, 0xe0]), Some(PictureKind::Jpeg));
        assert_eq!(PictureKind::of(b"RIFF\0\0\0\0WEBPVP8 "), Some(PictureKind::Webp));
        for other in [&b"GIF89a"[..], b"<svg", b"", b"RIFF\0\0\0\0WAVE", b"\x89PN"] {
            assert_eq!(PictureKind::of(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_picture_is_named_by_its_digest() {
        let name = picture_ref(b"picture");
        assert!(is_picture_ref(&name), "{name}");
        assert_eq!(name.len(), 71);
        assert!(!is_picture_ref("/home/ada/me.png") && !is_picture_ref("sha256:xyz"));
    }
}
