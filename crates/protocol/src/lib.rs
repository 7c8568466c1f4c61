//! Dialtone's signaling protocol.
//!
//! Clients and the server exchange JSON text frames over a WebSocket. Each frame is one message,
//! tagged by its `type` field (`snake_case`). A client's first message is [`ClientMessage::Hello`],
//! naming [`PROTOCOL_VERSION`] and carrying a sign-in token; the server answers
//! [`ServerMessage::Welcome`] or an [`ServerMessage::Error`] and closes.
//!
//! Client frames may carry a `seq` number; an error caused by that frame echoes it back, so a client
//! can tell which of its requests failed.

#![warn(missing_docs)]

mod fingerprint;
mod ids;
mod invite;
mod messages;
mod picture;

pub use fingerprint::{Fingerprint, FingerprintError};
pub use ids::{CallId, DeviceAddress, DeviceId, IdError, MAX_ID_LEN, UserId};
pub use invite::{INVITE_PREFIX, Invite, InviteError};
pub use messages::*;
pub use picture::{MAX_PICTURE_BYTES, PictureKind, is_picture_ref, picture_ref};

/// The protocol version this crate speaks; a client naming another one is refused with
/// [`ErrorCode::VersionMismatch`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest text frame the server accepts, in bytes. Larger frames get
/// [`ErrorCode::MessageTooLarge`]; session descriptions fit comfortably, and so does a profile picture of
/// [`MAX_PICTURE_BYTES`] in base64.
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame was larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is larger than the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge(usize),
    /// The frame was not valid JSON, or not a known message.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl DecodeError {
    /// The error code a server reports for this decoding failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge(_) => ErrorCode::MessageTooLarge,
            DecodeError::Malformed(_) => ErrorCode::Malformed,
        }
    }
}

/// Decodes a client frame, bounding its size first.
pub fn decode_client(text: &str) -> Result<ClientFrame, DecodeError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(text.len()));
    }
    Ok(serde_json::from_str(text)?)
}

/// Decodes a server frame.
pub fn decode_server(text: &str) -> Result<ServerMessage, DecodeError> {
    Ok(serde_json::from_str(text)?)
}

/// Encodes any protocol message as a JSON text frame.
pub fn encode<T: serde::Serialize>(message: &T) -> String {
    // Serializing these plain data types cannot fail: no maps with non-string keys, no custom impls.
    serde_json::to_string(message).expect("protocol messages always serialize")
}
