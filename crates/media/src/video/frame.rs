//! Video frames: planar I420 as sources and codecs use it, RGBA as a UI shows it.

use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImage, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

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
    /// The bytes a `width` x `height` frame's three planes take (chroma planes round their halves up).
    pub fn len_for(width: u32, height: u32) -> usize {
        let (width, height) = (width as usize, height as usize);
        width * height + 2 * width.div_ceil(2) * height.div_ceil(2)
    }

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
        self.to_rgba_into(Vec::new())
    }

    /// Converts to RGBA in `buffer`, reusing its allocation: a picture a frame would otherwise cost
    /// a fresh 3.7 MB allocation at 720p, zeroed and faulted in each time.
    pub fn to_rgba_into(&self, mut buffer: Vec<u8>) -> RgbaFrame {
        let (y, u, v) = self.planes();
        // Every byte is written by the conversion: only a first, smaller buffer needs filling.
        buffer.resize((self.width * self.height * 4) as usize, 0);
        let mut rgba = RgbaFrame { width: self.width, height: self.height, pixels: buffer };
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

impl RgbaFrame {
    /// Writes this picture into `frame` (SIMD, via `yuv`), scaled to the frame's size by nearest
    /// neighbour when the sizes differ; `scratch` holds the scaled picture between calls.
    pub fn to_i420_into(&self, frame: &mut I420Frame, scratch: &mut Vec<u8>) {
        let (width, height) = (frame.width, frame.height);
        let source: &[u8] = if (self.width, self.height) == (width, height) {
            &self.pixels
        } else {
            scale_nearest(self, width, height, scratch);
            scratch
        };
        let (y, u, v) = frame.planes_mut();
        let mut planes = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(y),
            y_stride: width,
            u_plane: BufferStoreMut::Borrowed(u),
            u_stride: width / 2,
            v_plane: BufferStoreMut::Borrowed(v),
            v_stride: width / 2,
            width,
            height,
        };
        let converted = yuv::rgba_to_yuv420(
            &mut planes,
            source,
            width * 4,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        );
        if let Err(error) = converted {
            tracing::debug!(%error, "cannot convert a picture to I420");
        }
    }
}

/// Nearest-neighbour scaling of `picture` to `width`x`height` into `out`.
fn scale_nearest(picture: &RgbaFrame, width: u32, height: u32, out: &mut Vec<u8>) {
    out.resize((width * height * 4) as usize, 0);
    if picture.width == 0 || picture.height == 0 {
        out.fill(0);
        return;
    }
    for row in 0..height {
        let source_row = (u64::from(row) * u64::from(picture.height) / u64::from(height)) as u32;
        for column in 0..width {
            let source_column = (u64::from(column) * u64::from(picture.width) / u64::from(width)) as u32;
            let from = ((source_row * picture.width + source_column) * 4) as usize;
            let to = ((row * width + column) * 4) as usize;
            out[to..to + 4].copy_from_slice(&picture.pixels[from..from + 4]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::{TestPattern, read_stamp};

    #[test]
    fn a_picture_survives_the_round_trip_through_i420_and_scaling() {
        let (source, stamp) = TestPattern::new(640, 360).next_frame(1_234_567);
        let rgba = source.to_rgba();
        let mut same = I420Frame::black(640, 360);
        let mut scratch = Vec::new();
        rgba.to_i420_into(&mut same, &mut scratch);
        assert_eq!(read_stamp(&same.to_rgba()), Some(stamp));
        // Scaled up by two, every pixel lands where nearest-neighbour puts it (within YUV rounding).
        let mut larger = I420Frame::black(1280, 720);
        rgba.to_i420_into(&mut larger, &mut scratch);
        let larger = larger.to_rgba();
        assert_eq!((larger.width, larger.height), (1280, 720));
        for (x, y) in [(0, 0), (8, 8), (100, 20), (333, 200), (639, 359)] {
            let (original, scaled) = (i32::from(rgba.brightness(x, y)), i32::from(larger.brightness(2 * x, 2 * y)));
            assert!((original - scaled).abs() <= 12, "at {x},{y}: {original} became {scaled}");
        }
    }
}
