//! One texture per video stream, updated in place (`TextureHandle::set`) only when a new frame landed.

use std::collections::HashMap;
use std::sync::Arc;

use dialtone_engine::VideoSlot;
use egui::{ColorImage, Rect, TextureHandle, TextureOptions, Ui, Vec2};

/// A stream's texture and the frame it shows.
struct StreamTexture {
    handle: TextureHandle,
    index: u64,
    size: [usize; 2],
    /// Still in use this frame (textures of streams no longer drawn are dropped).
    used: bool,
}

/// Textures by stream key (`call/device`, or `local` for the self view).
#[derive(Default)]
pub struct VideoTextures {
    streams: HashMap<String, StreamTexture>,
}

/// A picture ready to draw.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    /// The texture.
    pub texture: egui::TextureId,
    /// Its size in pixels.
    pub size: Vec2,
}

impl VideoTextures {
    /// The latest picture of `slot`, uploading it if it changed since the last call.
    pub fn picture(&mut self, ctx: &egui::Context, key: &str, slot: &Arc<VideoSlot>) -> Option<Picture> {
        let Some(frame) = slot.latest() else {
            self.streams.remove(key);
            return None;
        };
        let size = [frame.picture.width as usize, frame.picture.height as usize];
        let stale = self.streams.get(key).is_none_or(|s| s.index != frame.index);
        if stale {
            // Video is opaque, so premultiplied and straight alpha are the same bytes: the cheaper copy.
            let image = ColorImage::from_rgba_premultiplied(size, &frame.picture.pixels);
            match self.streams.get_mut(key) {
                Some(stream) => {
                    stream.handle.set(image, TextureOptions::LINEAR);
                    stream.index = frame.index;
                    stream.size = size;
                }
                None => {
                    let handle = ctx.load_texture(format!("video-{key}"), image, TextureOptions::LINEAR);
                    self.streams.insert(key.to_owned(), StreamTexture { handle, index: frame.index, size, used: true });
                }
            }
        }
        let stream = self.streams.get_mut(key)?;
        stream.used = true;
        Some(Picture { texture: stream.handle.id(), size: Vec2::new(stream.size[0] as f32, stream.size[1] as f32) })
    }

    /// Drops textures not drawn since the last call (streams that ended).
    pub fn sweep(&mut self) {
        self.streams.retain(|_, stream| std::mem::replace(&mut stream.used, false));
    }
}

/// The largest rectangle of `picture`'s aspect that fits in `area`, centred (letterboxed).
pub fn fit(area: Rect, picture: Vec2) -> Rect {
    if picture.x <= 0.0 || picture.y <= 0.0 {
        return area;
    }
    let scale = (area.width() / picture.x).min(area.height() / picture.y);
    Rect::from_center_size(area.center(), picture * scale)
}

/// The part of a picture that covers `area` (cropped, not stretched), as texture coordinates.
pub fn cover_uv(area: Vec2, picture: Vec2) -> Rect {
    let (area_aspect, picture_aspect) = (area.x / area.y.max(1.0), picture.x / picture.y.max(1.0));
    if picture_aspect > area_aspect {
        let visible = area_aspect / picture_aspect;
        Rect::from_min_max(egui::pos2(0.5 - visible / 2.0, 0.0), egui::pos2(0.5 + visible / 2.0, 1.0))
    } else {
        let visible = picture_aspect / area_aspect;
        Rect::from_min_max(egui::pos2(0.0, 0.5 - visible / 2.0), egui::pos2(1.0, 0.5 + visible / 2.0))
    }
}

/// Paints `picture` in `area`: the whole picture letterboxed (`cover` false) or filling the area.
pub fn paint(ui: &Ui, area: Rect, picture: Picture, cover: bool, corner: u8) {
    let full = Rect::from_min_max(egui::Pos2::ZERO, egui::pos2(1.0, 1.0));
    let (rect, uv) = if cover { (area, cover_uv(area.size(), picture.size)) } else { (fit(area, picture.size), full) };
    egui::Image::new((picture.texture, rect.size())).uv(uv).corner_radius(corner).paint_at(ui, rect);
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::{pos2, vec2};

    #[test]
    fn a_wide_picture_is_letterboxed_with_its_aspect_kept() {
        let area = Rect::from_min_size(pos2(0.0, 0.0), vec2(800.0, 800.0));
        let shown = fit(area, vec2(1280.0, 720.0));
        assert_eq!((shown.width(), shown.height()), (800.0, 450.0));
        assert_eq!(shown.center(), area.center());
    }

    #[test]
    fn covering_a_tall_area_crops_the_sides() {
        let uv = cover_uv(vec2(100.0, 200.0), vec2(200.0, 100.0));
        assert!((uv.width() - 0.25).abs() < 1e-6 && uv.height() == 1.0, "{uv:?}");
    }
}
