//! Dialtone, the desktop app: the window and its views (`ui`), what they show (`model`), the link to
//! calling (`session`: engine, embedded server, demo contacts), and the user's files (`settings`,
//! `history`, `store`). See ARCHITECTURE.md for the arrows.

pub mod avatar;
pub mod history;
pub mod invite;
pub mod model;
pub mod notification;
pub mod session;
pub mod settings;
pub mod sound;
pub mod store;
pub mod tray;
pub mod ui;
