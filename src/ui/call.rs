//! The call views: 1v1 (remote video filling the window, self view picture-in-picture) and the group
//! grid (tiles laid out to fill the window; spotlight and single layouts), with the controls bar and
//! the invite list.

use std::sync::Arc;

use dialtone_engine::{DeviceKind, MediaLinkState, VideoSlot};
use dialtone_protocol::{CallKind, UserId};
use egui::{Align2, Color32, CornerRadius, FontId, Rect, RichText, Sense, Ui, Vec2, pos2, vec2};

use super::action::Action;
use super::context::View;
use super::view_state::GridLayout;
use super::widgets::{self, AvatarLook};
use super::{theme, video};

use crate::model::{Connection, CurrentCall, MEASURING_CONNECTION, Quality, Stage};
use crate::settings::AvatarShape;

/// Columns and rows for `count` tiles of `aspect` (width/height) in `area` so that tiles are as large
/// as possible.
pub fn grid_shape(count: usize, area: Vec2, aspect: f32) -> (usize, usize) {
    if count == 0 {
        return (0, 0);
    }
    let mut best = (1, count, 0.0f32);
    for columns in 1..=count {
        let rows = count.div_ceil(columns);
        let cell = vec2(area.x / columns as f32, area.y / rows as f32);
        let width = cell.x.min(cell.y * aspect);
        // On a tie, more columns: side by side reads better than stacked in a landscape window.
        if width >= best.2 {
            best = (columns, rows, width);
        }
    }
    (best.0, best.1)
}

/// The rectangles of `count` tiles in `area`, centred, with `gap` between them; a last row with fewer
/// tiles is centred too.
pub fn grid_rects(count: usize, area: Rect, gap: f32, aspect: f32) -> Vec<Rect> {
    let (columns, rows) = grid_shape(count, area.size(), aspect);
    if columns == 0 {
        return Vec::new();
    }
    let cell = vec2(
        (area.width() - gap * (columns - 1) as f32) / columns as f32,
        (area.height() - gap * (rows - 1) as f32) / rows as f32,
    );
    let tile = vec2(cell.x.min(cell.y * aspect), cell.x.min(cell.y * aspect) / aspect);
    let used_height = tile.y * rows as f32 + gap * (rows - 1) as f32;
    let top = area.top() + (area.height() - used_height) / 2.0;
    (0..count)
        .map(|index| {
            let (row, column) = (index / columns, index % columns);
            let in_row = if row == rows - 1 { count - columns * (rows - 1) } else { columns };
            let used_width = tile.x * in_row as f32 + gap * (in_row - 1) as f32;
            let left = area.left() + (area.width() - used_width) / 2.0;
            Rect::from_min_size(pos2(left + column as f32 * (tile.x + gap), top + row as f32 * (tile.y + gap)), tile)
        })
        .collect()
}

/// One person's tile.
struct Tile {
    key: String,
    look: AvatarLook,
    /// The name under the tile ("Sam (you)" for this user).
    caption: String,
    video: Option<Arc<VideoSlot>>,
    muted: bool,
    camera_on: bool,
    speaking: bool,
    ringing: bool,
    me: bool,
}

/// The call on screen, active or connecting.
pub fn in_call(app: &mut View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    let Some(call) = app.model.call.clone() else { return };
    egui::Panel::bottom("controls")
        .frame(egui::Frame::new().fill(theme::SURFACE).inner_margin(egui::Margin::symmetric(12, 10)))
        .show(ui, |ui| {
            controls(app, ui, &call, actions);
        });
    egui::CentralPanel::no_frame().show(ui, |ui| {
        let area = ui.available_rect_before_wrap();
        ui.painter().rect_filled(area, 0, Color32::BLACK);
        let tiles = tiles(app, ui.ctx(), &call);
        if call.group {
            // Tiles start below the name and clock, which would otherwise cover the first tile's
            // corner; a single speaker fills the window as in a 1v1 call.
            let top = if app.view.layout == GridLayout::Single { 8.0 } else { OVERLAY_BAND };
            grid(app, ui, Rect::from_min_max(area.min + vec2(8.0, top), area.max - vec2(8.0, 8.0)), tiles);
        } else {
            one_to_one(app, ui, area, tiles, actions);
        }
        overlay(app, ui, area, &call);
        unreachable_banner(app, ui, area, &call, actions);
        if app.view.invite.is_some() {
            invite_list(app, ui, &call, actions);
        }
        if app.view.output_menu {
            output_menu(app, ui, actions);
        }
    });
}

