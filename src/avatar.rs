//! Avatar pictures: loaded with `image`, cropped to the centre square, scaled, and cut round.

use std::path::Path;

use egui::ColorImage;
use image::imageops::FilterType;

/// Why a picture could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    /// Not readable as a PNG or JPEG picture.
    #[error("cannot read the picture {path}: {source}")]
    Image {
        /// The file.
        path: String,
        /// What the decoder said.
        source: image::ImageError,
    },
}

/// Loads `path`, crops its centre square, scales it to `side` pixels and makes everything outside the
/// inscribed circle transparent (with a one-pixel soft edge).
pub fn load_round(path: &Path, side: u32) -> Result<ColorImage, AvatarError> {
    let picture =
        image::open(path).map_err(|source| AvatarError::Image { path: path.display().to_string(), source })?;
    Ok(round(&picture, side))
}

/// Crops, scales and rounds a decoded picture.
pub fn round(picture: &image::DynamicImage, side: u32) -> ColorImage {
    let (width, height) = (picture.width(), picture.height());
    let square = width.min(height).max(1);
    let cropped = picture.crop_imm((width - square) / 2, (height - square) / 2, square, square);
    let mut scaled = cropped.resize_exact(side, side, FilterType::Triangle).to_rgba8();
    let radius = side as f32 / 2.0;
    for (x, y, pixel) in scaled.enumerate_pixels_mut() {
        let distance = ((x as f32 + 0.5 - radius).powi(2) + (y as f32 + 0.5 - radius).powi(2)).sqrt();
        let coverage = (radius - distance + 0.5).clamp(0.0, 1.0);
        pixel.0[3] = (f32::from(pixel.0[3]) * coverage) as u8;
    }
    ColorImage::from_rgba_unmultiplied([side as usize, side as usize], scaled.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_picture_is_cropped_to_its_centre_and_cut_round() {
        // Left third red, middle third green, right third blue: the centre square is all green.
        let picture = image::RgbaImage::from_fn(300, 100, |x, _| match x / 100 {
            0 => image::Rgba([255, 0, 0, 255]),
            1 => image::Rgba([0, 255, 0, 255]),
            _ => image::Rgba([0, 0, 255, 255]),
        });
        let round = round(&image::DynamicImage::ImageRgba8(picture), 64);
        assert_eq!(round.size, [64, 64]);
        let centre = round.pixels[32 * 64 + 32];
        assert_eq!((centre.r(), centre.g(), centre.b(), centre.a()), (0, 255, 0, 255));
        assert_eq!(round.pixels[0].a(), 0, "the corner is outside the circle");
    }

    #[test]
    fn a_file_that_is_not_a_picture_gives_a_clear_error() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("me.png");
        std::fs::write(&path, b"not a picture").unwrap();
        let error = load_round(&path, 64).unwrap_err().to_string();
        assert!(error.contains("me.png"), "{error}");
    }
}
