//! The screen outside calls: a header with this user and the connection, then contacts or history.

use dialtone_protocol::{CallKind, UserId};
use egui::{Align, Layout, RichText, Sense, Ui};

use super::action::Action;
use super::context::View;
use super::theme;
use super::view_state::Screen;
use super::widgets::{self, AvatarLook};

use crate::history::{Direction, Entry};
use crate::model::Connection;

/// The contacts or history screen with its header.
pub fn show(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    header(app, ui, actions);
    let available = ui.available_rect_before_wrap();
    let width = (available.width() - 32.0).min(720.0);
    let column = egui::Rect::from_min_max(
        egui::pos2(available.center().x - width / 2.0, available.top()),
        egui::pos2(available.center().x + width / 2.0, available.bottom()),
    );
    ui.scope_builder(egui::UiBuilder::new().max_rect(column), |ui| {
        tabs(app, ui, actions);
        ui.add_space(6.0);
        match app.view.screen {
            Screen::History => history(app, ui, actions),
            _ => contacts(app, ui, actions),
        }
    });
}

/// This user, the connection state, and the settings and help buttons.
pub fn header(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    let ctx = ui.ctx().clone();
    egui::Frame::new().fill(theme::SURFACE).inner_margin(egui::Margin::symmetric(18, 12)).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            let me = app.model.me.clone();
            let look = match &me {
                Some(user) => app.avatar_look(&ctx, user),
                None => AvatarLook { user: String::new(), name: app.my_name(), picture: None },
            };
            let online = matches!(app.model.connection, Some(Connection::Online));
            widgets::avatar(ui, &look, 40.0, Some(online));
            ui.vertical(|ui| {
                ui.label(RichText::new(app.my_name()).strong().size(17.0));
                let (text, colour) = connection_text(&app.model.connection);
                ui.label(RichText::new(text).small().color(colour));
            });
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                if ui.button("Settings").on_hover_text("Devices, ringtone, profile, server").clicked() {
                    actions.push(Action::Show(Screen::Settings));
                }
                if ui.button("?").on_hover_text("Keyboard shortcuts (F1)").clicked() {
                    actions.push(Action::ToggleHelp);
                }
            });
        });
    });
}

/// What the header says about the connection, and in which colour.
fn connection_text(connection: &Option<Connection>) -> (String, egui::Color32) {
    match connection {
        None | Some(Connection::Connecting { attempt: 0 }) => ("Connecting…".to_owned(), theme::MUTED_TEXT),
        Some(Connection::Connecting { attempt }) => (format!("Reconnecting (attempt {attempt})…"), theme::AMBER),
        Some(Connection::Online) => ("Online".to_owned(), theme::GREEN),
        Some(Connection::Reconnecting { reason, .. }) => (format!("Offline: {reason}. Reconnecting…"), theme::AMBER),
        Some(Connection::Stopped { reason }) => (format!("Signed out: {reason}"), theme::RED),
    }
}

fn tabs(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    ui.add_space(12.0);
    ui.horizontal(|ui| {
        let missed = app.history.unseen_missed();
        let history_label = if missed > 0 { format!("History ({missed} missed)") } else { "History".to_owned() };
        if ui.selectable_label(app.view.screen != Screen::History, "Contacts").clicked() {
            actions.push(Action::Show(Screen::Contacts));
        }
        if ui.selectable_label(app.view.screen == Screen::History, history_label).clicked() {
            actions.push(Action::Show(Screen::History));
        }
        if app.view.screen != Screen::History {
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let search = egui::TextEdit::singleline(&mut app.view.search).hint_text("Search").desired_width(200.0);
                let response = ui.add(search.id_salt("contact-search"));
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SearchInput, true, "Search contacts"));
            });
        }
    });
}

fn contacts(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    let ctx = ui.ctx().clone();
    let needle = app.view.search.trim().to_lowercase();
    let matches =
        |name: &str, user: &str| needle.is_empty() || name.to_lowercase().contains(&needle) || user.contains(&needle);
    egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
        for group in app.model.groups.clone() {
            if !matches(&group.name, "") {
                continue;
            }
            let online = group.members.iter().filter(|u| app.model.contacts.get(*u).is_some_and(|c| c.online)).count();
            let looks: Vec<AvatarLook> = group.members.iter().map(|u| app.avatar_look(&ctx, u)).collect();
            row(ui, |ui| {
                let (rect, _) = ui.allocate_exact_size(
                    egui::vec2(44.0 + 14.0 * (looks.len().saturating_sub(1)) as f32, 44.0),
                    Sense::hover(),
                );
                for (index, look) in looks.iter().enumerate().rev() {
                    let at = egui::Rect::from_min_size(
                        rect.min + egui::vec2(14.0 * index as f32, 6.0),
                        egui::Vec2::splat(32.0),
                    );
                    ui.painter().circle_filled(at.center(), 17.5, theme::SURFACE);
                    widgets::paint_avatar(ui, at, look, crate::settings::AvatarShape::Circle);
                }
                ui.vertical(|ui| {
                    ui.label(RichText::new(&group.name).strong());
                    ui.label(
                        RichText::new(format!("{} people, {online} online", group.members.len()))
                            .small()
                            .color(theme::MUTED_TEXT),
                    );
                });
                call_buttons(ui, &group.name, online > 0, || group.members.clone(), true, actions);
            });
        }
        let mut people: Vec<_> = app.model.contacts.values().cloned().collect();
        // Online first, then by name.
        people.sort_by_key(|c| (!c.online, c.profile.display_name.to_lowercase(), c.user.clone()));
        let mut shown = 0;
        for contact in people {
            let name = app.model.name_of(&contact.user);
            if !matches(&name, contact.user.as_str()) {
                continue;
            }
            shown += 1;
            let look = app.avatar_look(&ctx, &contact.user);
            row(ui, |ui| {
                widgets::avatar(ui, &look, 44.0, Some(contact.online));
                ui.vertical(|ui| {
                    ui.label(RichText::new(&name).strong());
                    let status = match (contact.online, contact.in_call) {
                        (true, true) => ("In a call", theme::AMBER),
                        (true, false) => ("Online", theme::GREEN),
                        (false, _) => ("Offline", theme::MUTED_TEXT),
                    };
                    ui.label(RichText::new(status.0).small().color(status.1));
                });
                let user = contact.user.clone();
                call_buttons(ui, &name, contact.online, || vec![user.clone()], false, actions);
            });
        }
        if shown == 0 && app.model.groups.is_empty() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                let text = if needle.is_empty() { "Nobody else is here yet." } else { "No contact matches." };
                ui.label(RichText::new(text).color(theme::MUTED_TEXT));
                if needle.is_empty() && app.session.is_embedded() {
                    ui.label(
                        RichText::new(format!(
                            "Others on this machine can join with: dialtone --server {} --user NAME",
                            app.session.server_url()
                        ))
                        .small()
                        .color(theme::MUTED_TEXT),
                    );
                }
            });
        }
    });
}

