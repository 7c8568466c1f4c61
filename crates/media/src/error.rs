//! What can go wrong with a link.

/// Why a link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// The remote device sent something that does not fit the exchange.
    #[error("unexpected {0} from the remote device")]
    Unexpected(&'static str),
}
