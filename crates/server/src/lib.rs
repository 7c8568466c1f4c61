//! Dialtone's signaling server.
//!
//! - [`token`]: sign-in tokens (HMAC-SHA256) and the server secret.
//! - [`hub`]: the call logic, without sockets or clocks (presence, invitations, multi-device ringing,
//!   busy, timeouts, group calls, relay between members).
//! - [`tls`]: the TLS identity: PEM files, or a self-signed certificate kept in the data folder.
//! - [`net`]: the WebSocket front: authentication, frame limits, rate limits, graceful shutdown.
//!
//! Embed it with [`spawn`]; the `dialtone-server` binary wraps the same.

#![warn(missing_docs)]

mod files;
pub mod hub;
pub mod ice;
pub mod net;
pub mod rate;
pub mod tls;
pub mod token;

pub use hub::{Hub, HubConfig};
pub use ice::{IceConfig, TurnConfig};
pub use net::{ServerConfig, ServerError, ServerHandle, spawn};
pub use tls::{TlsError, TlsIdentity};
pub use token::{Secret, TokenError, mint, verify};
