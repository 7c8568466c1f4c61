//! Invite links: one link that carries everything a new device needs to sign in (the server's address, a
//! sign-in token and, for a self-signed server, its certificate's fingerprint), so that a person signs in
//! with one click and no flags.
//!
//! `dialtone://invite?server=wss%3A%2F%2Fcalls.example.org%3A7600&token=dt1.…&fingerprint=3f5a…`

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::Fingerprint;

/// What is %-encoded in a link's values: everything but URL's unreserved characters.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_').remove(b'~');

/// The link's scheme and kind, as the desktop entry registers it.
pub const INVITE_PREFIX: &str = "dialtone://invite?";

/// What an invite link carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The server's `wss://` (or `ws://`) URL.
    pub server: String,
    /// The sign-in token.
    pub token: String,
    /// The fingerprint to pin, for a self-signed server.
    pub fingerprint: Option<Fingerprint>,
}

/// Why a text is not a usable invite link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// It does not start with `dialtone://invite?`.
    #[error("an invite link starts with {INVITE_PREFIX}")]
    NotAnInvite,
    /// A part is missing.
    #[error("the invite link has no {0}; was it cut short when copied?")]
    Missing(&'static str),
    /// The server is not a `ws://` or `wss://` URL.
    #[error("the invite link's server {0:?} is not a ws:// or wss:// address")]
    BadServer(String),
    /// The fingerprint is not one.
    #[error("the invite link's fingerprint is damaged: {0}")]
    BadFingerprint(String),
    /// A part is not valid text once decoded.
    #[error("the invite link is damaged (bad %-encoding)")]
    Encoding,
}

impl fmt::Display for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encode = |text: &str| utf8_percent_encode(text, ENCODED).to_string();
        write!(f, "{INVITE_PREFIX}server={}&token={}", encode(&self.server), encode(&self.token))?;
        if let Some(fingerprint) = &self.fingerprint {
            write!(f, "&fingerprint={fingerprint}")?;
        }
        Ok(())
    }
}

impl FromStr for Invite {
    type Err = InviteError;

    fn from_str(link: &str) -> Result<Self, Self::Err> {
        let query = link.trim().strip_prefix(INVITE_PREFIX).ok_or(InviteError::NotAnInvite)?;
        let (mut server, mut token, mut fingerprint) = (None, None, None);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(value).decode_utf8().map_err(|_| InviteError::Encoding)?.into_owned();
            match key {
                "server" => server = Some(value),
                "token" => token = Some(value),
                "fingerprint" => {
                    let parsed = value
                        .parse()
                        .map_err(|error: crate::FingerprintError| InviteError::BadFingerprint(error.to_string()))?;
                    fingerprint = Some(parsed);
                }
                // Parts added by later versions are not needed to sign in.
                _ => {}
            }
        }
        let server = server.filter(|s| !s.is_empty()).ok_or(InviteError::Missing("server address"))?;
        if !(server.starts_with("wss://") || server.starts_with("ws://")) {
            return Err(InviteError::BadServer(server));
        }
        let token = token.filter(|t| !t.is_empty()).ok_or(InviteError::Missing("sign-in token"))?;
        Ok(Invite { server, token, fingerprint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            server: "wss://192.0.2.7:7600".into(),
            token: "dt1.eyJzdWIiOiJib2IifQ.c2ln-_".into(),
            fingerprint: Some(Fingerprint::of_der(b"cert")),
        }
    }

    #[test]
    fn a_link_reads_back_as_written() {
        let link = invite().to_string();
        assert!(link.starts_with("dialtone://invite?server=wss%3A%2F%2F192.0.2.7%3A7600&token=dt1.eyJ"), "{link}");
        assert_eq!(link.parse(), Ok(invite()));
        let unpinned = Invite { fingerprint: None, ..invite() };
        assert_eq!(unpinned.to_string().parse(), Ok(unpinned));
        // Pasted with spaces around it, with a part a later version added.
        assert_eq!(format!("  {link}&theme=dark \n").parse(), Ok(invite()));
    }

    #[test]
    fn damaged_links_say_what_is_wrong() {
        let link = invite().to_string();
        // Each damaged link, and a check of the error it gives.
        type Expected = fn(&InviteError) -> bool;
        let cases: [(&str, Expected); 6] = [
            ("https://example.org", |e| *e == InviteError::NotAnInvite),
            ("dialtone://invite?token=abc", |e| *e == InviteError::Missing("server address")),
            ("dialtone://invite?server=ws%3A%2F%2Fh", |e| *e == InviteError::Missing("sign-in token")),
            ("dialtone://invite?server=http%3A%2F%2Fh&token=t", |e| matches!(e, InviteError::BadServer(_))),
            ("dialtone://invite?server=ws%3A%2F%2Fh&token=t&fingerprint=12", |e| {
                matches!(e, InviteError::BadFingerprint(_))
            }),
            ("dialtone://invite?server=%FF&token=t", |e| *e == InviteError::Encoding),
        ];
        for (text, expected) in cases {
            let error = text.parse::<Invite>().unwrap_err();
            assert!(expected(&error), "{text}: {error:?}");
        }
        let cut_short = &link[..link.find("&token").unwrap()];
        assert_eq!(cut_short.parse::<Invite>(), Err(InviteError::Missing("sign-in token")));
    }
}
