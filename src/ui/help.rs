//! The keyboard help overlay.

use egui::{Align2, RichText, Vec2};

use super::{Action, theme};

/// Every shortcut, as the overlay lists it.
pub const SHORTCUTS: [(&str, &str); 13] = [
    ("Enter", "Accept a ringing call with video"),
    ("A", "Accept a ringing call, audio only"),
    ("D", "Decline a ringing call"),
    ("M", "Mute or unmute"),
    ("V", "Camera off or on (upgrades an audio call)"),
    ("I", "Invite people into the call"),
    ("G", "Switch the group layout (grid, spotlight, single)"),
    ("C", "Switch to the next camera"),
    ("O", "Choose the speaker"),
    ("H", "Hang up, or cancel a call that rings"),
    ("Esc", "Close this help, a menu or the settings"),
    ("F1 or ?", "Show or hide this help"),
    ("Tab", "Move between buttons; Space presses one"),
];

/// Draws the overlay.
pub fn show(ctx: &egui::Context, actions: &mut Vec<Action>) {
    let mut open = true;
    egui::Window::new("Keyboard shortcuts")
        .collapsible(false)
        .resizable(false)
        .anchor(Align2::CENTER_CENTER, Vec2::ZERO)
        .open(&mut open)
        .show(ctx, |ui| {
            egui::Grid::new("shortcuts").num_columns(2).spacing([24.0, 8.0]).show(ui, |ui| {
                for (key, what) in SHORTCUTS {
                    ui.label(RichText::new(key).monospace().color(theme::ACCENT));
                    ui.label(what);
                    ui.end_row();
                }
            });
        });
    if !open {
        actions.push(Action::ToggleHelp);
    }
}
