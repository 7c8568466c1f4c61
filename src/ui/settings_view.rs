//! The settings panel: profile, devices (with the camera preview and a speaker test), ringtone, call
//! defaults, server and window. Every change applies at once and is saved.

use std::path::PathBuf;

use egui::{RichText, Ui};

use super::action::Action;
use super::context::View;
use super::home::header;
use super::view_state::Screen;
use super::{theme, video};

use crate::settings::{AvatarShape, Settings};
use crate::sound::Playing;
use dialtone_engine::{DeviceKind, DevicePick};

/// The settings screen.
pub fn show(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    header(app, ui, actions);
    let available = ui.available_rect_before_wrap();
    let width = (available.width() - 32.0).min(640.0);
    let column = egui::Rect::from_min_max(
        egui::pos2(available.center().x - width / 2.0, available.top() + 12.0),
        egui::pos2(available.center().x + width / 2.0, available.bottom()),
    );
    ui.scope_builder(egui::UiBuilder::new().max_rect(column), |ui| {
        ui.horizontal(|ui| {
            if ui.button("⬅ Back").clicked() {
                actions.push(Action::Show(Screen::Contacts));
            }
            ui.heading("Settings");
        });
        // The panel edits a copy; a change becomes one action, performed (and saved) with the others.
        let mut draft = app.settings.clone();
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            profile(app, &mut draft, ui, actions);
            devices(app, ui, actions);
            ringtone(&mut draft, app, ui, actions);
            calls(&mut draft, ui);
            server(app, &mut draft, ui, actions);
        });
        if &draft != app.settings {
            actions.push(Action::ChangeSettings(Box::new(draft)));
        }
    });
}

fn section(ui: &mut Ui, title: &str, contents: impl FnOnce(&mut Ui)) {
    ui.add_space(10.0);
    egui::Frame::new().fill(theme::SURFACE).corner_radius(12).inner_margin(egui::Margin::same(16)).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new(title).strong().size(17.0));
        ui.add_space(6.0);
        contents(ui);
    });
}

/// The label at the left of a settings row, in a fixed-width column.
fn row_label(ui: &mut Ui, text: &str) {
    ui.add_sized([120.0, 24.0], egui::Label::new(RichText::new(text).color(theme::MUTED_TEXT)));
}

/// A text field with an accessible label.
fn field(ui: &mut Ui, label: &str, value: &mut String, hint: &str) -> egui::Response {
    ui.horizontal(|ui| {
        row_label(ui, label);
        let response =
            ui.add(egui::TextEdit::singleline(value).hint_text(hint).desired_width(f32::INFINITY).id_salt(label));
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, label));
        response
    })
    .inner
}

/// A one-line text field with a button at its right end, which acts on what is typed.
struct FieldWithButton<'a> {
    label: &'a str,
    hint: &'a str,
    /// What a screen reader (and a test) calls the field.
    described: &'a str,
    button: &'a str,
    /// Enter in the field presses the button too.
    enter_presses: bool,
    /// The button is greyed out while nothing is typed.
    greyed_until_typed: bool,
}

impl FieldWithButton<'_> {
    /// Draws it; true when the button was pressed (or Enter, when it presses) with something typed.
    fn show(&self, ui: &mut Ui, value: &mut String) -> bool {
        ui.horizontal(|ui| {
            row_label(ui, self.label);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let typed = !value.trim().is_empty();
                let pressed =
                    ui.add_enabled(typed || !self.greyed_until_typed, egui::Button::new(self.button)).clicked();
                let edit = egui::TextEdit::singleline(value)
                    .hint_text(self.hint)
                    .desired_width(f32::INFINITY)
                    .id_salt(self.label);
                let response = ui.add(edit);
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, self.described));
                let entered =
                    self.enter_presses && response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                (pressed || entered) && typed
            })
            .inner
        })
        .inner
    }
}

