//! Colours, sizes and the egui style: one dark theme, readable at a glance.

use egui::{Color32, CornerRadius, FontFamily, FontId, Stroke, TextStyle, Visuals};

/// The window's background.
pub const BACKGROUND: Color32 = Color32::from_rgb(0x12, 0x14, 0x18);
/// Panels and cards.
pub const SURFACE: Color32 = Color32::from_rgb(0x1c, 0x1f, 0x26);
/// Raised elements on a surface (hovered rows, tiles without video).
pub const RAISED: Color32 = Color32::from_rgb(0x27, 0x2b, 0x34);
/// Main text.
pub const TEXT: Color32 = Color32::from_rgb(0xe8, 0xea, 0xee);
/// Secondary text.
pub const MUTED_TEXT: Color32 = Color32::from_rgb(0x9a, 0xa1, 0xad);
/// The accent (selection, links, the active speaker).
pub const ACCENT: Color32 = Color32::from_rgb(0x4c, 0x8d, 0xff);
/// Accept, online, good connection.
pub const GREEN: Color32 = Color32::from_rgb(0x2f, 0xbf, 0x71);
/// Decline, hang up, missed, poor connection.
pub const RED: Color32 = Color32::from_rgb(0xe5, 0x48, 0x4d);
/// Warnings, fair connection, reconnecting.
pub const AMBER: Color32 = Color32::from_rgb(0xf5, 0xa5, 0x24);

/// Avatar backgrounds, picked by a hash of the user id so a person keeps their colour.
const AVATAR_COLOURS: [Color32; 8] = [
    Color32::from_rgb(0x5b, 0x6e, 0xe1),
    Color32::from_rgb(0xd9, 0x5d, 0x8a),
    Color32::from_rgb(0x2a, 0x9d, 0x8f),
    Color32::from_rgb(0xe0, 0x8a, 0x3c),
    Color32::from_rgb(0x8e, 0x5c, 0xd9),
    Color32::from_rgb(0x3c, 0x9d, 0xd9),
    Color32::from_rgb(0x6a, 0xa8, 0x4f),
    Color32::from_rgb(0xc9, 0x4f, 0x4f),
];

/// The avatar colour of `user`.
pub fn avatar_colour(user: &str) -> Color32 {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = user.bytes().fold(0x811c_9dc5u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    // FNV's low bits vary little between short ids: mix before taking them.
    let mixed = (hash ^ (hash >> 16)).wrapping_mul(0x045d_9f3b);
    AVATAR_COLOURS[(mixed ^ (mixed >> 16)) as usize % AVATAR_COLOURS.len()]
}

/// Up to two initials of a display name ("Ada Lovelace" → "AL", "echo" → "E").
pub fn initials(name: &str) -> String {
    let mut words = name.split_whitespace().filter_map(|word| word.chars().next());
    let first = words.next().map(|c| c.to_uppercase().to_string()).unwrap_or_else(|| "?".to_owned());
    let last = words.next_back().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
    first + &last
}

/// Applies the theme to a context.
pub fn apply(ctx: &egui::Context) {
    let mut visuals = Visuals::dark();
    visuals.panel_fill = BACKGROUND;
    visuals.window_fill = SURFACE;
    visuals.extreme_bg_color = Color32::from_rgb(0x0d, 0x0f, 0x12);
    visuals.faint_bg_color = SURFACE;
    visuals.override_text_color = Some(TEXT);
    visuals.hyperlink_color = ACCENT;
    visuals.selection.bg_fill = ACCENT.linear_multiply(0.6);
    visuals.selection.stroke = Stroke::new(1.0, TEXT);
    visuals.window_corner_radius = CornerRadius::same(12);
    visuals.menu_corner_radius = CornerRadius::same(8);
    for widget in [
        &mut visuals.widgets.inactive,
        &mut visuals.widgets.hovered,
        &mut visuals.widgets.active,
        &mut visuals.widgets.open,
    ] {
        widget.corner_radius = CornerRadius::same(8);
    }
    visuals.widgets.inactive.weak_bg_fill = RAISED;
    visuals.widgets.inactive.bg_fill = RAISED;
    visuals.widgets.hovered.weak_bg_fill = Color32::from_rgb(0x33, 0x38, 0x43);
    // One theme whatever the desktop prefers: video looks best on dark.
    ctx.set_theme(egui::Theme::Dark);
    ctx.set_visuals_of(egui::Theme::Dark, visuals);
    ctx.style_mut_of(egui::Theme::Dark, |style| {
        style.text_styles = [
            (TextStyle::Small, FontId::new(12.0, FontFamily::Proportional)),
            (TextStyle::Body, FontId::new(15.0, FontFamily::Proportional)),
            (TextStyle::Button, FontId::new(15.0, FontFamily::Proportional)),
            (TextStyle::Heading, FontId::new(24.0, FontFamily::Proportional)),
            (TextStyle::Monospace, FontId::new(14.0, FontFamily::Monospace)),
        ]
        .into();
        style.spacing.item_spacing = egui::vec2(10.0, 8.0);
        style.spacing.button_padding = egui::vec2(14.0, 7.0);
        style.spacing.interact_size.y = 30.0;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_take_the_first_and_last_word() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("grace brewster murray hopper"), "GH");
        assert_eq!(initials("echo"), "E");
        assert_eq!(initials("  "), "?");
        assert_eq!(initials("élodie"), "É");
    }

    #[test]
    fn a_user_keeps_their_colour() {
        assert_eq!(avatar_colour("ada"), avatar_colour("ada"));
        let distinct: std::collections::BTreeSet<_> =
            ["ada", "grace", "alan", "echo", "me", "bob"].iter().map(|u| avatar_colour(u).to_array()).collect();
        assert!(distinct.len() >= 4, "colours spread: {distinct:?}");
    }
}
