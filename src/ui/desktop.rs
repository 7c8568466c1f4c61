//! The desktop's services around the window: the tray icon and what it asks for, the incoming-call
//! notification, ringtones and sounds, the window hidden in the tray, the clipboard, quitting and
//! starting again. The app decides what they show (`App::frame`); this keeps them and talks to them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use dialtone_protocol::{CallId, CallKind};

use super::repaint::Repaint;
use crate::notification::{CallNotification, NotificationChoice};
use crate::tray::{Tray, TrayAction, TrayState};

/// A request from outside the window: the tray menu, or a desktop notification's buttons.
#[derive(Debug, Clone, PartialEq)]
pub enum TrayRequest {
    /// A tray menu entry.
    Tray(TrayAction),
    /// Accept a call from its notification.
    Accept(CallId),
    /// Decline a call from its notification.
    Decline(CallId),
}

/// See the module documentation.
pub(crate) struct Desktop {
    /// The tray icon, when the desktop has a tray host.
    pub(crate) tray: Option<Tray>,
    /// What the tray and desktop notifications ask for.
    requests: (Sender<TrayRequest>, Receiver<TrayRequest>),
    /// The desktop notification up for a call ringing here, with that call.
    notification: Option<(CallId, CallNotification)>,
    /// Ringtone, ringback and test sounds.
    pub(crate) sounds: crate::sound::Sounds,
    /// The main window is hidden in the tray.
    pub(crate) window_hidden: bool,
    /// Quit was chosen: closing really closes.
    pub(crate) quitting: bool,
    /// Set when the app should start again once its window closes (signed in somewhere else).
    pub(crate) restart: Arc<AtomicBool>,
    /// Text for the clipboard, copied at the next frame.
    pub(crate) copy: Option<String>,
    /// Missed calls after this time show on the tray icon (the user has not looked since).
    pub(crate) missed_seen_unix_ms: u64,
    /// An action asked for the window to be shown; done at the end of the frame.
    pub(crate) show_window_soon: bool,
}

impl Desktop {
    /// No tray yet, the window shown, `sounds` on the chosen speaker.
    pub(crate) fn new(sounds: crate::sound::Sounds, now_unix_ms: u64) -> Self {
        Self {
            tray: None,
            requests: channel(),
            notification: None,
            sounds,
            window_hidden: false,
            quitting: false,
            restart: Arc::default(),
            copy: None,
            missed_seen_unix_ms: now_unix_ms,
            show_window_soon: false,
        }
    }

    /// Puts the icon in the desktop's tray; without a tray host the app runs without one.
    pub(crate) fn start_tray(&mut self, runtime: &tokio::runtime::Handle, repaint: Arc<Repaint>) {
        let request = self.request_sink(repaint);
        match runtime.block_on(Tray::start(Arc::new(move |action| request(TrayRequest::Tray(action))))) {
            Ok(tray) => self.tray = Some(tray),
            Err(error) => tracing::info!(%error, "no system tray"),
        }
    }

    /// Passes a request from the tray or a notification to the next frame, and wakes the window for it.
    fn request_sink(&self, repaint: Arc<Repaint>) -> impl Fn(TrayRequest) + Send + Sync + 'static {
        let sender = self.requests.0.clone();
        move |request| {
            if sender.send(request).is_ok() {
                repaint.wake();
            }
        }
    }

    /// The next request from the tray or a notification.
    pub(crate) fn next_request(&self) -> Option<TrayRequest> {
        self.requests.1.try_recv().ok()
    }

    /// Hides the main window (to the tray) or shows it again; shown again, its missed calls are seen.
    pub(crate) fn set_window_hidden(&mut self, ctx: &egui::Context, hidden: bool, now_unix_ms: u64) {
        self.window_hidden = hidden;
        ctx.send_viewport_cmd(egui::ViewportCommand::Visible(!hidden));
        if !hidden {
            ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
            ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
            self.missed_seen_unix_ms = now_unix_ms;
        }
    }

    /// Whether the main window is out of sight (in the tray or minimised).
    pub(crate) fn out_of_sight(&self, ctx: &egui::Context) -> bool {
        self.window_hidden || ctx.input(|i| i.viewport().minimized.unwrap_or(false))
    }

    /// Quits for good (closing does not hide to the tray), after this frame.
    pub(crate) fn quit(&mut self, ctx: &egui::Context) {
        self.quitting = true;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }

    /// The tray icon shows `state` (without waiting on the desktop).
    pub(crate) fn show_in_tray(&mut self, state: TrayState) {
        if let Some(tray) = &mut self.tray {
            tray.show(state);
        }
    }

    /// A desktop notification with Accept and Decline for `ringing` (a call from `caller`) while the
    /// window is away; one per call, taken down once that call no longer rings here (`still_ringing`).
    pub(crate) fn notify(
        &mut self,
        runtime: &tokio::runtime::Handle,
        repaint: Arc<Repaint>,
        ringing: Option<(&CallId, &str, CallKind)>,
        still_ringing: impl Fn(&CallId) -> bool,
    ) {
        if self.notification.as_ref().is_some_and(|(call, _)| !still_ringing(call)) {
            self.notification = None;
        }
        let Some((call, caller, kind)) = ringing else { return };
        if self.notification.as_ref().is_some_and(|(shown, _)| shown == call) {
            return;
        }
        let request = self.request_sink(repaint);
        let answer_for = call.clone();
        let shown = CallNotification::show(runtime, caller, kind, move |choice| match choice {
            NotificationChoice::Accept => request(TrayRequest::Accept(answer_for)),
            NotificationChoice::Decline => request(TrayRequest::Decline(answer_for)),
        });
        self.notification = Some((call.clone(), shown));
    }

    /// Whether the app asked to be started again.
    pub(crate) fn restarting(&self) -> bool {
        self.restart.load(Ordering::SeqCst)
    }

    /// Takes the icon down.
    pub(crate) fn stop(&mut self) {
        if let Some(tray) = self.tray.take() {
            tray.stop();
        }
    }
}