/// The speakers to play the call on.
fn output_menu(app: &View<'_>, ui: &mut Ui, actions: &mut Vec<Action>) {
    let mut open = true;
    egui::Window::new("Speaker")
        .collapsible(false)
        .resizable(false)
        .anchor(Align2::CENTER_BOTTOM, Vec2::new(0.0, -12.0))
        .open(&mut open)
        .show(ui.ctx(), |ui| {
            ui.set_min_width(280.0);
            let chosen = app.settings.devices.get(DeviceKind::Speaker).cloned();
            for (id, name) in super::settings_view::device_options(app, DeviceKind::Speaker) {
                if ui.radio(chosen == id, name).clicked() && chosen != id {
                    actions.push(Action::UseDevice { kind: DeviceKind::Speaker, id });
                }
            }
        });
    if !open {
        actions.push(Action::ToggleOutputMenu);
    }
}

fn tiles(app: &mut View<'_>, ctx: &egui::Context, call: &CurrentCall) -> Vec<Tile> {
    let streams = app.session.remote_video().streams(&call.id);
    let mut tiles = Vec::new();
    for participant in &call.participants {
        let video = streams
            .iter()
            .find(|(peer, _)| {
                peer.user == participant.user && participant.device.as_ref().is_none_or(|d| d == &peer.device)
            })
            .map(|(_, slot)| slot.clone());
        let look = app.avatar_look(ctx, &participant.user);
        tiles.push(Tile {
            key: format!("{}/{}", call.id, participant.user),
            caption: look.name.clone(),
            look,
            video,
            muted: participant.media.audio_muted,
            camera_on: participant.media.camera_on && call.kind == CallKind::Video,
            speaking: call.speaker.as_ref() == Some(&participant.user),
            ringing: !participant.joined,
            me: false,
        });
    }
    if let Some(me) = app.model.me.clone() {
        let look = app.avatar_look(ctx, &me);
        tiles.push(Tile {
            key: "local".to_owned(),
            caption: format!("{} (you)", look.name),
            look,
            video: Some(app.session.local_video().clone()),
            muted: call.my_media.audio_muted,
            camera_on: call.my_media.camera_on && call.kind == CallKind::Video,
            speaking: false,
            ringing: false,
            me: true,
        });
    }
    tiles
}

impl Tile {
    /// The latest picture to show, when the camera is on and a frame arrived.
    fn picture(&self, app: &mut View<'_>, ctx: &egui::Context) -> Option<video::Picture> {
        match (&self.video, self.camera_on) {
            (Some(slot), true) => app.textures.picture(ctx, &self.key, slot),
            _ => None,
        }
    }

    /// What a screen reader (and a test) learns about the tile.
    fn description(&self) -> String {
        let mut description = self.caption.clone();
        if self.muted {
            description += ", muted";
        }
        if !self.camera_on {
            description += ", camera off";
        }
        if self.speaking {
            description += ", speaking";
        }
        description
    }
}

/// Paints the tile's avatar in `area` in the shape the settings choose, `scale` of the area's short
/// side (the whole area for "fill"); returns where it went.
fn paint_avatar_in(app: &View<'_>, ui: &Ui, area: Rect, tile: &Tile, scale: f32) -> Rect {
    let shape = app.settings.calls.avatar_shape;
    let inner = if shape == AvatarShape::Fullscreen {
        area
    } else {
        Rect::from_center_size(area.center(), Vec2::splat(area.height().min(area.width()) * scale))
    };
    widgets::paint_avatar(ui, inner, &tile.look, shape);
    inner
}

