//! The keyboard help overlay.

use egui::RichText;

use super::action::Action;
use super::theme;

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

/// Draws the overlay: a modal, centred from its first frame, closed by Esc, a click beside it or its
/// button.
pub fn show(ctx: &egui::Context, actions: &mut Vec<Action>) {
    let mut close = false;
    let response = egui::Modal::new(egui::Id::unique("keyboard help")).show(ctx, |ui| {
        ui.horizontal(|ui| {
            ui.heading("Keyboard shortcuts");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                close = ui.button("Close").clicked();
            });
        });
        ui.add_space(8.0);
        egui::Grid::new("shortcuts").num_columns(2).spacing([24.0, 8.0]).show(ui, |ui| {
            for (key, what) in SHORTCUTS {
                ui.label(RichText::new(key).monospace().color(theme::ACCENT));
                ui.label(what);
                ui.end_row();
            }
        });
    });
    // Esc is handled with the other shortcuts (it also closes menus), so only the other ways here.
    if close || (response.backdrop_response.clicked()) {
        actions.push(Action::ToggleHelp);
    }
}
