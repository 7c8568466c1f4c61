//! Avatar pictures: loaded with `image`, cropped to the centre square, scaled, and cut round.

use std::path::Path;

use dialtone_protocol::{MAX_PICTURE_BYTES, PictureKind};
use egui::ColorImage;
use image::imageops::FilterType;

/// Why a picture could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    /// Not readable as a PNG, JPEG or WebP picture.
    #[error("cannot read the picture {path}: {source}")]
    Image {
        /// The file.
        path: String,
        /// What the decoder said.
        source: image::ImageError,
    },
    /// The file could not be read.
    #[error("cannot read the picture {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The side, in pixels, of a picture made small enough to travel.
const SENT_SIDE: u32 = 256;

/// Loads `path` (its format told by its content), crops its centre square, scales it to `side` pixels and
/// makes everything outside the inscribed circle transparent (with a one-pixel soft edge).
pub fn load_round(path: &Path, side: u32) -> Result<ColorImage, AvatarError> {
    let image_error = |source| AvatarError::Image { path: path.display().to_string(), source };
    let reader = image::ImageReader::open(path)
        .map_err(|source| AvatarError::File { path: path.display().to_string(), source })?
        .with_guessed_format()
        .map_err(|source| AvatarError::File { path: path.display().to_string(), source })?;
    let picture = reader.decode().map_err(image_error)?;
    Ok(round(&picture, side))
}

/// The picture at `path` as it is sent to others: as it is when it is a PNG, JPEG or WebP within
/// [`MAX_PICTURE_BYTES`], else its centre square scaled to 256 pixels as a JPEG.
pub fn picture_to_send(path: &Path) -> Result<Vec<u8>, AvatarError> {
    let bytes = std::fs::read(path).map_err(|source| AvatarError::File { path: path.display().to_string(), source })?;
    if bytes.len() <= MAX_PICTURE_BYTES && PictureKind::of(&bytes).is_some() {
        return Ok(bytes);
    }
    let image_error = |source| AvatarError::Image { path: path.display().to_string(), source };
    let picture = image::load_from_memory(&bytes).map_err(image_error)?;
    let (width, height) = (picture.width(), picture.height());
    let square = width.min(height).max(1);
    let cropped = picture.crop_imm((width - square) / 2, (height - square) / 2, square, square);
    let mut side = SENT_SIDE;
    loop {
        let scaled = cropped.resize_exact(side, side, FilterType::Triangle).to_rgb8();
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85);
        scaled.write_with_encoder(encoder).map_err(image_error)?;
        if jpeg.len() <= MAX_PICTURE_BYTES || side <= 64 {
            return Ok(jpeg);
        }
        side /= 2;
    }
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

    #[test]
    fn a_large_photo_is_made_small_enough_to_travel_and_a_small_one_goes_as_it_is() {
        let folder = tempfile::tempdir().unwrap();
        // Noise does not compress: as a PNG this is far over 64 KiB.
        let mut seed = 1u32;
        let photo = image::RgbImage::from_fn(900, 600, |_, _| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Rgb([(seed >> 24) as u8, (seed >> 16) as u8, (seed >> 8) as u8])
        });
        let large = folder.path().join("photo.png");
        photo.save(&large).unwrap();
        assert!(std::fs::metadata(&large).unwrap().len() > MAX_PICTURE_BYTES as u64);
        let sent = picture_to_send(&large).unwrap();
        assert!(sent.len() <= MAX_PICTURE_BYTES, "{} bytes", sent.len());
        assert_eq!(PictureKind::of(&sent), Some(PictureKind::Jpeg));
        let decoded = image::load_from_memory(&sent).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (256, 256));

        let small = folder.path().join("small.png");
        image::RgbImage::from_pixel(32, 32, image::Rgb([9, 9, 9])).save(&small).unwrap();
        assert_eq!(picture_to_send(&small).unwrap(), std::fs::read(&small).unwrap());

        let text = folder.path().join("notes.txt");
        std::fs::write(&text, "not a picture").unwrap();
        assert!(picture_to_send(&text).unwrap_err().to_string().contains("notes.txt"));
    }
}
