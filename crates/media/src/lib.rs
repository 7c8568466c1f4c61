//! Dialtone's media: WebRTC peer connections between the devices of a call.
//!
//! - [`link`]: one peer connection to one remote device, set up through the call's signaling relay.

#![warn(missing_docs)]

pub mod link;

pub use link::{IceServer, Link, LinkError, LinkEvent, LinkEvents, LinkState, MediaConfig, Role};
