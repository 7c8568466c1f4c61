//! The desktop notification for a call ringing while the window is away (freedesktop.org notifications
//! through notify-rust): "NAME is calling" with Accept and Decline where the desktop shows buttons.
//!
//! It is taken down as soon as the call stops ringing here (answered here or on another device,
//! cancelled, missed), so a stale notification never offers to answer a call that is gone. Without a
//! notification service the call still rings in the window and the popup; nothing else is lost.

use dialtone_protocol::CallKind;
use notify_rust::{Notification, NotificationResponse, Timeout};
use tokio::sync::oneshot;

/// The action identifiers sent to the notification service (a click on the body comes as "default",
/// which notify-rust reports as `NotificationResponse::Default`).
const ACCEPT: &str = "accept";
const DECLINE: &str = "decline";

/// What the person chose in a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationChoice {
    /// Accept (the button, or a click on the notification itself).
    Accept,
    /// Decline.
    Decline,
}

/// One call's notification, shown until this is dropped or the person acts on it.
#[derive(Debug)]
pub struct CallNotification {
    /// Dropping it (with this) tells the task to close the notification.
    _close: oneshot::Sender<()>,
}

impl CallNotification {
    /// Shows the notification from a task on `runtime`; `chosen` hears what the person picked, at most
    /// once. Failing to reach a notification service is logged, not an error: the window still rings.
    pub fn show(
        runtime: &tokio::runtime::Handle,
        caller: &str,
        kind: CallKind,
        chosen: impl FnOnce(NotificationChoice) + Send + 'static,
    ) -> CallNotification {
        let (close, closed) = oneshot::channel::<()>();
        let mut notification = Notification::new();
        notification
            .appname("Dialtone")
            .summary(&format!("{caller} is calling"))
            .body(match kind {
                CallKind::Video => "Incoming video call",
                CallKind::Audio => "Incoming audio call",
            })
            .icon("org.dialtone.Dialtone")
            .action(ACCEPT, "Accept")
            .action(DECLINE, "Decline")
            // The server stops the ringing after its own timeout; the app then closes this anyway.
            .timeout(Timeout::Milliseconds(60_000));
        runtime.spawn(async move {
            let handle = match notification.show_async().await {
                Ok(handle) => handle,
                Err(error) => {
                    tracing::info!(%error, "no desktop notifications");
                    return;
                }
            };
            let acted_on = handle.wait_for_action_async(|response| {
                let choice = match response {
                    NotificationResponse::Action(action) if action == ACCEPT => Some(NotificationChoice::Accept),
                    NotificationResponse::Action(action) if action == DECLINE => Some(NotificationChoice::Decline),
                    NotificationResponse::Default => Some(NotificationChoice::Accept),
                    _ => None,
                };
                if let Some(choice) = choice {
                    chosen(choice);
                }
            });
            tokio::select! {
                () = acted_on => {}
                _ = closed => handle.close_async().await,
            }
        });
        CallNotification { _close: close }
    }
}