fn profile(app: &mut View<'_>, draft: &mut Settings, ui: &mut Ui, actions: &mut Vec<Action>) {
    section(ui, "Profile", |ui| {
        let mut name = draft.profile.display_name.clone();
        let response = field(ui, "Display name", &mut name, "Your name");
        let name = name.trim_start().chars().take(80).collect::<String>();
        if response.changed() && !name.trim().is_empty() {
            draft.profile.display_name = name;
        }
        // What is typed is kept between frames until the field is left, then taken.
        let saved = || draft.profile.avatar.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let mut picture = app.view.picture_draft.take().unwrap_or_else(saved);
        let response = field(ui, "Picture file", &mut picture, "/path/to/picture.png (PNG, JPEG or WebP)");
        if response.has_focus() {
            app.view.picture_draft = Some(picture.clone());
        }
        if response.lost_focus() || (response.changed() && picture.is_empty()) {
            let path = PathBuf::from(picture.trim());
            if picture.trim().is_empty() {
                draft.profile.avatar = None;
            } else if let Err(error) = crate::avatar::load_round(&path, 32) {
                actions.push(Action::Notify(error.to_string()));
            } else {
                draft.profile.avatar = Some(path);
            }
        }
    });
}

/// What can be picked for `kind`: this run's default first (none), then every device listed.
pub(super) fn device_options(app: &View<'_>, kind: DeviceKind) -> Vec<(Option<String>, String)> {
    let default = match app.default_devices.pick(kind) {
        DevicePick::Fake => format!("Default ({})", kind.fake().name),
        _ => "System default".to_owned(),
    };
    std::iter::once((None, default))
        .chain(app.model.devices.of(kind).iter().map(|device| (Some(device.id.clone()), device.name.clone())))
        .collect()
}

/// A device picker row, with what is in use under it when that is a stand-in.
fn device_row(app: &View<'_>, ui: &mut Ui, kind: DeviceKind, label: &str, actions: &mut Vec<Action>) {
    let chosen = app.settings.devices.get(kind).cloned();
    let options = device_options(app, kind);
    let selected = options.iter().find(|(id, _)| *id == chosen).map(|(_, name)| name.clone()).unwrap_or_else(|| {
        // Chosen before but not there now (unplugged): keep the choice, say so.
        format!("{} (not connected)", chosen.as_deref().unwrap_or_default())
    });
    ui.horizontal(|ui| {
        row_label(ui, label);
        let response = egui::ComboBox::from_id_salt(label)
            .selected_text(selected)
            .width(ui.available_width().min(360.0))
            .show_ui(ui, |ui| {
                for (id, name) in &options {
                    if ui.selectable_label(*id == chosen, name).clicked() && *id != chosen {
                        actions.push(Action::UseDevice { kind, id: id.clone() });
                    }
                }
            });
        let accessible = format!("Choose {}", kind.noun());
        response.response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, &accessible));
    });
    if let Some((device, Some(problem))) = app.model.in_use.get(&kind) {
        ui.horizontal(|ui| {
            row_label(ui, "");
            ui.add(
                egui::Label::new(
                    RichText::new(format!("{problem} — {}", crate::model::stand_in(kind, device)))
                        .color(theme::AMBER)
                        .size(12.0),
                )
                .wrap(),
            );
        });
    }
}

