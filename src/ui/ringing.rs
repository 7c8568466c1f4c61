//! Ringing views: a call ringing here (accept with video, audio only, decline), a call this user
//! placed (ringing or connecting, with the self view for video calls), and the banner for a call that
//! rings during another.

use dialtone_protocol::CallKind;
use egui::{Align2, Color32, Rect, RichText, Ui, pos2, vec2};

use super::action::Action;
use super::context::View;
use super::widgets::{self, AvatarLook};
use super::{theme, video};

use crate::model::{Incoming, Stage};
use crate::settings::AvatarShape;

/// Full-window view of a call ringing here.
pub fn incoming(app: &mut View<'_>, ui: &mut Ui, incoming: &Incoming, actions: &mut Vec<Action>) {
    let ctx = ui.ctx().clone();
    let area = ui.available_rect_before_wrap();
    ui.painter().rect_filled(area, 0, theme::BACKGROUND);
    let caller = app.avatar_look(&ctx, &incoming.from);
    // egui's clock (not the ring's start) drives the pulse, so a test can hold it still.
    let time = ui.input(|input| input.time);
    let centre = pos2(area.center().x, area.top() + area.height() * 0.34);
    let radius = (area.height() * 0.13).clamp(40.0, 90.0);
    widgets::paint_pulse(ui, centre, radius, time, theme::GREEN);
    widgets::paint_avatar(ui, Rect::from_center_size(centre, vec2(radius, radius) * 2.0), &caller, AvatarShape::Circle);

    let info = &incoming.info;
    let me = app.model.me.clone();
    let others: Vec<_> = info
        .members
        .iter()
        .filter(|m| Some(&m.user) != me.as_ref() && m.user != incoming.from)
        .map(|m| m.user.clone())
        .collect();
    let title = if info.group && !others.is_empty() {
        format!("{} and {} more", caller.name, others.len())
    } else {
        caller.name.clone()
    };
    let kind = match (info.kind, info.group) {
        (CallKind::Video, true) => "Incoming group video call",
        (CallKind::Video, false) => "Incoming video call",
        (CallKind::Audio, true) => "Incoming group audio call",
        (CallKind::Audio, false) => "Incoming audio call",
    };
    let text_top = centre.y + radius * 1.45 + 10.0;
    titles(ui, area, text_top, &title, kind);
    if info.group && !others.is_empty() {
        // The other members' avatars in a row.
        let size = 30.0;
        let looks: Vec<AvatarLook> = others.iter().take(8).map(|u| app.avatar_look(&ctx, u)).collect();
        let start = centre.x - (looks.len() as f32 * (size + 6.0) - 6.0) / 2.0;
        for (index, look) in looks.iter().enumerate() {
            let at = Rect::from_min_size(pos2(start + index as f32 * (size + 6.0), text_top + 72.0), vec2(size, size));
            widgets::paint_avatar(ui, at, look, AvatarShape::Circle);
        }
    }

    let buttons = Rect::from_center_size(pos2(area.center().x, area.bottom() - 90.0), vec2(300.0, 80.0));
    ui.scope_builder(egui::UiBuilder::new().max_rect(buttons), |ui| {
        ui.columns(3, |columns| {
            let call = info.call.clone();
            columns[0].vertical_centered(|ui| {
                if widgets::round_button(ui, "✖", "Decline", "Decline", theme::RED, true, "D").clicked() {
                    actions.push(Action::Decline { call: call.clone() });
                }
            });
            columns[1].vertical_centered(|ui| {
                if widgets::round_button(
                    ui,
                    "📞",
                    "Accept audio only",
                    "Audio only",
                    Color32::from_gray(0x55),
                    true,
                    "A",
                )
                .clicked()
                {
                    actions.push(Action::Accept { call: call.clone(), video: false });
                }
            });
            columns[2].vertical_centered(|ui| {
                let (icon, label) =
                    if info.kind == CallKind::Video { ("📷", "Accept with video") } else { ("📞", "Accept") };
                if widgets::round_button(ui, icon, label, "Accept", theme::GREEN, true, "Enter").clicked() {
                    actions.push(Action::Accept { call: call.clone(), video: info.kind == CallKind::Video });
                }
            });
        });
    });
}

/// Full-window view of a call this user placed, until it is active.
pub fn outgoing(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    let ctx = ui.ctx().clone();
    let Some(call) = app.model.call.clone() else { return };
    let area = ui.available_rect_before_wrap();
    ui.painter().rect_filled(area, 0, theme::BACKGROUND);
    // A video call shows the self view behind, dimmed: the user checks how they look while it rings.
    if call.kind == CallKind::Video && call.my_media.camera_on {
        let slot = app.session.local_video().clone();
        if let Some(picture) = app.textures.picture(&ctx, "local", &slot) {
            video::paint(ui, area, picture, true, 0);
            ui.painter().rect_filled(area, 0, Color32::from_black_alpha(150));
        }
    }
    let looks: Vec<AvatarLook> = call.participants.iter().map(|p| app.avatar_look(&ctx, &p.user)).collect();
    let time = ui.input(|input| input.time);
    let centre = pos2(area.center().x, area.top() + area.height() * 0.34);
    let radius = (area.height() * 0.12).clamp(36.0, 80.0);
    match looks.len() {
        0 => {}
        1 => {
            widgets::paint_pulse(ui, centre, radius, time, theme::ACCENT);
            widgets::paint_avatar(
                ui,
                Rect::from_center_size(centre, vec2(radius, radius) * 2.0),
                &looks[0],
                AvatarShape::Circle,
            );
        }
        count => {
            let size = radius * 1.2;
            let start = centre.x - (count as f32 * (size + 10.0) - 10.0) / 2.0 + size / 2.0;
            for (index, look) in looks.iter().enumerate() {
                let at = pos2(start + index as f32 * (size + 10.0), centre.y);
                widgets::paint_pulse(ui, at, size / 2.0, time + index as f64 * 0.2, theme::ACCENT);
                widgets::paint_avatar(ui, Rect::from_center_size(at, vec2(size, size)), look, AvatarShape::Circle);
            }
        }
    }
    let names = looks.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ");
    let state = match call.stage {
        Stage::Ringing if call.participants.is_empty() => "Calling…",
        Stage::Ringing => "Ringing…",
        Stage::Connecting | Stage::Active => "Connecting…",
    };
    let kind = if call.kind == CallKind::Video { "Video call" } else { "Audio call" };
    let text_top = centre.y + radius * 1.45 + 10.0;
    titles(ui, area, text_top, &names, &format!("{kind} · {state}"));
    let buttons = Rect::from_center_size(pos2(area.center().x, area.bottom() - 90.0), vec2(120.0, 80.0));
    ui.scope_builder(egui::UiBuilder::new().max_rect(buttons), |ui| {
        ui.vertical_centered(|ui| {
            if widgets::round_button(ui, "✖", "Cancel call", "Cancel", theme::RED, true, "H").clicked() {
                actions.push(Action::Hangup);
            }
        });
    });
}

