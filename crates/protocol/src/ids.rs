//! Identifiers that cross the wire: users, devices and calls.
//!
//! Every identifier is validated when it is built or deserialized, so the server and the engine never
//! carry an empty, oversized or unprintable id around.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string was empty.
    #[error("an id must not be empty")]
    Empty,
    /// The string was longer than [`MAX_ID_LEN`] bytes.
    #[error("an id must be at most {MAX_ID_LEN} bytes, got {0}")]
    TooLong(usize),
    /// The string held a character outside `A-Z a-z 0-9 . _ - @ +`.
    #[error("an id may only hold letters, digits and . _ - @ +; found {0:?}")]
    BadCharacter(char),
}

fn validate(value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(value.len()));
    }
    match value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))) {
        Some(bad) => Err(IdError::BadCharacter(bad)),
        None => Ok(()),
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Builds the identifier, refusing empty, oversized or unprintable strings.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate(&value)?;
                Ok(Self(value))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A user account, the subject of a sign-in token (for example `alice`).
    UserId
);
identifier!(
    /// One of a user's devices, named by the client (for example `laptop`); unique per user.
    DeviceId
);
identifier!(
    /// A call, chosen by the client that starts it; inviting with an id that exists joins that call.
    CallId
);

/// One signed-in device of one user: the address of a relayed signaling message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceAddress {
    /// The user the device belongs to.
    pub user: UserId,
    /// The device within that user's devices.
    pub device: DeviceId,
}

impl fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for ok in ["alice", "bob.smith", "a_b-c", "x@example.org", "laptop+2", "0"] {
            assert!(UserId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_ids_with_the_reason() {
        assert_eq!(UserId::new(""), Err(IdError::Empty));
        assert_eq!(CallId::new("a".repeat(65)), Err(IdError::TooLong(65)));
        assert_eq!(DeviceId::new("my phone"), Err(IdError::BadCharacter(' ')));
        assert_eq!(DeviceId::new("a/b"), Err(IdError::BadCharacter('/')));
    }

    #[test]
    fn deserializing_validates() {
        let err = serde_json::from_str::<UserId>("\"no way\"").unwrap_err();
        assert!(err.to_string().contains("letters, digits"), "{err}");
        let ok: UserId = serde_json::from_str("\"carol\"").unwrap();
        assert_eq!(ok.as_str(), "carol");
    }
}