/// Draws one tile: video (covering the tile) or the avatar, name, badges, speaker highlight.
fn paint_tile(app: &mut View<'_>, ui: &Ui, rect: Rect, tile: &Tile, cover: bool) {
    let corner = 12;
    ui.painter().rect_filled(rect, CornerRadius::same(corner), theme::RAISED);
    match tile.picture(app, ui.ctx()) {
        Some(picture) => video::paint(ui, rect, picture, cover, corner),
        None => {
            let inner = paint_avatar_in(app, ui, rect, tile, 0.42);
            if tile.ringing {
                let text_at = pos2(rect.center().x, inner.bottom() + 18.0);
                ui.painter().text(
                    text_at,
                    Align2::CENTER_CENTER,
                    "Ringing…",
                    FontId::proportional(14.0),
                    theme::MUTED_TEXT,
                );
            }
        }
    }
    let caption = widgets::paint_caption(ui, rect.left_bottom() + vec2(8.0, -8.0), &tile.caption);
    let mut badge_at = pos2(caption.right() + 6.0, caption.center().y);
    if tile.muted {
        badge_at.x = widgets::badge(ui, badge_at, "🔇", theme::RED).right() + 4.0;
    }
    if !tile.camera_on {
        widgets::badge(ui, badge_at, "🚫", Color32::from_gray(0x50));
    }
    if tile.speaking {
        widgets::paint_highlight(ui, rect, theme::GREEN);
    }
    let description = tile.description();
    let response = ui.interact(rect, ui.scope_id().with(("tile", &tile.key)), Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &description));
}

fn one_to_one(app: &mut View<'_>, ui: &mut Ui, area: Rect, mut tiles: Vec<Tile>, actions: &mut Vec<Action>) {
    let local = tiles.pop().filter(|t| t.me);
    let remote = tiles.into_iter().find(|t| !t.ringing);
    match &remote {
        Some(tile) => {
            // Video fills the window with its aspect kept; an avatar sits on the dark background.
            match tile.picture(app, ui.ctx()) {
                Some(picture) => video::paint(ui, area, picture, false, 0),
                None => {
                    ui.painter().rect_filled(area, 0, theme::BACKGROUND);
                    paint_avatar_in(app, ui, area, tile, 0.35);
                }
            }
            if tile.muted {
                widgets::badge(ui, pos2(area.right() - 40.0, area.top() + 26.0), "🔇", theme::RED);
            }
            let description = tile.description();
            let response = ui.interact(area, ui.scope_id().with("remote"), Sense::hover());
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &description));
        }
        None => {
            ui.painter().rect_filled(area, 0, theme::BACKGROUND);
        }
    }
    if let Some(local) = local {
        picture_in_picture(app, ui, area, &local, actions);
    }
}

/// The draggable self view, in the bottom-right corner by default.
fn picture_in_picture(app: &mut View<'_>, ui: &mut Ui, area: Rect, local: &Tile, actions: &mut Vec<Action>) {
    let size = vec2((area.width() * 0.22).clamp(140.0, 320.0), 0.0);
    let size = vec2(size.x, size.x * 9.0 / 16.0);
    let home = area.right_bottom() - size - vec2(16.0, 16.0);
    let max_offset = home - area.left_top() - vec2(16.0, 16.0);
    // Kept inside the window, also when the window shrank since it was placed.
    let offset = app.view.pip_offset.clamp(-max_offset, Vec2::ZERO);
    let rect = Rect::from_min_size(home + offset, size);
    let response = ui.interact(rect, ui.scope_id().with("self-view"), Sense::drag());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Your camera"));
    let moved = (offset + response.drag_delta()).clamp(-max_offset, Vec2::ZERO);
    if moved != app.view.pip_offset {
        actions.push(Action::MoveSelfView(moved));
    }
    ui.painter().rect_filled(rect.expand(2.0), CornerRadius::same(12), Color32::from_black_alpha(120));
    paint_tile(app, ui, rect, local, true);
}

