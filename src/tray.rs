//! The system-tray icon (StatusNotifierItem over D-Bus, via ksni: no GTK): idle, ringing, in a call,
//! or missed calls, with a menu to show the window, mute, hang up and quit.
//!
//! Without a session bus or a tray host, starting it fails cleanly and the app runs without it (and
//! then closing the window quits, since nothing could bring it back).

use std::sync::Arc;

use ksni::TrayMethods;
use ksni::menu::StandardItem;

/// What the icon shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrayState {
    /// Nothing going on.
    #[default]
    Idle,
    /// A call rings here.
    Ringing,
    /// In a call (muted or not).
    InCall {
        /// Muted.
        muted: bool,
    },
    /// Calls were missed since the window was last looked at.
    Missed(usize),
}

/// What the tray asks the app to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    /// Show and raise the main window.
    Show,
    /// Mute or unmute the call.
    ToggleMute,
    /// Hang up the call.
    Hangup,
    /// Quit the app.
    Quit,
}

struct DialtoneTray {
    state: TrayState,
    on_action: Arc<dyn Fn(TrayAction) + Send + Sync>,
}

impl DialtoneTray {
    fn send(&self, action: TrayAction) {
        (self.on_action)(action);
    }
}

impl ksni::Tray for DialtoneTray {
    fn id(&self) -> String {
        "org.dialtone.Dialtone".into()
    }

    fn title(&self) -> String {
        "Dialtone".into()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        vec![icon(self.state)]
    }

    fn status(&self) -> ksni::Status {
        match self.state {
            TrayState::Ringing | TrayState::Missed(_) => ksni::Status::NeedsAttention,
            TrayState::Idle | TrayState::InCall { .. } => ksni::Status::Active,
        }
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip { title: "Dialtone".into(), description: describe(self.state), ..Default::default() }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        self.send(TrayAction::Show);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        let in_call = matches!(self.state, TrayState::InCall { .. });
        let muted = matches!(self.state, TrayState::InCall { muted: true });
        vec![
            StandardItem {
                label: "Show Dialtone".into(),
                activate: Box::new(|tray: &mut Self| tray.send(TrayAction::Show)),
                ..Default::default()
            }
            .into(),
            StandardItem {
                label: if muted { "Unmute".into() } else { "Mute".into() },
                enabled: in_call,
                activate: Box::new(|tray: &mut Self| tray.send(TrayAction::ToggleMute)),
                ..Default::default()
            }
            .into(),
            StandardItem {
                label: "Hang up".into(),
                enabled: in_call,
                activate: Box::new(|tray: &mut Self| tray.send(TrayAction::Hangup)),
                ..Default::default()
            }
            .into(),
            ksni::MenuItem::Separator,
            StandardItem {
                label: "Quit".into(),
                activate: Box::new(|tray: &mut Self| tray.send(TrayAction::Quit)),
                ..Default::default()
            }
            .into(),
        ]
    }
}

/// The tooltip's line for a state.
pub fn describe(state: TrayState) -> String {
    match state {
        TrayState::Idle => "Ready for calls".into(),
        TrayState::Ringing => "Incoming call".into(),
        TrayState::InCall { muted: false } => "In a call".into(),
        TrayState::InCall { muted: true } => "In a call (muted)".into(),
        TrayState::Missed(1) => "1 missed call".into(),
        TrayState::Missed(n) => format!("{n} missed calls"),
    }
}

/// A running tray icon.
pub struct Tray {
    handle: ksni::Handle<DialtoneTray>,
    /// The state last asked for, read when an update runs: updates run on the runtime, perhaps out of
    /// order, and each shows the newest state.
    latest: Arc<std::sync::Mutex<TrayState>>,
    /// Where updates run (the runtime the tray started on), so that asking never waits on D-Bus.
    runtime: tokio::runtime::Handle,
}

impl Tray {
    /// Registers the icon with the desktop's tray host; `on_action` gets every menu choice.
    pub async fn start(on_action: Arc<dyn Fn(TrayAction) + Send + Sync>) -> Result<Tray, ksni::Error> {
        let handle = DialtoneTray { state: TrayState::Idle, on_action }.spawn().await?;
        let latest = Arc::new(std::sync::Mutex::new(TrayState::Idle));
        Ok(Tray { handle, latest, runtime: tokio::runtime::Handle::current() })
    }

    /// Shows `state` (a no-op when it is already shown) without waiting: the desktop is told in the
    /// background, so a frame never waits on D-Bus.
    pub fn show(&mut self, state: TrayState) {
        let mut latest = self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *latest == state {
            return;
        }
        *latest = state;
        drop(latest);
        let (handle, latest) = (self.handle.clone(), self.latest.clone());
        self.runtime.spawn(async move {
            handle
                .update(move |tray| tray.state = *latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
                .await;
        });
    }

    /// Removes the icon.
    pub fn stop(&self) {
        // Asking is enough; nothing needs to wait for the icon to go.
        drop(self.handle.shutdown());
    }
}

/// A 32x32 icon for a state: the app's blue, green when ringing, red for missed calls, amber when
/// muted; ARGB32 in network byte order as the StatusNotifierItem spec wants.
pub fn icon(state: TrayState) -> ksni::Icon {
    let (r, g, b) = match state {
        TrayState::Idle => (0x4c, 0x8d, 0xff),
        TrayState::Ringing => (0x2f, 0xbf, 0x71),
        TrayState::InCall { muted: false } => (0x2f, 0xbf, 0x71),
        TrayState::InCall { muted: true } => (0xf5, 0xa5, 0x24),
        TrayState::Missed(_) => (0xe5, 0x48, 0x4d),
    };
    let size = 32i32;
    let mut data = Vec::with_capacity((size * size * 4) as usize);
    let centre = (size as f32 - 1.0) / 2.0;
    for y in 0..size {
        for x in 0..size {
            let distance = ((x as f32 - centre).powi(2) + (y as f32 - centre).powi(2)).sqrt();
            let alpha = ((centre + 0.5 - distance).clamp(0.0, 1.0) * 255.0) as u8;
            // A white ring marks ringing, a white dot a call or missed calls.
            let dot = match state {
                TrayState::Idle => false,
                TrayState::Ringing => (distance - 8.0).abs() < 2.5,
                TrayState::InCall { .. } | TrayState::Missed(_) => distance < 6.0,
            };
            let (pr, pg, pb) = if dot { (0xff, 0xff, 0xff) } else { (r, g, b) };
            data.extend_from_slice(&[alpha, pr, pg, pb]);
        }
    }
    ksni::Icon { width: size, height: size, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_has_its_own_look_and_words() {
        let looks: std::collections::BTreeSet<Vec<u8>> = [
            TrayState::Idle,
            TrayState::Ringing,
            TrayState::InCall { muted: false },
            TrayState::InCall { muted: true },
            TrayState::Missed(2),
        ]
        .map(|s| icon(s).data)
        .into_iter()
        .collect();
        assert_eq!(looks.len(), 5);
        let idle = icon(TrayState::Idle);
        assert_eq!(idle.data.len(), 32 * 32 * 4);
        assert_eq!(idle.data[0], 0, "the corner is transparent");
        assert_eq!(describe(TrayState::Missed(1)), "1 missed call");
        assert_eq!(describe(TrayState::Missed(3)), "3 missed calls");
    }
}
