//! Signing in from an invite link: the link read and checked (an expired one is refused with its date,
//! before any server is tried) and the server settings it carries.

use dialtone_protocol::{Invite, InviteError};
use dialtone_server::token::read_unverified;

use crate::settings::{ServerSettings, Settings};

/// Why an invite link cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteProblem {
    /// The link is damaged or is not an invite link.
    #[error("{0}")]
    Link(#[from] InviteError),
    /// The token in it cannot be read.
    #[error("the invite link's sign-in token is damaged ({0}); was it cut short when copied?")]
    Token(String),
    /// It ran out.
    #[error("this invitation expired {0}; ask for a new one")]
    Expired(String),
}

/// What an invite link signs in as.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// The server settings to sign in with (the user is the one the token names).
    pub server: ServerSettings,
    /// The name the inviter gave this person.
    pub name: String,
}

impl Invitation {
    /// Puts the invitation into `settings`: its server from now on, and its name when the person has not
    /// given one yet (so that someone who clicks an invitation is not asked for the name it carries).
    pub fn apply_to(self, settings: &mut Settings) {
        settings.server = self.server;
        if settings.profile.display_name.trim().is_empty() {
            settings.profile.display_name = self.name;
        }
    }
}

/// Reads an invite link at `now_unix` seconds.
pub fn read(link: &str, now_unix: u64) -> Result<Invitation, InviteProblem> {
    let invite: Invite = link.parse()?;
    let claims = read_unverified(&invite.token).map_err(|error| InviteProblem::Token(error.to_string()))?;
    if claims.exp <= now_unix {
        return Err(InviteProblem::Expired(ago(now_unix - claims.exp)));
    }
    let server = ServerSettings {
        url: invite.server,
        user: claims.sub.to_string(),
        token: invite.token,
        fingerprint: invite.fingerprint.map(|f| f.to_string()).unwrap_or_default(),
        allow_clear_text: false,
        host_on_network: false,
    };
    Ok(Invitation { server, name: claims.name })
}

fn ago(seconds: u64) -> String {
    match seconds {
        0..120 => "just now".to_owned(),
        120..7_200 => format!("{} minutes ago", seconds / 60),
        7_200..172_800 => format!("{} hours ago", seconds / 3_600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_protocol::{Fingerprint, UserId};
    use dialtone_server::{Secret, mint};

    const NOW: u64 = 1_800_000_000;

    fn link(expires: u64) -> String {
        let token = mint(&Secret::from_bytes([3; 32]), &UserId::new("bob").unwrap(), "Bob", expires).unwrap();
        let fingerprint = Some(Fingerprint::of_der(b"cert"));
        Invite { server: "wss://192.0.2.7:7600".into(), token, fingerprint }.to_string()
    }

    #[test]
    fn a_link_gives_the_server_the_user_the_pin_and_a_name_for_someone_without_one() {
        let invitation = read(&link(NOW + 3_600), NOW).unwrap();
        assert_eq!(invitation.name, "Bob");
        let mut unnamed = Settings::default();
        invitation.clone().apply_to(&mut unnamed);
        assert_eq!(unnamed.profile.display_name, "Bob");
        let mut named = Settings::default();
        named.profile.display_name = "Robert".into();
        invitation.clone().apply_to(&mut named);
        assert_eq!(named.profile.display_name, "Robert", "a name of one's own is kept");
        let settings = invitation.server;
        assert_eq!(settings.url, "wss://192.0.2.7:7600");
        assert_eq!(settings.user, "bob");
        assert_eq!(settings.fingerprint, Fingerprint::of_der(b"cert").to_string());
        assert!(settings.token.starts_with("dt1."));
        assert!(!settings.allow_clear_text);
    }

    #[test]
    fn an_expired_or_damaged_link_says_why() {
        let expired = read(&link(NOW - 3 * 86_400), NOW).unwrap_err();
        assert_eq!(expired.to_string(), "this invitation expired 3 days ago; ask for a new one");
        let damaged = link(NOW + 60).replace("token=dt1.", "token=dt1.x");
        assert!(matches!(read(&damaged, NOW), Err(InviteProblem::Token(_))), "{damaged}");
        assert!(matches!(read("https://example.org", NOW), Err(InviteProblem::Link(_))));
    }
}