fn grid(app: &mut View<'_>, ui: &mut Ui, area: Rect, tiles: Vec<Tile>) {
    let focus =
        tiles.iter().position(|t| t.speaking).or_else(|| tiles.iter().position(|t| !t.me && !t.ringing)).unwrap_or(0);
    match app.view.layout {
        GridLayout::Grid => {
            for (rect, tile) in grid_rects(tiles.len(), area, 8.0, 16.0 / 9.0).into_iter().zip(&tiles) {
                paint_tile(app, ui, rect, tile, true);
            }
        }
        GridLayout::Spotlight => {
            let strip_height = if tiles.len() > 1 { (area.height() * 0.2).clamp(80.0, 160.0) } else { 0.0 };
            let main = Rect::from_min_max(
                area.min,
                pos2(area.right(), area.bottom() - strip_height - 8.0 * (strip_height > 0.0) as u8 as f32),
            );
            if let Some(tile) = tiles.get(focus) {
                paint_tile(app, ui, video::fit(main, vec2(16.0, 9.0)), tile, false);
            }
            let rest: Vec<&Tile> = tiles.iter().enumerate().filter(|(i, _)| *i != focus).map(|(_, t)| t).collect();
            let strip = Rect::from_min_max(pos2(area.left(), area.bottom() - strip_height), area.max);
            let width =
                (strip_height * 16.0 / 9.0).min((strip.width() - 8.0 * rest.len() as f32) / rest.len().max(1) as f32);
            let used = rest.len() as f32 * (width + 8.0) - 8.0;
            for (index, tile) in rest.into_iter().enumerate() {
                let left = strip.center().x - used / 2.0 + index as f32 * (width + 8.0);
                let rect = Rect::from_min_size(pos2(left, strip.top()), vec2(width, width * 9.0 / 16.0));
                paint_tile(app, ui, rect, tile, true);
            }
        }
        GridLayout::Single => {
            if let Some(tile) = tiles.get(focus) {
                paint_tile(app, ui, area, tile, false);
            }
        }
    }
}

/// The height at the top of a group call kept for the name and clock.
const OVERLAY_BAND: f32 = 72.0;

/// Name, timer, quality and banners over the call.
fn overlay(app: &View<'_>, ui: &mut Ui, area: Rect, call: &CurrentCall) {
    let names = call.participants.iter().filter(|p| p.joined).map(|p| app.model.name_of(&p.user)).collect::<Vec<_>>();
    let title = match (call.group, names.len()) {
        (false, _) | (true, 0..=2) => names.join(", "),
        (true, n) => format!("{}, {} and {} more", names[0], names[1], n - 2),
    };
    let clock = match (call.stage, call.active_since) {
        (Stage::Active, Some(since)) => widgets::format_duration(since.elapsed().as_secs()),
        _ => "Connecting…".to_owned(),
    };
    let connected = call.joined().any(|p| p.link == Some(MediaLinkState::Connected));
    let clock = if call.stage == Stage::Active && !connected && call.joined().count() > 0 {
        "Connecting media…".to_owned()
    } else {
        clock
    };
    let top_left = area.left_top() + vec2(16.0, 16.0);
    let rect = Rect::from_min_size(top_left, vec2(area.width() * 0.6, 60.0));
    ui.scope_builder(egui::UiBuilder::new().max_rect(rect), |ui| {
        egui::Frame::new()
            .fill(Color32::from_black_alpha(140))
            .corner_radius(10)
            .inner_margin(egui::Margin::symmetric(12, 8))
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.vertical(|ui| {
                        ui.label(
                            RichText::new(if title.is_empty() { "Waiting for others".to_owned() } else { title })
                                .strong()
                                .color(Color32::WHITE),
                        );
                        ui.label(RichText::new(&clock).small().color(Color32::from_gray(0xd0)));
                    });
                    let quality = call.quality();
                    let (rect, response) = ui.allocate_exact_size(vec2(22.0, 20.0), Sense::hover());
                    widgets::paint_quality(ui, rect.left_bottom(), quality);
                    let label = quality.map_or(MEASURING_CONNECTION, Quality::label);
                    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, label));
                    response.on_hover_text(call.quality_text());
                });
            });
    });
    // Reconnecting: the server link is down, or a peer's media connection dropped.
    let server_down = matches!(
        app.model.connection,
        Some(Connection::Reconnecting { .. }) | Some(Connection::Connecting { attempt: 1.. })
    );
    let peer_down = call.joined().any(|p| p.link == Some(MediaLinkState::Disconnected));
    if server_down || peer_down {
        let text =
            if server_down { "Reconnecting to the server…" } else { "Connection interrupted, reconnecting…" };
        let banner = Rect::from_center_size(pos2(area.center().x, area.top() + 30.0), vec2(340.0, 36.0));
        ui.painter().rect_filled(banner, CornerRadius::same(18), theme::AMBER);
        ui.painter().text(banner.center(), Align2::CENTER_CENTER, text, FontId::proportional(15.0), Color32::BLACK);
    }
}

