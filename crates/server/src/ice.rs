//! The STUN and TURN servers handed to clients at sign-in, with TURN credentials minted per user.
//!
//! Credentials follow the TURN REST API that coturn implements (`use-auth-secret` with a
//! `static-auth-secret`): the user name is the expiry in Unix seconds, a colon and the user id; the
//! password is the base64 HMAC-SHA1 of that user name under the shared secret. The TURN server checks
//! them without ever hearing from this server, and they stop working by themselves.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dialtone_protocol::{IceServer, UserId};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The STUN and TURN servers clients are told about.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IceConfig {
    /// `stun:` URLs, handed out as they are.
    pub stun_urls: Vec<String>,
    /// A TURN server sharing a secret with this one, if there is one.
    pub turn: Option<TurnConfig>,
}

impl std::fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn.as_ref().map(|turn| &turn.urls))
            .finish()
    }
}

/// A TURN server that accepts credentials minted with a shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:` or `turns:` URLs of the server.
    pub urls: Vec<String>,
    /// The secret shared with it (coturn's `static-auth-secret`).
    pub secret: String,
    /// How long a credential works.
    pub ttl: Duration,
}

/// A URL that is not a STUN or TURN URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{url:?} is not a {expected} URL (like {example})")]
pub struct IceUrlError {
    url: String,
    expected: &'static str,
    example: &'static str,
}

/// Checks a `stun:`/`stuns:` URL.
pub fn check_stun_url(url: &str) -> Result<(), IceUrlError> {
    check_url(url, &["stun:", "stuns:"], "STUN", "stun:stun.example.org:3478")
}

/// Checks a `turn:`/`turns:` URL.
pub fn check_turn_url(url: &str) -> Result<(), IceUrlError> {
    check_url(url, &["turn:", "turns:"], "TURN", "turn:turn.example.org:3478?transport=udp")
}

fn check_url(url: &str, schemes: &[&str], expected: &'static str, example: &'static str) -> Result<(), IceUrlError> {
    let host = schemes.iter().find_map(|scheme| url.strip_prefix(scheme));
    match host {
        Some(rest) if !rest.is_empty() && !rest.starts_with(':') && !rest.contains(char::is_whitespace) => Ok(()),
        _ => Err(IceUrlError { url: url.to_owned(), expected, example }),
    }
}

impl IceConfig {
    /// What `user` is told at sign-in, `now_unix_s` being the time.
    pub fn servers_for(&self, user: &UserId, now_unix_s: u64) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if !self.stun_urls.is_empty() {
            servers.push(IceServer { urls: self.stun_urls.clone(), ..IceServer::default() });
        }
        if let Some(turn) = &self.turn {
            let username = format!("{}:{user}", now_unix_s + turn.ttl.as_secs());
            let credential = turn_password(&turn.secret, &username);
            servers.push(IceServer { urls: turn.urls.clone(), username, credential });
        }
        servers
    }
}

/// The TURN password for `username` under `secret`: base64 of HMAC-SHA1.
pub fn turn_password(secret: &str, username: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else { unreachable!("HMAC accepts any key") };
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_match_the_turn_rest_api() {
        // Computed independently (Python: base64(hmac.new(secret, username, sha1).digest())).
        assert_eq!(turn_password("north-wind", "1763769600:ada"), "TwAh7X4rKxKHgNLbIxDF+nXj9mM=");
    }

    #[test]
    fn each_user_gets_stun_and_an_expiring_turn_credential() {
        let config = IceConfig {
            stun_urls: vec!["stun:stun.example.org:3478".into()],
            turn: Some(TurnConfig {
                urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
                secret: "north-wind".into(),
                ttl: Duration::from_secs(3600),
            }),
        };
        let servers = config.servers_for(&UserId::new("ada").unwrap(), 1_763_766_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0], IceServer { urls: vec!["stun:stun.example.org:3478".into()], ..IceServer::default() });
        assert_eq!(servers[1].username, "1763769600:ada");
        assert_eq!(servers[1].credential, "TwAh7X4rKxKHgNLbIxDF+nXj9mM=");
        assert!(IceConfig::default().servers_for(&UserId::new("ada").unwrap(), 0).is_empty());
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_stun_url("stun:127.0.0.1:3478").is_ok());
        assert!(check_turn_url("turns:turn.example.org:5349?transport=tcp").is_ok());
        let error = check_turn_url("stun:x").unwrap_err();
        assert_eq!(error.to_string(), r#""stun:x" is not a TURN URL (like turn:turn.example.org:3478?transport=udp)"#);
        assert!(check_stun_url("stun:").is_err());
        assert!(check_stun_url("http://stun").is_err());
    }
}