fn devices(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    section(ui, "Devices", |ui| {
        device_row(app, ui, DeviceKind::Microphone, "Microphone", actions);
        ui.horizontal(|ui| {
            row_label(ui, "Level");
            level_meter(ui, app.session.local_audio().level());
        });
        device_row(app, ui, DeviceKind::Speaker, "Speaker", actions);
        ui.horizontal(|ui| {
            row_label(ui, "");
            if ui.button("Play test sound").clicked() {
                actions.push(Action::TestSound);
            }
        });
        let note = match &app.sounds.unavailable {
            Some(problem) => Some(problem.as_str()),
            None if app.sounds.silent_by_choice => Some("The silent speaker plays nothing, ringtones included"),
            None => None,
        };
        if let Some(note) = note {
            // Under the button and wrapped in the column, so a long reason does not widen the panel.
            ui.horizontal(|ui| {
                row_label(ui, "");
                ui.add(egui::Label::new(RichText::new(note).color(theme::MUTED_TEXT).size(12.0)).wrap());
            });
        }
        device_row(app, ui, DeviceKind::Camera, "Camera", actions);
        // The live preview, in the column of the controls: the engine runs the camera while this
        // screen is open.
        ui.horizontal(|ui| {
            row_label(ui, "");
            let width = ui.available_width().min(360.0);
            let (rect, response) = ui.allocate_exact_size(egui::vec2(width, width * 9.0 / 16.0), egui::Sense::hover());
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Camera preview"));
            ui.painter().rect_filled(rect, 10, egui::Color32::BLACK);
            let slot = app.session.local_video().clone();
            match app.textures.picture(ui.ctx(), "local", &slot) {
                Some(picture) => video::paint(ui, rect, picture, true, 10),
                None => {
                    ui.painter().text(
                        rect.center(),
                        egui::Align2::CENTER_CENTER,
                        "Starting camera…",
                        egui::FontId::proportional(14.0),
                        theme::MUTED_TEXT,
                    );
                }
            }
        });
    });
}

fn ringtone(draft: &mut Settings, app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    section(ui, "Ringtone", |ui| {
        let mut file = draft.ringtone.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let response = field(ui, "Sound file", &mut file, "Built-in (or a WAV, Ogg or MP3 file)");
        if response.lost_focus() || (response.changed() && file.is_empty()) {
            let file = file.trim();
            draft.ringtone.file = if file.is_empty() {
                None
            } else if std::path::Path::new(file).is_file() {
                Some(PathBuf::from(file))
            } else {
                actions.push(Action::Notify(format!("No sound file at {file}")));
                draft.ringtone.file.clone()
            };
        }
        ui.horizontal(|ui| {
            row_label(ui, "Volume");
            let slider = egui::Slider::new(&mut draft.ringtone.volume, 0.0..=1.0).show_value(false);
            let response = ui.add(slider);
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Slider, true, "Ringtone volume"));
            let previewing = app.sounds.playing() == Playing::Ringtone;
            if ui.button(if previewing { "Stop" } else { "Play" }).clicked() {
                app.view.ringtone_preview = !previewing;
            }
        });
    });
}

fn calls(draft: &mut Settings, ui: &mut Ui) {
    section(ui, "Calls", |ui| {
        ui.checkbox(&mut draft.calls.start_muted, "Start calls muted");
        ui.checkbox(&mut draft.calls.start_camera_off, "Start video calls with the camera off");
        ui.horizontal(|ui| {
            ui.label(RichText::new("When a camera is off, show").color(theme::MUTED_TEXT));
            egui::ComboBox::from_id_salt("avatar-shape").selected_text(draft.calls.avatar_shape.label()).show_ui(
                ui,
                |ui| {
                    for shape in AvatarShape::ALL {
                        ui.selectable_value(&mut draft.calls.avatar_shape, shape, shape.label());
                    }
                },
            );
        });
        ui.checkbox(&mut draft.calls.always_relay, "Always relay my calls")
            .on_hover_text("Calls go through the server's relay, so the people you call never learn your network address. It can add a little delay, and needs a relay on the server.");
        ui.checkbox(&mut draft.window.close_to_tray, "Closing the window keeps Dialtone running in the tray");
    });
}