/// Says who cannot be reached and why, with a way to try again.
fn unreachable_banner(app: &View<'_>, ui: &mut Ui, area: Rect, call: &CurrentCall, actions: &mut Vec<Action>) {
    let Some((who, why)) = call.joined().find_map(|p| Some((app.model.name_of(&p.user), p.unreachable.clone()?)))
    else {
        return;
    };
    let banner =
        Rect::from_center_size(pos2(area.center().x, area.top() + 96.0), vec2(area.width().min(560.0) - 32.0, 64.0));
    ui.scope_builder(egui::UiBuilder::new().max_rect(banner), |ui| {
        egui::Frame::new().fill(theme::RED).corner_radius(12).inner_margin(egui::Margin::symmetric(14, 8)).show(
            ui,
            |ui| {
                ui.horizontal(|ui| {
                    ui.vertical(|ui| {
                        ui.label(RichText::new(format!("Can't reach {who}")).strong().color(Color32::WHITE));
                        ui.label(RichText::new(crate::model::capitalised(&why)).small().color(Color32::WHITE));
                    });
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui.button("Try again").clicked() {
                            actions.push(Action::RetryMedia);
                        }
                    });
                });
            },
        );
    });
}

/// The controls bar.
fn controls(app: &View<'_>, ui: &mut Ui, call: &CurrentCall, actions: &mut Vec<Action>) {
    let video = call.kind == CallKind::Video;
    let count = 5 + usize::from(call.group) + usize::from(video);
    let width = count as f32 * 76.0;
    ui.horizontal(|ui| {
        ui.add_space(((ui.available_width() - width) / 2.0).max(0.0));
        let muted = call.my_media.audio_muted;
        let (icon, label, caption) = if muted { ("🔇", "Unmute", "Unmute") } else { ("🎤", "Mute", "Mute") };
        let fill = if muted { theme::RED.gamma_multiply(0.8) } else { Color32::from_gray(0x45) };
        if widgets::round_button(ui, icon, label, caption, fill, true, "M").clicked() {
            actions.push(Action::ToggleMute);
        }
        if call.kind == CallKind::Audio {
            if widgets::round_button(ui, "📷", "Upgrade to video", "Video", Color32::from_gray(0x45), true, "V")
                .clicked()
            {
                actions.push(Action::UpgradeToVideo);
            }
        } else {
            let on = call.my_media.camera_on;
            let (label, caption) = if on { ("Turn camera off", "Camera") } else { ("Turn camera on", "Camera") };
            let fill = if on { Color32::from_gray(0x45) } else { theme::RED.gamma_multiply(0.8) };
            if widgets::round_button(ui, if on { "📷" } else { "🚫" }, label, caption, fill, true, "V").clicked() {
                actions.push(Action::ToggleCamera);
            }
            let other = app.next_camera().is_some();
            let label = if other { "Switch camera" } else { "Switch camera (no other camera)" };
            if widgets::round_button(ui, "🔄", label, "Switch", Color32::from_gray(0x45), other, "C").clicked() {
                actions.push(Action::SwitchCamera);
            }
        }
        if widgets::round_button(ui, "🔊", "Choose the speaker", "Speaker", Color32::from_gray(0x45), true, "O")
            .clicked()
        {
            actions.push(Action::ToggleOutputMenu);
        }
        if widgets::round_button(ui, "➕", "Invite people", "Invite", Color32::from_gray(0x45), true, "I").clicked() {
            actions.push(Action::ToggleInvite);
        }
        if call.group {
            let next = app.view.layout.next();
            let label = format!("Layout: {} (switch to {})", app.view.layout.label(), next.label());
            if widgets::round_button(ui, "⊞", &label, app.view.layout.label(), Color32::from_gray(0x45), true, "G")
                .clicked()
            {
                actions.push(Action::SetLayout(next));
            }
        }
        if widgets::round_button(ui, "📞", "Hang up", "Hang up", theme::RED, true, "H").clicked() {
            actions.push(Action::Hangup);
        }
    });
}

