//! Sign-in tokens: HMAC-SHA256 over the user id, display name and expiry, keyed by the server's secret.
//!
//! A token reads `dt1.<claims>.<signature>`, both parts base64url without padding; the claims are JSON
//! `{"sub": user, "name": display name, "exp": unix seconds}`. The `dt1` prefix versions the format.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dialtone_protocol::{MAX_DISPLAY_NAME_CHARS, UserId};
use hmac::{Hmac, Mac};
use rand::{RngCore, TryRngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "dt1";
const SECRET_BYTES: usize = 32;

/// The server's signing key.
#[derive(Clone)]
pub struct Secret([u8; SECRET_BYTES]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading or writing the file failed.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("secret file {0} must hold 64 hex digits")]
    Format(String),
}

impl Secret {
    /// A fresh random secret from `rng`.
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A fresh secret from the operating system's random source (an embedded server's).
    pub fn random() -> Self {
        Self::generate(&mut rand::rngs::OsRng.unwrap_err())
    }

    /// A secret from raw bytes (tests, embedding).
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != SECRET_BYTES * 2 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0; SECRET_BYTES];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// The secret as 64 hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Reads the secret at `path`, creating it (mode 0600) with a random secret when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io { path: path.display().to_string(), source };
        let read = || match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text).ok_or_else(|| SecretError::Format(path.display().to_string())).map(Some),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io(error)),
        };
        if let Some(secret) = read()? {
            return Ok(secret);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        // Linking fails if another process got there first, and then its secret is the one to use.
        let secret = Self::random();
        let linked = crate::files::write_new(path, format!("{}\n", secret.to_hex()).as_bytes(), true);
        match linked {
            Ok(()) => Ok(secret),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                read()?.ok_or_else(|| SecretError::Format(path.display().to_string()))
            }
            Err(error) => Err(io(error)),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// The display name to start with.
    pub name: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `dt1.<claims>.<signature>`, or its claims do not decode.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The signature does not match this server's secret.
    #[error("token signature is not valid for this server")]
    BadSignature,
    /// The token has expired.
    #[error("token expired at {expired_at} (unix seconds); it is now {now}")]
    Expired {
        /// When it expired.
        expired_at: u64,
        /// The time it was checked.
        now: u64,
    },
    /// The display name is empty or too long.
    #[error("token display name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters")]
    BadName,
}

/// Display names are 1 to [`MAX_DISPLAY_NAME_CHARS`] characters, whether minted or presented.
fn check_name(name: &str) -> Result<(), TokenError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS { Err(TokenError::BadName) } else { Ok(()) }
}

/// Mints a token for `user`, valid until `expires_at_unix` seconds.
pub fn mint(secret: &Secret, user: &UserId, display_name: &str, expires_at_unix: u64) -> Result<String, TokenError> {
    check_name(display_name)?;
    let claims = Claims { sub: user.clone(), name: display_name.to_owned(), exp: expires_at_unix };
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
    let signed = format!("{PREFIX}.{body}");
    let mut mac = secret.mac();
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signed}.{signature}"))
}

fn decode_claims(body: &str) -> Result<Claims, TokenError> {
    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Malformed("claims are not base64url"))?;
    serde_json::from_slice(&body).map_err(|_| TokenError::Malformed("claims do not decode"))
}

/// Reads a token's claims without checking its signature (only the server can): for a client to show
/// whom a token signs in and until when, and to say an invitation expired before trying it.
pub fn read_unverified(token: &str) -> Result<Claims, TokenError> {
    let (signed, _) = token.trim().rsplit_once('.').ok_or(TokenError::Malformed("no signature"))?;
    decode_claims(signed.strip_prefix("dt1.").ok_or(TokenError::Malformed("unknown format"))?)
}

/// Checks a token's signature and expiry at `now_unix` seconds, returning its claims.
pub fn verify(secret: &Secret, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
    let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed("no signature"))?;
    let body = signed.strip_prefix("dt1.").ok_or(TokenError::Malformed("unknown format"))?;
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let mut mac = secret.mac();
    mac.update(signed.as_bytes());
    // Constant-time comparison, so the signature cannot be guessed byte by byte.
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
    let claims = decode_claims(body)?;
    if claims.exp <= now_unix {
        return Err(TokenError::Expired { expired_at: claims.exp, now: now_unix });
    }
    check_name(&claims.name)?;
    Ok(claims)
}

/// Parses a duration such as `90s`, `15m`, `12h`, `30d` or a bare number of seconds.
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 12h or 30d"))?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        "d" => value * 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_creating_the_secret_at_once_all_get_the_same_one() {
        let folder = std::env::temp_dir().join(format!("dialtone-secret-race-{}", std::process::id()));
        let path = folder.join("keys").join("server-secret");
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Secret::load_or_create(&path).map(|secret| secret.to_hex()))
            })
            .collect();
        let secrets: Vec<String> = racers.into_iter().map(|racer| racer.join().unwrap().unwrap()).collect();
        assert!(secrets.windows(2).all(|pair| pair[0] == pair[1]), "{secrets:?}");
        assert_eq!(Secret::load_or_create(&path).unwrap().to_hex(), secrets[0]);
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
        std::fs::remove_dir_all(folder).unwrap();
    }

    fn secret(byte: u8) -> Secret {
        Secret::from_bytes([byte; SECRET_BYTES])
    }

    fn alice() -> UserId {
        UserId::new("alice").unwrap()
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let token = mint(&secret(1), &alice(), "Alice Liddell", 1_000).unwrap();
        let claims = verify(&secret(1), &token, 999).unwrap();
        assert_eq!(claims.sub, alice());
        assert_eq!(claims.name, "Alice Liddell");
        assert_eq!(verify(&secret(1), &token, 1_000), Err(TokenError::Expired { expired_at: 1_000, now: 1_000 }));
    }

    #[test]
    fn another_secret_or_a_changed_claim_is_a_bad_signature() {
        let token = mint(&secret(1), &alice(), "Alice", 1_000).unwrap();
        assert_eq!(verify(&secret(2), &token, 0), Err(TokenError::BadSignature));

        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory","name":"M","exp":99999}"#);
        let signature = token.rsplit_once('.').unwrap().1;
        let forged = format!("dt1.{forged_claims}.{signature}");
        assert_eq!(verify(&secret(1), &forged, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in ["", "abc", "dt2.x.y", "dt1.x.!!!"] {
            assert!(matches!(verify(&secret(1), garbage, 0), Err(TokenError::Malformed(_))), "{garbage}");
        }
    }

    #[test]
    fn secrets_round_trip_through_hex_and_files() {
        let original = secret(0xab);
        assert_eq!(Secret::from_hex(&original.to_hex()).unwrap().0, original.0);
        assert!(Secret::from_hex("xyz").is_none());

        let dir = std::env::temp_dir().join(format!("dialtone-secret-test-{}", std::process::id()));
        let path = dir.join("secret");
        let _ = std::fs::remove_dir_all(&dir);
        let created = Secret::load_or_create(&path).unwrap();
        let loaded = Secret::load_or_create(&path).unwrap();
        assert_eq!(created.0, loaded.0);
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(Secret::load_or_create(&path), Err(SecretError::Format(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ttl_parses_units_and_refuses_nonsense() {
        assert_eq!(parse_ttl("90").unwrap().as_secs(), 90);
        assert_eq!(parse_ttl("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_ttl("2d").unwrap().as_secs(), 172_800);
        assert!(parse_ttl("5 weeks").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