/// A big title and a line under it, centred below `top`.
fn titles(ui: &mut Ui, area: Rect, top: f32, title: &str, subtitle: &str) {
    let rect = Rect::from_min_max(pos2(area.left(), top), pos2(area.right(), top + 70.0));
    ui.scope_builder(egui::UiBuilder::new().max_rect(rect), |ui| {
        ui.vertical_centered(|ui| {
            ui.label(RichText::new(title).size(28.0).color(theme::TEXT));
            ui.label(RichText::new(subtitle).size(16.0).color(theme::MUTED_TEXT));
        });
    });
}

/// A strip across the top of a call: someone else calls.
pub fn waiting_banner(app: &mut View<'_>, ui: &mut Ui, incoming: &Incoming, actions: &mut Vec<Action>) {
    let name = app.model.name_of(&incoming.from);
    egui::Area::new(egui::Id::unique("waiting-call"))
        .anchor(Align2::CENTER_TOP, vec2(0.0, 12.0))
        .order(egui::Order::Foreground)
        .show(ui.ctx(), |ui| {
            egui::Frame::new()
                .fill(theme::SURFACE)
                .corner_radius(12)
                .inner_margin(egui::Margin::symmetric(16, 10))
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(format!("{name} is calling")).strong());
                        if ui.add(egui::Button::new("Decline").fill(theme::RED)).clicked() {
                            actions.push(Action::Decline { call: incoming.info.call.clone() });
                        }
                        let accept = ui.add(egui::Button::new("End call and accept").fill(theme::GREEN));
                        if accept.clicked() {
                            actions.push(Action::Accept {
                                call: incoming.info.call.clone(),
                                video: incoming.info.kind == CallKind::Video,
                            });
                        }
                    });
                });
        });
}

/// The small always-on-top window for a call ringing while the main window is hidden or minimised.
pub fn popup(app: &mut View<'_>, ctx: &egui::Context, incoming: &Incoming, actions: &mut Vec<Action>) {
    let name = app.model.name_of(&incoming.from);
    let caller = app.avatar_look(ctx, &incoming.from);
    let kind = if incoming.info.kind == CallKind::Video { "Incoming video call" } else { "Incoming audio call" };
    let builder = egui::ViewportBuilder::default()
        .with_title(format!("{name} is calling"))
        .with_inner_size([360.0, 150.0])
        .with_resizable(false)
        .with_always_on_top()
        .with_app_id("org.dialtone.Dialtone");
    let time = ctx.input(|input| input.time);
    let call = incoming.info.call.clone();
    let video = incoming.info.kind == CallKind::Video;
    let chosen =
        ctx.show_viewport_immediate(egui::ViewportId::from_hash_of("incoming-popup"), builder, |ui, _class| {
            let mut chosen = None;
            egui::CentralPanel::default().show(ui, |ui| {
                ui.horizontal(|ui| {
                    let (rect, _) = ui.allocate_exact_size(vec2(64.0, 64.0), egui::Sense::hover());
                    widgets::paint_pulse(ui, rect.center(), 26.0, time, theme::GREEN);
                    widgets::paint_avatar(ui, rect.shrink(6.0), &caller, AvatarShape::Circle);
                    ui.vertical(|ui| {
                        ui.label(RichText::new(&name).strong().size(18.0));
                        ui.label(RichText::new(kind).color(theme::MUTED_TEXT));
                    });
                });
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    let decline = ui.add(
                        egui::Button::new(RichText::new("Decline").color(Color32::WHITE))
                            .fill(theme::RED)
                            .min_size(vec2(100.0, 34.0)),
                    );
                    if decline.clicked() {
                        chosen = Some(Action::Decline { call: call.clone() });
                    }
                    let accept = ui.add(
                        egui::Button::new(RichText::new("Accept").color(Color32::WHITE))
                            .fill(theme::GREEN)
                            .min_size(vec2(100.0, 34.0)),
                    );
                    if accept.clicked() {
                        chosen = Some(Action::Accept { call: call.clone(), video });
                    }
                });
            });
            chosen
        });
    if let Some(action) = chosen {
        if matches!(action, Action::Accept { .. }) {
            actions.push(Action::ShowWindow);
        }
        actions.push(action);
    }
}
