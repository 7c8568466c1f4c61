//! Video frames: planar I420 as sources and codecs use it, RGBA as a UI shows it.

use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

/// A picture in I420 (YUV 4:2:0, BT.601 limited range), tightly packed: Y plane, then U, then V.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Y (`width*height`), U and V (`width/2*height/2` each), in that order.
    pub data: Vec<u8>,
}

impl I420Frame {
    /// A black frame; `width` and `height` are rounded down to even numbers.
    pub fn black(width: u32, height: u32) -> Self {
        let (width, height) = (width & !1, height & !1);
        let luma = (width * height) as usize;
        let mut data = vec![16u8; luma + luma / 2];
        data[luma..].fill(128);
        Self { width, height, data }
    }

    /// The three planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = (self.width * self.height) as usize;
        let (y, chroma) = self.data.split_at(luma);
        let (u, v) = chroma.split_at(luma / 4);
        (y, u, v)
    }

    /// The three planes, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = (self.width * self.height) as usize;
        let (y, chroma) = self.data.split_at_mut(luma);
        let (u, v) = chroma.split_at_mut(luma / 4);
        (y, u, v)
    }

    /// Converts to RGBA (SIMD, via the `yuv` crate).
    pub fn to_rgba(&self) -> RgbaFrame {
        let (y, u, v) = self.planes();
        let mut rgba = RgbaFrame { width: self.width, height: self.height, pixels: vec![0; (self.width * self.height * 4) as usize] };
        i420_to_rgba(
            YuvPlanarImage {
                y_plane: y,
                y_stride: self.width,
                u_plane: u,
                u_stride: self.width / 2,
                v_plane: v,
                v_stride: self.width / 2,
                width: self.width,
                height: self.height,
            },
            &mut rgba,
        )
        // The planes come from this frame's own layout, which `black` and `planes` keep consistent.
        .expect("a frame's own planes fit its size");
        rgba
    }
}

/// Converts planar I420 with any strides into `rgba` (already sized to the image). Fails when the planes
/// do not fit the size (a decoder's output from a peer's bitstream is input like any other).
pub(crate) fn i420_to_rgba(image: YuvPlanarImage<'_, u8>, rgba: &mut RgbaFrame) -> Result<(), yuv::YuvError> {
    let stride = rgba.width * 4;
    yuv::yuv420_to_rgba(&image, &mut rgba.pixels, stride, YuvRange::Limited, YuvStandardMatrix::Bt601)
}

/// A picture ready to show: 8-bit RGBA, rows top to bottom, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbaFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes.
    pub pixels: Vec<u8>,
}

impl RgbaFrame {
    /// The luma-like brightness (0..=255) of one pixel, for reading test-pattern stamps.
    pub fn brightness(&self, x: u32, y: u32) -> u8 {
        let at = ((y * self.width + x) * 4) as usize;
        let [r, g, b] = [self.pixels[at] as u32, self.pixels[at + 1] as u32, self.pixels[at + 2] as u32];
        ((r * 299 + g * 587 + b * 114) / 1000) as u8
    }
}