/// A list of online contacts not in the call, to invite.
fn invite_list(app: &mut View<'_>, ui: &mut Ui, call: &CurrentCall, actions: &mut Vec<Action>) {
    let in_call: Vec<&UserId> = call.participants.iter().map(|p| &p.user).collect();
    let candidates: Vec<(UserId, String)> = app
        .model
        .contacts
        .values()
        .filter(|c| c.online && !in_call.contains(&&c.user))
        .map(|c| (c.user.clone(), app.model.name_of(&c.user)))
        .collect();
    let mut open = true;
    egui::Window::new("Invite people")
        .collapsible(false)
        .resizable(false)
        .anchor(Align2::CENTER_CENTER, Vec2::ZERO)
        .open(&mut open)
        .show(ui.ctx(), |ui| {
            ui.set_min_width(260.0);
            let Some(selected) = app.view.invite.as_mut() else { return };
            if candidates.is_empty() {
                ui.label(RichText::new("Everyone online is already here.").color(theme::MUTED_TEXT));
            }
            for (user, name) in &candidates {
                let mut checked = selected.contains(user);
                if ui.checkbox(&mut checked, name).changed() {
                    if checked {
                        selected.insert(user.clone());
                    } else {
                        selected.remove(user);
                    }
                }
            }
            ui.add_space(8.0);
            let chosen: Vec<UserId> = selected.iter().cloned().collect();
            let label = if chosen.len() > 1 { format!("Invite {}", chosen.len()) } else { "Invite".to_owned() };
            if ui.add_enabled(!chosen.is_empty(), egui::Button::new(label).fill(theme::ACCENT)).clicked() {
                actions.push(Action::Invite(chosen));
            }
        });
    if !open {
        actions.push(Action::ToggleInvite);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_fill_a_wide_window_in_sensible_shapes() {
        let wide = vec2(1280.0, 720.0);
        assert_eq!(grid_shape(1, wide, 16.0 / 9.0), (1, 1));
        assert_eq!(grid_shape(2, wide, 16.0 / 9.0), (2, 1));
        assert_eq!(grid_shape(4, wide, 16.0 / 9.0), (2, 2));
        assert_eq!(grid_shape(9, wide, 16.0 / 9.0), (3, 3));
        assert_eq!(grid_shape(5, wide, 16.0 / 9.0), (3, 2));
        // A tall window stacks them.
        assert_eq!(grid_shape(2, vec2(400.0, 900.0), 16.0 / 9.0), (1, 2));
    }

    #[test]
    fn grid_tiles_never_overlap_and_stay_inside() {
        let area = Rect::from_min_size(pos2(10.0, 20.0), vec2(1000.0, 600.0));
        for count in 1..=12 {
            let rects = grid_rects(count, area, 8.0, 16.0 / 9.0);
            assert_eq!(rects.len(), count);
            for (i, a) in rects.iter().enumerate() {
                assert!(area.expand(0.5).contains_rect(*a), "{count}: {a:?} outside {area:?}");
                for b in &rects[i + 1..] {
                    assert!(!a.shrink(0.5).intersects(*b), "{count}: {a:?} overlaps {b:?}");
                }
            }
        }
    }
}