fn server(app: &mut View<'_>, draft: &mut Settings, ui: &mut Ui, actions: &mut Vec<Action>) {
    section(ui, "Server", |ui| {
        let hint = "Paste a dialtone://invite link someone sent you";
        let invite = FieldWithButton {
            label: "Invite link",
            hint,
            described: "Paste an invite link",
            button: "Sign in",
            enter_presses: true,
            greyed_until_typed: false,
        };
        if invite.show(ui, &mut app.view.invite_draft) {
            actions.push(Action::SignInWithInvite(app.view.invite_draft.trim().to_owned()));
        }
        ui.add_space(6.0);
        if app.session.is_embedded() {
            ui.label(format!("Dialtone runs its own server on this machine at {}.", app.session.server_url()));
            ui.label(
                RichText::new("Someone else on this machine can call you with: dialtone --server URL --user NAME")
                    .small()
                    .color(theme::MUTED_TEXT),
            );
            let mut hosting = app.session.is_hosting();
            if ui.checkbox(&mut hosting, "Let people on my network call me").changed() {
                actions.push(Action::HostOnNetwork(hosting));
            }
            if app.session.is_hosting() {
                invite_someone(app, ui, actions);
            }
        } else {
            ui.horizontal(|ui| {
                ui.label(format!("Signed in to {}.", app.session.server_url()));
                if ui
                    .button("Sign out")
                    .on_hover_text("Forget this server and use Dialtone's own on this computer")
                    .clicked()
                {
                    actions.push(Action::SignOut);
                }
            });
        }
        ui.add_space(6.0);
        field(ui, "Server URL", &mut draft.server.url, "Empty: run a server on this machine");
        field(ui, "User", &mut draft.server.user, "Your user id on that server");
        field(ui, "Token", &mut draft.server.token, "From the server's administrator");
        field(ui, "Fingerprint", &mut draft.server.fingerprint, "For a self-signed server: the fingerprint it prints");
        ui.label(
            RichText::new("Server changes take effect the next time Dialtone starts.").small().color(theme::MUTED_TEXT),
        );
    });
}

/// A name for a new person and the button that makes (and copies) their invite link.
fn invite_someone(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    let person = FieldWithButton {
        label: "Invite",
        hint: "Their name",
        described: "Name of the person to invite",
        button: "Copy invite link",
        // Copying to the clipboard is the button's to do, not Enter's.
        enter_presses: false,
        greyed_until_typed: true,
    };
    if person.show(ui, &mut app.view.guest_name) {
        actions.push(Action::MakeInvite(app.view.guest_name.trim().to_owned()));
    }
    if let Some((name, link)) = &app.view.last_invite {
        ui.label(
            RichText::new(format!(
                "Copied: send this link to {name} (it works for a week, on this network; it signs them in as {name}):"
            ))
            .small()
            .color(theme::MUTED_TEXT),
        );
        let mut shown = link.clone();
        let response =
            ui.add(egui::TextEdit::singleline(&mut shown).desired_width(f32::INFINITY).id_salt("Invite made"));
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Invite link made"));
    }
}

/// A horizontal level meter: RMS shown on a dB scale from -60 to 0 dBFS, green, amber near full scale.
fn level_meter(ui: &mut Ui, level: f32) {
    let width = ui.available_width().min(360.0);
    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, 12.0), egui::Sense::hover());
    let fraction = meter_fraction(level);
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Meter, true, format!("Microphone level {:.0} %", fraction * 100.0))
    });
    ui.painter().rect_filled(rect, 6, theme::RAISED);
    let filled = egui::Rect::from_min_size(rect.min, egui::vec2(rect.width() * fraction, rect.height()));
    let colour = if fraction > 0.9 { theme::AMBER } else { theme::GREEN };
    ui.painter().rect_filled(filled, 6, colour);
    // The meter moves without engine events: keep redrawing while it shows.
    ui.ctx().request_repaint_after(std::time::Duration::from_millis(50));
}

/// Where an RMS level (0..1) sits on the meter: -60 dBFS and below is empty, 0 dBFS full.
pub fn meter_fraction(level: f32) -> f32 {
    if level <= 0.0 {
        return 0.0;
    }
    ((20.0 * level.log10() + 60.0) / 60.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_meter_reads_in_decibels() {
        assert_eq!(super::meter_fraction(0.0), 0.0);
        assert_eq!(super::meter_fraction(1.0), 1.0);
        assert!((super::meter_fraction(0.1) - 2.0 / 3.0).abs() < 1e-6, "-20 dBFS is two thirds");
        assert_eq!(super::meter_fraction(0.0001), 0.0);
    }
}
