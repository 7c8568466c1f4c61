//! Small drawn pieces shared by the views: avatars, round call buttons, badges, quality bars.

use egui::{
    Align2, Color32, CornerRadius, FontId, Pos2, Rect, Response, Sense, Stroke, StrokeKind, TextureId, Ui, Vec2, pos2,
    vec2,
};

use super::theme;
use crate::settings::AvatarShape;

/// What an avatar shows: a picture, or initials on the user's colour.
#[derive(Debug, Clone)]
pub struct AvatarLook {
    /// The user id, for the colour.
    pub user: String,
    /// The display name, for the initials.
    pub name: String,
    /// A loaded picture (already cropped round for circles).
    pub picture: Option<TextureId>,
}

/// Paints an avatar in `rect` in the given shape.
pub fn paint_avatar(ui: &Ui, rect: Rect, look: &AvatarLook, shape: AvatarShape) {
    let painter = ui.painter_at(rect.expand(2.0));
    let side = rect.width().min(rect.height());
    let (area, corner) = match shape {
        AvatarShape::Circle => (Rect::from_center_size(rect.center(), Vec2::splat(side)), CornerRadius::same(u8::MAX)),
        AvatarShape::Square => (
            Rect::from_center_size(rect.center(), Vec2::splat(side)),
            CornerRadius::same((side * 0.18).min(255.0) as u8),
        ),
        AvatarShape::Fullscreen => (rect, CornerRadius::ZERO),
    };
    match look.picture {
        Some(texture) => {
            let uv = if shape == AvatarShape::Fullscreen {
                cover_uv(area.size())
            } else {
                Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0))
            };
            egui::Image::new((texture, area.size())).uv(uv).corner_radius(corner).paint_at(ui, area);
        }
        None => {
            painter.rect_filled(area, corner, theme::avatar_colour(&look.user));
            let size = (side * 0.38).max(10.0);
            painter.text(
                area.center(),
                Align2::CENTER_CENTER,
                theme::initials(&look.name),
                FontId::proportional(size),
                Color32::WHITE,
            );
        }
    }
}

/// The part of a square picture that covers an area of this size (cropped, not stretched).
fn cover_uv(size: Vec2) -> Rect {
    if size.x >= size.y {
        let visible = size.y / size.x;
        Rect::from_min_max(pos2(0.0, 0.5 - visible / 2.0), pos2(1.0, 0.5 + visible / 2.0))
    } else {
        let visible = size.x / size.y;
        Rect::from_min_max(pos2(0.5 - visible / 2.0, 0.0), pos2(0.5 + visible / 2.0, 1.0))
    }
}

/// An avatar of `diameter` as a widget, with an optional presence dot.
pub fn avatar(ui: &mut Ui, look: &AvatarLook, diameter: f32, online: Option<bool>) -> Response {
    let (rect, response) = ui.allocate_exact_size(Vec2::splat(diameter), Sense::hover());
    paint_avatar(ui, rect, look, AvatarShape::Circle);
    if let Some(online) = online {
        let dot = diameter * 0.16;
        let centre = rect.right_bottom() - Vec2::splat(dot);
        ui.painter().circle_filled(centre, dot + 2.0, theme::SURFACE);
        ui.painter().circle_filled(centre, dot, if online { theme::GREEN } else { Color32::from_gray(0x5a) });
    }
    response
}

/// Rings that pulse out of an avatar while a call rings; `time` in seconds drives the animation.
pub fn paint_pulse(ui: &Ui, centre: Pos2, radius: f32, time: f64, colour: Color32) {
    for offset in [0.0, 0.5] {
        let phase = ((time * 0.8 + offset) % 1.0) as f32;
        let alpha = (1.0 - phase) * 0.55;
        let r = radius * (1.0 + phase * 0.45);
        ui.painter().circle_stroke(centre, r, Stroke::new(3.0, colour.gamma_multiply(alpha)));
    }
}