/// A card-like row.
fn row(ui: &mut Ui, contents: impl FnOnce(&mut Ui)) {
    egui::Frame::new().fill(theme::SURFACE).corner_radius(12).inner_margin(egui::Margin::symmetric(14, 10)).show(
        ui,
        |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| contents(ui));
        },
    );
    ui.add_space(4.0);
}

/// "Audio call NAME" and "Video call NAME" buttons at the right of a row.
fn call_buttons(
    ui: &mut Ui,
    name: &str,
    enabled: bool,
    users: impl Fn() -> Vec<UserId>,
    group: bool,
    actions: &mut Vec<Action>,
) {
    ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
        for (kind, icon, word) in [(CallKind::Video, "📷", "Video call"), (CallKind::Audio, "📞", "Audio call")] {
            let response = icon_button(ui, icon, &format!("{word} {name}"), enabled)
                .on_disabled_hover_text(format!("{name} is offline"));
            if response.clicked() {
                actions.push(Action::Call { users: users(), kind, group });
            }
        }
    });
}

/// A square button showing an icon; `label` is its accessible name and tooltip.
fn icon_button(ui: &mut Ui, icon: &str, label: &str, enabled: bool) -> egui::Response {
    let button = egui::Button::new(RichText::new(icon).size(18.0)).min_size(egui::vec2(40.0, 36.0));
    let response = ui.add_enabled(enabled, button);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, enabled, label));
    response.on_hover_text(label)
}

fn history(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    let ctx = ui.ctx().clone();
    if app.history.entries.is_empty() {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| ui.label(RichText::new("No calls yet.").color(theme::MUTED_TEXT)));
        return;
    }
    if app.history.unseen_missed() > 0 {
        actions.push(Action::HistorySeen);
    }
    let now_ms = app.now_unix_ms;
    let entries: Vec<Entry> = app.history.entries.iter().take(200).cloned().collect();
    egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
        for entry in entries {
            let users: Vec<UserId> = entry.peers.iter().filter_map(|p| UserId::new(&p.user).ok()).collect();
            let names = entry.peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
            let look = match users.first() {
                Some(user) => app.avatar_look(&ctx, user),
                None => AvatarLook { user: String::new(), name: names.clone(), picture: None },
            };
            row(ui, |ui| {
                widgets::avatar(ui, &look, 40.0, None);
                ui.vertical(|ui| {
                    let colour = if entry.outcome.is_missed() { theme::RED } else { theme::TEXT };
                    ui.label(RichText::new(if names.is_empty() { "Unknown" } else { &names }).strong().color(colour));
                    let arrow = match entry.direction {
                        Direction::Incoming => "↙",
                        Direction::Outgoing => "↗",
                    };
                    let kind = if entry.video { "Video" } else { "Audio" };
                    let mut detail = format!("{arrow} {kind} · {}", entry.outcome.label());
                    if let Some(ms) = entry.duration_ms {
                        detail += &format!(" · {}", widgets::format_duration(ms / 1_000));
                    }
                    detail += &format!(" · {}", ago(now_ms.saturating_sub(entry.at_unix_ms)));
                    ui.label(RichText::new(detail).small().color(theme::MUTED_TEXT));
                });
                let kind = if entry.video { CallKind::Video } else { CallKind::Audio };
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    let label = format!("Call back {}", if names.is_empty() { "them" } else { &names });
                    if icon_button(ui, "📞", &label, !users.is_empty()).clicked() {
                        actions.push(Action::Call { users: users.clone(), kind, group: entry.group });
                    }
                });
            });
        }
    });
}

/// "just now", "5 min ago", "3 h ago", "2 days ago".
pub fn ago(ms: u64) -> String {
    let seconds = ms / 1_000;
    match seconds {
        0..=59 => "just now".to_owned(),
        60..=3_599 => format!("{} min ago", seconds / 60),
        3_600..=86_399 => format!("{} h ago", seconds / 3_600),
        _ => match seconds / 86_400 {
            1 => "yesterday".to_owned(),
            days => format!("{days} days ago"),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_naturally() {
        assert_eq!(super::ago(5_000), "just now");
        assert_eq!(super::ago(300_000), "5 min ago");
        assert_eq!(super::ago(3 * 3_600_000), "3 h ago");
        assert_eq!(super::ago(86_400_000 + 5), "yesterday");
        assert_eq!(super::ago(3 * 86_400_000), "3 days ago");
    }
}