/// A round call-control button: an icon glyph on a colour, with a caption under it. `label` is what
/// screen readers and tests find it by; `shortcut` goes into the tooltip.
pub fn round_button(
    ui: &mut Ui,
    icon: &str,
    label: &str,
    caption: &str,
    fill: Color32,
    enabled: bool,
    shortcut: &str,
) -> Response {
    let diameter: f32 = 52.0;
    let size = vec2(diameter.max(64.0), diameter + 20.0);
    let sense = if enabled { Sense::click() } else { Sense::hover() };
    let (rect, response) = ui.allocate_exact_size(size, sense);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, enabled, label));
    let centre = pos2(rect.center().x, rect.top() + diameter / 2.0);
    let fill = match (enabled, response.hovered()) {
        (false, _) => fill.gamma_multiply(0.35),
        (true, true) => fill.gamma_multiply(1.25),
        (true, false) => fill,
    };
    let painter = ui.painter();
    painter.circle_filled(centre, diameter / 2.0, fill);
    if response.has_focus() {
        painter.circle_stroke(centre, diameter / 2.0 + 3.0, Stroke::new(2.0, theme::ACCENT));
    }
    let icon_colour = if enabled { Color32::WHITE } else { Color32::from_gray(0x90) };
    painter.text(centre, Align2::CENTER_CENTER, icon, FontId::proportional(22.0), icon_colour);
    painter.text(
        pos2(rect.center().x, rect.bottom() - 8.0),
        Align2::CENTER_CENTER,
        caption,
        FontId::proportional(12.0),
        theme::MUTED_TEXT,
    );
    let tip = if shortcut.is_empty() { label.to_owned() } else { format!("{label} ({shortcut})") };
    response.on_hover_text(tip)
}

/// A small rounded badge with an icon (muted, camera off) at `at` (its left-centre).
pub fn badge(ui: &Ui, at: Pos2, icon: &str, fill: Color32) -> Rect {
    let rect = Rect::from_min_size(at - vec2(0.0, 12.0), vec2(26.0, 24.0));
    ui.painter().rect_filled(rect, CornerRadius::same(12), fill);
    ui.painter().text(rect.center(), Align2::CENTER_CENTER, icon, FontId::proportional(14.0), Color32::WHITE);
    rect
}

/// Three bars for the network quality (`None` draws them grey: not measured yet).
pub fn paint_quality(ui: &Ui, left_bottom: Pos2, quality: Option<crate::model::Quality>) {
    use crate::model::Quality;
    let (lit, colour) = match quality {
        Some(Quality::Good) => (3, theme::GREEN),
        Some(Quality::Fair) => (2, theme::AMBER),
        Some(Quality::Poor) => (1, theme::RED),
        None => (0, theme::MUTED_TEXT),
    };
    for bar in 0..3 {
        let height = 6.0 + 4.0 * bar as f32;
        let x = left_bottom.x + bar as f32 * 6.0;
        let rect = Rect::from_min_max(pos2(x, left_bottom.y - height), pos2(x + 4.0, left_bottom.y));
        let fill = if bar < lit { colour } else { Color32::from_gray(0x55) };
        ui.painter().rect_filled(rect, CornerRadius::same(1), fill);
    }
}

/// A label on a dark translucent pill (names over video).
pub fn paint_caption(ui: &Ui, left_bottom: Pos2, text: &str) -> Rect {
    let galley = ui.painter().layout_no_wrap(text.to_owned(), FontId::proportional(14.0), Color32::WHITE);
    let rect = Rect::from_min_size(left_bottom - vec2(0.0, galley.size().y + 8.0), galley.size() + vec2(16.0, 8.0));
    ui.painter().rect_filled(rect, CornerRadius::same(6), Color32::from_black_alpha(150));
    ui.painter().galley(rect.min + vec2(8.0, 4.0), galley, Color32::WHITE);
    rect
}

/// A coloured frame around a tile (the active speaker).
pub fn paint_highlight(ui: &Ui, rect: Rect, colour: Color32) {
    ui.painter().rect_stroke(rect, CornerRadius::same(12), Stroke::new(3.0, colour), StrokeKind::Inside);
}

/// Formats a call's length as m:ss or h:mm:ss.
pub fn format_duration(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    if hours > 0 { format!("{hours}:{minutes:02}:{seconds:02}") } else { format!("{minutes}:{seconds:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(format_duration(0), "0:00");
        assert_eq!(format_duration(65), "1:05");
        assert_eq!(format_duration(3_725), "1:02:05");
    }

    #[test]
    fn a_wide_area_shows_the_middle_band_of_a_square_picture() {
        let uv = cover_uv(vec2(200.0, 100.0));
        assert_eq!((uv.min.y, uv.max.y, uv.min.x, uv.max.x), (0.25, 0.75, 0.0, 1.0));
    }
}
